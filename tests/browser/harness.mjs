// Shared pieces of the client-library specs (client.spec.mjs,
// client-token.spec.mjs): a server per spec, Chromium, the test page, and
// the check/report bookkeeping demo.spec.mjs uses too.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProxy } from './proxy.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// PUSHWIRE_JS=path tries another copy (e.g. a deliberately broken one, to see a check fail).
export const LIB_PATH = process.env.PUSHWIRE_JS || join(root, 'src', 'app', 'pushwire.js');

// Where the pages get /pushwire.js. While the server does not serve it, the
// proxy answers GET /pushwire.js from src/app/pushwire.js. Once the server
// does (docs/api.md section 3), its copy is used and must be byte for byte the
// file on disk; set this to true then, so that a server that stops serving
// it fails the stage instead of being papered over.
export const LIB_FROM_SERVER = true;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- checks and the final line, as in demo.spec.mjs
const PENDING = Symbol('pending');
const results = [];
export function assert(cond, msg) { if (!cond) throw new Error(msg); }
export function same(got, want, what) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g.length > 400 ? g.slice(0, 400) + '…' : g}, expected ${w.length > 400 ? w.slice(0, 400) + '…' : w}`);
}
export const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
export async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    if (detail && detail.pending) {
      results.push({ name, ok: PENDING });
      console.log(`PENDING ${name}: pending server support${detail.why ? ` (${detail.why})` : ''}`);
    } else {
      results.push({ name, ok: true });
      console.log(`ok      ${name} (${Date.now() - t0} ms)${detail ? `: ${detail}` : ''}`);
    }
  } catch (err) {
    results.push({ name, ok: false });
    console.log(`FAILED  ${name} (${Date.now() - t0} ms): ${String(err && err.message || err).split('\n').slice(0, 8).join('\n        ')}`);
  }
}
export function report(label) {
  const passed = results.filter((r) => r.ok === true).length;
  const failed = results.filter((r) => r.ok === false).length;
  const pending = results.filter((r) => r.ok === PENDING).length;
  console.log(`${label}: ${passed} passed, ${failed} failed` + (pending ? `, ${pending} skipped` : ''));
  return failed;
}

// ---- a pushwire process on a free port; the first stdout line is its address
export async function startServer(bin, args = [], env = {}) {
  const proc = spawn(bin, ['--addr', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  proc.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('the server did not announce its address in 10 s')), 10_000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /^listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(t); reject(new Error(`the server exited (${code}): ${err}`)); });
  });
  return {
    url, port: Number(new URL(url).port), stderr: () => err,
    stop: () => new Promise((resolve) => { proc.once('exit', resolve); proc.kill(); }),
  };
}

// POSTs each text to the channel, straight to the server (not through the
// proxy: the faults are for the subscriber).
export async function publishAll(serverUrl, channel, texts, { gapMs = 0, headers = {} } = {}) {
  for (const t of texts) {
    const r = await fetch(`${serverUrl}/channels/${channel}`, { method: 'POST', body: t, headers });
    if (r.status !== 201) throw new Error(`publish ${t}: ${r.status} ${await r.text()}`);
    if (gapMs) await sleep(gapMs);
  }
}

// What the proxy answers itself: the library (until the server serves it)
// and the test page.
export async function libraryCopy(serverUrl) {
  const disk = readFileSync(LIB_PATH);
  const res = await fetch(`${serverUrl}/pushwire.js`).catch(() => null);
  if (res && res.ok) {
    const type = res.headers.get('content-type') || '';
    const body = Buffer.from(await res.arrayBuffer());
    if (!/^text\/javascript/.test(type)) throw new Error(`GET /pushwire.js: Content-Type ${type}`);
    if (!body.equals(disk)) throw new Error('GET /pushwire.js differs from src/app/pushwire.js (a stale build?)');
    return null;  // forward to the server's copy
  }
  if (LIB_FROM_SERVER) throw new Error(`GET /pushwire.js: ${res ? res.status : 'no answer'} from the server`);
  return disk;
}

// The page the client specs drive: accounting for the library's timers and
// listeners is installed before the library loads, then helpers that run a
// subscription and record everything it reports.
const TEST_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>pushwire.js under test</title>
<script>
(() => {
  // A timer or listener counts as the library's when pushwire.js is on the stack.
  const fromLib = () => /\\/pushwire\\.js/.test(new Error().stack);
  const timers = new Map(), listeners = [];
  let intervals = 0;
  const st = window.setTimeout, ct = window.clearTimeout, si = window.setInterval;
  window.setTimeout = function (fn, ms, ...args) {
    const lib = fromLib();
    const id = st(function () { timers.delete(id); return fn.apply(this, arguments); }, ms, ...args);
    if (lib) timers.set(id, ms);
    return id;
  };
  window.clearTimeout = (id) => { timers.delete(id); ct(id); };
  window.setInterval = function (...a) { if (fromLib()) intervals++; return si.apply(this, a); };
  for (const target of [window, document]) {
    const add = target.addEventListener, remove = target.removeEventListener;
    target.addEventListener = function (type, fn, opts) {
      if (fromLib()) listeners.push({ target, type, fn });
      return add.call(this, type, fn, opts);
    };
    target.removeEventListener = function (type, fn, opts) {
      const i = listeners.findIndex((l) => l.target === target && l.type === type && l.fn === fn);
      if (i >= 0) listeners.splice(i, 1);
      return remove.call(this, type, fn, opts);
    };
  }
  window.libPending = () => ({ timers: timers.size, listeners: listeners.map((l) => l.type), intervals });
  window.recs = {};
  // Imports the library; returns the globals that importing it added.
  window.loadLib = async () => {
    const before = new Set(Object.getOwnPropertyNames(window));
    window.pw = await import('/pushwire.js');
    return Object.getOwnPropertyNames(window).filter((k) => !before.has(k) && k !== 'pw');
  };
  window.start = (key, channel, opts = {}) => {
    const rec = { ids: [], data: [], gaps: [], states: [], log: [], tokens: 0, t0: performance.now() };
    const o = { ...opts,
      onmessage: (m) => { rec.ids.push(m.id); rec.data.push(m.data); },
      ongap: (g) => { rec.gaps.push(g); },
      onstatechange: (s, t) => { rec.states.push(t ? s + ' ' + t : s); },
      log: (d, t) => { rec.log.push(Math.round(performance.now() - rec.t0) + ' ' + d + ' ' + t); },
    };
    if (opts.tokenUrl) o.token = async () => { rec.tokens++; return (await fetch(opts.tokenUrl, { cache: 'no-store' })).text(); };
    rec.sub = window.pw.subscribe(channel, o);
    window.recs[key] = rec;
  };
  window.look = (key) => {
    const r = window.recs[key];
    return { ids: r.ids, data: r.data, gaps: r.gaps, states: r.states, last: r.sub.last, transport: r.sub.transport, tokens: r.tokens, log: r.log.slice(-40) };
  };
})();
</script>
<body>pushwire.js under test</body>
`;

// A proxy in front of `server` that serves the test page (and the library
// while the server does not), and a page of `context` opened on it.
export async function pageBehindProxy(context, server, extra = () => null, gate = () => null) {
  const lib = await libraryCopy(server.url);
  const proxy = await startProxy({
    upstreamPort: server.port,
    serve: (method, target) => {
      if (method === 'GET' && target === '/pushwire.js' && lib) return { type: 'text/javascript', body: lib };
      if (method === 'GET' && target === '/test/client.html') return { type: 'text/html; charset=utf-8', body: TEST_PAGE };
      return extra(method, target);
    },
    gate,
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${proxy.url}/test/client.html`);
  const globals = await page.evaluate(() => window.loadLib());
  return { proxy, page, errors, globals, libFrom: lib ? `${LIB_PATH} via the proxy` : 'the server' };
}

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'pushwire-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return { context, close: async () => { await context.close().catch(() => {}); rmSync(profile, { recursive: true, force: true }); } };
}

// Helpers bound to one page.
export function driver(page) {
  return {
    start: (key, channel, opts) => page.evaluate(([k, c, o]) => window.start(k, c, o), [key, channel, opts]),
    look: (key) => page.evaluate((k) => window.look(k), key),
    close: (key) => page.evaluate((k) => window.recs[k].sub.close(), key),
    pending: () => page.evaluate(() => window.libPending()),
    // Waits until the JS expression over `r` (the record of `key`) holds.
    until: (key, expr, timeout = 10_000) => page.waitForFunction(
      ([k, e]) => { const r = window.look(k); return new Function('r', `return (${e});`)(r); },
      [key, expr], { timeout, polling: 50 }).catch(async (err) => {
      const r = await page.evaluate((k) => window.look(k), key);
      throw new Error(`waited ${timeout} ms for ${expr}: ${err.message.split('\n')[0]}\n  ids ${JSON.stringify(r.ids).slice(0, 300)}\n  states ${JSON.stringify(r.states)}\n  log ${r.log.slice(-12).join(' | ')}`);
    }),
  };
}
