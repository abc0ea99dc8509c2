// views/compare.js — the Compare view: first the depth profiles of the chosen jobs (both
// BatchNorm modes, the theory at epoch 0), then overlaid learning curves, layer box plots,
// health and histograms overlaid layer by layer (Glorot vs He), the distribution over time
// of one layer, and their test results.
import { get } from '../api.js';
import { chart, colorAt, curvesOption } from '../charts.js';
import { h, fill, fmtNum, fmtPct, jobLabel, statusBadge } from '../dom.js';
import { csvButton, dataTable } from '../table.js';
import { evolutionPanel } from './evolution.js';
import { layerPanel } from './layers.js';
import { profilePanel } from './profile.js';
import { curveSeries, epochRow, milestoneMarks } from './job.js';

export const name = 'compare';

const MAX_BOX_JOBS = 4; // more boxes per layer stop being readable

function setIds(ids) {
  location.hash = '#/compare?jobs=' + ids.join(',');
}

export async function mount(ctx) {
  const ids = (ctx.query.get('jobs') || '').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
  const adder = h('input', { type: 'number', min: 1, placeholder: 'job id', style: 'width:90px', dataset: { control: 'add-job' } });
  const add = h('button', { onclick: () => adder.value && setIds([...new Set([...ids, Number(adder.value)])]) }, 'Add');
  const head = h('div', { class: 'view-head' }, h('h1', null, 'Compare'));
  fill(ctx.root, head);
  if (!ids.length) {
    head.append(adder, add);
    ctx.root.append(h('div', { class: 'card empty' }, 'Pick jobs with the checkboxes on the ', h('a', { href: '#/jobs' }, 'Jobs'),
      ' page, or open a ', h('a', { href: '#/grids' }, 'grid'), ' and press “Glorot vs He”.'));
    ctx.ready();
    return;
  }
  const jobs = await Promise.all(ids.map((id) => get(`/jobs/${id}`)));
  const epochs = await Promise.all(ids.map((id) => get(`/jobs/${id}/epochs`)));
  if (!ctx.alive()) return;
  const color = (i) => colorAt(i);
  head.append(...jobs.map((j, i) => h('span', { class: 'chip', style: `border-left:4px solid ${color(i)};padding-left:6px` },
    h('a', { href: `#/job/${j.id}` }, jobLabel(j)), ' ', statusBadge(j.status), ' ',
    h('button', { class: 'small', title: 'remove', onclick: () => setIds(ids.filter((x) => x !== j.id)) }, '×'))), adder, add);

  const accEl = h('div', { class: 'chart', dataset: { chart: 'compare-acc' } });
  const lossEl = h('div', { class: 'chart', dataset: { chart: 'compare-loss' } });
  const boxJobs = jobs.slice(0, MAX_BOX_JOBS);
  const profile = profilePanel(ctx, jobs);
  const panel = layerPanel(ctx, boxJobs);
  const evolution = evolutionPanel(ctx, jobs);
  const resultsBox = h('div');
  ctx.root.append(h('div', null,
    profile.el,
    h('div', { class: 'cards' }, h('div', { class: 'card' }, accEl), h('div', { class: 'card' }, lossEl)),
    jobs.length > MAX_BOX_JOBS ? h('div', { class: 'muted small' }, `Layer plots show the first ${MAX_BOX_JOBS} jobs.`) : null,
    panel.el,
    evolution.el,
    h('div', { class: 'card' }, resultsBox)));

  function drawCurves() {
    const marks = milestoneMarks(epochs[0].milestones, epochs[0].epochs);
    for (const [el, key, label] of [[accEl, 'acc', 'Accuracy'], [lossEl, 'loss', 'Loss']]) {
      const series = jobs.flatMap((j, i) => curveSeries(epochs[i].epochs, key, jobLabel(j), color(i)));
      chart(el, 'compare-' + key).setOption(curvesOption({ title: label + ' (train solid, validation dashed)', file: `compare_${key}`, yName: key === 'acc' ? 'accuracy' : 'loss', series, milestones: marks }), true);
    }
  }

  async function drawResults() {
    const res = await Promise.all(jobs.map((j) => get(`/jobs/${j.id}/results`).catch(() => null)));
    if (!ctx.alive()) return;
    const bestVal = (i) => epochs[i].epochs.reduce((b, e) => (e.val_acc !== null && (b === null || e.val_acc > b) ? e.val_acc : b), null);
    const rows = jobs.map((j, i) => ({ job: j, r: res[i] || {}, best: bestVal(i) ?? j.progress?.best_val_acc ?? null }));
    const m = (k, pct) => ({ label: k, num: true, value: (x) => x.r[k] ?? null, cell: (x) => (pct ? fmtPct(x.r[k]) : fmtNum(x.r[k], 4)) });
    const cols = [
      { label: 'job', value: (x) => x.job.id, cell: (x) => h('a', { href: `#/job/${x.job.id}` }, '#' + x.job.id) },
      { label: 'model', value: (x) => x.job.model }, { label: 'initializer', value: (x) => x.job.initializer },
      { label: 'seed', num: true, value: (x) => x.job.seed },
      { label: 'best val acc', num: true, value: (x) => x.best, cell: (x) => fmtPct(x.best) },
      m('accuracy', true), m('precision_macro', true), m('recall_macro', true), m('f1_macro', true), m('loss', false),
    ];
    fill(resultsBox, h('div', { class: 'card-head' }, h('h2', null, 'Test results'), h('span', { class: 'spacer' }), csvButton('compare_results.csv', cols, () => rows)),
      dataTable({ name: 'compare-results', columns: cols, rows }));
  }

  drawCurves();
  await Promise.all([profile.loaded, panel.loaded, evolution.loaded, drawResults()]);
  ctx.ready();

  ctx.on('epoch', (ev) => {
    const i = ids.indexOf(ev.job_id);
    if (i < 0) return;
    const row = epochRow(ev);
    const list = epochs[i].epochs.filter((r) => r.epoch !== row.epoch);
    list.push(row);
    epochs[i].epochs = list.sort((a, b) => a.epoch - b.epoch);
    drawCurves();
    panel.refresh();
  });
  ctx.on('job', (j) => {
    const i = ids.indexOf(j.id);
    if (i >= 0 && j.status === 'done' && jobs[i].status !== 'done') {
      jobs[i] = j;
      drawResults();
    }
  });
}
