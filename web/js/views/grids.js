// views/grids.js — the Grids view: every grid with its configuration and job states.
import { get } from '../api.js';
import { h, fill, fmtTime } from '../dom.js';
import { csvButton, dataTable } from '../table.js';

export const name = 'grids';

const list = (v) => (Array.isArray(v) ? v.join(', ') : v ?? '');

// "3 done · 1 running" from a grid's status_counts.
export function countsText(counts) {
  return Object.entries(counts || {}).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(' · ') || 'no jobs';
}

export async function mount(ctx) {
  const box = h('div');
  fill(ctx.root, h('div', { class: 'view-head' }, h('h1', null, 'Grids'),
    h('a', { class: 'button', href: '#/jobs?new=1' }, 'New grid')), h('div', { class: 'card' }, box));
  let grids = [];
  const cols = [
    { label: 'id', num: true, value: (g) => g.id, cell: (g) => h('a', { href: `#/grid/${g.id}` }, '#' + g.id) },
    { label: 'created', value: (g) => g.created_at, cell: (g) => fmtTime(g.created_at) },
    { label: 'dataset', value: (g) => g.config?.dataset },
    { label: 'models', value: (g) => list(g.config?.models) },
    { label: 'initializers', value: (g) => list(g.config?.initializers) },
    { label: 'seeds', value: (g) => list(g.config?.seeds) },
    { label: 'epochs', num: true, value: (g) => g.config?.epochs ?? null },
    { label: 'jobs', num: true, value: (g) => g.n_jobs },
    { label: 'state', value: (g) => countsText(g.status_counts) },
  ];
  async function load() {
    const res = await get('/grids');
    if (!ctx.alive()) return;
    grids = res.grids;
    fill(box, h('div', { class: 'card-head' }, h('h2', null, `${grids.length} grids`), h('span', { class: 'spacer' }), csvButton('grids.csv', cols, () => grids)),
      dataTable({ name: 'grids', columns: cols, rows: grids, empty: 'No grid yet.' }));
    ctx.ready();
  }
  let timer = null;
  ctx.on('job', () => { if (!timer) timer = setTimeout(() => { timer = null; load(); }, 1500); });
  ctx.onCleanup(() => clearTimeout(timer));
  await load();
}
