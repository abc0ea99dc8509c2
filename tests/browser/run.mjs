// run.mjs — the dashboard's browser tests: a real daemon with a finished small grid, every view
// driven in Debian's Chromium; prints ok/FAIL per check and ends with "N passed, N failed".
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startDaemon, waitFor } from './daemon.mjs';
import { chartInfo, chartNames, drawnValue, fitsWidth, launch, near, open, rowCount, scaleOf, seriesData, waitChart, watchedPage } from './page.mjs';
import { checkHealthAndEvolution, checkProfile, checkSeeds } from './science.mjs';
import * as synthetic from './synthetic.mjs';

const ARTIFACTS = path.join(ROOT, 'tests', 'artifacts');
// Three seeds a side: Table 1's tests and the seed bands need more than one.
const GRID = { models: ['plain', 'mlp'], initializers: ['glorot_uniform', 'he_uniform'], seeds: [0, 1, 2], epochs: 3, image_size: 32, batch_size: 16, depth: 4, width: 8, schedule: 'step', milestones: [2], gamma: 0.5 };
// Long enough to be still running through the progress checks, which cancel it.
const LONG_JOB = { model: 'plain', init: 'he_uniform', seed: 7, epochs: 1000, image_size: 48, batch_size: 8, depth: 6, width: 16 };
// One small LSUV job, for the rescalings its page shows.
const LSUV_JOB = { model: 'plain', init: 'lsuv', seed: 5, epochs: 1, image_size: 32, batch_size: 16, depth: 3, width: 8 };
let passed = 0, failed = 0;

function report(name, ok, why) {
  if (ok) passed++; else failed++;
  const short = why && why.length > 400 ? why.slice(0, 400) + '…' : why;
  console.log(ok ? `ok   ${name}` : `FAIL ${name}${why ? ': ' + short : ''}`);
}
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
function expectEq(name, actual, expected) {
  report(name, same(actual, expected), `got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}
function expectNear(name, actual, expected, tol = 1e-9) {
  report(name, near(actual, expected, tol), `got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}
// The five box values of stat rows as the box chart draws them (its registered scale).
async function drawnBoxes(page, rows) {
  const sc = await scaleOf(page, 'layers-box');
  return rows.map((r) => [r.whisker_lo, r.q1, r.median, r.q3, r.whisker_hi].map((v) => drawnValue(v, sc)));
}
// Runs a group of checks; an exception fails the group instead of ending the run.
async function group(name, fn) {
  try {
    await fn();
  } catch (e) {
    report(name, false, e.message.split('\n')[0] + (e.cause ? ' (' + (e.cause.code || e.cause.message) + ')' : ''));
  }
}

async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0)); // the sticky header belongs at the top
  await page.waitForTimeout(400); // let the charts finish their short animations
  await page.screenshot({ path: path.join(ARTIFACTS, name + '.png'), fullPage: true });
}

async function everyChartExports(page, view) {
  const names = await chartNames(page);
  const infos = await Promise.all(names.map((n) => chartInfo(page, n)));
  report(`${view}: every chart (${names.length}) has PNG export`, names.length > 0 && infos.every((i) => i && i.png), names.join(', '));
}

// CSV download of the button data-csv=file: returns its lines.
async function csvLines(page, file) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`[data-csv="${file}"]`)]);
  return fs.readFileSync(await dl.path(), 'utf8').trim().split(/\r?\n/);
}

async function setup(d) {
  await d.api.post('/datasets', { name: 'demo', path: path.join(d.data, 'demo') });
  await waitFor('the dataset scan', async () => (await d.api.get('/datasets/demo')).status === 'ready', 60000);
  const grid = await d.api.post('/grids', { dataset: 'demo', ...GRID });
  await waitFor('the grid to finish', async () => {
    const g = await d.api.get(`/grids/${grid.grid_id}`);
    const bad = g.jobs.find((j) => j.status === 'failed' || j.status === 'cancelled');
    if (bad) throw new Error(`job ${bad.id} ${bad.status}: ${bad.error}`);
    return g.jobs.every((j) => j.status === 'done');
  }, 300000, 1000);
  const lsuv = await d.api.post('/jobs', { dataset: 'demo', ...LSUV_JOB });
  await waitFor('the LSUV job', async () => {
    const j = await d.api.get(`/jobs/${lsuv.id}`);
    if (j.status === 'failed' || j.status === 'cancelled') throw new Error(`job ${j.id} ${j.status}: ${j.error}`);
    return j.status === 'done';
  }, 120000, 500);
  return { gridId: grid.grid_id, lsuvId: lsuv.id };
}

async function checkJobs(page, api) {
  await open(page, '#/jobs', 'jobs');
  const list = await api.get('/jobs?limit=100');
  expectEq('jobs: one table row per job', await rowCount(page, 'jobs'), list.jobs.length);
  const cells = await page.$$eval('table[data-table="jobs"] tbody tr', (trs) => trs.map((tr) => Number(tr.dataset.jobId)));
  expectEq('jobs: rows are the API jobs', cells.sort(), list.jobs.map((j) => j.id).sort());
  await shot(page, 'jobs');
}

async function checkJob(page, api, id) {
  await open(page, `#/job/${id}`, 'job');
  const where = (await api.get(`/jobs/${id}`)).where;
  const ranOn = await page.$$eval('dl.kv div', (divs) => (divs.map((d) => [d.querySelector('dt').textContent, d.querySelector('dd').textContent]).find(([k]) => k === 'ran on') || [])[1]);
  expectEq('job: shows where it ran (host and worker)', ranOn, `${where.host} · ${where.worker}`);
  const ep = await api.get(`/jobs/${id}/epochs`);
  const n = ep.epochs.length;
  for (const c of ['curves-acc', 'curves-loss']) {
    const info = await chartInfo(page, c);
    expectEq(`job: ${c} series lengths equal the epochs`, info.series.slice(0, 2).map((s) => s.len), [n, n]);
    expectEq(`job: ${c} marks the learning-rate milestones`, info.series[0].marks, GRID.milestones.length);
  }
  const acc = await seriesData(page, 'curves-acc', 1);
  expectEq('job: validation accuracy points are the API values', acc, ep.epochs.map((r) => [r.epoch, r.val_acc]));

  const box = async (q, mode, epochArg) => {
    const s = await api.get(`/jobs/${id}/stats?quantity=${q}&mode=${mode}${epochArg === undefined ? '' : '&epoch=' + epochArg}`);
    const info = await waitChart(page, 'layers-box', (i) => i.title.startsWith(q) && i.title.includes('BN ' + mode) && (epochArg === undefined || i.title.includes('epoch ' + epochArg + ' ') || i.title.endsWith('epoch ' + epochArg)));
    const boxes = info.series.filter((x) => x.type === 'boxplot');
    expectEq(`job: ${q}/${mode}${epochArg === undefined ? '' : ' epoch ' + epochArg} box plot has one box per layer`, boxes[0].len, s.layers.length);
    expectNear(`job: ${q}/${mode} boxes are the stored whiskers and quartiles (on the box plot's scale)`, await seriesData(page, 'layers-box', 0),
      await drawnBoxes(page, s.layers));
    return { s, info };
  };
  const { s: w, info: wInfo } = await box('weight', 'inference');
  const withVar = w.layers.filter((r) => r.predicted_var !== null).length;
  const predAt = wInfo.series.findIndex((x) => x.type === 'custom' && x.name.includes('predicted'));
  report('job: the weights have kernels with predicted_var', withVar > 0, `${withVar} of ${w.layers.length}`);
  const boxScale = await scaleOf(page, 'layers-box');
  expectNear('job: predicted ±σ drawn over every such kernel', predAt < 0 ? null : await seriesData(page, 'layers-box', predAt),
    w.layers.flatMap((r, i) => (r.predicted_var === null ? [] : [[i, drawnValue(Math.sqrt(r.predicted_var), boxScale)]])));
  const hist = await api.get(`/jobs/${id}/histograms?quantity=weight&mode=inference`);
  const hInfo = await waitChart(page, 'layers-hist', (i) => i.series.length > 0);
  expectEq('job: one histogram per layer', hInfo.series.length, hist.layers.filter((l) => l.histogram).length);
  expectEq('job: histogram series hold every bin', hInfo.series.map((x) => x.len - 4), hist.layers.filter((l) => l.histogram).map((l) => l.histogram.counts.length));

  await page.selectOption('[data-control="quantity"]', 'activation');
  await box('activation', 'inference');
  await page.selectOption('[data-control="mode"]', 'train');
  await page.selectOption('[data-control="quantity"]', 'gradient');
  await box('gradient', 'train');
  const first = w.epochs_available[0];
  await page.$eval('[data-control="epoch"]', (el) => { el.value = '0'; el.dispatchEvent(new Event('input')); });
  await box('gradient', 'train', first);

  const res = await api.get(`/jobs/${id}/results`);
  const k = res.class_names.length;
  const cm = await waitChart(page, 'confusion', () => true);
  expectEq('job: confusion heat map has every cell', cm.series[0].len, k * k);
  expectEq('job: per-class table has every class', await rowCount(page, 'per-class'), res.per_class.length);
  const lines = await csvLines(page, `job${id}_per_class.csv`);
  expectEq('job: per-class CSV has a header and every class', lines.length, res.per_class.length + 1);
  const stepsApi = (await api.get(`/jobs/${id}/steps`)).steps;
  expectEq('job: the intra-epoch curve has every stored point', (await chartInfo(page, 'curves-loss')).series[2].len, stepsApi.length);
  const cmOpt = await page.evaluate(() => window.__initlab.charts.confusion.getOption().visualMap[0].text);
  report('job: the confusion matrix colour scale says what it measures', /true class/.test((cmOpt || []).join(' ')), JSON.stringify(cmOpt));

  // Name, tags and note: saved through PATCH, shown, searchable.
  await page.fill('form[data-form="record"] input[name="name"]', 'baseline run');
  await page.fill('form[data-form="record"] input[name="tags"]', 'paper fig3');
  await page.click('form[data-form="record"] button[type="submit"]');
  await waitFor('the name to be saved', async () => (await api.get(`/jobs/${id}`)).name === 'baseline run', 10000, 200);
  expectEq('job: name and tags saved from the record form', (await api.get(`/jobs/${id}`)).tags, ['paper', 'fig3']);
  // Downloads: the whole record as JSON, the best weights as safetensors.
  const [bundle] = await Promise.all([page.waitForEvent('download'), page.click('[data-download="bundle-json"]')]);
  const record = JSON.parse(fs.readFileSync(await bundle.path(), 'utf8'));
  expectEq('job: the record download holds the job and its epochs', [record.job.id, record.epochs.length], [id, n]);
  const [weights] = await Promise.all([page.waitForEvent('download'), page.click('[data-download="weights-best"]')]);
  const bytes = fs.readFileSync(await weights.path());
  const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString());
  report('job: the best weights download is a safetensors file', header.__metadata__ && header.__metadata__.layout === 'keras', JSON.stringify(header.__metadata__));
  await everyChartExports(page, 'job');
  await shot(page, 'job');
}

async function checkGridAndCompare(page, api, gridId) {
  await open(page, `#/grid/${gridId}`, 'grid');
  const summary = await api.get(`/grids/${gridId}/summary`);
  expectEq('grid: Table 1 has one row per model and initializer', await rowCount(page, 'table1'), summary.rows.length);
  const seedsDone = await page.$$eval('table[data-table="table1"] tbody tr', (trs) => trs.map((tr) => tr.children[2].textContent));
  expectEq('grid: Table 1 says k of n seeds done', seedsDone, summary.rows.map((r) => `${r.n} of ${r.n_seeds}`));
  const ops = await page.$$eval('[data-grid-action]', (b) => b.map((x) => x.dataset.gridAction));
  expectEq('grid: cancel, retry, add seeds and delete act on the whole grid', ops, ['cancel', 'retry', 'seeds', 'delete']);
  const t1 = await chartInfo(page, 'table1');
  expectEq('grid: Table 1 chart has one bar series per row', t1.series.filter((x) => x.type === 'bar').length, summary.rows.length);
  const g = await api.get(`/grids/${gridId}`);
  expectEq('grid: jobs table lists the grid', await rowCount(page, 'grid-jobs'), g.jobs.length);
  const lines = await csvLines(page, `grid${gridId}_table1.csv`);
  expectEq('grid: Table 1 CSV has a header and every row', lines.length, summary.rows.length + 1);
  await everyChartExports(page, 'grid');
  await shot(page, 'grid');

  await page.click('[data-pair="plain"]');
  await page.waitForSelector('body[data-view="compare"][data-ready="1"]', { timeout: 20000 });
  const ids = new URLSearchParams((await page.evaluate(() => location.hash)).split('?')[1]).get('jobs').split(',').map(Number);
  const pair = ids.map((i) => g.jobs.find((j) => j.id === i));
  expectEq('compare: "Glorot vs He" picks the plain model\'s Glorot and He jobs', pair.map((j) => [j.model, j.initializer.split('_')[0]]), [['plain', 'glorot'], ['plain', 'he']]);
  const eps = await Promise.all(ids.map((i) => api.get(`/jobs/${i}/epochs`)));
  const acc = await chartInfo(page, 'compare-acc');
  expectEq('compare: overlaid curves, train and val per job', acc.series.map((s) => s.len), eps.flatMap((e) => [e.epochs.length, e.epochs.length]));
  const stats = await Promise.all(ids.map((i) => api.get(`/jobs/${i}/stats?quantity=weight&mode=inference`)));
  const box = await waitChart(page, 'layers-box', (i) => i.series.some((s) => s.type === 'boxplot'));
  expectEq('compare: one box series per job, a box per layer', box.series.filter((s) => s.type === 'boxplot').map((s) => s.len), stats.map((s) => s.layers.length));
  expectNear('compare: Glorot boxes are its stored quartiles (on the box plot\'s scale)', await seriesData(page, 'layers-box', 0), await drawnBoxes(page, stats[0].layers));
  const hist = await chartInfo(page, 'layers-hist');
  expectEq('compare: overlaid histograms, one per job and layer', hist.series.length, stats[0].layers.length + stats[1].layers.length);
  expectEq('compare: results table has both jobs', await rowCount(page, 'compare-results'), 2);
  await everyChartExports(page, 'compare');
  await shot(page, 'compare');
}

async function checkDatasetsAndGrids(page, api) {
  await open(page, '#/grids', 'grids');
  expectEq('grids: one row per grid', await rowCount(page, 'grids'), (await api.get('/grids')).grids.length);
  await shot(page, 'grids');
  await open(page, '#/datasets', 'datasets');
  expectEq('datasets: one row per dataset', await rowCount(page, 'datasets'), (await api.get('/datasets')).datasets.length);
  const bad = { name: 'elsewhere', path: '/nonexistent/photos', split: [0.6, 0.2, 0.2], seed: 0 };
  const refused = await api.request('POST', '/datasets', bad);
  await page.fill('form[data-form="dataset"] input[name="name"]', bad.name);
  await page.fill('form[data-form="dataset"] input[name="path"]', bad.path);
  await page.click('form[data-form="dataset"] button[type="submit"]');
  if (refused.body && refused.body.field) {
    const err = await page.waitForSelector(`form[data-form="dataset"] .field[data-field="${refused.body.field}"] .field-error:not(:empty)`, { timeout: 10000 });
    expectEq(`datasets: the API's error shows next to ${refused.body.field}`, await err.textContent(), refused.body.detail);
  } else {
    report('datasets: the API refuses a path outside the data root, naming the field', false, JSON.stringify(refused));
  }
  const demo = await api.get('/datasets/demo');
  await page.fill('form[data-form="dataset"] input[name="name"]', 'demo-again');
  await page.fill('form[data-form="dataset"] input[name="path"]', demo.path);
  await page.click('form[data-form="dataset"] button[type="submit"]');
  await page.waitForSelector('table[data-table="datasets"] tr:has(a:text-is("demo-again")) .status.ready', { timeout: 30000 });
  report('datasets: a registered dataset shows up and turns ready (live)', true);
  await shot(page, 'datasets');
  await open(page, '#/dataset/demo', 'dataset');
  const d = await api.get('/datasets/demo');
  const info = await chartInfo(page, 'class-counts');
  expectEq('dataset: class-count bars per split and class', info.series.map((s) => s.len), [0, 1, 2].map(() => d.class_counts.length));
  expectEq('dataset: train bars are the API counts', await seriesData(page, 'class-counts', 0), d.class_counts.map((c) => c.train));
  expectEq('dataset: skipped files listed', await rowCount(page, 'skipped'), (d.skipped || []).length);
  await everyChartExports(page, 'dataset');
  await shot(page, 'dataset');
}

async function checkForm(page, api) {
  await open(page, '#/jobs?new=1', 'jobs');
  await page.check('input[name="kind"][value="grid"]');
  for (const el of await page.$$('input[name="models"], input[name="initializers"]')) await el.uncheck();
  await page.check('input[name="models"][value="plain"]');
  await page.check('input[name="initializers"][value="glorot_uniform"]');
  await page.fill('input[name="seeds"]', '3');
  for (const [k, v] of [['epochs', '-1'], ['image_size', '32'], ['batch_size', '16'], ['depth', '4'], ['width', '8']]) await page.fill(`input[name="${k}"]`, v);
  const body = { dataset: 'demo', epochs: -1, image_size: 32, batch_size: 16, depth: 4, width: 8, models: ['plain'], initializers: ['glorot_uniform'], seeds: [3] };
  const expected = await api.request('POST', '/grids', body);
  report('form: the API rejects epochs -1 naming the field', expected.status === 400 && expected.body.field === 'epochs', JSON.stringify(expected.body));
  const gridsBefore = (await api.get('/grids')).grids.length;
  await page.click('form[data-form="submit"] button[type="submit"]');
  const confirmText = await page.textContent('[data-confirm]:not([hidden])');
  expectEq('form: the first click queues nothing and says what it would queue', [(await api.get('/grids')).grids.length, /queues 1 job/.test(confirmText)], [gridsBefore, true]);
  await page.click('[data-action="confirm-submit"]');
  const err = await page.waitForSelector('.field[data-field="epochs"] .field-error:not(:empty)', { timeout: 10000 });
  expectEq('form: the API\'s detail shows next to epochs', await err.textContent(), expected.body.detail);
  report('form: the epochs field is marked invalid', await page.$eval('.field[data-field="epochs"]', (e) => e.classList.contains('invalid')));
  await shot(page, 'form-error');

  const before = (await api.get('/grids')).grids.length;
  await page.fill('input[name="epochs"]', '1');
  await page.click('form[data-form="submit"] button[type="submit"]');
  await page.click('[data-action="confirm-submit"]');
  const grids = await waitFor('the form\'s grid', async () => { const g = (await api.get('/grids')).grids; return g.length > before && g; }, 10000);
  const created = grids.reduce((a, b) => (a.id > b.id ? a : b));
  const g = await api.get(`/grids/${created.id}`);
  expectEq('form: the grid has the chosen model, initializer and seed', g.jobs.map((j) => [j.model, j.initializer, j.seed, j.epochs]), [['plain', 'glorot_uniform', 3, 1]]);
  report('form: the error is gone after a good submission', await page.$eval('.field[data-field="epochs"] .field-error', (e) => e.textContent === ''));
  await page.waitForSelector(`table[data-table="jobs"] tr[data-job-id="${g.jobs[0].id}"]`, { timeout: 10000 });
  report('form: the new job appears in the table (live)', true);
}

async function checkProgress(page, api) {
  const job = await api.post('/jobs', { dataset: 'demo', ...LONG_JOB });
  await open(page, '#/jobs', 'jobs');
  const sel = `.progress[data-job="${job.id}"]`;
  const seen = new Set();
  const end = Date.now() + 120000;
  while (Date.now() < end && seen.size < 3) {
    const v = await page.$eval(sel, (e) => Number(e.dataset.progress)).catch(() => null);
    if (v !== null && v > 0) seen.add(v);
    await page.waitForTimeout(250);
  }
  const values = [...seen];
  const moved = values.length >= 3 && values.every((v, i) => i === 0 || v > values[i - 1]);
  report(`progress: the running job's bar moves (SSE): ${values.map((v) => (100 * v).toFixed(2) + '%').join(' → ')}`, moved);
  await shot(page, 'jobs-running');

  await open(page, `#/job/${job.id}`, 'job');
  const points = await waitChart(page, 'curves-acc', (i) => i.series[2].len >= 2, 90000).catch(() => null);
  report('progress: the intra-epoch curve fills during the epoch (SSE step events)', !!points, points ? `${points.series[2].len} points` : 'no points');
  // 96 training images in batches of 8: 12 steps an epoch, far from the 459 the moving
  // statistics need; the page says so with the number of steps.
  const note = await page.waitForSelector('[data-bn-note]', { timeout: 30000 }).then((e) => e.textContent()).catch(() => '');
  const j = await api.get(`/jobs/${job.id}`);
  report('job: a note says the BatchNorm moving statistics have not settled (steps so far, 459)',
    /After \d+ training steps/.test(note) && note.includes('459') && note.includes('bn_recalibrate'), note || JSON.stringify(j.progress));
  const start = (await chartInfo(page, 'curves-acc')).series[0].len;
  const grown = await waitChart(page, 'curves-acc', (i) => i.series[0].len > start, 90000).catch(() => null);
  report('progress: learning curves fill while the job trains', !!grown, `from ${start} points`);
  await page.click('[data-action="cancel"]');
  await page.waitForSelector('.view-head .status.cancelled', { timeout: 30000 });
  report('progress: cancel button cancels the job', (await api.get(`/jobs/${job.id}`)).status === 'cancelled');
  await page.click('[data-action="retry"]');
  await waitFor('the retried job to be queued or running', async () => ['queued', 'running'].includes((await api.get(`/jobs/${job.id}`)).status), 10000);
  report('progress: retry button queues the job again', true);
  await api.post(`/jobs/${job.id}/cancel`);
}

// A job queued while its dataset is being scanned says what it waits for. 300,000 hard
// links to a few demo images make a scan of a few seconds.
async function checkWaiting(page, api, data) {
  const big = path.join(data, 'big');
  const classes = fs.readdirSync(path.join(data, 'demo'));
  classes.forEach((c, k) => {
    // A file takes at most 65,000 links (ext4): spread them over the class's images.
    const sources = fs.readdirSync(path.join(data, 'demo', c)).map((f) => path.join(data, 'demo', c, f));
    fs.mkdirSync(path.join(big, `c${k}`), { recursive: true });
    for (let i = 0; i < 300000 / classes.length; i++) fs.linkSync(sources[i % sources.length], path.join(big, `c${k}`, `${i}.jpg`));
  });
  await api.post('/datasets', { name: 'big', path: big });
  const job = await api.post('/jobs', { dataset: 'big', model: 'plain', depth: 2, width: 4, epochs: 1, image_size: 32 });
  await open(page, `#/job/${job.id}`, 'job');
  const text = await page.$eval('.view-head .progress .txt', (e) => e.textContent);
  const still = (await api.get('/datasets/big')).status === 'scanning';
  report(`waiting: a job queued during a scan says so ("${text}")`, text === 'waiting for the scan of dataset "big"' && still, still ? '' : 'the scan ended first: nothing was tested');
  await api.post(`/jobs/${job.id}/cancel`);
  fs.rmSync(big, { recursive: true, force: true });
}

// The header, the jobs table and the Storage view follow the daemon; bulk actions; search;
// no tab is highlighted for an unknown route; compare colours never repeat.
async function checkLab(page, api) {
  await page.evaluate(() => { location.hash = '#/nope'; });
  await page.waitForSelector('#view .empty', { timeout: 5000 });
  const active = await page.$$eval('header nav a.active', (a) => a.length);
  expectEq('nav: an unknown route highlights no tab', active, 0);
  const colours = await page.evaluate(async () => { const m = await import('/js/charts.js'); return Array.from({ length: 24 }, (_, i) => m.colorAt(i)); });
  expectEq('compare: 24 series get 24 different colours', new Set(colours).size, 24);
  const shown = await page.evaluate(async () => {
    const m = await import('/js/dom.js');
    return [m.fmtMeanStd({ mean: 74160804, std: 55346193.715 }), m.fmtMeanStd({ mean: 0.912, std: 0.004 }),
      m.fmtMeanStd({ mean: 1.5e-6, std: null }), m.fmtEng(999960)];
  });
  expectEq('Table 1: extreme values in engineering notation, the others fixed', shown, ['74.2e6 ± 55.3e6', '0.912 ± 0.004', '1.50e-6', '1.00e6']);

  await open(page, '#/jobs', 'jobs');
  const queued = () => page.$eval('#queue', (e) => Number((/queued (\d+)/.exec(e.textContent) || [])[1]));
  const a = await api.post('/jobs', { dataset: 'demo', ...LONG_JOB, seed: 11, name: 'bulk a', tags: ['bulkset'], priority: -50 });
  const b = await api.post('/jobs', { dataset: 'demo', ...LONG_JOB, seed: 12, name: 'bulk b', tags: ['bulkset'], priority: -50 });
  const seen = await waitFor('the header to count the new jobs', async () => {
    const want = (await api.get('/jobs?status=queued')).total;
    return want > 0 && (await queued()) === want && want;
  }, 10000, 200).catch(() => false);
  report(`header: the queue count follows job events (queued ${seen})`, !!seen);
  await page.fill('[data-filter="q"]', 'bulk');
  await waitFor('the search to filter the table', async () => (await rowCount(page, 'jobs')) === 2, 10000, 200)
    .then(() => report('jobs: search finds jobs by name', true), () => report('jobs: search finds jobs by name', false));
  await page.fill('[data-filter="q"]', '');
  await page.fill('[data-filter="tag"]', 'bulkset');
  await waitFor('the tag filter to filter the table', async () => (await rowCount(page, 'jobs')) === 2, 10000, 200)
    .then(() => report('jobs: the tag filter finds jobs by tag', true), () => report('jobs: the tag filter finds jobs by tag', false));
  for (const j of [a, b]) await page.check(`[data-select="${j.id}"]`);
  await page.click('[data-action="bulk-cancel"]');
  const both = await waitFor('both to be cancelled', async () => {
    const s = await Promise.all([a, b].map((j) => api.get(`/jobs/${j.id}`)));
    return s.every((j) => j.status === 'cancelled');
  }, 15000, 300).catch(() => false);
  report('jobs: cancel selected cancels every selected job', !!both);
  page.once('dialog', (dialog) => dialog.accept());
  await page.click('[data-action="bulk-delete"]');
  const gone = await waitFor('both to be deleted', async () => (await api.request('GET', `/jobs/${a.id}`)).status === 404 &&
    (await api.request('GET', `/jobs/${b.id}`)).status === 404, 15000, 300).catch(() => false);
  report('jobs: delete selected deletes them', !!gone);
  await page.fill('[data-filter="tag"]', '');

  // A whole grid from its page: cancel, retry, priority, more seeds, delete.
  const { model, init, seed, ...opts } = LONG_JOB;
  const grid = await api.post('/grids', { dataset: 'demo', ...opts, models: [model], initializers: [init], seeds: [21, 22], priority: -60, name: 'ops grid' });
  const gridJobs = async () => (await api.get(`/grids/${grid.grid_id}`)).jobs;
  const allAre = (want) => async () => (await gridJobs()).every((j) => want.includes(j.status));
  await open(page, `#/grid/${grid.grid_id}`, 'grid');
  await page.click('[data-grid-action="cancel"]');
  report('grid: "Cancel all" cancels every job of the grid', await waitFor('the grid cancelled', allAre(['cancelled']), 15000, 300).catch(() => false));
  await page.click('[data-grid-action="retry"]');
  report('grid: "Retry" queues them again', await waitFor('the grid queued', allAre(['queued', 'running']), 15000, 300).catch(() => false));
  await page.fill('form[data-form="record"] input[name="priority"]', '-70');
  await page.click('form[data-form="record"] button[type="submit"]');
  const prio = await waitFor('the priority', async () => { const q = (await gridJobs()).filter((j) => j.status === 'queued'); return q.length && q.every((j) => j.priority === -70) && q.length; }, 10000, 200).catch(() => 0);
  report('grid: the record form changes the priority of its queued jobs', !!prio);
  await page.fill('input[name="add-seeds"]', '23');
  await page.click('[data-grid-action="seeds"]');
  const seeds = await waitFor('the added seed', async () => { const js = await gridJobs(); return js.length === 3 && js.map((j) => j.seed).sort(); }, 10000, 200).catch(() => null);
  expectEq('grid: "Add seeds" adds a job for the new seed', seeds, [21, 22, 23]);
  await page.click('[data-grid-action="cancel"]');
  await waitFor('the grid cancelled again', allAre(['cancelled']), 15000, 300).catch(() => false);
  const ids = (await gridJobs()).map((j) => j.id);
  page.once('dialog', (dialog) => dialog.accept());
  await page.click('[data-grid-action="delete"]');
  const deleted = await waitFor('the grid deleted', async () => (await api.request('GET', `/grids/${grid.grid_id}`)).status === 404, 10000, 200).catch(() => false);
  const left = await Promise.all(ids.map(async (j) => (await api.request('GET', `/jobs/${j}`)).status));
  report('grid: "Delete grid" deletes it with its jobs', !!deleted && left.every((x) => x === 404), JSON.stringify(left));

  await open(page, '#/storage', 'storage');
  const st = await api.get('/storage');
  expectEq('storage: one row per job folder', await rowCount(page, 'storage-jobs'), st.jobs.length);
  const info = await chartInfo(page, 'storage');
  expectEq('storage: the chart has a bar per part of the state directory', info.series.length, 5);
  await shot(page, 'storage');
}

// An LSUV job (trained in setup): the job page says how many rescalings LSUV made, the sum
// of the API's init_iters.
async function checkLsuv(page, api, id) {
  const w = await api.get(`/jobs/${id}/stats?quantity=weight&mode=train&epoch=0`);
  const iters = w.layers.map((r) => r.init_iters).filter((v) => v !== null && v !== undefined);
  await open(page, `#/job/${id}`, 'job');
  const dd = await page.waitForFunction(() => {
    const dt = [...document.querySelectorAll('dl.kv dt')].find((e) => e.textContent === 'LSUV');
    return dt ? dt.nextElementSibling.textContent : null;
  }, null, { timeout: 10000 }).then((hnd) => hnd.jsonValue()).catch(() => null);
  const expected = `${iters.reduce((a, b) => a + b, 0)} rescalings over ${iters.length} kernels (most in one: ${Math.max(...iters)})`;
  report(`job: an LSUV job shows its rescalings ("${dd}")`, iters.length >= LSUV_JOB.depth && dd === expected, `expected "${expected}"`);
}

async function checkBigJob(browser, base) {
  const { page, problems } = await watchedPage(browser, { width: 1366, height: 768 });
  await page.route(`**/api/v1/jobs/${synthetic.BIG_ID}**`, (route) => {
    const body = synthetic.answer(route.request().url());
    return body ? route.fulfill({ json: body }) : route.continue();
  });
  await page.goto(base + '/');
  const t0 = Date.now();
  await open(page, `#/job/${synthetic.BIG_ID}`, 'job');
  const load = Date.now() - t0;
  report(`large job (100 epochs × 60 layers): view drawn in ${load} ms (< 5000)`, load < 5000);
  const t1 = Date.now();
  await page.$eval('[data-control="epoch"]', (el) => { for (let v = 0; v <= 50; v += 5) { el.value = String(v); el.dispatchEvent(new Event('input')); } });
  const info = await waitChart(page, 'layers-box', (i) => i.title.includes('epoch 50'));
  const slide = Date.now() - t1;
  report(`large job: slider sweep redrawn once, in ${slide} ms (< 2000)`, slide < 2000 && info.series[0].len === synthetic.LAYERS);
  await page.setViewportSize({ width: 2560, height: 1440 });
  await page.waitForTimeout(300);
  report('large job: no sideways scrolling at 2560×1440', await fitsWidth(page));
  await shot(page, 'job-large-2560');
  report('large job: no console or page errors', !problems.console.length && !problems.pageErrors.length, JSON.stringify(problems));
  await page.close();
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const d = await startDaemon();
  let browser = null;
  process.once('SIGINT', async () => {
    if (browser) await browser.close().catch(() => {});
    await d.stop();
    process.exit(130);
  });
  try {
    const { gridId, lsuvId } = await setup(d);
    report(`a ${GRID.models.length}×${GRID.initializers.length} grid trained on the demo dataset`, true);
    browser = await launch();
    const { page, problems } = await watchedPage(browser, { width: 1366, height: 768 });
    await page.goto(d.base + '/');
    const jobs = (await d.api.get(`/grids/${gridId}`)).jobs;
    await group('jobs view', () => checkJobs(page, d.api));
    await group('job view', () => checkJob(page, d.api, jobs[0].id));
    await group('LSUV job', () => checkLsuv(page, d.api, lsuvId));
    await group('grid and compare views', () => checkGridAndCompare(page, d.api, gridId));
    await group('datasets and grids views', () => checkDatasetsAndGrids(page, d.api));
    const plain = (init) => jobs.find((j) => j.model === 'plain' && j.initializer === init && j.seed === 0);
    await group('depth profile (Glorot)', () => checkProfile(page, d.api, report, { ...plain('glorot_uniform'), classes: 4 }, GRID));
    await group('depth profile (He)', () => checkProfile(page, d.api, report, { ...plain('he_uniform'), classes: 4 }, GRID));
    await group('health and distributions over time', () => checkHealthAndEvolution(page, d.api, report, [plain('glorot_uniform').id, plain('he_uniform').id]));
    await group('seeds and Table 1', () => checkSeeds(page, d.api, report, gridId));
    await shot(page, 'grid-seeds');
    await group('layout', async () => {
      for (const [w, h] of [[1366, 768], [2560, 1440]]) {
        await page.setViewportSize({ width: w, height: h });
        for (const [hash, view] of [['#/jobs', 'jobs'], [`#/job/${jobs[1].id}`, 'job'], [`#/grid/${gridId}`, 'grid']]) {
          await open(page, hash, view);
          report(`layout: ${view} view fits ${w}×${h} without sideways scrolling`, await fitsWidth(page));
        }
        await shot(page, `grid-${w}`);
      }
      await page.setViewportSize({ width: 1366, height: 768 });
    });
    await group('submit form', () => checkForm(page, d.api));
    await group('live progress', () => checkProgress(page, d.api));
    await group('waiting for a scan', () => checkWaiting(page, d.api, d.data));
    await group('a lab\'s daemon', () => checkLab(page, d.api));
    const unexpected = problems.failed.filter((f) => !/^POST \/api\/v1\/(grids|datasets) 400$/.test(f) && !/^GET \/api\/v1\/jobs\/\d+\/(stats|histograms) 404$/.test(f));
    report('no console errors or page errors', !problems.console.length && !problems.pageErrors.length, JSON.stringify([...problems.console, ...problems.pageErrors]));
    report('no failed requests besides the deliberate validation errors', !unexpected.length, JSON.stringify(unexpected));
    await group('large job', () => checkBigJob(browser, d.base));
  } catch (e) {
    report('setup', false, e.message);
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
