// science.mjs — browser checks of the science views: depth profiles against the API's rows on
// a log axis, the theory line against values computed here from the fans, the health heat
// map, the distribution over time, the seed bands and Table 1's tests against scipy.stats.
import { execFileSync } from 'node:child_process';
import { chartInfo, drawnValue, near, open, rowCount, scaleOf, seriesData, waitChart } from './page.mjs';

// The option of a chart, as ECharts holds it.
async function optionOf(page, name) {
  return page.evaluate((n) => {
    const o = window.__initlab.charts[n].getOption();
    return { yAxis: o.yAxis.map((a) => ({ type: a.type })), series: o.series.map((s) => ({ name: s.name, type: s.type, lineType: s.lineStyle && s.lineStyle.type, data: s.data })) };
  }, name);
}

// In-bounds taps per output along one dimension of a k-window, TF "same" padding.
function tapsSame(inSize, outSize, k, stride) {
  const total = Math.max((outSize - 1) * stride + k - inSize, 0);
  const before = Math.floor(total / 2);
  let sum = 0;
  for (let o = 0; o < outSize; o++)
    for (let t = 0; t < k; t++) {
      const at = o * stride + t - before;
      if (at >= 0 && at < inSize) sum++;
    }
  return sum / outSize;
}

// The theory's std of every conv activation of a `plain` model (conv 3×3 "same", batch norm
// eps 1e-3, ReLU) in BatchNorm inference mode at initialization, from the model summary's
// fans and shapes and the measured input: eq. (19) Var(y) = n·Var(W)·E[x²] with n the
// inputs each output sums over, batch norm passing q/(1 + eps) (moving variance 1), eq.
// (41) E[relu(y)²] = Var(y)/2, and a ReLU output's variance q(1/2 − 1/(2π)).
export function plainTheory(summary, init, input) {
  const out = new Map();
  let q = input.std ** 2 + input.mean ** 2;
  let prev = summary.layers[0];
  for (const l of summary.layers) {
    if (l.type === 'conv2d') {
      const [H, W, C] = prev.output_shape, [OH, OW] = l.output_shape;
      const k = Math.round(Math.sqrt(l.fan_in / C));
      const n = C * tapsSame(H, OH, k, H / OH) * tapsSame(W, OW, k, W / OW);
      const varW = init.startsWith('he') ? 2 / l.fan_in : 2 / (l.fan_in + l.fan_out);
      q = n * varW * q;
    } else if (l.type === 'batch_normalization') {
      q = q / (1 + 1e-3);
    } else if (l.type === 'activation' && l.name.startsWith('conv_')) {
      out.set(l.name, Math.sqrt(q * (0.5 - 1 / (2 * Math.PI))));
      q = q / 2;
    }
    if (l.output_shape.length === 3) prev = l;
  }
  return out;
}

export async function checkProfile(page, api, report, job, cfg) {
  await open(page, `#/job/${job.id}`, 'job');
  for (const mode of ['inference', 'train']) {
    const s = await api.get(`/jobs/${job.id}/stats?quantity=activation&mode=${mode}&epoch=0`);
    const info = await waitChart(page, 'profile-' + mode, (i) => i.series.length > 0 && i.title.includes('epoch 0'));
    const o = await optionOf(page, 'profile-' + mode);
    report(`profile: ${mode} mode drawn on a log y axis by default`, o.yAxis[0].type === 'log', JSON.stringify(o.yAxis));
    const measured = o.series.find((x) => !x.name.endsWith('theory'));
    report(`profile: ${mode} line is the API's std of each layer`, near(measured.data, s.layers.map((r) => (r.std > 0 ? r.std : null))),
      `got ${JSON.stringify(measured.data)}, expected ${JSON.stringify(s.layers.map((r) => r.std))}`);
    const theory = o.series.find((x) => x.name.endsWith('theory'));
    report(`profile: ${mode} theory line dashed, the API's theory_std`, !!theory && theory.lineType === 'dashed' &&
      near(theory.data, s.layers.map((r) => r.theory_std)), JSON.stringify(theory && theory.data));
    if (mode === 'inference') {
      // Independently from the fans: the model summary of the same configuration.
      const summary = await api.get(`/models/plain?size=${cfg.image_size}&depth=${cfg.depth}&width=${cfg.width}&classes=${job.classes}&init=${job.initializer}`);
      const expect = plainTheory(summary, job.initializer, s.layers[0]);
      const drawn = new Map(s.layers.map((r, i) => [r.layer, theory ? theory.data[i] : null]));
      const names = [...expect.keys()];
      report(`profile: the theory line follows eqs. 19/41 from the fans (${names.length} conv layers, ${job.initializer})`,
        names.length === cfg.depth && names.every((n) => near(drawn.get(n), expect.get(n), 1e-6)),
        `drawn ${JSON.stringify(names.map((n) => drawn.get(n)))}, computed ${JSON.stringify(names.map((n) => expect.get(n)))}`);
    }
    void info;
  }
  // Any epoch: the slider moves both charts to the last epoch; the theory line goes away.
  await page.$eval('[data-control="profile-epoch"]', (el) => { el.value = el.max; el.dispatchEvent(new Event('input')); });
  const last = (await api.get(`/jobs/${job.id}/stats?quantity=activation&mode=inference`)).epoch;
  await waitChart(page, 'profile-inference', (i) => i.title.includes(`epoch ${last}`));
  const later = await optionOf(page, 'profile-inference');
  report('profile: another epoch drawn without a theory line', later.series.every((x) => !x.name.endsWith('theory')));
  // Symlog for a signed statistic.
  await page.selectOption('[data-control="profile-stat"]', 'mean');
  await waitChart(page, 'profile-inference', (i) => i.title.startsWith('mean of'));
  const sc = await scaleOf(page, 'profile-inference');
  const sm = await api.get(`/jobs/${job.id}/stats?quantity=activation&mode=inference&epoch=${last}`);
  const mean = (await optionOf(page, 'profile-inference')).series[0].data;
  report('profile: the mean on a symlog axis is the API mean, mapped', sc && sc.kind === 'symlog' && near(mean, sm.layers.map((r) => drawnValue(r.mean, sc))), JSON.stringify({ sc, mean }));
  await page.selectOption('[data-control="profile-stat"]', 'std');
}

export async function checkHealthAndEvolution(page, api, report, ids) {
  await open(page, `#/compare?jobs=${ids.join(',')}`, 'compare');
  const stats = await Promise.all(ids.map((id) => api.get(`/jobs/${id}/stats?quantity=activation&mode=inference`)));
  await waitChart(page, 'health-map', (i) => i.series.length > 0);
  const hm = await seriesData(page, 'health-map', 0);
  const names = [];
  for (const s of stats) for (const r of s.layers) if (!names.includes(r.layer)) names.push(r.layer);
  const expected = [];
  stats.forEach((s, y) => names.forEach((n, x) => {
    const r = s.layers.find((l) => l.layer === n);
    if (r && r.dead_frac !== null) expected.push([x, y, r.dead_frac]);
  }));
  report('health: heat map cell = dead_frac of each layer × run', near(hm, expected), `got ${JSON.stringify(hm.slice(0, 6))}…, expected ${JSON.stringify(expected.slice(0, 6))}…`);
  report('health: the flag list is on demand (closed)', await page.$eval('[data-health] details', (d) => !d.open).catch(() => true));
  await page.selectOption('[data-control="health-metric"]', 'saturated');
  await waitChart(page, 'health-map', (i) => i.title.startsWith('saturated'));
  const sat = await seriesData(page, 'health-map', 0);
  report('health: saturation metric cells', sat.length === stats.reduce((a, s) => a + s.layers.filter((r) => r.saturation !== null).length, 0));

  // Distribution over time of the selected layer, both runs side by side.
  const layerName = await page.$eval('[data-control="evolution-layer"]', (el) => el.value);
  for (const [i, id] of ids.slice(0, 2).entries()) {
    const idx = stats[i].layers.find((r) => r.layer === layerName).layer_index;
    const hist = await api.get(`/jobs/${id}/history?layer=${idx}&quantity=activation&mode=inference`);
    const info = await waitChart(page, 'evolution-' + i, (x) => x.series.length > 0);
    const opt = await page.evaluate((n) => {
      const o = window.__initlab.charts[n].getOption();
      return { x: o.xAxis[0].data, y: o.yAxis[0].data.length, data: o.series[0].data };
    }, 'evolution-' + i);
    report(`evolution: run ${i + 1} has one column per recorded epoch`, JSON.stringify(opt.x) === JSON.stringify(hist.epochs.map((r) => String(r.epoch))), JSON.stringify(opt.x));
    const sums = opt.x.map((_, col) => opt.data.filter((d) => d[0] === col).reduce((a, d) => a + d[2], 0));
    report(`evolution: run ${i + 1} columns each hold all of the epoch's values`, sums.every((v) => Math.abs(v - 1) < 1e-9), JSON.stringify(sums));
    const lo = Math.min(...hist.epochs.map((r) => r.histogram.lo)), hi = Math.max(...hist.epochs.map((r) => r.histogram.hi));
    const width = (hi - lo) / opt.y;
    const ok = hist.epochs.every((r, col) => {
      const centre = opt.data.filter((d) => d[0] === col).reduce((a, d) => a + d[2] * (lo + (d[1] + 0.5) * width), 0);
      const step = (r.histogram.hi - r.histogram.lo) / 64;
      const total = r.histogram.counts.reduce((a, b) => a + b, 0);
      const m = r.histogram.counts.reduce((a, c, k) => a + c * (r.histogram.lo + (k + 0.5) * step), 0) / total;
      return Math.abs(centre - m) <= width + step;
    });
    report(`evolution: run ${i + 1} column means are the API histograms' means`, ok);
    void info;
  }
  const csv = String((await api.request('GET', `/jobs/${ids[0]}/history?layer=0&quantity=activation&mode=inference&format=csv`)).body);
  const header = csv.split(/\r?\n/)[0].split(',');
  report('evolution: the history CSV has the 64 bin counts per epoch', header[0] === 'epoch' && header.includes('bin_0') && header.includes('bin_63') && header.includes('hist_lo'), header.slice(0, 3).join(','));
}

// scipy.stats' answers for Table 1's comparisons (python3-scipy comes with make deps).
function scipyTests(pairs) {
  const script = `
import json, sys, warnings, numpy as np
from scipy import stats
warnings.simplefilter('ignore')
out = []
for a, b in json.load(sys.stdin):
    w = stats.ttest_ind(a, b, equal_var=False)
    p = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                               permutation_type='independent', alternative='two-sided', n_resamples=np.inf, vectorized=True)
    num = lambda v: None if v != v else float(v)
    out.append({'t': num(w.statistic), 'welch_p': num(w.pvalue), 'perm_p': num(p.pvalue)})
print(json.dumps(out))`;
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify(pairs) }).toString());
}

export async function checkSeeds(page, api, report, gridId) {
  await open(page, `#/grid/${gridId}`, 'grid');
  const g = await api.get(`/grids/${gridId}`);
  const epochs = new Map(await Promise.all(g.jobs.map(async (j) => [j.id, (await api.get(`/jobs/${j.id}/epochs`)).epochs])));
  const keys = [...new Set(g.jobs.map((j) => `${j.model} ${j.initializer}`))].sort();
  const acc = await chartInfo(page, 'seed-acc');
  const series = await page.evaluate(() => window.__initlab.charts['seed-acc'].getOption().series.map((s) => ({ name: s.name, data: s.data })));
  let ok = true, why = '';
  for (const key of keys) {
    const runs = g.jobs.filter((j) => `${j.model} ${j.initializer}` === key).map((j) => epochs.get(j.id));
    const byEpoch = new Map();
    for (const rows of runs) for (const r of rows) if (r.val_acc !== null) (byEpoch.get(r.epoch) || byEpoch.set(r.epoch, []).get(r.epoch)).push(r.val_acc);
    const es = [...byEpoch.keys()].sort((a, b) => a - b);
    const mean = es.map((e) => byEpoch.get(e).reduce((a, b) => a + b, 0) / byEpoch.get(e).length);
    const std = es.map((e, i) => { const v = byEpoch.get(e); return Math.sqrt(v.reduce((a, b) => a + (b - mean[i]) ** 2, 0) / (v.length - 1)); });
    const line = series.find((s) => s.name === key), lo = series.find((s) => s.name === key + ' −std'), width = series.find((s) => s.name === key + ' ±std');
    const good = line && lo && width && near(line.data, es.map((e, i) => [e, mean[i]])) &&
      near(lo.data, es.map((e, i) => [e, mean[i] - std[i]])) && near(width.data, es.map((e, i) => [e, 2 * std[i]]));
    if (!good) { ok = false; why += `${key}: ${JSON.stringify(line && line.data)} vs ${JSON.stringify(mean)}; `; }
  }
  report(`seeds: validation accuracy mean line and ±1 std band per model × initializer (${keys.length} groups, ${acc.series.length} series)`, ok, why);

  // Table 1: intervals, epochs to target, and the tests against scipy.
  const target = 0.3;
  await page.fill('[data-control="target"]', String(target));
  await page.$eval('[data-control="target"]', (el) => el.dispatchEvent(new Event('change')));
  await page.waitForFunction((t) => [...document.querySelectorAll('table[data-table="table1"] th')].some((th) => th.textContent.includes(`${Math.round(100 * t)} %`)), target, { timeout: 10000 });
  const s = await api.get(`/grids/${gridId}/summary?target=${target}`);
  const reached = s.rows.flatMap((r) => r.runs.map((x) => {
    const first = epochs.get(x.job_id).find((e) => e.val_acc !== null && e.val_acc >= target);
    return [x.epochs_to_target, first ? first.epoch : null];
  }));
  report('table 1: epochs to the target accuracy are the first epochs reaching it', reached.every(([a, b]) => a === b), JSON.stringify(reached));
  report('table 1: one comparison row per model, initializer pair and metric', await rowCount(page, 'comparisons') === s.comparisons.length && s.comparisons.length === 2 * 6, String(s.comparisons.length));
  const value = (model, init, metric) => s.rows.find((r) => r.model === model && r.initializer === init).runs.map((x) => x[metric]).filter((v) => v !== null);
  const tested = s.comparisons.filter((c) => c.metric !== 'epochs_to_target');
  const sp = scipyTests(tested.map((c) => [value(c.model, c.a, c.metric), value(c.model, c.b, c.metric)]));
  const pairs = tested.map((c, i) => ({ c, sp: sp[i] }));
  report(`table 1: Welch's t and p equal scipy.stats.ttest_ind(equal_var=False) (${pairs.length} comparisons)`,
    pairs.every(({ c, sp: x }) => (x.welch_p === null ? c.welch.p === null : near(c.welch.p, x.welch_p, 1e-9) && near(c.welch.t, x.t, 1e-9))),
    JSON.stringify(pairs.map(({ c, sp: x }) => [c.metric, c.welch.p, x.welch_p])));
  report('table 1: permutation p equals scipy.stats.permutation_test (exact, 20 splits of 3 + 3 seeds)',
    pairs.every(({ c, sp: x }) => near(c.permutation.p, x.perm_p, 1e-12) && c.permutation.exact && c.permutation.splits === 20),
    JSON.stringify(pairs.map(({ c, sp: x }) => [c.metric, c.permutation.p, x.perm_p])));
  const shown = await page.$$eval('table[data-table="comparisons"] tbody tr', (trs) => trs.map((tr) => [tr.querySelector('[data-p="welch"]')?.textContent, tr.querySelector('[data-p="permutation"]')?.firstChild?.textContent]));
  const fmtP = (p) => (p === null ? '—' : p < 1e-4 ? p.toExponential(1) : p.toFixed(4));
  report('table 1: the page shows the API\'s p-values', near(shown.length, s.comparisons.length) && s.comparisons.every((c, i) => shown[i][0] === fmtP(c.welch.p) && shown[i][1] === fmtP(c.permutation.p)), JSON.stringify(shown.slice(0, 3)));
  const row = s.rows[0];
  const accs = row.runs.map((x) => x.accuracy);
  const m = accs.reduce((a, b) => a + b, 0) / accs.length;
  const sd = Math.sqrt(accs.reduce((a, b) => a + (b - m) ** 2, 0) / (accs.length - 1));
  const t975 = JSON.parse(execFileSync('/usr/bin/python3', ['-c', `from scipy import stats; print(stats.t.ppf(0.975, ${accs.length - 1}))`]).toString());
  report('table 1: the 95 % interval is mean ± t(0.975, n−1)·s/√n', near(row.accuracy.ci95, [m - t975 * sd / Math.sqrt(accs.length), m + t975 * sd / Math.sqrt(accs.length)], 1e-9), JSON.stringify(row.accuracy));
}
