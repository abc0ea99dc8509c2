// jobcells.js — how a job shows in tables and headers: progress bar, ETA, speed, actions, and
// the jobs table's column set (used by the Jobs and Grid views).
import { post, del } from './api.js';
import { h, fmtBytes, fmtDuration, fmtNum, fmtPct, statusBadge, tagChips, toast } from './dom.js';

// Fraction of the job done, from its progress (epoch counts from 1 while training; an epoch of
// 0 means not started).
export function progressFraction(j) {
  if (j.status === 'done') return 1;
  const p = j.progress || {};
  if (!j.epochs || p.epoch === null || p.epoch === undefined) return 0;
  const within = p.steps_per_epoch ? (p.step || 0) / p.steps_per_epoch : 0;
  const f = (Math.max(0, p.epoch - 1) + within) / j.epochs;
  return Math.min(1, Math.max(0, f));
}

export function progressText(j) {
  const p = j.progress || {};
  if (j.status === 'done') return `${j.epochs}/${j.epochs} epochs`;
  if (j.status === 'queued' && j.waiting_for) return `waiting for ${j.waiting_for}`;
  if (!p.epoch) return p.phase || (j.status === 'running' ? 'starting' : '');
  const step = p.steps_per_epoch ? ` · ${p.step ?? 0}/${p.steps_per_epoch}` : '';
  return `ep ${p.epoch}/${j.epochs}${step}${p.phase && p.phase !== 'train' ? ' · ' + p.phase : ''}`;
}

export function progressBar(j) {
  const f = progressFraction(j);
  return h('div', { class: 'progress', title: progressText(j), dataset: { progress: f.toFixed(4), job: j.id } },
    h('div', { class: 'bar', style: `width:${(100 * f).toFixed(1)}%` }),
    h('span', { class: 'txt' }, progressText(j)));
}

function act(label, path, method = 'post') {
  return async (ev) => {
    ev.target.disabled = true;
    try {
      await (method === 'post' ? post(path) : del(path));
      toast(label);
    } catch (e) {
      toast(e.message, true);
      ev.target.disabled = false;
    }
  };
}

// Cancel / retry / delete buttons fitting the job's state; onDeleted runs after a delete.
export function jobActions(j, onDeleted) {
  const active = j.status === 'queued' || j.status === 'running';
  return h('span', { class: 'actions' },
    active ? h('button', { class: 'small danger', dataset: { action: 'cancel' }, onclick: act(`job ${j.id} cancelled`, `/jobs/${j.id}/cancel`) }, 'cancel') : null,
    j.status === 'failed' || j.status === 'cancelled'
      ? h('button', { class: 'small', dataset: { action: 'retry' }, onclick: act(`job ${j.id} queued again`, `/jobs/${j.id}/retry`) }, 'retry') : null,
    !active ? h('button', {
      class: 'small', dataset: { action: 'delete' }, title: 'delete this job and its results',
      onclick: async (ev) => {
        if (!window.confirm(`Delete job ${j.id} and its results?`)) return;
        await act(`job ${j.id} deleted`, `/jobs/${j.id}`, 'delete')(ev);
        if (onDeleted) onDeleted(j);
      },
    }, 'delete') : null);
}

// The jobs table's columns. select: {has(id), toggle(id, on)} for the compare checkboxes.
export function jobColumns(select, onDeleted) {
  const cols = [
    { label: 'id', num: true, value: (j) => j.id, cell: (j) => h('a', { href: `#/job/${j.id}` }, '#' + j.id) },
    { label: 'name', value: (j) => j.name, cell: (j) => [j.name ? h('span', { class: 'job-name' }, j.name) : null, ...tagChips(j.tags)] },
    { label: 'tags', csvOnly: true, value: (j) => (j.tags || []).join(' ') },
    { label: 'grid', num: true, value: (j) => j.grid_id, cell: (j) => (j.grid_id === null ? '—' : h('a', { href: `#/grid/${j.grid_id}` }, String(j.grid_id))) },
    { label: 'dataset', value: (j) => j.dataset },
    { label: 'model', value: (j) => j.model },
    { label: 'initializer', value: (j) => j.initializer },
    { label: 'seed', num: true, value: (j) => j.seed },
    { label: 'status', value: (j) => j.status, cell: (j) => statusBadge(j.status) },
    { label: 'progress', value: (j) => progressFraction(j).toFixed(3), cell: progressBar },
    { label: 'images/s', num: true, value: (j) => (j.progress || {}).images_per_sec ?? null, cell: (j) => fmtNum((j.progress || {}).images_per_sec, 1) },
    { label: 'ETA', num: true, value: (j) => (j.progress || {}).eta_seconds ?? null, cell: (j) => (j.status === 'running' ? fmtDuration((j.progress || {}).eta_seconds) : '—') },
    { label: 'best val acc', num: true, value: (j) => (j.progress || {}).best_val_acc ?? null, cell: (j) => fmtPct((j.progress || {}).best_val_acc) },
    { label: 'disk', num: true, value: (j) => j.disk_bytes ?? null, cell: (j) => fmtBytes(j.disk_bytes) },
  ];
  if (select) {
    cols.unshift({
      label: '', value: () => null,
      cell: (j) => h('input', { type: 'checkbox', title: 'pick for comparison', checked: select.has(j.id), dataset: { select: j.id }, onchange: (e) => select.toggle(j.id, e.target.checked) }),
    });
    cols.push({ label: '', value: () => null, cell: (j) => jobActions(j, onDeleted) });
  }
  return cols;
}

// The CSV columns: the table's, without checkbox and action cells.
export function csvColumns(cols) {
  return cols.filter((c) => c.label !== '');
}
