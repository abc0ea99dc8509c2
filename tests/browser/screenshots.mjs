// screenshots.mjs — `make screenshots`: the paper's central figure on real data. Fashion-MNIST
// (Debian's dataset-fashion-mnist, its 10,000 t10k images through `initlab import-idx`) at
// 32 px, ResNet-50 with Glorot and with He uniform, one epoch each; the Compare view at
// epoch 0 in both BatchNorm modes (and its health map of saturation) is saved under
// tests/artifacts/ and checked: He explodes and saturates the softmax in inference mode
// while Glorot stays small, both are tame in train mode, and the theory line stays within
// half a decade of every measured layer in inference mode. Prints ok/FAIL per check and "N passed, N failed".
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startDaemon, waitFor } from './daemon.mjs';
import { launch, open, waitChart, watchedPage } from './page.mjs';

const ARTIFACTS = path.join(ROOT, 'tests', 'artifacts');
const IDX = '/usr/share/datasets/fashion-mnist';
const INITLAB = process.env.INITLAB || path.join(ROOT, 'initlab');
const JOB = { model: 'resnet50', image_size: 32, epochs: 1, batch_size: 32, seed: 0, threads: 2 };
let passed = 0, failed = 0;

function report(name, ok, why) {
  if (ok) passed++; else failed++;
  console.log(ok ? `ok   ${name}` : `FAIL ${name}${why ? ': ' + why : ''}`);
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const d = await startDaemon({ classes: 2, perClass: 4 });
  let browser = null;
  try {
    const dir = path.join(d.data, 'fashion-mnist');
    execFileSync(INITLAB, ['import-idx', path.join(IDX, 't10k-images-idx3-ubyte.gz'), path.join(IDX, 't10k-labels-idx1-ubyte.gz'), dir, '--names', 'fashion-mnist'], { stdio: 'ignore' });
    await d.api.post('/datasets', { name: 'fashion-mnist', path: dir });
    await waitFor('the Fashion-MNIST scan', async () => (await d.api.get('/datasets/fashion-mnist')).status === 'ready', 300000, 1000);
    const jobIds = [];
    for (const init of ['glorot_uniform', 'he_uniform'])
      jobIds.push((await d.api.post('/jobs', { dataset: 'fashion-mnist', init, ...JOB })).id);
    await waitFor('both ResNet-50 jobs', async () => {
      const js = await Promise.all(jobIds.map((id) => d.api.get(`/jobs/${id}`)));
      const bad = js.find((j) => j.status === 'failed' || j.status === 'cancelled');
      if (bad) throw new Error(`job ${bad.id} ${bad.status}: ${bad.error}`);
      return js.every((j) => j.status === 'done');
    }, 1200000, 2000);

    // The science, from the API.
    const at0 = async (id, mode, quantity = 'activation') => (await d.api.get(`/jobs/${id}/stats?quantity=${quantity}&mode=${mode}&epoch=0`)).layers;
    const [gi, hi, gt, ht] = await Promise.all([at0(jobIds[0], 'inference'), at0(jobIds[1], 'inference'), at0(jobIds[0], 'train'), at0(jobIds[1], 'train')]);
    const last = (rows) => rows.find((r) => r.layer === 'conv5_block3_out');
    report(`inference mode: He's last block output explodes (std ${last(hi).std.toExponential(2)} against Glorot's ${last(gi).std.toExponential(2)})`,
      last(hi).std > 1e3 && last(hi).std > 300 * last(gi).std);
    const soft = (rows) => rows.find((r) => r.type === 'softmax');
    report(`inference mode: He's softmax saturates (${(100 * soft(hi).saturation).toFixed(0)} % of rows above 0.99), Glorot's does not (${(100 * soft(gi).saturation).toFixed(0)} %)`,
      soft(hi).flags.includes('saturated') && !soft(gi).flags.includes('saturated'));
    const gHe = await at0(jobIds[1], 'inference', 'gradient'), gGl = await at0(jobIds[0], 'inference', 'gradient');
    const median = (v) => v.slice().sort((a, b) => a - b)[Math.floor(v.length / 2)];
    // The loss is softmax cross-entropy from the logits, whose gradient p − y stays of order
    // 1 when the softmax saturates on a wrong class: the backward pass explodes with the
    // forward one (eqs. 52–53 with inference-mode batch norm passing the product through).
    report(`inference mode: He's kernel gradients explode too (median std ${median(gHe.map((r) => r.std)).toExponential(1)} against Glorot's ${median(gGl.map((r) => r.std)).toExponential(1)})`,
      median(gHe.map((r) => r.std)) > 100 * median(gGl.map((r) => r.std)));
    const first = (rows) => rows.find((r) => r.layer === 'conv1_relu');
    report(`inference mode: Glorot's activations shrink with depth (std ${first(gi).std.toFixed(1)} after the stem, ${last(gi).std.toFixed(2)} at the last block)`,
      last(gi).std < first(gi).std / 3);
    report(`train mode: both stay near 1 (last block std ${last(gt).std.toFixed(2)} and ${last(ht).std.toFixed(2)})`, last(gt).std < 10 && last(ht).std < 10);
    for (const [name, rows] of [['Glorot', gi], ['He', hi]]) {
      const gaps = rows.filter((r) => r.theory_gap !== null).map((r) => [r.layer, r.theory_gap]);
      const worst = gaps.reduce((a, b) => (Math.abs(b[1]) > Math.abs(a[1]) ? b : a), ['', 0]);
      report(`inference mode, ${name}: the theory follows all ${gaps.length} layers within half a decade (worst ${worst[0]} ${worst[1].toFixed(2)})`,
        gaps.length > 40 && gaps.every(([, g]) => Math.abs(g) < 0.5));
    }

    // The pictures.
    browser = await launch();
    const { page } = await watchedPage(browser, { width: 1600, height: 1000 });
    await page.goto(d.base + '/');
    await open(page, `#/compare?jobs=${jobIds.join(',')}`, 'compare', 60000);
    await waitChart(page, 'profile-inference', (i) => i.series.length >= 4, 30000);
    await waitChart(page, 'profile-train', (i) => i.series.length >= 4, 30000);
    await page.waitForTimeout(500);
    const panel = await page.$('[data-panel="profile"]');
    await panel.screenshot({ path: path.join(ARTIFACTS, 'resnet50-fashion32-epoch0-activations.png') });
    await page.selectOption('[data-control="profile-quantity"]', 'gradient');
    await waitChart(page, 'profile-inference', (i) => i.title.includes('gradients'), 30000);
    await page.waitForTimeout(500);
    await panel.screenshot({ path: path.join(ARTIFACTS, 'resnet50-fashion32-epoch0-gradients.png') });
    await page.selectOption('[data-control="profile-quantity"]', 'activation');
    await waitChart(page, 'profile-inference', (i) => i.title.includes('activations'), 30000);
    // The box plots and health of the same epoch, inference mode.
    await page.selectOption('[data-control="quantity"]', 'activation');
    await page.$eval('[data-control="epoch"]', (el) => { el.value = '0'; el.dispatchEvent(new Event('input')); });
    await waitChart(page, 'layers-box', (i) => i.title.startsWith('activation') && i.title.includes('epoch 0'), 30000);
    await page.waitForTimeout(800);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(ARTIFACTS, 'resnet50-fashion32-epoch0-compare.png'), fullPage: true });
    // The collapse of the predictions: He's softmax saturated, on the health map.
    await page.selectOption('[data-control="health-metric"]', 'saturated');
    await waitChart(page, 'health-map', (i) => i.title.startsWith('saturated') && i.title.includes('epoch 0'), 30000);
    await page.waitForTimeout(500);
    await (await page.$('[data-panel="health"]')).screenshot({ path: path.join(ARTIFACTS, 'resnet50-fashion32-epoch0-saturation.png') });
    report('screenshots written: resnet50-fashion32-epoch0-{activations,gradients,compare,saturation}.png', true);
  } catch (e) {
    report('screenshots', false, e.message);
    console.log(fs.readFileSync(d.log, 'utf8').split('\n').slice(-20).join('\n'));
  } finally {
    if (browser) await browser.close();
    await d.stop();
    fs.rmSync(d.tmp, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main();
