// views/jobs.js — the Jobs view: filters and search, the live jobs table (SSE), selecting
// jobs to compare, cancel or delete together, and the submit form for a job or a grid.
import { del, get, post } from '../api.js';
import { h, fill, debounce, toast } from '../dom.js';
import { csvButton, dataTable, tableRow } from '../table.js';
import { csvColumns, jobColumns } from '../jobcells.js';
import { submitForm } from './submit.js';

export const name = 'jobs';

const PAGE = 100;
const STATUSES = ['queued', 'running', 'done', 'failed', 'cancelled'];
const selected = new Set(); // kept while the page lives, so picks survive filtering

export async function mount(ctx) {
  const filters = {};
  for (const k of ['status', 'grid', 'model', 'initializer', 'dataset', 'tag', 'q'])
    if (ctx.query.get(k)) filters[k] = ctx.query.get(k);
  let offset = 0, jobs = [], total = 0;
  const rows = new Map(); // job id -> <tr>

  const compareBtn = h('button', { class: 'primary', dataset: { action: 'compare' }, onclick: () => { location.hash = '#/compare?jobs=' + [...selected].join(','); } });
  // Bulk actions on the selected jobs: each job's own request, the results summed up.
  const bulk = (label, action, path, method) => h('button', {
    dataset: { action: 'bulk-' + action },
    onclick: async (ev) => {
      const ids = [...selected];
      if (action === 'delete' && !window.confirm(`Delete ${ids.length} job(s) and their results?`)) return;
      ev.target.disabled = true;
      const done = await Promise.all(ids.map((id) => (method === 'delete' ? del(path(id)) : post(path(id))).then(() => id, () => null)));
      const ok = done.filter((x) => x !== null);
      if (action === 'delete') for (const id of ok) selected.delete(id);
      toast(`${label}: ${ok.length} of ${ids.length} job(s)` + (ok.length < ids.length ? ' (the others are not in a state that allows it)' : ''), ok.length < ids.length);
      updateCompare();
      load();
    },
  }, label);
  const cancelBtn = bulk('Cancel selected', 'cancel', (id) => `/jobs/${id}/cancel`);
  const deleteBtn = bulk('Delete selected', 'delete', (id) => `/jobs/${id}`, 'delete');
  const updateCompare = () => {
    compareBtn.textContent = `Compare selected (${selected.size})`;
    compareBtn.disabled = selected.size < 1;
    cancelBtn.disabled = deleteBtn.disabled = selected.size < 1;
  };
  const select = {
    has: (id) => selected.has(id),
    toggle(id, on) {
      if (on) selected.add(id); else selected.delete(id);
      const tr = rows.get(id);
      if (tr) tr.classList.toggle('selected', on);
      updateCompare();
    },
  };
  const columns = jobColumns(select, () => load());
  const rowAttrs = (j) => ({ class: selected.has(j.id) ? 'selected' : null, dataset: { jobId: j.id } });

  const formCard = h('div', { class: 'card', hidden: ctx.query.get('new') !== '1' });
  const newBtn = h('button', { dataset: { action: 'new' }, onclick: () => { formCard.hidden = !formCard.hidden; } }, 'New job or grid');
  const tableBox = h('div');
  const pager = h('span', { class: 'muted small' });
  const prev = h('button', { class: 'small', onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, '‹ prev');
  const next = h('button', { class: 'small', onclick: () => { offset += PAGE; load(); } }, 'next ›');

  const filterBar = h('div', { class: 'toolbar' });
  const options = await Promise.all([get('/models'), get('/initializers'), get('/datasets')]);
  if (!ctx.alive()) return;
  const [models, inits, datasets] = options;
  const sel = (key, label, values) => h('label', null, label, h('select', {
    dataset: { filter: key },
    onchange: (e) => { if (e.target.value) filters[key] = e.target.value; else delete filters[key]; offset = 0; load(); },
  }, h('option', { value: '' }, 'all'), values.map((v) => h('option', { value: v, selected: filters[key] === v }, v))));
  const text = (key, label, placeholder, width) => h('label', null, label, h('input', {
    type: 'search', value: filters[key] || '', placeholder, style: `width:${width}px`, dataset: { filter: key },
    oninput: debounce((e) => { if (e.target.value.trim()) filters[key] = e.target.value.trim(); else delete filters[key]; offset = 0; load(); }, 300),
  }));
  fill(filterBar,
    text('q', 'search', 'name, note, tag, model…', 180),
    text('tag', 'tag', 'any', 90),
    sel('status', 'status', STATUSES),
    sel('model', 'model', models.models.map((m) => m.name)),
    sel('initializer', 'initializer', inits.initializers.map((i) => i.name)),
    sel('dataset', 'dataset', datasets.datasets.map((d) => d.name)),
    h('label', null, 'grid', h('input', {
      type: 'number', min: 1, value: filters.grid || '', placeholder: 'any', style: 'width:70px', dataset: { filter: 'grid' },
      oninput: debounce((e) => { if (e.target.value) filters.grid = e.target.value; else delete filters.grid; offset = 0; load(); }, 300),
    })),
    h('span', { class: 'spacer', style: 'flex:1' }),
    pager, prev, next,
    csvButton('jobs.csv', csvColumns(columns), () => jobs));

  formCard.append(h('div', { class: 'card-head' }, h('h2', null, 'Submit a job or a grid')),
    submitForm({ models: models.models, initializers: inits.initializers, datasets: datasets.datasets, onCreated: () => load() }));

  fill(ctx.root,
    h('div', { class: 'view-head' }, h('h1', null, 'Jobs'), newBtn, compareBtn, cancelBtn, deleteBtn,
      h('span', { class: 'muted small' }, 'tick jobs to compare, cancel or delete them together')),
    formCard,
    h('div', { class: 'card' }, filterBar, tableBox));
  updateCompare();

  // Job events that arrive while a list request is under way are newer than its answer.
  let eventSeq = 0;
  const latest = new Map(); // job id -> {seq, job} of its last event

  async function load() {
    const since = eventSeq;
    const res = await get('/jobs', { ...filters, limit: PAGE, offset });
    if (!ctx.alive()) return;
    jobs = res.jobs.map((j) => (latest.has(j.id) && latest.get(j.id).seq > since ? latest.get(j.id).job : j));
    total = res.total;
    rows.clear();
    const table = dataTable({ name: 'jobs', columns, rows: jobs, rowAttrs, empty: 'No jobs yet: submit one above.' });
    for (const tr of table.querySelectorAll('tbody tr')) rows.set(Number(tr.dataset.jobId), tr);
    fill(tableBox, table);
    pager.textContent = total ? `${offset + 1}–${offset + jobs.length} of ${total}` : '0 jobs';
    prev.disabled = offset === 0;
    next.disabled = offset + jobs.length >= total;
    ctx.ready();
  }
  const reloadSoon = debounce(load, 500);

  const onJob = (j) => {
    latest.set(j.id, { seq: ++eventSeq, job: j });
    const tr = rows.get(j.id);
    if (!tr) return reloadSoon(); // a new job, or one entering the filter
    const i = jobs.findIndex((x) => x.id === j.id);
    jobs[i] = j;
    if (filters.status && j.status !== filters.status) return reloadSoon();
    const fresh = tableRow(columns, j, rowAttrs);
    tr.replaceWith(fresh);
    rows.set(j.id, fresh);
  };
  ctx.on('job', onJob);
  ctx.on('progress', onJob);
  ctx.on('job_deleted', (d) => { selected.delete(d.id); updateCompare(); if (rows.has(d.id)) reloadSoon(); });
  ctx.on('open', () => load());
  await load();
}
