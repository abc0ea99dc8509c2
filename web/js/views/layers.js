// views/layers.js — the layer-statistics panel of one or more jobs (Job and Compare views):
// box plots along the depth axis (symlog, log or linear y) with the initializer's predicted
// spread, the health heat map (views/health.js), and per-layer histograms as small
// multiples; quantity, BatchNorm mode and epoch selectors.
import { get } from '../api.js';
import { boxplotOption, chart, histogramsHeight, histogramsOption, palette } from '../charts.js';
import { h, fill, debounce, jobLabel } from '../dom.js';
import { makeScale, scaleOptions } from '../scale.js';
import { csvButton } from '../table.js';
import { healthPanel } from './health.js';

const cache = new Map(); // request url -> promise of the answer (bounded)

function cached(path, query) {
  const key = path + '?' + new URLSearchParams(query);
  if (!cache.has(key)) {
    if (cache.size > 60) cache.delete(cache.keys().next().value);
    const p = get(path, query);
    p.catch(() => cache.delete(key));
    cache.set(key, p);
  }
  return cache.get(key);
}

// The latest answer (no epoch given) must not stay cached while a job trains.
function fetchStats(kind, id, q) {
  return q.epoch === undefined ? get(`/jobs/${id}/${kind}`, q) : cached(`/jobs/${id}/${kind}`, q);
}

// Union of the jobs' layer names, in the first job's depth order.
function alignLayers(results) {
  const names = [];
  const seen = new Set();
  for (const r of results)
    for (const l of r.layers) if (!seen.has(l.layer)) { seen.add(l.layer); names.push(l.layer); }
  return names;
}

// jobs: Job objects (1 for the Job view, 2+ for Compare). Returns {el, loaded, refresh}:
// loaded resolves after the first drawing; refresh() redraws the latest epoch (live jobs).
export function layerPanel(ctx, jobs, { colors = palette } = {}) {
  const state = { quantity: 'weight', mode: 'inference', epoch: undefined, epochs: [], logY: false, scale: 'symlog' };
  const colorOf = (i) => colors[i % colors.length];
  const single = jobs.length === 1;
  const name = (j) => (single ? j.initializer : jobLabel(j));

  const select = (key, values) => h('select', {
    dataset: { control: key },
    onchange: (e) => { state[key] = e.target.value; draw(true); },
  }, values.map(([v, label]) => h('option', { value: v, selected: state[key] === v }, label)));
  const slider = h('input', { type: 'range', min: 0, max: 0, value: 0, step: 1, dataset: { control: 'epoch' } });
  const epochLabel = h('span', { class: 'small', dataset: { epochLabel: '' } });
  const drawSoon = debounce(() => draw(true), 200);
  slider.addEventListener('input', () => {
    state.epoch = state.epochs[Number(slider.value)];
    epochLabel.textContent = epochText();
    drawSoon();
  });
  const epochText = () => (state.epoch === undefined ? 'latest' : state.epoch === 0 ? 'epoch 0 (at initialization)' : `epoch ${state.epoch}`);

  const boxEl = h('div', { class: 'chart tall', dataset: { chart: 'layers-box' } });
  const histEl = h('div', { class: 'chart', dataset: { chart: 'layers-hist' } });
  const health = healthPanel(ctx, jobs, { name });
  const note = h('div', { class: 'muted small' });
  let lastRows = [];
  const statCols = ['layer_index', 'layer', 'type', 'mode', 'quantity', 'n', 'mean', 'std', 'min', 'max', 'q1', 'median', 'q3',
    'whisker_lo', 'whisker_hi', 'p1', 'p99', 'zero_frac', 'nonfinite', 'predicted_var', 'dead_units', 'saturation', 'flags',
    'mean_abs', 'theory_std', 'theory_gap', 'fan_sum', 'units', 'dead_frac']
    .map((k) => ({ label: k, value: (r) => (k === 'flags' ? (r.flags || []).join(' ') : r[k]) }))
    .concat([{ label: 'hist_lo', value: (r) => r.histogram?.lo }, { label: 'hist_hi', value: (r) => r.histogram?.hi }],
      Array.from({ length: 64 }, (_, b) => ({ label: 'bin_' + b, value: (r) => r.histogram?.counts[b] })));
  const jobCol = { label: 'job', value: (r) => r.job_id };
  const logBox = h('label', { class: 'small' }, h('input', { type: 'checkbox', onchange: (e) => { state.logY = e.target.checked; draw(true); } }), 'log counts');

  const el = h('div', null,
    h('div', { class: 'card wide' },
      h('div', { class: 'card-head' }, h('h2', null, 'Layers along depth'),
        select('quantity', [['weight', 'weights'], ['activation', 'activations'], ['gradient', 'gradients']]),
        select('mode', [['inference', 'BN inference'], ['train', 'BN train']]),
        select('scale', scaleOptions(['symlog', 'log', 'linear'])),
        h('label', { class: 'small' }, 'epoch ', slider), epochLabel,
        h('span', { class: 'spacer' }),
        csvButton('layer_stats.csv', [jobCol, ...statCols], () => lastRows)),
      boxEl, note),
    health.el,
    h('div', { class: 'card wide' },
      h('div', { class: 'card-head' }, h('h2', null, 'Distribution per layer'), logBox,
        h('span', { class: 'muted small' }, single ? '' : 'overlaid: one colour per job')),
      histEl));

  let seq = 0;
  // started: false while every job is still queued (no statistics can exist yet).
  async function draw(started = jobs.some((j) => j.status !== 'queued')) {
    const my = ++seq;
    if (!started) {
      fill(note, 'No layer statistics yet: they are recorded once training starts.');
      return;
    }
    const q = { quantity: state.quantity, mode: state.mode };
    if (state.epoch !== undefined) q.epoch = state.epoch;
    let stats, hists;
    try {
      [stats, hists] = await Promise.all([
        Promise.all(jobs.map((j) => fetchStats('stats', j.id, q))),
        Promise.all(jobs.map((j) => fetchStats('histograms', j.id, q))),
      ]);
    } catch (e) {
      if (my !== seq || !ctx.alive()) return;
      fill(note, e.status === 404 ? 'No layer statistics yet: they are recorded once training starts.' : e.message);
      return;
    }
    if (my !== seq || !ctx.alive()) return;
    updateEpochs(stats);
    const names = alignLayers(stats);
    if (!names.length) {
      fill(note, 'No layer statistics for this selection yet.');
      fill(health);
      return;
    }
    fill(note, single ? '' : 'epoch ' + stats.map((s, i) => `${jobs[i].id}: ${s.epoch}`).join(', '));
    lastRows = stats.flatMap((s, i) => {
      const bins = new Map(hists[i].layers.map((r) => [r.layer_index, r.histogram]));
      return s.layers.map((r) => ({ ...r, job_id: jobs[i].id, histogram: bins.get(r.layer_index) }));
    });
    drawBoxes(stats, names);
    health.update({ mode: state.mode, epoch: state.epoch });
    drawHists(hists, names);
  }

  function updateEpochs(stats) {
    const avail = stats[0].epochs_available || [];
    const shared = avail.filter((e) => stats.every((s) => (s.epochs_available || []).includes(e)));
    state.epochs = shared.length ? shared : avail;
    slider.max = Math.max(0, state.epochs.length - 1);
    const at = state.epochs.indexOf(state.epoch === undefined ? stats[0].epoch : state.epoch);
    slider.value = at >= 0 ? at : state.epochs.length - 1;
    slider.disabled = state.epochs.length < 2;
    epochLabel.textContent = state.epoch === undefined ? `epoch ${stats[0].epoch} (latest)` : epochText();
  }

  function drawBoxes(stats, names) {
    const groups = stats.map((s, i) => {
      const by = new Map(s.layers.map((r) => [r.layer, r]));
      return { name: name(jobs[i]), color: colorOf(i), rows: names.map((n) => by.get(n) || null) };
    });
    const predicted = state.quantity !== 'weight' ? [] : groups.map((g, i) => ({
      name: (single ? '' : g.name + ' ') + 'predicted ±σ', color: single ? '#c92a2a' : colorOf(i), group: i,
      values: g.rows.map((r) => (r && r.predicted_var !== null && r.predicted_var !== undefined ? Math.sqrt(r.predicted_var) : null)),
    })).filter((p) => p.values.some((v) => v !== null));
    const title = `${state.quantity}s by layer · BN ${state.mode} · ${epochLabel.textContent}`;
    const values = groups.flatMap((g) => g.rows.flatMap((r) => (r ? [r.whisker_lo, r.q1, r.median, r.q3, r.whisker_hi] : [])));
    const scale = makeScale(state.scale, values);
    chart(boxEl, 'layers-box').setOption(boxplotOption({ title, file: `box_${state.quantity}_${state.mode}`, layers: names, groups, predicted, yName: state.quantity, scale }), true);
    scale.register('layers-box');
  }

  // The small multiples get as many columns as the width allows; redrawn when that changes.
  const colsFor = () => Math.max(3, Math.floor((histEl.clientWidth || 1200) / 190));
  let lastHists = null;
  const resized = debounce(() => {
    if (lastHists && colsFor() !== lastHists.cols && ctx.alive()) drawHists(lastHists.hists, lastHists.names);
  }, 150);
  const observer = new ResizeObserver(resized);
  observer.observe(histEl);
  ctx.onCleanup(() => observer.disconnect());

  function drawHists(hists, names) {
    const cols = colsFor();
    lastHists = { hists, names, cols };
    const groups = hists.map((s) => new Map(s.layers.map((r) => [r.layer, r])));
    const cells = names.map((n) => ({
      title: n,
      flag: groups.map((g) => g.get(n)).find((r) => r && r.flags && r.flags.length)?.flags[0],
      series: groups.map((g, i) => {
        const r = g.get(n);
        return r && r.histogram ? { name: name(jobs[i]), color: colorOf(i), ...r.histogram } : null;
      }).filter(Boolean),
    }));
    histEl.style.height = histogramsHeight(cells.length, cols) + 'px';
    const c = chart(histEl, 'layers-hist');
    c.resize();
    c.setOption(histogramsOption({ title: `${state.quantity} distribution per layer`, file: `hist_${state.quantity}_${state.mode}`, layers: cells, cols, logY: state.logY }), true);
  }

  const loaded = draw();
  return {
    el, loaded,
    refresh: () => { if (state.epoch === undefined) draw(true); },
  };
}
