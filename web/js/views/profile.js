// views/profile.js — depth profiles (Job and Compare views): one statistic of weights,
// activations or gradients layer by layer, one line per run in the run's colour, log y by
// default, both BatchNorm modes side by side or one, any epoch; at epoch 0 the variance the
// paper's equations predict is drawn over each run as a dashed line (docs/theory.md).
import { get } from '../api.js';
import { chart, disposeChart, palette } from '../charts.js';
import { h, fill, debounce, jobLabel } from '../dom.js';
import { fmtEng, makeScale, scaleOptions } from '../scale.js';
import { csvButton } from '../table.js';

// The statistics a profile can show: value(row), the scale that suits it, the theory line
// it can carry, and the quantities it applies to (all when absent).
export const STATS = {
  std: { label: 'std', value: (r) => r.std, scale: 'log', theory: (r) => r.theory_std },
  mean_abs: { label: 'mean |x|', value: (r) => r.mean_abs, scale: 'log' },
  max_abs: { label: 'max |x|', value: (r) => (r.min === null || r.max === null ? null : Math.max(Math.abs(r.min), Math.abs(r.max))), scale: 'log' },
  zero_frac: { label: 'zero fraction', value: (r) => r.zero_frac, scale: 'linear' },
  mean: { label: 'mean', value: (r) => r.mean, scale: 'symlog' },
  gain: {
    label: 'n·Var(W) (epoch 0)', value: (r) => (r.fan_sum === null || r.predicted_var === null ? null : r.fan_sum * r.predicted_var),
    scale: 'log', quantities: ['weight'],
  },
};
const MODES = ['inference', 'train'];

// Union of the layer names of several answers, in the first one's depth order.
function layerNames(answers) {
  const names = [];
  const seen = new Set();
  for (const a of answers)
    for (const r of a.layers) if (!seen.has(r.layer)) { seen.add(r.layer); names.push(r.layer); }
  return names;
}

// The option of one profile chart. runs: [{name, color, rows (by layer name)}]; theory
// lines where the statistic has one and the rows carry it.
export function profileOption({ title, file, names, runs, stat, scale, theory }) {
  const values = runs.flatMap((r) => names.map((n) => (r.rows.get(n) ? stat.value(r.rows.get(n)) : null)));
  const theoryValues = theory ? runs.flatMap((r) => names.map((n) => (r.rows.get(n) ? stat.theory(r.rows.get(n)) : null))) : [];
  const sc = makeScale(scale, [...values, ...theoryValues]);
  const many = names.length > 24;
  const series = [];
  const owner = []; // run index of each series
  for (const [ri, r] of runs.entries()) {
    owner.push(ri);
    series.push({
      name: r.name, type: 'line', color: r.color, showSymbol: true, symbolSize: 5, connectNulls: false,
      lineStyle: { width: 1.5 }, emphasis: { focus: 'series' },
      data: names.map((n) => (r.rows.get(n) ? sc.map(stat.value(r.rows.get(n))) : null)),
    });
    if (theory && r.rows.size && [...r.rows.values()].some((x) => stat.theory(x) !== null && stat.theory(x) !== undefined)) {
      owner.push(ri);
      series.push({
        name: r.name + ' · theory', type: 'line', color: r.color, showSymbol: false, connectNulls: true,
        // Wide and pale under the measured line: where the two agree the dashes show on
        // both sides of it instead of vanishing beneath it.
        lineStyle: { width: 5, type: 'dashed', opacity: 0.45 }, z: 1,
        data: names.map((n) => (r.rows.get(n) ? sc.map(stat.theory(r.rows.get(n))) : null)),
      });
    }
  }
  const o = {
    animation: false,
    title: { text: title, left: 8, top: 4, textStyle: { fontSize: 13, fontWeight: 600 } },
    toolbox: { right: 10, top: 2, feature: { saveAsImage: { name: file, pixelRatio: 2, title: 'PNG' } } },
    // One entry per run: the dashed theory lines are explained under the charts, and a legend
    // that scrolls would hide which colour is which run.
    legend: { top: 26, type: 'scroll', left: 8, right: 40, data: runs.map((r) => r.name) },
    grid: { left: 12, right: 24, top: 64, bottom: many ? 40 : 12, containLabel: true },
    xAxis: { type: 'category', data: names, axisLabel: { rotate: 50, fontSize: 10, width: 120, overflow: 'truncate', hideOverlap: true } },
    yAxis: sc.axis(),
    tooltip: {
      trigger: 'axis', confine: true,
      formatter: (ps) => `<b>${names[ps[0].dataIndex]}</b><br>` + ps.map((p) => {
        const row = runs[owner[p.seriesIndex]]?.rows.get(names[p.dataIndex]);
        const v = p.value === null || p.value === undefined ? null : sc.inverse(p.value);
        const gap = row && p.seriesName.endsWith('theory') && row.theory_gap !== null ? ` (measured ${row.theory_gap >= 0 ? '+' : ''}${row.theory_gap.toFixed(2)} decades)` : '';
        const sums = row && row.fan_sum !== null && row.fan_sum !== undefined && !p.seriesName.endsWith('theory')
          ? `<br><span style="color:#888">sums over n = ${fmtEng(row.fan_sum)} inputs, Var(W) = ${fmtEng(row.predicted_var)}: n·Var(W) = ${fmtEng(row.fan_sum * row.predicted_var)}</span>` : '';
        return `${p.marker}${p.seriesName}: <b>${fmtEng(v, 4)}</b>${gap}${sums}`;
      }).join('<br>'),
    },
    series,
  };
  if (many) o.dataZoom = [{ type: 'inside', xAxisIndex: 0 }, { type: 'slider', xAxisIndex: 0, height: 16, bottom: 4 }];
  return { option: o, scale: sc };
}

// jobs: Job objects. Returns {el, loaded, refresh}: loaded resolves after the first drawing;
// refresh() redraws when the latest epoch is shown (live jobs).
export function profilePanel(ctx, jobs, { colors = palette } = {}) {
  const state = { quantity: 'activation', stat: 'std', mode: 'both', scale: 'log', epoch: 0, epochs: [] };
  const colorOf = (i) => colors[i % colors.length];
  const single = jobs.length === 1;
  // Short legend entries: what differs between the runs.
  const oneModel = new Set(jobs.map((j) => j.model)).size === 1;
  const runName = (j) => (single ? `${j.initializer}` : oneModel ? `#${j.id} ${j.initializer} s${j.seed}` : jobLabel(j));

  const select = (key, values, onchange) => h('select', {
    dataset: { control: 'profile-' + key },
    onchange: (e) => { state[key] = e.target.value; if (onchange) onchange(); draw(); },
  }, values.map(([v, label]) => h('option', { value: v, selected: state[key] === v }, label)));
  const scaleSel = select('scale', scaleOptions());
  const statSel = select('stat', Object.entries(STATS).map(([k, s]) => [k, s.label]), () => {
    state.scale = STATS[state.stat].scale;
    scaleSel.value = state.scale;
  });
  const slider = h('input', { type: 'range', min: 0, max: 0, value: 0, step: 1, dataset: { control: 'profile-epoch' } });
  const epochLabel = h('span', { class: 'small', dataset: { profileEpoch: '' } });
  const drawSoon = debounce(() => draw(), 200);
  slider.addEventListener('input', () => {
    state.epoch = state.epochs[Number(slider.value)];
    epochLabel.textContent = epochText();
    drawSoon();
  });
  const epochText = () => (state.epoch === 0 ? 'epoch 0 (at initialization)' : `epoch ${state.epoch}`);
  const note = h('div', { class: 'muted small', dataset: { profileNote: '' } });
  const charts = { inference: h('div', { class: 'chart', dataset: { chart: 'profile-inference' } }), train: h('div', { class: 'chart', dataset: { chart: 'profile-train' } }) };
  const cards = h('div', { class: 'cards' });
  let lastRows = [];
  const csvCols = ['job_id', 'mode', 'quantity', 'epoch', 'layer_index', 'layer', 'type', 'std', 'mean_abs', 'zero_frac', 'min', 'max', 'mean', 'theory_std', 'theory_gap', 'fan_sum', 'predicted_var']
    .map((k) => ({ label: k, value: (r) => r[k] }));

  const el = h('div', { class: 'card wide', dataset: { panel: 'profile' } },
    h('div', { class: 'card-head' }, h('h2', null, 'Depth profile'),
      select('quantity', [['activation', 'activations'], ['gradient', 'gradients'], ['weight', 'weights']]),
      statSel,
      select('mode', [['both', 'BN inference | train'], ['inference', 'BN inference'], ['train', 'BN train']]),
      scaleSel,
      h('label', { class: 'small' }, 'epoch ', slider), epochLabel,
      h('span', { class: 'spacer' }),
      csvButton('depth_profile.csv', csvCols, () => lastRows)),
    cards, note);

  let seq = 0;
  async function draw() {
    const my = ++seq;
    if (!jobs.some((j) => j.status !== 'queued')) {
      fill(note, 'No layer statistics yet: they are recorded once training starts.');
      return;
    }
    const modes = state.mode === 'both' ? MODES : [state.mode];
    let answers;
    try {
      answers = await Promise.all(modes.map((mode) => Promise.all(jobs.map((j) => get(`/jobs/${j.id}/stats`, { quantity: state.quantity, mode, epoch: state.epoch })))));
    } catch (e) {
      if (my !== seq || !ctx.alive()) return;
      fill(note, e.status === 404 ? 'No layer statistics yet.' : e.message);
      return;
    }
    if (my !== seq || !ctx.alive()) return;
    updateEpochs(answers[0]);
    const stat = STATS[state.stat];
    const applies = !stat.quantities || stat.quantities.includes(state.quantity);
    fill(cards, modes.map((m) => h('div', { class: 'card' + (modes.length === 1 ? ' wide' : '') }, charts[m])));
    for (const m of MODES) if (!modes.includes(m)) disposeChart('profile-' + m);
    lastRows = [];
    const theory = state.epoch === 0 && !!stat.theory;
    modes.forEach((mode, k) => {
      const names = layerNames(answers[k]);
      const runs = answers[k].map((a, i) => ({ name: runName(jobs[i]), color: colorOf(i), rows: new Map(applies ? a.layers.map((r) => [r.layer, r]) : []) }));
      lastRows.push(...answers[k].flatMap((a, i) => a.layers.map((r) => ({ ...r, job_id: jobs[i].id, epoch: a.epoch }))));
      const title = `${stat.label} of ${state.quantity}s by layer · BN ${mode} · ${epochText()}`;
      const { option, scale } = profileOption({ title, file: `profile_${state.quantity}_${state.stat}_${mode}`, names, runs, stat, scale: state.scale, theory });
      const c = chart(charts[mode], 'profile-' + mode);
      c.setOption(option, true);
      scale.register('profile-' + mode);
    });
    const any = answers.some((a) => a.some((x) => x.layers.length));
    fill(note, !any ? 'No layer statistics for this selection yet.'
      : !applies ? `${stat.label} applies to weights only.`
        : theory ? 'Dashed: what the paper’s equations predict at initialization for each run (forward eqs. 19–20 and 43–44, backward 24–25 and 52–53, with the batch-norm and residual rules of docs/theory.md).'
          : state.epoch !== 0 && stat.theory ? 'The theory line is drawn at epoch 0, where its assumptions hold.' : '');
  }

  function updateEpochs(answers) {
    const avail = answers[0]?.epochs_available || [];
    const shared = avail.filter((e) => answers.every((a) => (a.epochs_available || []).includes(e)));
    state.epochs = shared.length ? shared : avail;
    slider.max = Math.max(0, state.epochs.length - 1);
    const at = state.epochs.indexOf(state.epoch);
    slider.value = at >= 0 ? at : 0;
    slider.disabled = state.epochs.length < 2;
    epochLabel.textContent = epochText();
  }

  const loaded = draw();
  return { el, loaded, refresh: () => draw() };
}
