// views/health.js — health at a glance (Job and Compare views): a layer × run heat map of the
// dead-channel fraction, the saturated fraction or non-finite values of the activations,
// with the cells over the flag thresholds marked, and the flagged layers as a list on demand.
import { get } from '../api.js';
import { chart, flagColors } from '../charts.js';
import { h, fill, fmtNum, jobLabel } from '../dom.js';

// The thresholds the daemon flags with (train/probe.h).
export const DEAD_FRACTION = 0.1;
export const SATURATED_FRACTION = 0.1;

export const METRICS = {
  dead: { label: 'dead channels (fraction)', value: (r) => r.dead_frac, flag: 'dead', max: 1 },
  saturated: { label: 'saturated values (fraction)', value: (r) => r.saturation, flag: 'saturated', max: 1 },
  nonfinite: { label: 'non-finite values (fraction)', value: (r) => (r.n ? r.nonfinite / r.n : null), flag: 'nonfinite', max: 1 },
};

// Union of the layer names, in the first answer's order.
function layerNames(answers) {
  const names = [];
  const seen = new Set();
  for (const a of answers)
    for (const r of a.layers) if (!seen.has(r.layer)) { seen.add(r.layer); names.push(r.layer); }
  return names;
}

// The heat map: x the layers, y the runs; [x, y, value] per cell that has a value, flagged
// cells labelled with a dot.
export function healthOption({ title, file, names, runs, metric }) {
  const m = METRICS[metric];
  const data = [];
  runs.forEach((run, y) => names.forEach((n, x) => {
    const r = run.rows.get(n);
    const v = r ? m.value(r) : null;
    if (v !== null && v !== undefined) data.push({ value: [x, y, v], flagged: !!(r.flags || []).includes(m.flag) });
  }));
  return {
    animation: false,
    title: { text: title, left: 8, top: 4, textStyle: { fontSize: 13, fontWeight: 600 } },
    toolbox: { right: 10, top: 2, feature: { saveAsImage: { name: file, pixelRatio: 2, title: 'PNG' } } },
    grid: { left: 12, right: 90, top: 40, bottom: 8, containLabel: true },
    tooltip: {
      trigger: 'item', confine: true,
      formatter: (p) => {
        const r = runs[p.value[1]].rows.get(names[p.value[0]]);
        return `${runs[p.value[1]].name}<br><b>${names[p.value[0]]}</b><br>${m.label}: <b>${fmtNum(p.value[2], 4)}</b>` +
          (r && r.units ? `<br>dead channels ${r.dead_units} of ${r.units}` : '') +
          (r && r.flags && r.flags.length ? `<br>flags: ${r.flags.join(', ')}` : '');
      },
    },
    xAxis: { type: 'category', data: names, splitArea: { show: false }, axisLabel: { rotate: 50, fontSize: 10, width: 120, overflow: 'truncate', hideOverlap: true } },
    yAxis: { type: 'category', data: runs.map((r) => r.name), axisLabel: { fontSize: 11, width: 200, overflow: 'truncate' } },
    visualMap: { min: 0, max: m.max, dimension: 2, calculable: false, orient: 'vertical', right: 4, top: 44, itemHeight: 100, text: [String(m.max), '0'], inRange: { color: ['#f4f8ff', '#f59f00', flagColors[m.flag]] } },
    series: [{
      type: 'heatmap', data,
      label: { show: true, fontSize: 9, color: '#1d2330', formatter: (p) => (p.data.flagged ? '●' : '') },
      itemStyle: { borderColor: '#fff', borderWidth: 1 },
    }],
  };
}

// jobs: Job objects. update({mode, epoch}) redraws for that BatchNorm mode and epoch (epoch
// undefined: the latest). Returns {el, update}.
export function healthPanel(ctx, jobs, { name = (j) => jobLabel(j) } = {}) {
  const state = { metric: 'dead', mode: 'inference', epoch: undefined, answers: null };
  const mapEl = h('div', { class: 'chart', style: `height:${Math.max(180, 90 + 34 * jobs.length)}px`, dataset: { chart: 'health-map' } });
  const list = h('div', { dataset: { health: '' } });
  const sel = h('select', { dataset: { control: 'health-metric' }, onchange: (e) => { state.metric = e.target.value; drawMap(); } },
    Object.entries(METRICS).map(([k, m]) => h('option', { value: k }, m.label)));
  const el = h('div', { class: 'card wide', dataset: { panel: 'health' } },
    h('div', { class: 'card-head' }, h('h2', null, 'Health'), sel,
      h('span', { class: 'muted small' }, `● flagged: dead = more than ${100 * DEAD_FRACTION} % of a layer's channels zero on every probe image; ` +
        `saturated = more than ${100 * SATURATED_FRACTION} % of its values at an activation bound; non-finite = any NaN or ∞`)),
    mapEl, list);

  function drawMap() {
    const answers = state.answers;
    if (!answers) return;
    const names = layerNames(answers);
    const runs = answers.map((a, i) => ({ name: name(jobs[i]), rows: new Map(a.layers.map((r) => [r.layer, r])) }));
    chart(mapEl, 'health-map').setOption(healthOption({ title: `${METRICS[state.metric].label} by layer · BN ${state.mode} · epoch ${answers[0].epoch}`, file: `health_${state.metric}_${state.mode}`, names, runs, metric: state.metric }), true);
    const items = answers.flatMap((a, i) => a.layers.filter((r) => r.flags && r.flags.length).map((r) => h('li', null,
      jobs.length > 1 ? `#${jobs[i].id} ` : null, h('b', null, r.layer), ` (${r.type}) `,
      r.flags.map((f) => h('span', { class: 'flag ' + f, style: `background:${flagColors[f]}` }, f)),
      h('span', { class: 'muted small' }, `dead ${fmtNum(r.dead_units)}${r.units ? ' of ' + r.units : ''} channels, saturation ${fmtNum(r.saturation)}, non-finite ${fmtNum(r.nonfinite)}`))));
    fill(list, items.length
      ? h('details', null, h('summary', { class: 'small' }, `Flagged layers (${items.length}) — the list`), h('ul', { class: 'flags' }, items))
      : h('div', { class: 'muted small' }, 'No layer flagged dead, saturated or non-finite for this selection.'));
  }

  async function update({ mode, epoch }) {
    state.mode = mode;
    state.epoch = epoch;
    const q = { quantity: 'activation', mode };
    if (epoch !== undefined) q.epoch = epoch;
    let answers;
    try {
      answers = await Promise.all(jobs.map((j) => get(`/jobs/${j.id}/stats`, q)));
    } catch {
      return;
    }
    if (!ctx.alive()) return;
    state.answers = answers;
    drawMap();
  }
  return { el, update };
}
