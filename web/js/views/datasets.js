// views/datasets.js — the Datasets view: registered datasets and the form that registers one
// (POST /datasets), with the API's validation errors next to the fields.
import { del, get, post } from '../api.js';
import { h, fill, fmtTime, statusBadge, toast } from '../dom.js';
import { csvButton, dataTable } from '../table.js';

export const name = 'datasets';

function registerForm(onDone) {
  const fields = {};
  const field = (key, label, input) => {
    const err = h('div', { class: 'field-error', dataset: { errorFor: key } });
    fields[key] = { box: h('label', { class: 'field', dataset: { field: key } }, h('span', { class: 'name' }, label), input, err), err };
    return fields[key].box;
  };
  const input = (name, attrs) => h('input', { name, ...attrs });
  const formError = h('div', { class: 'form-error' });
  const form = h('form', { class: 'grid-form', novalidate: true, dataset: { form: 'dataset' }, onsubmit: (e) => { e.preventDefault(); send(); } },
    field('name', 'name', input('name', { placeholder: 'weeds' })),
    field('path', 'path on the daemon host (a folder per class)', input('path', { placeholder: '/data/weeds' })),
    field('split', 'split train / val / test', h('span', null,
      ['0.6', '0.2', '0.2'].map((v, i) => input('split' + i, { type: 'number', step: 'any', value: v, style: 'width:64px;margin-right:4px' })))),
    field('seed', 'split seed', input('seed', { type: 'number', value: '0' })),
    h('div', { class: 'form-actions' }, h('button', { class: 'primary', type: 'submit' }, 'Register'), formError));

  async function send() {
    formError.textContent = '';
    for (const f of Object.values(fields)) { f.err.textContent = ''; f.box.classList.remove('invalid'); }
    const v = (n) => form.elements.namedItem(n).value.trim();
    const body = { name: v('name'), path: v('path'), split: [0, 1, 2].map((i) => Number(v('split' + i))) };
    if (v('seed') !== '') body.seed = Number(v('seed'));
    try {
      const d = await post('/datasets', body);
      toast(`dataset ${d.name}: ${d.status}`);
      onDone(d);
    } catch (e) {
      const f = e.field && fields[String(e.field).replace(/[[.].*$/, '')];
      if (f) {
        f.err.textContent = e.message;
        f.box.classList.add('invalid');
      } else {
        formError.textContent = e.message;
      }
    }
  }
  return form;
}

// Rescan (files added or removed since) and delete buttons of a dataset.
export function datasetActions(d, after) {
  const run = (label, fn) => async (ev) => {
    ev.target.disabled = true;
    try {
      await fn();
      toast(label);
      if (after) after();
    } catch (e) {
      toast(e.message, true);
      ev.target.disabled = false;
    }
  };
  return h('span', { class: 'actions' },
    h('button', { class: 'small', dataset: { action: 'rescan' }, disabled: d.status === 'scanning',
      onclick: run(`dataset ${d.name}: scanning again`, () => post(`/datasets/${encodeURIComponent(d.name)}/rescan`)) }, 'rescan'),
    h('button', { class: 'small danger', dataset: { action: 'delete-dataset' }, disabled: d.status === 'scanning',
      onclick: (ev) => window.confirm(`Unregister dataset ${d.name} (the image folder stays)?`) &&
        run(`dataset ${d.name} deleted`, () => del(`/datasets/${encodeURIComponent(d.name)}`))(ev) }, 'delete'));
}

export async function mount(ctx) {
  const box = h('div');
  fill(ctx.root, h('div', { class: 'view-head' }, h('h1', null, 'Datasets')),
    h('div', { class: 'card' }, h('h2', null, 'Register a dataset'), registerForm(() => load())),
    h('div', { class: 'card' }, box));
  let list = [];
  const cols = [
    { label: 'name', value: (d) => d.name, cell: (d) => h('a', { href: `#/dataset/${encodeURIComponent(d.name)}` }, d.name) },
    { label: 'status', value: (d) => d.status, cell: (d) => [statusBadge(d.status), d.error ? h('span', { class: 'small muted' }, ' ' + d.error) : null] },
    { label: 'classes', num: true, value: (d) => (d.classes || []).length },
    { label: 'files', num: true, value: (d) => d.n_files },
    { label: 'train', num: true, value: (d) => d.n_split?.train ?? null },
    { label: 'val', num: true, value: (d) => d.n_split?.val ?? null },
    { label: 'test', num: true, value: (d) => d.n_split?.test ?? null },
    { label: 'skipped', num: true, value: (d) => d.n_skipped },
    { label: 'path', value: (d) => d.path },
    { label: 'registered', value: (d) => d.created_at, cell: (d) => fmtTime(d.created_at) },
    { label: '', value: () => null, cell: (d) => datasetActions(d, () => load()) },
  ];
  async function load() {
    const res = await get('/datasets');
    if (!ctx.alive()) return;
    list = res.datasets;
    fill(box, h('div', { class: 'card-head' }, h('h2', null, `${list.length} datasets`), h('span', { class: 'spacer' }), csvButton('datasets.csv', cols, () => list)),
      dataTable({ name: 'datasets', columns: cols, rows: list, empty: 'No dataset registered yet.' }));
    ctx.ready();
  }
  ctx.on('dataset', () => load());
  ctx.on('dataset_deleted', () => load());
  await load();
}
