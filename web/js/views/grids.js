// views/grids.js — the Grids view: every grid with its configuration and job states.
import { get } from '../api.js';
import { h, fill, debounce, fmtTime, tagChips } from '../dom.js';
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
    { label: 'name', value: (g) => g.name, cell: (g) => [g.name, ...tagChips(g.tags)] },
    { label: 'tags', csvOnly: true, value: (g) => (g.tags || []).join(' ') },
    { label: 'created', value: (g) => g.created_at, cell: (g) => fmtTime(g.created_at) },
    { label: 'dataset', value: (g) => g.config?.dataset },
    { label: 'models', value: (g) => list(g.config?.models) },
    { label: 'initializers', value: (g) => list(g.config?.initializers) },
    { label: 'seeds', value: (g) => list(g.config?.seeds) },
    { label: 'epochs', num: true, value: (g) => g.config?.epochs ?? null },
    { label: 'jobs', num: true, value: (g) => g.n_jobs },
    { label: 'seeds', num: true, value: (g) => g.n_seeds },
    { label: 'state', value: (g) => countsText(g.status_counts) },
  ];
  const filters = {};
  const search = h('input', { type: 'search', placeholder: 'search name, note, tags, configuration', style: 'width:260px', dataset: { filter: 'q' },
    oninput: debounce((e) => { filters.q = e.target.value.trim(); load(); }, 300) });
  const tag = h('input', { type: 'search', placeholder: 'tag', style: 'width:90px', dataset: { filter: 'tag' },
    oninput: debounce((e) => { filters.tag = e.target.value.trim(); load(); }, 300) });
  box.before(h('div', { class: 'toolbar' }, h('label', null, 'search ', search), h('label', null, 'tag ', tag)));
  async function load() {
    const res = await get('/grids', filters);
    if (!ctx.alive()) return;
    grids = res.grids;
    fill(box, h('div', { class: 'card-head' }, h('h2', null, `${grids.length} grids`), h('span', { class: 'spacer' }), csvButton('grids.csv', cols, () => grids)),
      dataTable({ name: 'grids', columns: cols, rows: grids, empty: 'No grid yet.' }));
    ctx.ready();
  }
  let timer = null;
  const soon = () => { if (!timer) timer = setTimeout(() => { timer = null; load(); }, 1500); };
  for (const type of ['job', 'grid', 'grid_deleted', 'job_deleted']) ctx.on(type, soon);
  ctx.onCleanup(() => clearTimeout(timer));
  await load();
}
