// daemon.mjs — a real `initlab serve` for the browser tests: temporary state and demo data,
// start on a free loopback port, a small JSON client for its API, and a stop that always runs.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
// INITLAB may name another build of the binary (default: the repository's ./initlab).
const INITLAB = process.env.INITLAB || path.join(ROOT, 'initlab');

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Starts the daemon in a fresh temporary directory holding the state and a demo dataset of
// `classes` classes. Resolves to {base, api, stop, tmp, log} once it listens.
export async function startDaemon({ classes = 4, perClass = 40, size = 32 } = {}) {
  if (!fs.existsSync(INITLAB)) throw new Error(`${INITLAB} is missing: run make first`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'initlab-browser-'));
  const data = path.join(tmp, 'data');
  fs.mkdirSync(data);
  execFileSync(INITLAB, ['demo-data', path.join(data, 'demo'), '--classes', String(classes), '--per-class', String(perClass), '--size', String(size)], { stdio: 'ignore' });
  const log = path.join(tmp, 'serve.log');
  const out = fs.openSync(log, 'w');
  const child = spawn(INITLAB, ['serve', '--listen', '127.0.0.1:0', '--state-dir', path.join(tmp, 'state'), '--data-root', data,
    '--web-dir', path.join(ROOT, 'web'), '--workers', '1'], { cwd: tmp, stdio: ['ignore', out, out] });
  let exited = false;
  child.on('exit', () => { exited = true; });

  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      for (let i = 0; i < 100 && !exited; i++) await sleep(100);
      if (!exited) child.kill('SIGKILL');
    }
    fs.closeSync(out);
  };

  let base = null;
  for (let i = 0; i < 100 && !base && !exited; i++) {
    await sleep(100);
    const m = /listening on (http:\/\/[\d.]+:\d+)\//.exec(fs.readFileSync(log, 'utf8'));
    if (m) base = m[1];
  }
  if (!base) {
    await stop();
    throw new Error('the daemon did not start:\n' + fs.readFileSync(log, 'utf8'));
  }
  return { base, api: client(base), stop, tmp, data, log };
}

// request(method, path, body) -> {status, body}; get/post shorthands throw on an error status.
function client(base) {
  const request = async (method, p, body) => {
    const res = await fetch(base + '/api/v1' + p, {
      method, headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON: keep the text */
    }
    return { status: res.status, body: parsed };
  };
  const must = async (method, p, body) => {
    const r = await request(method, p, body);
    if (r.status >= 400) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  return { request, get: (p) => must('GET', p), post: (p, b) => must('POST', p, b ?? {}) };
}

// Polls fn() until it returns a truthy value; throws after timeoutMs.
export async function waitFor(what, fn, timeoutMs, everyMs = 500) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
