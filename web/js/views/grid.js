// views/grid.js — the Grid view: grid-wide operations (cancel, retry, more seeds, delete,
// its name, tags, note and priority), one-click Glorot vs He per model, learning curves over
// seeds and the grid's Table 1 with intervals and tests (views/seeds.js), its chart, and the
// live jobs table.
import { del, get, patch, post } from '../api.js';
import { barOption, chart, errorBarSeries } from '../charts.js';
import { h, fill, debounce, fmtTime, tagChips, toast } from '../dom.js';
import { recordForm } from './job.js';
import { csvButton, dataTable, tableRow } from '../table.js';
import { csvColumns, jobColumns } from '../jobcells.js';
import { countsText } from './grids.js';
import { seedCurvesPanel, table1Panel } from './seeds.js';

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
  let g = await get(`/grids/${id}`);
  if (!ctx.alive()) return;
  let jobs = g.jobs;
  const head = h('div', { class: 'view-head' });
  const ops = h('div', { class: 'card', dataset: { card: 'grid-ops' } });
  const pairs = h('div', { class: 'toolbar', dataset: { pairs: '' } });
  const t1El = h('div', { class: 'chart', dataset: { chart: 'table1' } });
  const jobsBox = h('div');
  const table1 = table1Panel(ctx, id, drawTable1Chart);
  const seeds = seedCurvesPanel(ctx, id, () => jobs);
  fill(ctx.root, head, ops,
    h('div', { class: 'card' }, h('h2', null, 'Glorot vs He'), pairs),
    seeds.el,
    table1.el,
    h('div', { class: 'card' }, t1El),
    h('div', { class: 'card' }, jobsBox));

  // Once the grid is deleted, the events of its jobs' deletion fetch nothing more.
  let gone = false;
  const leave = () => { gone = true; location.hash = '#/grids'; };
  const selected = new Set();
  const columns = jobColumns({ has: (j) => selected.has(j), toggle: (j, on) => (on ? selected.add(j) : selected.delete(j)) }, () => reloadJobs());
  const rows = new Map();

  // The whole grid at once: cancel, retry, delete, more seeds; its name, tags and note.
  function drawOps() {
    const act = (label, action, run, confirmText) => h('button', {
      class: 'small' + (action === 'delete' ? ' danger' : ''), dataset: { gridAction: action },
      onclick: async (ev) => {
        if (confirmText && !window.confirm(confirmText)) return;
        ev.target.disabled = true;
        try {
          const r = await run();
          toast(r && r.jobs_changed !== undefined ? `${label}: ${r.jobs_changed} job(s)` : label);
        } catch (e) {
          toast(e.message, true);
        }
        ev.target.disabled = false;
      },
    }, label);
    const seedsInput = h('input', { name: 'add-seeds', placeholder: 'seeds, e.g. 3 4', style: 'width:110px' });
    const addSeeds = async () => {
      const list = seedsInput.value.split(/[\s,]+/).filter(Boolean).map(Number);
      const r = await post(`/grids/${id}/seeds`, { seeds: list });
      seedsInput.value = '';
      await reloadJobs();
      return { jobs_changed: (r.jobs || []).length };
    };
    fill(ops, h('div', { class: 'card-head' }, h('h2', null, 'Grid'), ...tagChips(g.tags), h('span', { class: 'spacer' }),
      act('Cancel all', 'cancel', () => post(`/grids/${id}/cancel`)),
      act('Retry failed and cancelled', 'retry', () => post(`/grids/${id}/retry`)),
      seedsInput, act('Add seeds', 'seeds', addSeeds),
      act('Delete grid', 'delete', async () => { await del(`/grids/${id}`); leave(); }, `Delete grid ${id} with its ${jobs.length} jobs and their results?`)),
    recordForm(g, { priority: true, save: async (body) => { g = await patch(`/grids/${id}`, body); drawOps(); drawHead(); await reloadJobs(); } }));
  }

  function drawHead() {
    const counts = {};
    for (const j of jobs) counts[j.status] = (counts[j.status] || 0) + 1;
    const c = g.config || {};
    fill(head, h('h1', null, `Grid #${id}${g.name ? ' · ' + g.name : ''}`), h('span', { class: 'muted' }, `${c.dataset ?? ''} · ${fmtTime(g.created_at)} · ${countsText(counts)}`),
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

  function drawTable1Chart(s) {
    const shown = METRICS.slice(0, 4);
    const series = s.rows.map((r) => ({ name: `${r.model} ${r.initializer}`, data: shown.map(([k]) => r[k]?.mean ?? null) }));
    const opt = barOption({ title: 'Table 1 (bars: mean, whiskers: 95 % interval over seeds)', file: `grid${id}_table1`, categories: shown.map(([, l]) => l), series, yName: 'score' });
    Object.assign(opt.yAxis, { min: 0, max: 1 });
    s.rows.forEach((r, i) => opt.series.push(errorBarSeries('95 % interval', shown.map(([k], x) => {
      const m = r[k]?.mean, ci = r[k]?.ci95;
      return m === null || m === undefined || !ci || ci[0] === null ? [x, m ?? 0, m ?? 0] : [x, Math.max(0, ci[0]), Math.min(1, ci[1])];
    }), i, s.rows.length)));
    opt.legend.data = series.map((x) => x.name);
    chart(t1El, 'table1').setOption(opt, true);
  }

  async function reloadJobs() {
    if (gone || !ctx.alive()) return;
    const fresh = await get(`/grids/${id}`);
    if (!ctx.alive()) return;
    jobs = fresh.jobs;
    g = fresh;
    drawHead();
    drawJobs();
  }
  const summarySoon = debounce(() => { if (!gone && ctx.alive()) { table1.refresh(); seeds.refresh(); } }, 1000);

  drawOps();
  drawHead();
  drawJobs();
  await Promise.all([table1.loaded, seeds.loaded]);
  ctx.ready();

  const jobsSoon = debounce(() => reloadJobs(), 500);
  ctx.on('grid', (fresh) => {
    if (fresh.id !== id) return;
    g = { ...g, ...fresh };
    drawOps();
    drawHead();
  });
  ctx.on('grid_deleted', (d) => { if (d.id === id) leave(); });
  ctx.on('job_deleted', (d) => { if (jobs.some((j) => j.id === d.id)) { jobsSoon(); summarySoon(); } });
  const onJob = (j) => {
    const i = jobs.findIndex((x) => x.id === j.id);
    if (i < 0) {
      if (j.grid_id === id) jobsSoon(); // a job added to the grid
      return;
    }
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
  };
  ctx.on('job', onJob);
  ctx.on('progress', onJob);
}
