// views/seeds.js — a grid's seeds taken together (Grid view): learning curves aggregated over
// seeds per model × initializer (mean line, ±1 std band), and Table 1 with 95% intervals,
// epochs to a target validation accuracy and, per model, the initializers compared by
// Welch's t-test and an exact permutation test (GET /grids/{id}/summary).
import { csvUrl, get } from '../api.js';
import { chart, curvesOption, palette } from '../charts.js';
import { h, fill, fmtNum } from '../dom.js';
import { csvButton, dataTable } from '../table.js';

// Mean and sample std (n − 1) of the values at each epoch over the runs that have one;
// std null with a single run. runs: arrays of epoch rows; key: 'val_acc', 'train_loss', ...
export function seedBand(runs, key) {
  const at = new Map();
  for (const rows of runs)
    for (const r of rows)
      if (r[key] !== null && r[key] !== undefined) (at.get(r.epoch) || at.set(r.epoch, []).get(r.epoch)).push(r[key]);
  return [...at.keys()].sort((a, b) => a - b).map((e) => {
    const v = at.get(e);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : null;
    return { epoch: e, mean, std, n: v.length };
  });
}

// Curves of groups [{name, color, band}] as mean lines with ±std bands (a transparent lower
// line and the band's width stacked on it).
function bandOption({ title, file, yName, groups }) {
  const series = groups.flatMap((g) => [
    { name: g.name, data: g.band.map((b) => [b.epoch, b.mean]), color: g.color },
  ]);
  const o = curvesOption({ title, file, yName, series });
  groups.forEach((g, i) => {
    const lower = g.band.map((b) => [b.epoch, b.std === null ? b.mean : b.mean - b.std]);
    const width = g.band.map((b) => [b.epoch, b.std === null ? 0 : 2 * b.std]);
    const common = { type: 'line', stack: 'band' + i, symbol: 'none', silent: true, lineStyle: { opacity: 0 }, tooltip: { show: false } };
    o.series.push({ ...common, name: g.name + ' −std', id: `band${i}lo`, data: lower, color: g.color });
    o.series.push({ ...common, name: g.name + ' ±std', id: `band${i}hi`, data: width, color: g.color, areaStyle: { color: g.color, opacity: 0.18 } });
  });
  o.legend.data = groups.map((g) => g.name);
  return o;
}

// jobs: the grid's jobs. Returns {el, loaded, refresh}.
export function seedCurvesPanel(ctx, gridId, jobsOf) {
  const accEl = h('div', { class: 'chart', dataset: { chart: 'seed-acc' } });
  const lossEl = h('div', { class: 'chart', dataset: { chart: 'seed-loss' } });
  const el = h('div', { class: 'cards', dataset: { panel: 'seed-curves' } }, h('div', { class: 'card' }, accEl), h('div', { class: 'card' }, lossEl));
  async function draw() {
    const jobs = jobsOf();
    const epochs = await Promise.all(jobs.map((j) => get(`/jobs/${j.id}/epochs`)));
    if (!ctx.alive()) return;
    const keys = [...new Set(jobs.map((j) => `${j.model} ${j.initializer}`))].sort();
    const groupsFor = (key) => keys.map((k, i) => ({
      name: k, color: palette[i % palette.length],
      band: seedBand(jobs.flatMap((j, n) => (`${j.model} ${j.initializer}` === k ? [epochs[n].epochs] : [])), key),
    }));
    chart(accEl, 'seed-acc').setOption(bandOption({ title: 'Validation accuracy over seeds (mean, ±1 std)', file: `grid${gridId}_val_acc_seeds`, yName: 'accuracy', groups: groupsFor('val_acc') }), true);
    chart(lossEl, 'seed-loss').setOption(bandOption({ title: 'Training loss over seeds (mean, ±1 std)', file: `grid${gridId}_train_loss_seeds`, yName: 'loss', groups: groupsFor('train_loss') }), true);
  }
  return { el, loaded: draw(), refresh: draw };
}

const METRICS = [['accuracy', 'accuracy'], ['precision_macro', 'precision'], ['recall_macro', 'recall'], ['f1_macro', 'F1'], ['loss', 'loss']];
const fmtP = (p) => (p === null || p === undefined ? '—' : p < 1e-4 ? p.toExponential(1) : p.toFixed(4));
const fmtCi = (ci, d = 4) => (ci && ci[0] !== null ? `[${ci[0].toFixed(d)}, ${ci[1].toFixed(d)}]` : '—');
const fmtMs = (m, d = 4) => (m && m.mean !== null && m.mean !== undefined ? m.mean.toFixed(d) + (m.std !== null ? ' ± ' + m.std.toFixed(d) : '') : '—');

// Table 1 with intervals and the comparisons; onSummary(summary) gets each answer (the
// bar chart of grid.js draws from it). Returns {el, loaded, refresh}.
export function table1Panel(ctx, gridId, onSummary) {
  const state = { target: 0.9 };
  const tableBox = h('div');
  const compBox = h('div');
  const target = h('input', { type: 'number', min: 0.01, max: 1, step: 0.01, value: state.target, dataset: { control: 'target' }, style: 'width:70px' });
  target.addEventListener('change', () => {
    const v = Number(target.value);
    if (v > 0 && v <= 1) { state.target = v; draw(); }
  });
  const el = h('div', null, h('div', { class: 'card' }, tableBox), h('div', { class: 'card' }, compBox));

  async function draw() {
    const s = await get(`/grids/${gridId}/summary`, { target: state.target });
    if (!ctx.alive()) return;
    const pct = `${Math.round(100 * s.target)} %`;
    const cols = [
      { label: 'model', value: (r) => r.model }, { label: 'initializer', value: (r) => r.initializer },
      { label: 'seeds done', num: true, value: (r) => r.n, cell: (r) => `${r.n} of ${r.n_seeds ?? r.n_jobs}` },
      ...METRICS.map(([k, label]) => ({ label, num: true, value: (r) => fmtMs(r[k]), cell: (r) => h('span', { title: '95 % interval ' + fmtCi(r[k]?.ci95) }, fmtMs(r[k], 3), h('br'), h('span', { class: 'muted small' }, fmtCi(r[k]?.ci95, 3))) })),
      { label: `epochs to ${pct} val`, num: true, value: (r) => r.epochs_to_target?.mean, cell: (r) => (r.epochs_to_target ? h('span', null, fmtMs(r.epochs_to_target, 1), h('br'), h('span', { class: 'muted small' }, `${r.epochs_to_target.reached}/${r.epochs_to_target.n} reached`)) : '—') },
    ];
    const csvCols = [{ label: 'model', value: (r) => r.model }, { label: 'initializer', value: (r) => r.initializer },
      { label: 'n', value: (r) => r.n }, { label: 'n_seeds', value: (r) => r.n_seeds }, { label: 'n_jobs', value: (r) => r.n_jobs },
      ...METRICS.flatMap(([k]) => [{ label: k + '_mean', value: (r) => r[k]?.mean }, { label: k + '_std', value: (r) => r[k]?.std },
        { label: k + '_ci95_lo', value: (r) => r[k]?.ci95?.[0] }, { label: k + '_ci95_hi', value: (r) => r[k]?.ci95?.[1] }]),
      { label: 'epochs_to_target_mean', value: (r) => r.epochs_to_target?.mean }, { label: 'epochs_to_target_reached', value: (r) => r.epochs_to_target?.reached }];
    const runCols = [{ label: 'model', value: (x) => x.model }, { label: 'initializer', value: (x) => x.initializer }, { label: 'job', value: (x) => x.job_id },
      { label: 'seed', value: (x) => x.seed }, ...METRICS.map(([k]) => ({ label: k, value: (x) => x[k] })), { label: 'best_val_acc', value: (x) => x.best_val_acc },
      { label: 'epochs_to_target', value: (x) => x.epochs_to_target }];
    const runs = s.rows.flatMap((r) => (r.runs || []).map((x) => ({ ...x, model: r.model, initializer: r.initializer })));
    fill(tableBox, h('div', { class: 'card-head' }, h('h2', null, 'Table 1 — test metrics over seeds: mean ± std, 95 % interval'), h('span', { class: 'spacer' }),
      h('label', { class: 'small' }, 'target val acc ', target),
      csvButton(`grid${gridId}_table1.csv`, csvCols, () => s.rows), csvButton(`grid${gridId}_runs.csv`, runCols, () => runs),
      h('a', { class: 'small', href: csvUrl(`/grids/${gridId}/summary`, { target: state.target }), download: `grid${gridId}_summary.csv` }, 'API CSV')),
    dataTable({ name: 'table1', columns: cols, rows: s.rows, empty: 'Results appear as jobs finish.' }));

    const metricName = (m) => (m === 'epochs_to_target' ? `epochs to ${pct}` : (METRICS.find(([k]) => k === m) || [m, m])[1]);
    const ccols = [
      { label: 'model', value: (c) => c.model }, { label: 'a − b', value: (c) => `${c.a} − ${c.b}` },
      { label: 'metric', value: (c) => metricName(c.metric) },
      { label: 'seeds a/b', num: true, value: (c) => `${c.n_a}/${c.n_b}` },
      { label: 'difference', num: true, value: (c) => c.diff, cell: (c) => fmtNum(c.diff, 4) },
      { label: '95 % interval', num: true, value: (c) => fmtCi(c.ci95) },
      { label: 'Welch t', num: true, value: (c) => c.welch.t, cell: (c) => fmtNum(c.welch.t, 3) },
      { label: 'df', num: true, value: (c) => c.welch.df, cell: (c) => fmtNum(c.welch.df, 2) },
      { label: 'Welch p', num: true, value: (c) => c.welch.p, cell: (c) => h('span', { dataset: { p: 'welch' } }, fmtP(c.welch.p)) },
      { label: 'permutation p', num: true, value: (c) => c.permutation.p, cell: (c) => h('span', { dataset: { p: 'permutation' } }, fmtP(c.permutation.p), c.permutation.p === null ? '' : h('span', { class: 'muted small' }, c.permutation.exact ? ` exact, ${c.permutation.splits} splits` : ` ${c.permutation.splits} random splits`)) },
    ];
    fill(compBox, h('div', { class: 'card-head' }, h('h2', null, 'Initializers compared, per model (test over seeds)'), h('span', { class: 'spacer' }),
      csvButton(`grid${gridId}_comparisons.csv`, ccols.map((c) => ({ label: c.label, value: c.value })), () => s.comparisons)),
    h('div', { class: 'muted small' }, 'Difference of the means over seeds (a − b) with its 95 % Welch interval; Welch’s t-test and the permutation test of the difference of means (exact over every split of the seeds when there are few). With 3 seeds a side the exact permutation test cannot go below p = 0.1.'),
    dataTable({ name: 'comparisons', columns: ccols, rows: s.comparisons, empty: 'A comparison needs two initializers of one model with finished seeds.' }));
    if (onSummary) onSummary(s);
  }
  return { el, loaded: draw(), refresh: draw };
}
