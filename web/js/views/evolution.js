// views/evolution.js — distributions over time (Job and Compare views): one layer's
// histogram at every epoch recorded as a heat map (x epoch, y value, colour the share of the
// epoch's values), for one run or two side by side, from GET /jobs/{id}/history.
import { csvUrl, get } from '../api.js';
import { chart, disposeChart, palette } from '../charts.js';
import { h, fill, jobLabel } from '../dom.js';
import { fmtEng, symlog, symlogInverse, symlogThreshold } from '../scale.js';

const BINS = 48;

// Spreads each epoch's 64 bins over nb common bins of [lo, hi) in the domain of f (an
// increasing map: identity or symlog), uniformly within each source bin. Returns, per
// epoch, nb shares summing to 1 (or all 0 for an empty histogram).
export function rebin(hists, lo, hi, nb, f = (v) => v) {
  const flo = f(lo), fhi = f(hi), w = (fhi - flo) / nb || 1;
  return hists.map((hg) => {
    const out = new Array(nb).fill(0);
    const k = hg.counts.length, step = (hg.hi - hg.lo) / k;
    const total = hg.counts.reduce((a, b) => a + b, 0);
    if (!total) return out;
    hg.counts.forEach((c, i) => {
      if (!c) return;
      const a = f(hg.lo + i * step), b = f(hg.lo + (i + 1) * step);
      if (!(b > a)) {
        out[Math.min(nb - 1, Math.max(0, Math.floor((a - flo) / w)))] += c / total;
        return;
      }
      for (let j = Math.max(0, Math.floor((a - flo) / w)); j < nb && flo + j * w < b; j++) {
        const overlap = Math.min(b, flo + (j + 1) * w) - Math.max(a, flo + j * w);
        if (overlap > 0) out[j] += (c / total) * (overlap / (b - a));
      }
    });
    return out;
  });
}

// The heat map of one run's history: {option, scale: {kind, c}}.
export function evolutionOption({ title, file, history, scale, color }) {
  const rows = history.epochs.filter((r) => r.histogram && r.histogram.lo !== null && r.histogram.hi !== null);
  const lo = Math.min(...rows.map((r) => r.histogram.lo)), hi = Math.max(...rows.map((r) => r.histogram.hi));
  const c = scale === 'symlog' ? symlogThreshold(rows.flatMap((r) => [r.histogram.lo, r.histogram.hi, r.std])) : 1;
  const f = scale === 'symlog' ? (v) => symlog(v, c) : (v) => v;
  const inv = scale === 'symlog' ? (t) => symlogInverse(t, c) : (t) => t;
  const shares = rows.length ? rebin(rows.map((r) => r.histogram), lo, hi, BINS, f) : [];
  const flo = rows.length ? f(lo) : 0, w = rows.length ? (f(hi) - flo) / BINS : 1;
  const centres = Array.from({ length: BINS }, (_, j) => inv(flo + (j + 0.5) * w));
  const data = [];
  // [epoch, bin, share, √share]: the colour follows the root, so that a few dominant bins
  // (the zeros of a ReLU) do not wash out the rest.
  shares.forEach((col, x) => col.forEach((v, y) => { if (v > 0) data.push([x, y, v, Math.sqrt(v)]); }));
  const max = Math.max(1e-9, ...data.map((d) => d[3]));
  return {
    shares, centres, epochs: rows.map((r) => r.epoch),
    option: {
      animation: false,
      title: { text: title, left: 8, top: 4, textStyle: { fontSize: 13, fontWeight: 600 } },
      toolbox: { right: 10, top: 2, feature: { saveAsImage: { name: file, pixelRatio: 2, title: 'PNG' } } },
      grid: { left: 12, right: 70, top: 40, bottom: 8, containLabel: true },
      tooltip: { trigger: 'item', confine: true, formatter: (p) => `epoch ${rows[p.value[0]].epoch}<br>≈ ${fmtEng(centres[p.value[1]], 3)}: ${(100 * p.value[2]).toFixed(1)} % of the values` },
      xAxis: { type: 'category', name: 'epoch', nameLocation: 'middle', nameGap: 24, data: rows.map((r) => String(r.epoch)) },
      yAxis: { type: 'category', data: centres.map((v) => fmtEng(v, 2)), axisLabel: { fontSize: 10, hideOverlap: true } },
      visualMap: { min: 0, max, dimension: 3, calculable: false, right: 4, top: 44, itemHeight: 100, text: ['√share', '0'], inRange: { color: ['#ffffff', color + '88', color] } },
      series: [{ type: 'heatmap', data, emphasis: { itemStyle: { borderColor: '#000', borderWidth: 1 } } }],
    },
  };
}

// jobs: Job objects; the first two are shown. Returns {el, loaded}.
export function evolutionPanel(ctx, jobs, { colors = palette } = {}) {
  const shown = jobs.slice(0, 2);
  const state = { quantity: 'activation', mode: 'inference', layer: null, scale: 'linear', layers: [] };
  const layerSel = h('select', { dataset: { control: 'evolution-layer' }, onchange: (e) => { state.layer = e.target.value; draw(); } });
  const select = (key, values, reload) => h('select', {
    dataset: { control: 'evolution-' + key },
    onchange: (e) => { state[key] = e.target.value; (reload ? loadLayers() : Promise.resolve()).then(draw); },
  }, values.map(([v, label]) => h('option', { value: v, selected: state[key] === v }, label)));
  const charts = shown.map((_, i) => h('div', { class: 'chart', dataset: { chart: 'evolution-' + i } }));
  const cards = h('div', { class: 'cards' }, charts.map((c) => h('div', { class: 'card' + (shown.length === 1 ? ' wide' : '') }, c)));
  const links = h('span', { class: 'small' });
  const note = h('div', { class: 'muted small' });
  const el = h('div', { class: 'card wide', dataset: { panel: 'evolution' } },
    h('div', { class: 'card-head' }, h('h2', null, 'Distribution over time'),
      select('quantity', [['activation', 'activations'], ['gradient', 'gradients'], ['weight', 'weights']], true),
      select('mode', [['inference', 'BN inference'], ['train', 'BN train']], true),
      layerSel, select('scale', [['linear', 'linear values'], ['symlog', 'symlog values']]),
      h('span', { class: 'spacer' }), links),
    cards, note);

  // The first run's layers for the quantity; the other run's layer of the same name.
  async function loadLayers() {
    const stats = await Promise.all(shown.map((j) => get(`/jobs/${j.id}/stats`, { quantity: state.quantity, mode: state.mode }).catch(() => ({ layers: [] }))));
    state.layers = stats.map((s) => new Map(s.layers.map((r) => [r.layer, r.layer_index])));
    const names = [...state.layers[0].keys()];
    if (!names.includes(state.layer)) state.layer = names[Math.floor(names.length / 2)] ?? null;
    fill(layerSel, names.map((n) => h('option', { value: n, selected: n === state.layer }, n)));
  }

  let seq = 0;
  async function draw() {
    const my = ++seq;
    if (state.layer === null) {
      fill(note, 'No layer statistics yet.');
      return;
    }
    const histories = await Promise.all(shown.map((j, i) => {
      const idx = state.layers[i]?.get(state.layer);
      return idx === undefined ? null : get(`/jobs/${j.id}/history`, { layer: idx, quantity: state.quantity, mode: state.mode }).catch(() => null);
    }));
    if (my !== seq || !ctx.alive()) return;
    fill(links, shown.map((j, i) => {
      const idx = state.layers[i]?.get(state.layer);
      return idx === undefined ? null : h('a', { href: csvUrl(`/jobs/${j.id}/history`, { layer: idx, quantity: state.quantity, mode: state.mode }), download: `job${j.id}_${state.layer}_history.csv`, style: 'margin-left:8px' }, `CSV #${j.id}`);
    }));
    histories.forEach((hist, i) => {
      if (!hist || !hist.epochs.length) {
        disposeChart('evolution-' + i);
        fill(charts[i], h('div', { class: 'empty' }, `${jobLabel(shown[i])}: no ${state.layer} here`));
        return;
      }
      const { option } = evolutionOption({
        title: `${shown.length > 1 ? jobLabel(shown[i]) + ' · ' : ''}${state.layer} ${state.quantity}s over epochs · BN ${state.mode}`,
        file: `evolution_job${shown[i].id}_${state.layer}`, history: hist, scale: state.scale, color: colors[i % colors.length],
      });
      chart(charts[i], 'evolution-' + i).setOption(option, true);
    });
    fill(note, 'Each column is one epoch’s histogram (the same 64 bins the CSV holds), spread over common value bins; colour = share of that epoch’s values.');
  }

  const loaded = loadLayers().then(draw).catch((e) => fill(note, e.message));
  return { el, loaded };
}
