// views/job.js — the Job view: state and configuration (with a note while BatchNorm's moving
// statistics have not settled), its name, tags, note and downloads, learning curves with the
// learning-rate steps (Fig. 4/5) and the intra-epoch curve, the layers section — depth profile
// with the theory, box plots, health, histograms (Fig. 3/6/7), distribution over time — and
// test results (confusion heat map, per class table); updated live from the event stream.
import { downloadFile, get, patch } from '../api.js';
import { chart, confusionOption, curvesOption } from '../charts.js';
import { h, fill, fmtBytes, fmtDuration, fmtNum, fmtPct, fmtShort, fmtTime, statusBadge, tagChips, toast } from '../dom.js';
import { csvButton, dataTable } from '../table.js';
import { jobActions, progressBar } from '../jobcells.js';
import { evolutionPanel } from './evolution.js';
import { layerPanel } from './layers.js';
import { profilePanel } from './profile.js';

// Keras' BatchNorm momentum and the share of the initial moving statistics (mean 0,
// variance 1) below which they count as settled (train/trainer.h): 459 steps.
export const BN_MOMENTUM = 0.99;
export const BN_SETTLE_STEPS = Math.ceil(Math.log(0.01) / Math.log(BN_MOMENTUM) - 1e-9);

// The note a job gets while its batch norms' moving statistics still lag, or null: steps
// trained so far against BN_SETTLE_STEPS, for models with batch norm and no bn_recalibrate.
export function bnSettleNote(job, rows) {
  const c = job.config || {};
  const hasBn = !(job.model === 'mlp' || (job.model === 'plain' && c.batchnorm === false));
  const spe = job.progress?.steps_per_epoch || 0;
  const done = rows.filter((r) => r.epoch > 0).length;
  const steps = job.status === 'running' ? Math.max(0, (job.progress.epoch - 1) * spe + job.progress.step) : done * spe;
  if (!hasBn || c.bn_recalibrate > 0 || !spe || steps >= BN_SETTLE_STEPS) return null;
  const left = 100 * BN_MOMENTUM ** steps;
  return `After ${steps} training steps the BatchNorm moving statistics (momentum ${BN_MOMENTUM}) still hold ${left.toFixed(0)} % of their initial values; ` +
    `they settle after about ${BN_SETTLE_STEPS} steps. Until then validation and test run in inference mode on lagging statistics and can stay near chance while training learns — ` +
    'not a bug of the tool. The job option bn_recalibrate: N recomputes them over N training batches before each evaluation.';
}

export const name = 'job';

// The epoch row of an `epoch` event, whether flattened ({job_id, epoch: 3, ...}) or nested.
export function epochRow(ev) {
  return typeof ev.epoch === 'object' && ev.epoch !== null ? ev.epoch : ev;
}

// Learning-rate steps: the configured milestones, labelled with the rate that starts there.
export function milestoneMarks(milestones, rows) {
  return (milestones || []).map((m) => {
    const after = rows.find((r) => r.epoch > m);
    return { epoch: m, label: after && after.lr !== null ? `lr ${fmtShort(after.lr)}` : 'lr step' };
  });
}

// Accuracy and loss charts' series from epoch rows (train solid, validation dashed). With a
// label (Compare) both share it as legend entry.
export function curveSeries(rows, key, label, color) {
  const pts = (k) => rows.map((r) => [r.epoch, r[k]]);
  return [
    { name: label || 'train', kind: label ? 'train' : null, data: pts('train_' + key), color },
    { name: label || 'val', kind: label ? 'val' : null, data: pts('val_' + key), dashed: true, color },
  ];
}

// The intra-epoch curve as a series: x is the epoch reached ((epoch - 1) + step / steps),
// so that the points lead up to the epoch's own point; key "loss" or "accuracy".
export function stepSeries(steps, key, color) {
  return { name: 'train (every few steps)', data: steps.map((p) => [p.epoch - 1 + p.step / p.steps_per_epoch, p[key]]), thin: true, color };
}

// The name, tags, note and priority of a job or grid as an editable form; save(body) sends
// the PATCH. priority: whether it can be changed now (a queued job, a grid).
export function recordForm(rec, { priority, save }) {
  const name = h('input', { name: 'name', value: rec.name || '', placeholder: 'a name to find it by', maxlength: 200 });
  const tags = h('input', { name: 'tags', value: (rec.tags || []).join(' '), placeholder: 'tags, space separated' });
  const note = h('textarea', { name: 'note', placeholder: 'notes', rows: 2 }, rec.note || '');
  const prio = h('input', { name: 'priority', type: 'number', min: -1000, max: 1000, placeholder: priority ? String(rec.priority ?? 0) : 'only while queued', disabled: !priority, style: 'width:110px' });
  const err = h('div', { class: 'form-error', dataset: { formError: 'record' } });
  const form = h('form', { class: 'record-form', dataset: { form: 'record' }, onsubmit: async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim() || null, tags: tags.value.split(/[\s,]+/).filter(Boolean), note: note.value.trim() || null };
    if (prio.value !== '') body.priority = Number(prio.value);
    err.textContent = '';
    try {
      await save(body);
      toast('saved');
    } catch (ex) {
      err.textContent = (ex.field ? ex.field + ': ' : '') + ex.message;
    }
  } },
  h('label', null, 'name ', name), h('label', null, 'tags ', tags), h('label', null, 'priority ', prio),
  h('label', { class: 'wide' }, 'note ', note), h('button', { type: 'submit', class: 'small' }, 'Save'), err);
  return form;
}

export async function mount(ctx) {
  const id = Number(ctx.params[0]);
  let job = await get(`/jobs/${id}`);
  const ep = await get(`/jobs/${id}/epochs`);
  if (!ctx.alive()) return;
  const rows = ep.epochs.slice();
  const steps = (await get(`/jobs/${id}/steps`)).steps;
  if (!ctx.alive()) return;
  const head = h('div', { class: 'view-head' });
  const record = h('div', { class: 'card', dataset: { card: 'record' } });
  const info = h('div', { class: 'card' });
  const accEl = h('div', { class: 'chart', dataset: { chart: 'curves-acc' } });
  const lossEl = h('div', { class: 'chart', dataset: { chart: 'curves-loss' } });
  const epochTable = h('div');
  const results = h('div');
  const profile = profilePanel(ctx, [job]);
  const panel = layerPanel(ctx, [job]);
  const evolution = evolutionPanel(ctx, [job]);
  const epochCols = ['epoch', 'train_loss', 'train_acc', 'val_loss', 'val_acc', 'lr', 'seconds', 'images_per_sec']
    .map((k) => ({ label: k, num: true, value: (r) => r[k], cell: (r) => fmtNum(r[k], 4) }));

  fill(ctx.root, head, record, info,
    h('div', { class: 'cards' }, h('div', { class: 'card' }, accEl), h('div', { class: 'card' }, lossEl)),
    h('details', { class: 'card' }, h('summary', null, 'Epochs table ', csvButton(`job${id}_epochs.csv`, epochCols, () => rows)), epochTable),
    profile.el, panel.el, evolution.el, results);

  // LSUV's work, from the epoch-0 weight rows (init_iters): "N rescalings over L kernels".
  let lsuvText = null;
  if (job.initializer === 'lsuv')
    get(`/jobs/${id}/stats`, { quantity: 'weight', mode: 'train', epoch: 0 }).then((s) => {
      const it = s.layers.map((r) => r.init_iters).filter((v) => v !== null && v !== undefined);
      if (!it.length || !ctx.alive()) return;
      lsuvText = `${it.reduce((a, b) => a + b, 0)} rescalings over ${it.length} kernels (most in one: ${Math.max(...it)})`;
      drawHead();
    }).catch(() => {});

  function drawHead() {
    fill(head, h('h1', null, `Job #${job.id}`), statusBadge(job.status), progressBar(job), jobActions(job, () => { location.hash = '#/jobs'; }),
      job.grid_id !== null ? h('a', { href: `#/grid/${job.grid_id}` }, `grid ${job.grid_id}`) : null,
      h('span', { dataset: { sibling: '' } }));
    siblingLink();
    const p = job.progress || {};
    const c = job.config || {};
    const best = rows.reduce((b, r) => (r.val_acc !== null && (!b || r.val_acc > b.val_acc) ? r : b), null);
    const schedule = c.schedule === 'step' ? `step at ${(c.milestones || []).join(', ')}, ×${fmtShort(c.gamma)}` : c.schedule;
    const kv = [['dataset', h('a', { href: `#/dataset/${encodeURIComponent(job.dataset)}` }, job.dataset)], ['model', job.model],
      ['initializer', job.initializer], ['LSUV', lsuvText], ['seed', job.seed], ['epochs', job.epochs], ['batch size', c.batch_size], ['image size', c.image_size],
      ['learning rate', fmtShort(c.lr)], ['schedule', schedule],
      ['images/s', fmtNum(p.images_per_sec, 1)], ['ETA', job.status === 'running' ? fmtDuration(p.eta_seconds) : '—'],
      ['best val acc', best ? `${fmtPct(best.val_acc)} (epoch ${best.epoch})` : fmtPct(p.best_val_acc)],
      ['created', fmtTime(job.created_at)], ['started', fmtTime(job.started_at)], ['finished', fmtTime(job.finished_at)],
      ['ran on', whereText(job.where)], ['attempts', job.attempts], ['disk', fmtBytes(job.disk_bytes)], ['error', job.error]];
    const settle = bnSettleNote(job, rows);
    fill(info, settle ? h('div', { class: 'note', dataset: { bnNote: '' } }, settle) : null, h('dl', { class: 'kv' }, kv.filter(([, v]) => v !== null && v !== undefined && v !== '').map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v)))),
      h('details', null, h('summary', { class: 'small muted' }, 'full configuration'), h('pre', { class: 'small' }, JSON.stringify(job.config, null, 2))));
  }

  // Where the current or last attempt runs: host, worker ("local 0", "slurm 4242",
  // "host:pid"), and the Slurm job while the Slurm executor holds one for it.
  function whereText(w) {
    if (!w || !w.host) return null;
    return [w.host, w.worker, w.slurm_job_id ? `Slurm job ${w.slurm_job_id}` : null].filter(Boolean).join(' · ');
  }

  // In a grid, a link to the job with the same model and seed but the other initializer family.
  async function siblingLink() {
    if (job.grid_id === null) return;
    const g = await get('/jobs', { grid: job.grid_id, model: job.model, limit: 100 });
    const family = (n) => n.split('_')[0];
    const other = g.jobs.find((o) => o.id !== job.id && o.seed === job.seed && family(o.initializer) !== family(job.initializer));
    const el = ctx.root.querySelector('[data-sibling]');
    if (other && el) fill(el, h('a', { class: 'button', href: `#/compare?jobs=${Math.min(job.id, other.id)},${Math.max(job.id, other.id)}` }, `Compare with ${other.initializer} (#${other.id})`));
  }

  // Name, tags, note, priority; downloads.
  function drawRecord() {
    const dl = (label, action, path, file, query) => h('button', {
      class: 'small', dataset: { download: action },
      onclick: () => downloadFile(path, file, query).catch((e) => toast(e.message, true)),
    }, label);
    fill(record, h('div', { class: 'card-head' }, h('h2', null, 'Record'), ...tagChips(job.tags), h('span', { class: 'spacer' }),
      dl('Weights (best)', 'weights-best', `/jobs/${id}/weights`, `job${id}-best.safetensors`, { checkpoint: 'best' }),
      dl('Weights (latest)', 'weights-latest', `/jobs/${id}/weights`, `job${id}-latest.safetensors`, { checkpoint: 'latest' }),
      dl('Record (JSON)', 'bundle-json', `/jobs/${id}/bundle`, `job${id}.json`),
      dl('Record (CSV)', 'bundle-csv', `/jobs/${id}/bundle`, `job${id}.csv`, { format: 'csv' })),
    recordForm(job, { priority: job.status === 'queued', save: async (body) => { job = await patch(`/jobs/${id}`, body); drawHead(); drawRecord(); } }));
  }

  function drawCurves() {
    const marks = milestoneMarks(ep.milestones, rows);
    const acc = [...curveSeries(rows, 'acc'), stepSeries(steps, 'accuracy', '#94b4ee')];
    const loss = [...curveSeries(rows, 'loss'), stepSeries(steps, 'loss', '#94b4ee')];
    chart(accEl, 'curves-acc').setOption(curvesOption({ title: `Accuracy · ${job.model} ${job.initializer}`, file: `job${id}_accuracy`, yName: 'accuracy', series: acc, milestones: marks }), true);
    chart(lossEl, 'curves-loss').setOption(curvesOption({ title: `Loss · ${job.model} ${job.initializer}`, file: `job${id}_loss`, yName: 'loss', series: loss, milestones: marks }), true);
    fill(epochTable, dataTable({ name: 'epochs', columns: epochCols, rows, empty: 'No epoch finished yet.' }));
  }

  async function drawResults() {
    if (job.status !== 'done') {
      fill(results, h('div', { class: 'card muted' }, 'Test results appear when the job has finished.'));
      return;
    }
    let r;
    try {
      r = await get(`/jobs/${id}/results`);
    } catch (e) {
      if (!ctx.alive()) return;
      fill(results, h('div', { class: 'card muted' }, e.status === 404 ? 'Test results appear when the job has finished.' : e.message));
      return;
    }
    if (!ctx.alive()) return;
    const n = r.class_names.length;
    const cmEl = h('div', { class: 'chart', style: `height:${Math.max(340, 26 * n + 160)}px`, dataset: { chart: 'confusion' } });
    const perCols = [
      { label: 'class', value: (c) => c.name }, { label: 'label', num: true, value: (c) => c.class },
      ...['precision', 'recall', 'f1'].map((k) => ({ label: k, num: true, value: (c) => c[k], cell: (c) => (c[k] === null ? '—' : c[k].toFixed(3)) })),
      { label: 'support', num: true, value: (c) => c.support },
    ];
    const metric = (label, v, pct = true) => h('div', { class: 'metric' }, h('b', null, pct ? fmtPct(v) : fmtNum(v, 4)), h('span', null, label));
    fill(results, h('div', { class: 'cards' },
      h('div', { class: 'card' }, cmEl),
      h('div', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', null, `Test results (epoch ${r.epoch})`), h('span', { class: 'spacer' }), csvButton(`job${id}_per_class.csv`, perCols, () => r.per_class)),
        h('div', { class: 'metrics', dataset: { results: '' } }, metric('accuracy', r.accuracy), metric('precision (macro)', r.precision_macro),
          metric('recall (macro)', r.recall_macro), metric('F1 (macro)', r.f1_macro), metric('loss', r.loss, false)),
        dataTable({ name: 'per-class', columns: perCols, rows: r.per_class }))));
    chart(cmEl, 'confusion').setOption(confusionOption({ title: 'Confusion matrix (test)', file: `job${id}_confusion`, classes: r.class_names, matrix: r.confusion }), true);
  }

  drawHead();
  drawRecord();
  drawCurves();
  await Promise.all([profile.loaded, panel.loaded, evolution.loaded, drawResults()]);
  ctx.ready();

  let curveTimer = null;
  ctx.on('step', (p) => {
    if (p.job_id !== id) return;
    const i = steps.findIndex((x) => x.global_step === p.global_step);
    if (i >= 0) steps[i] = p; else steps.push(p);
    steps.sort((a, b) => a.global_step - b.global_step);
    if (!curveTimer) curveTimer = setTimeout(() => { curveTimer = null; if (ctx.alive()) drawCurves(); }, 300);
  });
  ctx.onCleanup(() => clearTimeout(curveTimer));
  ctx.on('progress', (j) => {
    if (j.id !== id) return;
    job = j;
    drawHead();
  });

  ctx.on('epoch', (ev) => {
    if (ev.job_id !== id) return;
    const row = epochRow(ev);
    const i = rows.findIndex((r) => r.epoch === row.epoch);
    if (i >= 0) rows[i] = row; else rows.push(row);
    rows.sort((a, b) => a.epoch - b.epoch);
    drawCurves();
    drawHead();
    panel.refresh();
  });
  ctx.on('job', (j) => {
    if (j.id !== id) return;
    const was = job.status;
    job = j;
    drawHead();
    drawRecord();
    if (was !== 'done' && j.status === 'done') drawResults();
  });
  ctx.on('job_deleted', (d) => { if (d.id === id) location.hash = '#/jobs'; });
  ctx.on('open', async () => {
    const [fresh, freshSteps] = await Promise.all([get(`/jobs/${id}/epochs`), get(`/jobs/${id}/steps`)]);
    if (!ctx.alive()) return;
    rows.splice(0, rows.length, ...fresh.epochs);
    steps.splice(0, steps.length, ...freshSteps.steps);
    drawCurves();
  });
}
