// views/grid.js — the Grid view: one-click Glorot vs He per model, the grid's Table 1 (mean ±
// std over seeds, table and chart) and its live jobs table.
import { csvUrl, get } from '../api.js';
import { barOption, chart, errorBarSeries } from '../charts.js';
import { h, fill, debounce, fmtMeanStd, fmtTime } from '../dom.js';
import { csvButton, dataTable, tableRow } from '../table.js';
import { csvColumns, jobColumns } from '../jobcells.js';
import { countsText } from './grids.js';

export const name = 'grid';

const METRICS = [['accuracy', 'accuracy'], ['precision_macro', 'precision'], ['recall_macro', 'recall'], ['f1_macro', 'F1'], ['loss', 'loss']];

// For each model, the Glorot job and the He job to compare: same seed (the lowest shared) and,
// when possible, the same distribution (uniform with uniform). Returns [{model, a, b}].
export function glorotHePairs(jobs) {
  const fam = (j) => j.initializer.split('_')[0];
  const dist = (j) => j.initializer.split('_').slice(1).join('_');
  const out = [];
  for (const model of [...new Set(jobs.map((j) => j.model))]) {
    const mine = jobs.filter((j) => j.model === model).sort((x, y) => x.seed - y.seed || x.id - y.id);
    let best = null;
    for (const a of mine.filter((j) => fam(j) === 'glorot'))
      for (const b of mine.filter((j) => fam(j) === 'he' && j.seed === a.seed)) {
        const score = (dist(a) === dist(b) ? 0 : 1000) + a.seed;
        if (!best || score < best.score) best = { model, a, b, score };
      }
    if (best) out.push(best);
  }
  return out;
}

export async function mount(ctx) {
  const id = Number(ctx.params[0]);
  const g = await get(`/grids/${id}`);
  if (!ctx.alive()) return;
  let jobs = g.jobs;
  const head = h('div', { class: 'view-head' });
  const pairs = h('div', { class: 'toolbar', dataset: { pairs: '' } });
  const summaryBox = h('div');
  const t1El = h('div', { class: 'chart', dataset: { chart: 'table1' } });
  const jobsBox = h('div');
  fill(ctx.root, head,
    h('div', { class: 'card' }, h('h2', null, 'Glorot vs He'), pairs),
    h('div', { class: 'card' }, summaryBox),
    h('div', { class: 'card' }, t1El),
    h('div', { class: 'card' }, jobsBox));

  const selected = new Set();
  const columns = jobColumns({ has: (j) => selected.has(j), toggle: (j, on) => (on ? selected.add(j) : selected.delete(j)) }, () => reloadJobs());
  const rows = new Map();

  function drawHead() {
    const counts = {};
    for (const j of jobs) counts[j.status] = (counts[j.status] || 0) + 1;
    const c = g.config || {};
    fill(head, h('h1', null, `Grid #${id}`), h('span', { class: 'muted' }, `${c.dataset ?? ''} · ${fmtTime(g.created_at)} · ${countsText(counts)}`),
      h('a', { class: 'button', href: '#/compare?jobs=' + jobs.map((j) => j.id).join(',') }, 'Compare all'),
      h('button', { onclick: () => { if (selected.size) location.hash = '#/compare?jobs=' + [...selected].join(','); } }, 'Compare selected'));
    const found = glorotHePairs(jobs);
    fill(pairs, found.length
      ? found.map((p) => h('a', { class: 'button', dataset: { pair: p.model }, href: `#/compare?jobs=${p.a.id},${p.b.id}` },
        `${p.model}: ${p.a.initializer} vs ${p.b.initializer} (seed ${p.a.seed})`))
      : h('span', { class: 'muted' }, 'This grid has no Glorot/He pair with the same model and seed.'));
  }

  function drawJobs() {
    rows.clear();
    const table = dataTable({ name: 'grid-jobs', columns, rows: jobs, rowAttrs: (j) => ({ dataset: { jobId: j.id } }) });
    for (const tr of table.querySelectorAll('tbody tr')) rows.set(Number(tr.dataset.jobId), tr);
    fill(jobsBox, h('div', { class: 'card-head' }, h('h2', null, `Jobs (${jobs.length})`), h('span', { class: 'spacer' }), csvButton(`grid${id}_jobs.csv`, csvColumns(columns), () => jobs)), table);
  }

  async function drawSummary() {
    const s = await get(`/grids/${id}/summary`);
    if (!ctx.alive()) return;
    const cols = [
      { label: 'model', value: (r) => r.model }, { label: 'initializer', value: (r) => r.initializer },
      { label: 'seeds done', num: true, value: (r) => r.n, cell: (r) => `${r.n}/${r.n_jobs}` },
      ...METRICS.map(([k, label]) => ({ label, num: true, value: (r) => fmtMeanStd(r[k], 4), cell: (r) => fmtMeanStd(r[k]) })),
    ];
    const csvCols = [{ label: 'model', value: (r) => r.model }, { label: 'initializer', value: (r) => r.initializer },
      { label: 'n', value: (r) => r.n }, { label: 'n_jobs', value: (r) => r.n_jobs },
      ...METRICS.flatMap(([k]) => [{ label: k + '_mean', value: (r) => r[k]?.mean }, { label: k + '_std', value: (r) => r[k]?.std }])];
    fill(summaryBox, h('div', { class: 'card-head' }, h('h2', null, 'Table 1 — test metrics, mean ± std over seeds'), h('span', { class: 'spacer' }),
      csvButton(`grid${id}_table1.csv`, csvCols, () => s.rows), h('a', { class: 'small', href: csvUrl(`/grids/${id}/summary`), download: `grid${id}_summary.csv` }, 'API CSV')),
    dataTable({ name: 'table1', columns: cols, rows: s.rows, empty: 'Results appear as jobs finish.' }));
    const shown = METRICS.slice(0, 4);
    const series = s.rows.map((r) => ({ name: `${r.model} ${r.initializer}`, data: shown.map(([k]) => r[k]?.mean ?? null) }));
    const opt = barOption({ title: 'Table 1 (bars: mean, whiskers: ± std)', file: `grid${id}_table1`, categories: shown.map(([, l]) => l), series, yName: 'score' });
    Object.assign(opt.yAxis, { min: 0, max: 1 });
    s.rows.forEach((r, i) => opt.series.push(errorBarSeries('± std', shown.map(([k], x) => {
      const m = r[k]?.mean, sd = r[k]?.std;
      return m === null || m === undefined || sd === null || sd === undefined ? [x, m ?? 0, m ?? 0] : [x, m - sd, m + sd];
    }), i, s.rows.length)));
    opt.legend.data = series.map((x) => x.name);
    chart(t1El, 'table1').setOption(opt, true);
  }

  async function reloadJobs() {
    const fresh = await get(`/grids/${id}`);
    if (!ctx.alive()) return;
    jobs = fresh.jobs;
    drawHead();
    drawJobs();
  }
  const summarySoon = debounce(() => drawSummary(), 1000);

  drawHead();
  drawJobs();
  await drawSummary();
  ctx.ready();

  ctx.on('job', (j) => {
    const i = jobs.findIndex((x) => x.id === j.id);
    if (i < 0) return;
    const before = jobs[i].status;
    jobs[i] = j;
    const tr = rows.get(j.id);
    if (tr) {
      const fresh = tableRow(columns, j, () => ({ dataset: { jobId: j.id } }));
      tr.replaceWith(fresh);
      rows.set(j.id, fresh);
    }
    if (before !== j.status) {
      drawHead();
      if (j.status === 'done') summarySoon();
    }
  });
}
