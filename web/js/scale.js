// scale.js — value axes for quantities that span many decades: log, symlog and linear scales
// for ECharts, and tick labels in engineering notation that never clip.
//
// ECharts has a log axis but no symlog one, so symlog is a transform of the data drawn on a
// value axis: t = sign(y)·(1 + log10(|y|/c)) for |y| >= c, t = y/c inside (−c, c) — linear
// around zero, one unit per decade outside, continuous at ±c. The labels map t back to y.
// Every chart drawn with a scale registers it in window.__initlab.scales[chart name] as
// {kind, c}, so that tests can map the drawn values back.

window.__initlab = window.__initlab || {};
window.__initlab.scales = window.__initlab.scales || {};

const SUPER = { '-': '⁻', 0: '⁰', 1: '¹', 2: '²', 3: '³', 4: '⁴', 5: '⁵', 6: '⁶', 7: '⁷', 8: '⁸', 9: '⁹' };

// 1.5e-17 → "15e-18", 0.25 → "0.25", 12000 → "12e3": a mantissa of 1 to 3 digits before the
// point and an exponent that is a multiple of 3; short enough for any axis.
export function fmtEng(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e4) return String(Number(v.toPrecision(digits)));
  let e = Math.floor(Math.log10(a) / 3) * 3;
  let m = v / 10 ** e;
  if (Math.abs(Number(m.toPrecision(digits))) >= 1000) { e += 3; m /= 1000; }
  return `${Number(m.toPrecision(digits))}e${e}`;
}

// "10⁻¹⁷" for decade ticks of a log axis.
export function fmtDecade(v) {
  if (!(v > 0)) return fmtEng(v);
  const e = Math.round(Math.log10(v));
  if (Math.abs(v / 10 ** e - 1) > 1e-6) return fmtEng(v);
  if (e >= -2 && e <= 3) return String(10 ** e >= 1 ? 10 ** e : Number((10 ** e).toPrecision(1)));
  return '10' + String(e).split('').map((ch) => SUPER[ch]).join('');
}

export function symlog(y, c) {
  if (y === null || y === undefined || !Number.isFinite(y)) return null;
  const a = Math.abs(y);
  return a < c ? y / c : Math.sign(y) * (1 + Math.log10(a / c));
}

export function symlogInverse(t, c) {
  const a = Math.abs(t);
  return a < 1 ? t * c : Math.sign(t) * c * 10 ** (a - 1);
}

// The linear threshold of a symlog scale for these values: the decade below the tenth
// percentile of the non-zero magnitudes — the bulk of the values get their decades, and a
// few stray tiny ones (a quartile of 1e-9 in a layer of mostly zeros) do not stretch the
// axis over empty decades.
export function symlogThreshold(values) {
  const mags = values.filter((v) => v !== null && v !== undefined && Number.isFinite(v) && v !== 0).map(Math.abs).sort((a, b) => a - b);
  if (!mags.length) return 1;
  return 10 ** Math.floor(Math.log10(mags[Math.floor(0.1 * (mags.length - 1))]));
}

// The scale of a chart: kind 'log' | 'symlog' | 'linear' for the values it will show.
// map(v) is the drawn value (null where the scale cannot show v: ≤ 0 on a log axis),
// axis(extra) the ECharts value axis, and register(name) publishes it for tests.
export function makeScale(kind, values) {
  const c = kind === 'symlog' ? symlogThreshold(values) : 1;
  const map = (v) => {
    if (v === null || v === undefined || !Number.isFinite(v)) return null;
    if (kind === 'log') return v > 0 ? v : null;
    if (kind === 'symlog') return symlog(v, c);
    return v;
  };
  const axis = (extra = {}) => {
    const label = { hideOverlap: true, fontSize: 11 };
    if (kind === 'log') return { type: 'log', logBase: 10, axisLabel: { ...label, formatter: fmtDecade }, ...extra };
    if (kind === 'symlog') return { type: 'value', interval: 1, axisLabel: { ...label, formatter: (t) => fmtEng(symlogInverse(t, c), 2) }, ...extra };
    return { type: 'value', scale: true, axisLabel: { ...label, formatter: (v) => fmtEng(v) }, ...extra };
  };
  return {
    kind, c, map, axis,
    inverse: (t) => (kind === 'symlog' ? symlogInverse(t, c) : t),
    register(name) { window.__initlab.scales[name] = { kind, c }; },
  };
}

// A <select> of scales; onchange(kind).
export function scaleOptions(kinds = ['log', 'symlog', 'linear']) {
  const labels = { log: 'log y', symlog: 'symlog y', linear: 'linear y' };
  return kinds.map((k) => [k, labels[k]]);
}
