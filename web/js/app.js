// app.js — the dashboard's entry point: hash routing to the views, the view context (cleanup,
// event subscriptions, readiness flag for tests), the header's queue and live indicators.
import { events, get } from './api.js';
import { disposeAll } from './charts.js';
import { h, fill } from './dom.js';
import * as jobs from './views/jobs.js';
import * as job from './views/job.js';
import * as compare from './views/compare.js';
import * as grids from './views/grids.js';
import * as grid from './views/grid.js';
import * as datasets from './views/datasets.js';
import * as dataset from './views/dataset.js';
import * as storage from './views/storage.js';

// [pattern, view, nav entry]; a pattern's (\w+) groups become params.
const routes = [
  [/^\/?$/, jobs, 'jobs'],
  [/^\/jobs$/, jobs, 'jobs'],
  [/^\/job\/(\d+)$/, job, 'jobs'],
  [/^\/compare$/, compare, 'compare'],
  [/^\/grids$/, grids, 'grids'],
  [/^\/grid\/(\d+)$/, grid, 'grids'],
  [/^\/datasets$/, datasets, 'datasets'],
  [/^\/dataset\/([^/]+)$/, dataset, 'datasets'],
  [/^\/storage$/, storage, 'storage'],
];

const state = window.__initlab;
state.view = null;
state.events = events;
let current = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/jobs';
  const [path, qs] = raw.split('?');
  return { path, query: new URLSearchParams(qs || '') };
}

function route() {
  if (current) current.close();
  disposeAll();
  const root = document.getElementById('view');
  const { path, query } = parseHash();
  const hit = routes.map(([re, view, nav]) => [re.exec(path), view, nav]).find(([m]) => m);
  for (const a of document.querySelectorAll('header nav a'))
    a.classList.toggle('active', !!hit && a.dataset.nav === hit[2]);
  if (!hit) {
    fill(root, h('div', { class: 'empty' }, 'No such page: ', path));
    return;
  }
  const [m, view] = hit;
  current = makeContext(root, view.name, m.slice(1).map(decodeURIComponent), query);
  fill(root);
  Promise.resolve()
    .then(() => view.mount(current))
    .catch((e) => current.alive() && current.fail(e));
}

// What a view gets: where to draw, the route's params and query, and helpers tied to its
// lifetime (subscriptions and timers end when the view is left).
function makeContext(root, name, params, query) {
  let alive = true;
  const cleanups = [];
  document.body.dataset.view = name;
  document.body.dataset.ready = '0';
  state.view = { name, ready: false };
  return {
    root, params, query, name,
    alive: () => alive,
    onCleanup: (fn) => cleanups.push(fn),
    on(type, fn) {
      cleanups.push(events.on(type, (d) => alive && fn(d)));
    },
    every(ms, fn) {
      const t = setInterval(() => alive && fn(), ms);
      cleanups.push(() => clearInterval(t));
    },
    ready() {
      if (!alive) return;
      state.view.ready = true;
      document.body.dataset.ready = '1';
    },
    fail(e) {
      root.append(h('div', { class: 'error-box' }, e.message || String(e)));
      this.ready();
    },
    close() {
      alive = false;
      for (const fn of cleanups.splice(0)) fn();
    },
  };
}

async function refreshQueue() {
  try {
    const info = await get('/info');
    const q = info.queue || {};
    const queued = q.queued ?? info.queue_depth ?? 0, running = q.running ?? info.running ?? 0;
    const busy = q.workers_busy ?? info.workers_busy ?? 0, workers = q.workers ?? info.workers ?? '?';
    const remote = info.executor === 'slurm' || info.remote_workers
      ? ` · ${info.executor === 'slurm' ? 'Slurm · ' : ''}remote workers ${info.remote_workers ?? 0}` : '';
    document.getElementById('queue').textContent =
      `v${info.version} · queued ${queued} · running ${running} · workers busy ${busy}/${workers}${remote}`;
  } catch {
    document.getElementById('queue').textContent = '';
  }
}

events.on('state', (on) => {
  const el = document.getElementById('live');
  el.textContent = on ? 'live' : 'offline';
  el.className = 'live ' + (on ? 'on' : 'off');
});
events.on('job', () => refreshQueueSoon());
events.on('job_deleted', () => refreshQueueSoon());
events.on('grid_deleted', () => refreshQueueSoon());
events.on('open', () => refreshQueueSoon());
let queueTimer = null;
function refreshQueueSoon() {
  if (!queueTimer) queueTimer = setTimeout(() => { queueTimer = null; refreshQueue(); }, 1000);
}

window.addEventListener('hashchange', route);
events.start();
refreshQueue();
setInterval(refreshQueue, 15000);
route();
