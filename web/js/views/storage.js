// views/storage.js — the Storage view: what the state directory holds (database, checkpoints
// per job, image caches, quarantine), the free space, the retention policy and cache limit.
import { get } from '../api.js';
import { barOption, chart } from '../charts.js';
import { h, fill, fmtBytes, fmtTime } from '../dom.js';
import { csvButton, dataTable } from '../table.js';

export const name = 'storage';

const PARTS = [['database_bytes', 'database'], ['checkpoints_bytes', 'checkpoints'], ['caches_bytes', 'image caches'],
  ['quarantine_bytes', 'quarantine'], ['other_bytes', 'other']];

export async function mount(ctx) {
  const info = h('div', { class: 'card' });
  const chartEl = h('div', { class: 'chart', style: 'height:220px', dataset: { chart: 'storage' } });
  const jobsBox = h('div');
  const cachesBox = h('div');
  fill(ctx.root, h('div', { class: 'view-head' }, h('h1', null, 'Storage')), info,
    h('div', { class: 'card' }, chartEl),
    h('div', { class: 'cards' }, h('div', { class: 'card' }, jobsBox), h('div', { class: 'card' }, cachesBox)));

  async function load() {
    const st = await get('/storage');
    if (!ctx.alive()) return;
    const r = st.retention || {};
    fill(info, h('dl', { class: 'kv', dataset: { storage: 'summary' } },
      [['state directory', st.state_dir], ['total', fmtBytes(st.total_bytes)],
        ...PARTS.map(([k, label]) => [label, fmtBytes(st[k])]),
        ['free on its file system', `${fmtBytes(st.free_bytes)} of ${fmtBytes(st.filesystem_bytes)}`],
        ['retention', `done jobs keep ${r.checkpoints === 'all' ? 'latest and best' : r.checkpoints === 'none' ? 'no' : 'best'} checkpoints` +
          (r.keep_finished ? `; only the last ${r.keep_finished} ended jobs keep any` : '')],
        ['image cache limit', st.cache_limit_bytes === null ? 'none (the free space)' : fmtBytes(st.cache_limit_bytes)]]
        .map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v)))));
    chart(chartEl, 'storage').setOption(barOption({
      title: 'Disk used by the state directory', file: 'storage', horizontal: true, stack: true, categories: ['state'],
      series: PARTS.map(([k, label]) => ({ name: label, data: [st[k]] })), yName: 'bytes',
    }), true);
    const jobs = st.jobs.slice().sort((a, b) => b.bytes - a.bytes);
    const jobCols = [{ label: 'job', num: true, value: (j) => j.id, cell: (j) => h('a', { href: `#/job/${j.id}` }, '#' + j.id) },
      { label: 'bytes', num: true, value: (j) => j.bytes, cell: (j) => fmtBytes(j.bytes) }];
    fill(jobsBox, h('div', { class: 'card-head' }, h('h2', null, `Checkpoints per job (${jobs.length})`), h('span', { class: 'spacer' }), csvButton('storage_jobs.csv', jobCols, () => jobs)),
      dataTable({ name: 'storage-jobs', columns: jobCols, rows: jobs, empty: 'No job holds a checkpoint.' }));
    const cacheCols = [{ label: 'file', value: (c) => c.file }, { label: 'bytes', num: true, value: (c) => c.bytes, cell: (c) => fmtBytes(c.bytes) },
      { label: 'last used', value: (c) => c.last_used, cell: (c) => fmtTime(c.last_used) }, { label: 'in use', value: (c) => (c.in_use ? 'yes' : 'no') }];
    fill(cachesBox, h('div', { class: 'card-head' }, h('h2', null, `Image caches (${st.caches.length})`), h('span', { class: 'spacer' }), csvButton('storage_caches.csv', cacheCols, () => st.caches)),
      dataTable({ name: 'storage-caches', columns: cacheCols, rows: st.caches, empty: 'No image cache.' }));
    ctx.ready();
  }
  let timer = null;
  const soon = () => { if (!timer) timer = setTimeout(() => { timer = null; load(); }, 2000); };
  for (const type of ['job', 'job_deleted', 'grid_deleted', 'dataset_deleted']) ctx.on(type, soon);
  ctx.onCleanup(() => clearTimeout(timer));
  await load();
}
