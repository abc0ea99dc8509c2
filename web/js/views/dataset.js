// views/dataset.js — one dataset: its split, class counts per split as a bar chart (Fig. 2)
// and table, and the files the scan skipped with the reasons.
import { get } from '../api.js';
import { barOption, chart } from '../charts.js';
import { h, fill, fmtTime, statusBadge } from '../dom.js';
import { datasetActions } from './datasets.js';
import { csvButton, dataTable } from '../table.js';

export const name = 'dataset';

const SPLITS = [['train', '#2f6fde'], ['val', '#f59f00'], ['test', '#2b8a3e']];

export async function mount(ctx) {
  const dsName = ctx.params[0];
  const head = h('div', { class: 'view-head' });
  const info = h('div', { class: 'card' });
  const chartEl = h('div', { class: 'chart', dataset: { chart: 'class-counts' } });
  const countsBox = h('div');
  const skippedBox = h('div');
  fill(ctx.root, head, info,
    h('div', { class: 'cards' }, h('div', { class: 'card' }, chartEl), h('div', { class: 'card' }, countsBox)),
    h('div', { class: 'card' }, skippedBox));

  let shownId = null;
  async function load() {
    const d = await get(`/datasets/${encodeURIComponent(dsName)}`);
    if (!ctx.alive()) return;
    shownId = d.id;
    fill(head, h('h1', null, d.name), statusBadge(d.status), h('a', { href: `#/jobs?dataset=${encodeURIComponent(d.name)}` }, 'jobs on this dataset'),
      datasetActions(d, null));
    const sp = d.split || {};
    fill(info, h('dl', { class: 'kv' },
      [['path', d.path], ['split', `${sp.train} / ${sp.val} / ${sp.test} (seed ${d.seed})`],
        ['files', `${d.n_files} (train ${d.n_split?.train}, val ${d.n_split?.val}, test ${d.n_split?.test})`],
        ['classes', (d.classes || []).length], ['skipped', d.n_skipped], ['registered', fmtTime(d.created_at)], ['error', d.error]]
        .filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, String(v))))));

    const counts = d.class_counts || [];
    const countCols = [{ label: 'class', value: (c) => c.class }, { label: 'label', num: true, value: (c) => c.label },
      ...SPLITS.map(([s]) => ({ label: s, num: true, value: (c) => c[s] })),
      { label: 'total', num: true, value: (c) => c.train + c.val + c.test }];
    fill(countsBox, h('div', { class: 'card-head' }, h('h2', null, 'Class counts'), h('span', { class: 'spacer' }), csvButton(`${d.name}_class_counts.csv`, countCols, () => counts)),
      dataTable({ name: 'class-counts', columns: countCols, rows: counts, empty: d.status === 'scanning' ? 'Scanning…' : 'No classes.' }));
    chartEl.style.height = Math.max(320, 24 * counts.length + 100) + 'px';
    chart(chartEl, 'class-counts').setOption(barOption({
      title: 'Images per class and split', file: `${d.name}_class_counts`, horizontal: true, stack: true,
      categories: counts.map((c) => c.class), series: SPLITS.map(([s, color]) => ({ name: s, color, data: counts.map((c) => c[s]) })),
    }), true);

    const skipped = d.skipped || [];
    const skipCols = [{ label: 'path', value: (s) => s.path }, { label: 'reason', value: (s) => s.reason }];
    fill(skippedBox, h('div', { class: 'card-head' }, h('h2', null, `Skipped files (${d.n_skipped ?? skipped.length})`), h('span', { class: 'spacer' }), csvButton(`${d.name}_skipped.csv`, skipCols, () => skipped)),
      dataTable({ name: 'skipped', columns: skipCols, rows: skipped, empty: 'No file was skipped.' }));
    ctx.ready();
  }
  ctx.on('dataset', (d) => { if (d.name === dsName) load(); });
  ctx.on('dataset_deleted', (x) => { if (x.id === shownId) location.hash = '#/datasets'; });
  await load();
}
