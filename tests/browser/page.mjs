// page.mjs — browser-side helpers for the tests: Chromium launch, navigation that waits for a
// view to be drawn, reading ECharts options back from the page, console and network watch.
import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync'];

export async function launch() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

// A page that records console errors, page errors and failed requests (status >= 400).
export async function watchedPage(browser, viewport) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const problems = { console: [], pageErrors: [], failed: [] };
  page.on('console', (m) => {
    // Chromium mirrors every >= 400 response as "Failed to load resource"; those are judged
    // from the responses themselves (problems.failed).
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.console.push(m.text());
  });
  page.on('pageerror', (e) => problems.pageErrors.push(e.message));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.failed.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
  });
  return { page, context, problems };
}

// Goes to a dashboard route ("#/job/3") and waits until that view says it is drawn.
export async function open(page, hash, view, timeout = 20000) {
  await page.evaluate((h) => {
    document.body.dataset.ready = '0';
    if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange'));
    else location.hash = h;
  }, hash);
  await page.waitForSelector(`body[data-view="${view}"][data-ready="1"]`, { timeout });
}

// A summary of chart name's option: title, whether PNG export is on, and per series its type,
// name, data length and markLine count; null when there is no such chart.
export async function chartInfo(page, name) {
  return page.evaluate((n) => {
    const c = window.__initlab.charts[n];
    if (!c || c.isDisposed()) return null;
    const o = c.getOption();
    const titles = (o.title || []).map((t) => t.text);
    return {
      title: titles[0] || '',
      titles,
      png: !!(o.toolbox && o.toolbox[0] && o.toolbox[0].feature && o.toolbox[0].feature.saveAsImage),
      series: o.series.map((s) => ({ type: s.type, name: s.name, len: (s.data || []).length, marks: s.markLine && s.markLine.data ? s.markLine.data.length : 0 })),
    };
  }, name);
}

// The data of series index i of chart name (values only).
export async function seriesData(page, name, i) {
  return page.evaluate(([n, k]) => {
    const s = window.__initlab.charts[n].getOption().series[k];
    return s.data.map((d) => (d && typeof d === 'object' && !Array.isArray(d) ? d.value : d));
  }, [name, i]);
}

// Waits until pred(chartInfo) holds; returns that info.
export async function waitChart(page, name, pred, timeout = 15000) {
  const end = Date.now() + timeout;
  let info = null;
  while (Date.now() < end) {
    info = await chartInfo(page, name);
    if (info && pred(info)) return info;
    await page.waitForTimeout(100);
  }
  throw new Error(`chart ${name} never matched; last: ${JSON.stringify(info && { title: info.title, series: info.series.slice(0, 4) })}`);
}

// Names of the charts present in the current view.
export async function chartNames(page) {
  return page.evaluate(() => Object.keys(window.__initlab.charts));
}

export async function rowCount(page, table) {
  return page.$$eval(`table[data-table="${table}"] tbody tr`, (trs) => trs.length);
}

// True when the page does not scroll sideways.
export async function fitsWidth(page) {
  return page.evaluate(() => document.scrollingElement.scrollWidth <= window.innerWidth + 1);
}

// The scale chart name was drawn with (web/js/scale.js registers it): {kind, c}, or null.
export async function scaleOf(page, name) {
  return page.evaluate((n) => (window.__initlab.scales || {})[n] || null, name);
}

// A value as a chart of that scale draws it, computed here independently: log keeps
// positives, symlog is sign(y)·(1 + log10(|y|/c)) outside (−c, c) and y/c inside.
export function drawnValue(v, scale) {
  if (v === null || v === undefined || !Number.isFinite(v)) return null;
  if (!scale || scale.kind === 'linear') return v;
  if (scale.kind === 'log') return v > 0 ? v : null;
  const a = Math.abs(v);
  return a < scale.c ? v / scale.c : Math.sign(v) * (1 + Math.log10(a / scale.c));
}

// Equal within a relative tolerance, element by element (nested arrays, nulls equal).
export function near(a, b, tol = 1e-9) {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => near(x, b[i], tol));
  if (a === null || b === null || a === undefined || b === undefined) return (a ?? null) === (b ?? null);
  return Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b));
}
