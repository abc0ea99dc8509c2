// dom.js — a tiny element builder, number/time formatting and small helpers shared by views.

// h('div', {class: 'card', onclick: fn}, child, [children], 'text') builds an element.
// Attributes: class, style (string), dataset (object), on<event> (function); value, checked,
// selected, disabled and hidden are set as properties; null/undefined/false are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (['value', 'checked', 'selected', 'disabled', 'hidden'].includes(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// Replaces the children of el.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const dash = '—';

export function fmtNum(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return dash;
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return v.toFixed(digits);
}

// A number with at most 6 significant digits and no trailing zeros (0.05, not 0.0500000007).
export function fmtShort(v) {
  return typeof v === 'number' && Number.isFinite(v) ? String(Number(v.toPrecision(6))) : fmtNum(v);
}

export function fmtPct(v) {
  return v === null || v === undefined ? dash : (100 * v).toFixed(1) + ' %';
}

export function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return dash;
  s = Math.round(s);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

export function fmtTime(t) {
  if (t === null || t === undefined) return dash;
  const d = new Date(t * 1000);
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

// Engineering notation: a mantissa of `digits` significant digits and an exponent that is a
// multiple of 3 ("74.2e6", "1.50e-6"); plain for 0.
export function fmtEng(v, digits = 3) {
  if (v === 0) return '0';
  let e = Math.floor(Math.log10(Math.abs(v)) / 3) * 3;
  let shown = (v / 10 ** e).toPrecision(digits);
  // 999.96e3 rounds to 1000e3: the next power's mantissa instead ("1.00e6").
  if (Math.abs(Number(shown)) >= 1000) {
    e += 3;
    shown = (v / 10 ** e).toPrecision(digits);
  }
  return shown + 'e' + e;
}

// Whether a value needs engineering notation in a table (too large or too small for
// fixed digits to show it).
function extreme(v) {
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e4 || a < 1e-3);
}

// mean ± std as text ("0.912 ± 0.004", or just the mean when std is null); values too
// large or small for fixed digits in engineering notation, both with the mean's exponent
// ("74.2e6 ± 55.3e6", not "74160804.000 ± 55346193.715").
export function fmtMeanStd(ms, digits = 3) {
  if (!ms || ms.mean === null || ms.mean === undefined) return dash;
  const hasStd = ms.std !== null && ms.std !== undefined;
  if (extreme(ms.mean) || (hasStd && extreme(ms.std) && ms.mean !== 0)) {
    const m = fmtEng(ms.mean, digits);
    if (!hasStd) return m;
    const e = Number(m.split('e')[1] ?? 0);
    return m + ' ± ' + (ms.std / 10 ** e).toPrecision(digits) + 'e' + e;
  }
  const m = ms.mean.toFixed(digits);
  return hasStd ? m + ' ± ' + ms.std.toFixed(digits) : m;
}

// Bytes as text: "368 MB", "1.2 GB" (decimal units, as df -H).
export function fmtBytes(b) {
  if (b === null || b === undefined || !Number.isFinite(b)) return dash;
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0, v = b;
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return (i === 0 ? String(v) : v.toPrecision(v < 10 ? 2 : 3)) + ' ' + units[i];
}

// A function that runs fn once, ms after the last call.
export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// The label a job gets in legends: "#12 mobilenet he_uniform s0", its name when it has one.
export function jobLabel(j) {
  return `#${j.id} ${j.name ? j.name + ' · ' : ''}${j.model} ${j.initializer} s${j.seed}`;
}

// Tags as small chips.
export function tagChips(tags) {
  return (tags || []).map((t) => h('span', { class: 'tag', dataset: { tag: t } }, t));
}

export function statusBadge(status) {
  return h('span', { class: 'status ' + status }, status);
}

// A short notice in the corner; bad=true for errors.
export function toast(text, bad = false) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.className = 'toast' + (bad ? ' bad' : '');
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 5000);
}
