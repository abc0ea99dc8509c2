// charts.js — ECharts glue shared by the views: creating, registering (window.__initlab.charts,
// for export and the browser tests), resizing and disposing charts, and the option builders
// for learning curves, layer box plots, histogram small multiples, heat maps and bar charts.
import { debounce, fmtNum } from './dom.js';
import { makeScale } from './scale.js';

const echarts = window.echarts;
const live = new Map(); // name -> { chart, observer }

window.__initlab = window.__initlab || {};
window.__initlab.charts = {};

export const palette = ['#2f6fde', '#e8590c', '#2b8a3e', '#ae3ec9', '#c92a2a', '#1098ad',
  '#f59f00', '#5c7cfa', '#868e96', '#d6336c'];
// The colour of series i: the palette's ten, then colours spread around the hue circle by
// the golden angle (never the same twice), as #rrggbb so that an alpha can be appended.
export function colorAt(i) {
  if (i < palette.length) return palette[i];
  const hue = ((i - palette.length) * 137.508 + 17) % 360, s = 0.62, l = i % 2 ? 0.38 : 0.5;
  const f = (n) => {
    const k = (n + hue / 30) % 12;
    const c = l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    return Math.round(255 * c).toString(16).padStart(2, '0');
  };
  return '#' + f(0) + f(8) + f(4);
}

export const flagColors = { nonfinite: '#d92d20', saturated: '#d97706', dead: '#7a7f8a' };

// Creates (or reuses) the chart named name in el; the chart follows el's size.
export function chart(el, name) {
  const old = live.get(name);
  if (old && old.chart.getDom() === el) return old.chart;
  if (old) disposeChart(name);
  const c = echarts.init(el, null, { renderer: 'canvas' });
  const observer = new ResizeObserver(debounce(() => !c.isDisposed() && c.resize(), 80));
  observer.observe(el);
  live.set(name, { chart: c, observer });
  window.__initlab.charts[name] = c;
  return c;
}

export function disposeChart(name) {
  const e = live.get(name);
  if (!e) return;
  e.observer.disconnect();
  e.chart.dispose();
  live.delete(name);
  delete window.__initlab.charts[name];
}

// Disposes every chart (when the view changes).
export function disposeAll() {
  for (const name of [...live.keys()]) disposeChart(name);
}

// What every chart has: a title, PNG export (toolbox), a tooltip and a legend.
function base(title, file) {
  return {
    animationDuration: 300,
    title: { text: title, left: 8, top: 4, textStyle: { fontSize: 13, fontWeight: 600 } },
    toolbox: {
      right: 10, top: 2,
      feature: { saveAsImage: { name: file || title.replace(/\W+/g, '_'), pixelRatio: 2, title: 'PNG' } },
    },
    tooltip: { trigger: 'axis', confine: true },
    legend: { top: 26, type: 'scroll', left: 8, right: 40 },
    color: palette,
  };
}

// Learning curves. series: [{name, kind, data: [[epoch, value]], dashed, color}]: series of one
// name share a legend entry, kind ("train", "val") tells them apart in the tooltip;
// milestones: [{epoch, label}] drawn as vertical lines (learning-rate steps).
export function curvesOption({ title, file, yName, series, milestones = [], yMin }) {
  const o = base(title, file);
  o.grid = { left: 56, right: 24, top: 64, bottom: 44 };
  o.xAxis = { type: 'value', name: 'epoch', nameLocation: 'middle', nameGap: 26, minInterval: 1, min: 'dataMin' };
  o.yAxis = { type: 'value', name: yName, nameLocation: 'middle', nameGap: 42, min: yMin, scale: yMin === undefined };
  o.tooltip.formatter = (ps) => `epoch ${fmtNum(ps[0].value[0], 2)}<br>` + ps.map((p) =>
    `${p.marker}${p.seriesName}${p.seriesId.includes('|') ? ' ' + p.seriesId.split('|')[1] : ''}: <b>${fmtNum(p.value[1], 4)}</b>`).join('<br>');
  o.series = series.map((s, i) => ({
    name: s.name, id: s.kind ? `${s.name}|${s.kind}` : s.name, type: 'line', data: s.data, showSymbol: !s.thin && s.data.length < 40, symbolSize: 5,
    lineStyle: { width: s.thin ? 1 : 2, type: s.dashed ? 'dashed' : 'solid' }, z: s.thin ? 1 : 2,
    color: s.color, emphasis: { focus: 'series' },
    markLine: i === 0 && milestones.length ? {
      silent: true, symbol: 'none',
      lineStyle: { color: '#98a2b3', type: 'dotted', width: 1.5 },
      label: { formatter: (p) => p.data.label, position: 'insideEndTop', fontSize: 10, color: '#667085' },
      data: milestones.map((m) => ({ xAxis: m.epoch, label: m.label })),
    } : undefined,
  }));
  return o;
}

// Box plots along the depth axis. layers: the category labels; groups: [{name, color, rows}]
// where rows are LayerStat objects (or null where a group has no such layer), drawn as the
// stored whisker_lo/q1/median/q3/whisker_hi through scale (scale.js: symlog by default, so
// that a run whose values are 10⁵ times smaller keeps visible boxes); a flagged box keeps
// its run's colour and gets a marker of the flag's colour above it. predicted: optional
// [{name, color, group, values}] of ± spreads per layer (null where none), drawn as dashes
// over box group `group`.
export function boxplotOption({ title, file, layers, groups, predicted = [], yName, scale }) {
  const o = base(title, file);
  const many = layers.length > 28;
  const sc = scale || makeScale('linear', []);
  o.animation = false;
  o.grid = { left: 12, right: 24, top: 64, bottom: many ? 40 : 12, containLabel: true };
  const flagOf = (i) => groups.map((g) => g.rows[i]).find((r) => r && r.flags && r.flags.length);
  o.xAxis = {
    type: 'category', data: layers, boundaryGap: true,
    axisLabel: {
      rotate: 45, fontSize: 10, interval: 0, width: 110, overflow: 'truncate',
      color: (v, i) => { const r = flagOf(i); return r ? flagColors[r.flags[0]] : '#475467'; },
    },
  };
  o.yAxis = sc.axis({ splitArea: { show: true } });
  if (many) o.dataZoom = [{ type: 'inside', xAxisIndex: 0 }, { type: 'slider', xAxisIndex: 0, height: 18, bottom: 6 }];
  // Box zoom: one layer with a wide spread must not flatten the others.
  o.toolbox.feature = { dataZoom: { title: { zoom: 'zoom', back: 'back' } }, restore: { title: 'reset' }, ...o.toolbox.feature };
  o.tooltip = { trigger: 'item', confine: true, formatter: (p) => boxTooltip(p) };
  const bounds = groups.length > 1 ? [4, 18] : [6, 30];
  o.series = groups.map((g) => ({
    name: g.name, type: 'boxplot', color: g.color, boxWidth: bounds,
    itemStyle: { borderWidth: 1.4, color: (g.color || palette[0]) + '22', borderColor: g.color },
    data: g.rows.map((r) => r ? {
      value: [r.whisker_lo, r.q1, r.median, r.q3, r.whisker_hi].map(sc.map),
      row: r,
    } : { value: [] }),
  }));
  const marks = groups.flatMap((g, gi) => g.rows.flatMap((r, i) => (r && r.flags && r.flags.length
    ? [{ value: [i, sc.map(r.whisker_hi)], group: gi, flag: r.flags[0], itemStyle: { color: flagColors[r.flags[0]] } }] : [])));
  if (marks.length)
    o.series.push({
      name: 'flags', type: 'custom', z: 6, data: marks, encode: { x: 0, y: 1 },
      tooltip: { trigger: 'item', formatter: (q) => `${groups[q.data.group].name}<br>${layers[q.value[0]]}: ${q.data.flag}` },
      renderItem: (params, api) => {
        const n = groups.length, band = api.size([1, 0])[0];
        const avail = band * 0.8 - 2, gap = (avail / n) * 0.3, box = (avail - gap * (n - 1)) / n;
        const d = marks[params.dataIndex];
        const cx = api.coord([api.value(0), 0])[0] + box / 2 - avail / 2 + d.group * (gap + box);
        const y = api.coord([api.value(0), api.value(1)])[1] - 8;
        return { type: 'polygon', shape: { points: [[cx - 5, y - 8], [cx + 5, y - 8], [cx, y]] }, style: { fill: flagColors[d.flag] } };
      },
    });
  for (const p of predicted) o.series.push(spreadSeries({ ...p, values: p.values.map(sc.map), both: sc.kind !== 'log' }, layers, groups.length, bounds));
  return o;
}

// The predicted ±σ of group p.group as two dashes over that group's box (one, +σ, on a log
// axis): the offsets repeat ECharts' boxplot layout (boxplotLayout.js: 80 % of the band, gaps
// of 30 % of a box). p.values are already mapped through the axis' scale.
function spreadSeries(p, layers, n, bounds) {
  const color = p.color || '#c92a2a';
  return {
    name: p.name, type: 'custom', color, z: 5, clip: true, encode: { x: 0, y: 1 },
    data: p.values.flatMap((v, i) => (v === null || v === undefined ? [] : [[i, v]])),
    tooltip: { trigger: 'item', formatter: (q) => `${p.name}<br>${layers[q.value[0]]}` },
    renderItem: (params, api) => {
      const band = api.size([1, 0])[0];
      const avail = band * 0.8 - 2, gap = (avail / n) * 0.3, box = (avail - gap * (n - 1)) / n;
      const cx = api.coord([api.value(0), 0])[0] + box / 2 - avail / 2 + p.group * (gap + box);
      const half = Math.min(Math.max(box, bounds[0]), bounds[1]) / 2 + 4;
      const style = { stroke: color, lineWidth: 2 };
      const dash = (y) => ({ type: 'line', shape: { x1: cx - half, y1: y, x2: cx + half, y2: y }, style });
      const up = dash(api.coord([api.value(0), api.value(1)])[1]);
      return { type: 'group', children: p.both ? [up, dash(api.coord([api.value(0), -api.value(1)])[1])] : [up] };
    },
  };
}

function boxTooltip(p) {
  const r = p.data && p.data.row;
  if (!r) return p.seriesName;
  const line = (k, v) => `<tr><td>${k}</td><td style="text-align:right;padding-left:10px">${v}</td></tr>`;
  const sigma = r.predicted_var === null || r.predicted_var === undefined ? null : Math.sqrt(r.predicted_var);
  return `<b>${p.seriesName}</b><br>${r.layer} <span style="color:#888">${r.type}</span><table>` +
    line('n', fmtNum(r.n)) + line('mean', fmtNum(r.mean, 4)) + line('std', fmtNum(r.std, 4)) +
    (sigma === null ? '' : line('predicted σ', fmtNum(sigma, 4))) +
    line('min / max', fmtNum(r.min, 3) + ' / ' + fmtNum(r.max, 3)) +
    line('whiskers', fmtNum(r.whisker_lo, 3) + ' … ' + fmtNum(r.whisker_hi, 3)) +
    line('q1 / median / q3', [r.q1, r.median, r.q3].map((v) => fmtNum(v, 3)).join(' / ')) +
    line('zero fraction', fmtNum(r.zero_frac, 3)) +
    (r.flags && r.flags.length ? line('flags', r.flags.join(', ')) : '') + '</table>';
}

// Histogram small multiples in one chart: one grid per layer, cols per row, cellH px high.
// layers: [{title, flag, series: [{name, color, lo, hi, counts}]}] — several series per cell
// overlay (one per job), drawn as step areas of the share of values per bin. logY plots
// log10(1 + count) instead.
export function histogramsOption({ title, file, layers, cols, cellH = 120, logY = false }) {
  const o = base(title, file);
  o.animation = false;
  const meta = [];
  o.tooltip = { trigger: 'axis', confine: true, axisPointer: { type: 'line' }, formatter: (ps) => ps.map((p) => histTip(meta[p.seriesIndex], p.value[0])).join('<br>') };
  const names = [...new Set(layers.flatMap((l) => l.series.map((s) => s.name)))];
  if (names.length > 1) o.legend = { top: 4, left: 'center', data: names };
  else delete o.legend;
  const top0 = 34, gapX = 2.2, w = (100 - gapX * (cols + 1)) / cols;
  o.title = [o.title];
  o.grid = [];
  o.xAxis = [];
  o.yAxis = [];
  o.series = [];
  layers.forEach((l, i) => {
    const row = Math.floor(i / cols), col = i % cols;
    const top = top0 + row * cellH + 16;
    const left = gapX + col * (w + gapX);
    const lo = Math.min(...l.series.map((s) => s.lo)), hi = Math.max(...l.series.map((s) => s.hi));
    o.title.push({
      text: l.title, left: left + '%', top: top - 16,
      textStyle: { fontSize: 10, fontWeight: 500, color: l.flag ? flagColors[l.flag] : '#344054', width: 150, overflow: 'truncate' },
    });
    o.grid.push({ left: left + '%', width: w + '%', top, height: cellH - 44 });
    o.xAxis.push({
      type: 'value', gridIndex: i, min: lo, max: hi > lo ? hi : lo + 1, interval: hi > lo ? (hi - lo) / 2 : 0.5, splitLine: { show: false },
      axisLabel: { fontSize: 9, formatter: (v) => fmtNum(v, 2) },
    });
    o.yAxis.push({ type: 'value', gridIndex: i, show: false });
    for (const s of l.series) {
      meta.push({ ...s, layer: l.title, total: s.counts.reduce((a, b) => a + b, 0) || 1 });
      o.series.push(histSeries(s, i, logY));
    }
  });
  return o;
}

function histSeries(s, i, logY) {
  const n = s.counts.length, step = (s.hi - s.lo) / n;
  const total = s.counts.reduce((a, b) => a + b, 0) || 1;
  const y = (c) => (logY ? Math.log10(1 + c) : c / total);
  const pts = s.counts.map((c, k) => [s.lo + (k + 0.5) * step, y(c)]);
  const data = [[s.lo, 0], [s.lo, y(s.counts[0])], ...pts, [s.hi, y(s.counts[n - 1])], [s.hi, 0]];
  return {
    name: s.name, type: 'line', step: 'middle', xAxisIndex: i, yAxisIndex: i, data,
    showSymbol: false, color: s.color, lineStyle: { width: 1 }, areaStyle: { opacity: 0.35 },
  };
}

function histTip(m, x) {
  const n = m.counts.length, step = (m.hi - m.lo) / n || 1;
  const k = Math.min(n - 1, Math.max(0, Math.floor((x - m.lo) / step)));
  return `${m.name} · ${m.layer}<br>[${fmtNum(m.lo + k * step, 4)}, ${fmtNum(m.lo + (k + 1) * step, 4)}): ` +
    `${m.counts[k]} (${(100 * m.counts[k] / m.total).toFixed(1)} %)`;
}

// The height a histogramsOption needs.
export function histogramsHeight(n, cols, cellH = 120) {
  return 40 + Math.ceil(n / cols) * cellH;
}

// Confusion-matrix heat map: rows are true classes, columns predicted ones; colour is the
// row-normalised fraction, the label the count.
export function confusionOption({ title, file, classes, matrix }) {
  const o = base(title, file);
  delete o.legend;
  const data = [];
  matrix.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((c, p) => data.push([p, t, c / total, c]));
  });
  const small = classes.length <= 25;
  o.grid = { left: 118, right: 70, top: 40, bottom: 100 };
  o.tooltip = {
    trigger: 'item', confine: true,
    formatter: (p) => `true ${classes[p.value[1]]}<br>predicted ${classes[p.value[0]]}<br>${p.value[3]} (${(100 * p.value[2]).toFixed(1)} % of row)`,
  };
  o.xAxis = { type: 'category', data: classes, name: 'predicted', nameLocation: 'middle', nameGap: 80, axisLabel: { rotate: 45, fontSize: 10, interval: 0, width: 90, overflow: 'truncate' } };
  o.yAxis = { type: 'category', data: classes, name: 'true', nameLocation: 'middle', nameGap: 96, inverse: true, axisLabel: { fontSize: 10, interval: 0, width: 100, overflow: 'truncate' } };
  // The colour scale says what it measures: the share of the true class's images.
  o.grid.right = 110;
  o.grid.top = 58;
  o.visualMap = {
    min: 0, max: 1, dimension: 2, calculable: false, orient: 'vertical', right: 8, top: 'middle', itemHeight: 140,
    text: ['100 % of the true class', '0 %'], textGap: 6, textStyle: { fontSize: 10 },
    formatter: (v) => `${Math.round(100 * v)} %`, inRange: { color: ['#f4f8ff', '#2f6fde', '#102a6b'] },
  };
  o.title.subtext = 'colour: share of each true class (row) predicted as the column; label: count';
  o.title.subtextStyle = { fontSize: 10 };
  o.series = [{
    type: 'heatmap', data,
    label: { show: small, fontSize: 10, formatter: (p) => p.value[3] },
  }];
  return o;
}

// Bar chart. horizontal puts the categories on the y axis (long class names).
export function barOption({ title, file, categories, series, horizontal = false, stack = false, yName }) {
  const o = base(title, file);
  const cat = { type: 'category', data: categories, axisLabel: { fontSize: 11, interval: 0, width: 150, overflow: 'truncate' }, inverse: horizontal };
  const val = { type: 'value', name: yName, nameLocation: 'middle', nameGap: horizontal ? 28 : 44 };
  o.tooltip = { trigger: 'axis', axisPointer: { type: 'shadow' }, confine: true };
  o.grid = horizontal ? { left: 160, right: 30, top: 58, bottom: 30 } : { left: 60, right: 20, top: 58, bottom: 70 };
  o.xAxis = horizontal ? val : { ...cat, axisLabel: { ...cat.axisLabel, rotate: 40 } };
  o.yAxis = horizontal ? cat : val;
  o.series = series.map((s) => ({ name: s.name, type: 'bar', data: s.data, stack: stack ? 'all' : undefined, color: s.color, barMaxWidth: 28, barGap: '0%', barCategoryGap: '20%' }));
  return o;
}

// Error bars for a barOption chart (mean ± std) as a custom series; points: [[category
// index, low, high]]; seriesIndex of nSeries bar series, to sit on the right bar.
export function errorBarSeries(name, points, seriesIndex, nSeries) {
  return {
    name, type: 'custom', z: 10, silent: true, tooltip: { show: false }, encode: { x: 0, y: [1, 2] },
    renderItem: (params, api) => {
      const x = api.value(0), lo = api.coord([x, api.value(1)]), hi = api.coord([x, api.value(2)]);
      const band = api.size([1, 0])[0];
      const bw = Math.min(28, (band * 0.8) / nSeries); // as barOption: barGap 0, category gap 20 %
      const off = (seriesIndex + 0.5 - nSeries / 2) * bw;
      const cx = lo[0] + off, style = { stroke: '#1d2330', lineWidth: 1.2 };
      return {
        type: 'group', children: [
          { type: 'line', shape: { x1: cx, y1: lo[1], x2: cx, y2: hi[1] }, style },
          { type: 'line', shape: { x1: cx - 4, y1: lo[1], x2: cx + 4, y2: lo[1] }, style },
          { type: 'line', shape: { x1: cx - 4, y1: hi[1], x2: cx + 4, y2: hi[1] }, style },
        ],
      };
    },
    data: points,
  };
}
