// table.js — data tables built from column descriptions, with a client-side CSV download of
// the same rows and columns.
import { h } from './dom.js';

// columns: [{label, value(row) -> raw value (CSV and default cell), cell(row) -> Node|string
// (optional display), num (right-aligned), csvOnly (in the CSV, not on screen)}].
// rowAttrs(row) gives extra <tr> attributes. Returns the wrapping element; its table has
// data-table=name.
export function dataTable({ name, columns: all, rows, rowAttrs, empty = 'nothing yet' }) {
  const columns = all.filter((c) => !c.csvOnly);
  const head = h('tr', null, columns.map((c) => h('th', { class: c.num ? 'num' : null }, c.label)));
  const body = h('tbody');
  for (const r of rows) body.append(tableRow(columns, r, rowAttrs));
  const table = h('table', { class: 'data', dataset: { table: name } }, h('thead', null, head), body);
  return h('div', { class: 'table-wrap' }, table, rows.length ? null : h('div', { class: 'empty' }, empty));
}

export function tableRow(all, r, rowAttrs) {
  const columns = all.filter((c) => !c.csvOnly);
  return h('tr', rowAttrs ? rowAttrs(r) : null, columns.map((c) => {
    const v = c.cell ? c.cell(r) : c.value(r);
    return h('td', { class: c.num ? 'num' : null }, v === null || v === undefined ? '—' : v);
  }));
}

function csvCell(v) {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? String(v) : String(v);
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

export function toCsv(columns, rows) {
  const lines = [columns.map((c) => csvCell(c.label)).join(',')];
  for (const r of rows) lines.push(columns.map((c) => csvCell(c.value(r))).join(','));
  return lines.join('\r\n') + '\r\n';
}

// Saves text as a file called filename.
export function download(filename, text, type = 'text/csv') {
  const a = h('a', { href: URL.createObjectURL(new Blob([text], { type })), download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// A "CSV" button downloading rows() (a function, so it reflects the rows shown at click time).
export function csvButton(filename, columns, rows) {
  return h('button', {
    class: 'small', title: 'download this table as CSV', dataset: { csv: filename },
    onclick: () => download(filename, toCsv(columns, rows())),
  }, 'CSV');
}
