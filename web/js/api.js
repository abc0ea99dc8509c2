// api.js — the HTTP API client: JSON requests, problem+json errors, CSV links and the shared
// server-sent event stream (GET /api/v1/events) every view subscribes to.

const BASE = '/api/v1';
const TOKEN_KEY = 'initlab-token';

// An API failure: status, detail and (for validation errors) the offending field.
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.field = problem.field || null;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {}))
    if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const qs = q.toString();
  return BASE + path + (qs ? '?' + qs : '');
}

// Sends a request; returns the parsed JSON body (null for 204). Throws ApiError for an error
// status, with the problem's detail and field. With a token-protected daemon it asks for the
// token once (401) and keeps it for the session.
export async function request(method, path, { query, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const sent = token();
  if (sent) headers.Authorization = 'Bearer ' + sent;
  const res = await fetch(url(path, query), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && token() && token() !== sent) return request(method, path, { query, body });
  if (res.status === 401 && sent && token() === sent) sessionStorage.removeItem(TOKEN_KEY); // wrong: ask again
  if (res.status === 401 && !token()) {
    const t = window.prompt('This initlab daemon needs its access token:');
    if (t) {
      sessionStorage.setItem(TOKEN_KEY, t.trim());
      events.restart();
      return request(method, path, { query, body });
    }
  }
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await res.json() : { detail: await res.text() };
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (path, query) => request('GET', path, { query });
export const post = (path, body) => request('POST', path, { body: body ?? {} });
export const del = (path) => request('DELETE', path);
export const patch = (path, body) => request('PATCH', path, { body });

// Downloads path as a file named filename: a plain link without a token, fetch + blob with
// one (a link cannot send Authorization).
export async function downloadFile(path, filename, query) {
  const headers = {};
  if (token()) headers.Authorization = 'Bearer ' + token();
  const res = await fetch(url(path, query), { headers });
  if (!res.ok) {
    const type = res.headers.get('Content-Type') || '';
    throw new ApiError(res.status, type.includes('json') ? await res.json() : { detail: await res.text() });
  }
  const blob = await res.blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// The link of a tabular endpoint's CSV form.
export function csvUrl(path, query) {
  return url(path, { ...(query || {}), format: 'csv' });
}

// The event stream: one connection shared by all views. on(type, fn) returns a function that
// unsubscribes. Types: 'job' (a job's state changed), 'progress' (a running job moved on;
// the same form), 'job_deleted', 'epoch', 'step', 'grid', 'grid_deleted', 'dataset',
// 'dataset_deleted' (data parsed as JSON), 'open' (after a (re)connection whose missed
// events could not all be replayed: views reload what they show) and 'state' (connected or
// not). Reconnections send Last-Event-ID, so the daemon replays what was missed; when it
// cannot, it sends 'reset', which becomes 'open'.
export const EVENT_TYPES = ['job', 'progress', 'job_deleted', 'epoch', 'step', 'grid', 'grid_deleted', 'dataset', 'dataset_deleted'];
export const events = {
  listeners: new Map(),
  connected: false,
  received: 0,
  lastId: null,
  opened: false,
  source: null,
  abort: null,

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  },

  emit(type, data) {
    for (const fn of this.listeners.get(type) || []) {
      try {
        fn(data);
      } catch (e) {
        console.error(e);
      }
    }
  },

  setConnected(c) {
    if (c === this.connected) return;
    this.connected = c;
    this.emit('state', c);
    // The first connection, or one that resumes nothing: views reload. A resumed stream
    // replays what was missed (or sends reset).
    if (c && (!this.opened || this.lastId === null)) this.emit('open');
    if (c) this.opened = true;
  },

  dispatch(type, text, id) {
    if (id !== undefined && id !== null && id !== '') this.lastId = id;
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      return;
    }
    this.received++;
    if (type === 'reset') return this.emit('open');
    this.emit(type, data);
  },

  start() {
    if (token()) return this.startFetch();
    const es = new EventSource(BASE + '/events');
    this.source = es;
    es.onopen = () => this.setConnected(true);
    es.onerror = () => this.setConnected(false);
    for (const type of [...EVENT_TYPES, 'reset'])
      es.addEventListener(type, (e) => this.dispatch(type, e.data, e.lastEventId));
  },

  // EventSource cannot send Authorization: with a token the stream is read with fetch.
  async startFetch() {
    const ctl = new AbortController();
    this.abort = ctl;
    try {
      const headers = { Authorization: 'Bearer ' + token(), Accept: 'text/event-stream' };
      if (this.lastId !== null) headers['Last-Event-ID'] = this.lastId;
      const res = await fetch(BASE + '/events', { headers, signal: ctl.signal });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      this.setConnected(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          this.parseBlock(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    this.setConnected(false);
    if (!ctl.signal.aborted) setTimeout(() => this.startFetch(), 3000);
  },

  parseBlock(block) {
    let type = 'message', id = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) type = line.slice(6).trim();
      else if (line.startsWith('id:')) id = line.slice(3).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length) this.dispatch(type, data.join('\n'), id);
  },

  restart() {
    if (this.source) this.source.close();
    if (this.abort) this.abort.abort();
    this.source = this.abort = null;
    this.setConnected(false);
    this.start();
  },
};
