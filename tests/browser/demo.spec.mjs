// Drives the demo page on / in a headless Chromium (Debian's `chromium`)
// through playwright-core, exercises every panel, checks that each shows live
// data, saves a screenshot and prints `browser: N passed, M failed`.
//
//   node demo.spec.mjs http://127.0.0.1:PORT [screenshot.png]
//
// DEMO_HTML=path/to/demo.html checks that file instead of the server's copy
// (to iterate on the page without rebuilding the binary): a pass-through
// proxy (proxy.mjs, no faults) in front of the server answers GET / with it
// and forwards everything else, so the page's origin is the proxy's. The
// same proxy answers GET /pushwire.js from src/app/pushwire.js while the
// server does not serve it (see LIB_FROM_SERVER in harness.mjs). (Not
// page.route(): once a page has been routed, this Chromium refuses its
// WebSocket handshakes.)
//
// run.sh starts the server and calls this; see it for the whole procedure.

import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { libraryCopy } from './harness.mjs';
import { startProxy } from './proxy.mjs';

let base = (process.argv[2] || process.env.PUSHWIRE_URL || '').replace(/\/$/, '');
const shot = process.argv[3] || process.env.SCREENSHOT || 'target/demo.png';
if (!/^http:\/\/[^/]+$/.test(base)) {
  console.error('usage: node demo.spec.mjs http://HOST:PORT [screenshot.png]');
  process.exit(2);
}
const lib = await libraryCopy(base);
const demoFile = process.env.DEMO_HTML ? readFileSync(process.env.DEMO_HTML) : null;
let proxy = null;
if (lib || demoFile) {
  proxy = await startProxy({
    upstreamPort: Number(new URL(base).port),
    serve: (method, target) => {
      if (method === 'GET' && target === '/' && demoFile) return { type: 'text/html; charset=utf-8', body: demoFile };
      if (method === 'GET' && target === '/pushwire.js' && lib) return { type: 'text/javascript', body: lib };
      return null;
    },
  });
  console.log(`browser: the page through a proxy at ${proxy.url}: ${[demoFile && `/ from ${process.env.DEMO_HTML}`, lib && '/pushwire.js from src/app'].filter(Boolean).join(', ')}`);
  base = proxy.url;
}
const host = new URL(base).host;
const PENDING = Symbol('pending');
const results = [];

// The whole run is bounded: whatever hangs, we stop.
const watchdog = setTimeout(() => {
  console.error('browser: the run took longer than 110 s; giving up');
  report();
  process.exit(1);
}, 110_000);

function report() {
  const passed = results.filter((r) => r.ok === true).length;
  const failed = results.filter((r) => r.ok === false).length;
  const pending = results.filter((r) => r.ok === PENDING).length;
  console.log(`browser: ${passed} passed, ${failed} failed` + (pending ? `, ${pending} skipped` : ''));
  return failed;
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    if (detail === PENDING || (detail && detail.pending)) {
      results.push({ name, ok: PENDING });
      console.log(`PENDING ${name}: pending server support${detail.why ? ` (${detail.why})` : ''}`);
    } else {
      results.push({ name, ok: true });
      console.log(`ok      ${name} (${Date.now() - t0} ms)${detail ? `: ${detail}` : ''}`);
    }
  } catch (err) {
    results.push({ name, ok: false });
    console.log(`FAILED  ${name} (${Date.now() - t0} ms): ${String(err && err.message || err).split('\n').slice(0, 6).join('\n        ')}`);
  }
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }

const profile = mkdtempSync(join(tmpdir(), 'pushwire-chromium-'));
// A fresh, temporary profile (--user-data-dir): playwright passes it itself
// when it is given this way, and refuses it among the args.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1440, height: 1000 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

let exitCode = 1;
try {
  const page = context.pages()[0] || await context.newPage();
  const jsErrors = [];
  const foreign = [];
  page.on('pageerror', (e) => jsErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) jsErrors.push('console: ' + m.text()); });
  // Every answer the page gets is expected to be a success (the webhook
  // endpoints' 501 aside, which the webhooks check reports as pending).
  const badAnswers = [];
  page.on('response', (r) => {
    if (r.status() >= 400 && !(r.status() === 501 && /\/(webhooks|webhook-receiver|submit)/.test(r.url()))) badAnswers.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on('request', (r) => { const u = new URL(r.url()); if (u.host !== host) foreign.push(r.url()); });
  page.on('websocket', (ws) => { const u = new URL(ws.url()); if (u.host !== host) foreign.push(ws.url()); });


  const state = (sel) => page.$eval(sel, (e) => e.dataset.state);
  const text = (sel) => page.$eval(sel, (e) => e.textContent);
  const wait = (fn, arg, timeout = 10_000) => page.waitForFunction(fn, arg, { timeout, polling: 100 });

  await check('GET / serves the self-contained demo page', async () => {
    const res = await page.goto(base + '/', { waitUntil: 'load' });
    assert(res.status() === 200, `status ${res.status()}`);
    assert(/^text\/html/.test(res.headers()['content-type'] || ''), `content-type ${res.headers()['content-type']}`);
    const html = await res.text();
    assert(!/(src|href)\s*=\s*["']?(https?:)?\/\//i.test(html), 'the page references an external resource');
    for (const id of ['short', 'long', 'sse', 'ws', 'chan', 'hook']) assert(await page.$('#' + id), `no panel #${id}`);
    return `${html.length} bytes, 6 panels`;
  });

  // Both polling panels run side by side on 3 s jobs.
  await page.fill('#sp-duration', '3000');
  await page.fill('#lp-duration', '3000');
  await page.click('#sp-submit');
  await page.click('#lp-submit');
  await Promise.all([
    check('short polling: progress reaches 100 over many requests', async () => {
      await wait(() => ['done', 'error'].includes(document.querySelector('#short').dataset.state), null, 15_000);
      assert(await state('#short') === 'done', 'the panel reports an error');
      const progress = Number(await page.$eval('#sp-progress', (e) => e.dataset.progress));
      const n = Number(await text('#sp-requests'));
      assert(progress === 100, `progress ${progress}`);
      assert(n > 1, `only ${n} status request(s)`);
      const log = await text('#sp-log');
      assert(log.includes('HTTP/1.1 202 Accepted') && log.includes('location: /checkstatus?jobId=job:'), 'the wire log lacks the 202 and its Location');
      assert(log.includes('content-type: application/json'), 'the wire log lacks response headers');
      return `${n} status requests`;
    }),
    check('long polling: one held request answers at 100', async () => {
      await wait(() => ['done', 'error'].includes(document.querySelector('#long').dataset.state), null, 15_000);
      assert(await state('#long') === 'done', 'the panel reports an error');
      const progress = Number(await page.$eval('#lp-progress', (e) => e.dataset.progress));
      const n = Number(await text('#lp-requests'));
      const held = parseFloat(await text('#lp-held'));
      assert(progress === 100, `progress ${progress}`);
      assert(n === 1, `${n} status requests, expected exactly 1`);
      assert(held >= 2.0, `held only ${held} s for a 3 s job`);
      assert((await text('#lp-log')).includes('&wait=30'), 'the wire log lacks the long-poll request');
      return `1 request held ${held} s`;
    }),
  ]);

  await check('SSE: the clock ticks and a channel event arrives', async () => {
    await page.click('#sse-clock-start');
    const chName = 'sse-' + Date.now().toString(36);
    await page.fill('#sse-ch-name', chName);
    await page.click('#sse-ch-start');
    await wait(() => document.querySelector('#sse').dataset.channel === 'open', null, 5000);
    await page.fill('#sse-ch-input', 'hello over SSE');
    await page.click('#sse-ch-publish');
    await wait(() => Number(document.querySelector('#sse').dataset.ticks || 0) >= 2, null, 6000);
    await wait(() => document.querySelector('#sse-ch-list').textContent.includes('hello over SSE'), null, 5000);
    const clock = await text('#sse-clock-time');
    assert(/^\d\d:\d\d:\d\d$/.test(clock), `clock shows ${clock}`);
    const log = await text('#sse-log');
    assert(log.includes('text/event-stream') && /data: \d{4}-\d\d-\d\dT/.test(log), 'the wire log lacks the stream head or clock events');
    assert(log.includes('id: 1') && log.includes('data: hello over SSE'), 'the wire log lacks the channel event fields');
    return `${await page.$eval('#sse', (e) => e.dataset.ticks)} ticks, last ${clock}`;
  });

  await check('WebSocket chat: joined line and a second socket\'s message', async () => {
    await page.click('#ws-connect');
    await wait(() => /User\d+ joined/.test(document.querySelector('#ws-chat').textContent), null, 5000);
    const other = await page.evaluate(() => new Promise((resolve, reject) => {
      const w = new WebSocket(`ws://${location.host}/`);
      const t = setTimeout(() => reject(new Error('the second WebSocket got no echo')), 5000);
      let name = null;
      w.onmessage = (e) => {
        const j = /^(User\d+) joined$/.exec(e.data);
        if (j && !name) { name = j[1]; w.send('hello from a second socket'); }
        if (name && e.data === `${name}: hello from a second socket`) { clearTimeout(t); window.__second = w; resolve(name); }
      };
      w.onerror = () => reject(new Error('the second WebSocket failed'));
    }));
    await wait((n) => document.querySelector('#ws-chat').textContent.includes(`${n}: hello from a second socket`), other, 5000);
    await page.fill('#ws-input', 'hello from the panel');
    await page.click('#ws-send');
    await wait(() => /User\d+: hello from the panel/.test(document.querySelector('#ws-chat').textContent), null, 5000);
    await page.evaluate(() => window.__second.close(1000));
    await wait((n) => document.querySelector('#ws-chat').textContent.includes(`${n} left`), other, 5000);
    const log = await text('#ws-log');
    assert(log.includes('101 Switching Protocols') && log.includes('opcode=0x1 (text) MASK=1'), 'the wire log lacks the handshake or frames');
    return `second socket was ${other}`;
  });

  await check('channels: WS → SSE → long poll → WS loses and repeats nothing', async () => {
    const ch = 'tour-' + Date.now().toString(36);
    const publish = (texts) => page.evaluate(async ([name, ts]) => {
      for (const t of ts) { const r = await fetch(`/channels/${name}`, { method: 'POST', body: t }); if (r.status !== 201) throw new Error('publish ' + r.status); }
    }, [ch, texts]);
    // Clicks the switch and publishes at once, while the new transport is still connecting.
    const switchAndPublish = (texts) => page.evaluate(async ([name, ts]) => {
      document.querySelector('#ch-switch').click();
      for (const t of ts) { const r = await fetch(`/channels/${name}`, { method: 'POST', body: t }); if (r.status !== 201) throw new Error('publish ' + r.status); }
    }, [ch, texts]);
    const count = (n, t) => wait(([k, tr]) => JSON.parse(document.querySelector('#ch-received').dataset.ids).length >= k
      && document.querySelector('#chan').dataset.transport === tr, [n, t], 8000);

    await page.fill('#ch-name', ch);
    await page.click('#ch-subscribe');
    await wait(() => document.querySelector('#chan').dataset.ready === 'ws', null, 5000);
    await page.fill('#ch-input', 'one'); await page.click('#ch-publish');
    await count(1, 'ws');
    await publish(['two']);
    await count(2, 'ws');
    await switchAndPublish(['three (in the switch)', 'four (in the switch)']);
    await count(4, 'sse');
    await publish(['five']);
    await count(5, 'sse');
    await switchAndPublish(['six (in the switch)', 'seven (in the switch)']);
    await count(7, 'lp');
    await publish(['eight']);
    await count(8, 'lp');
    await switchAndPublish(['nine (in the switch)']);
    await count(9, 'ws');
    await page.waitForTimeout(300); // a late duplicate would show up here
    const ids = JSON.parse(await page.$eval('#ch-received', (e) => e.dataset.ids));
    const want = Array.from({ length: 9 }, (_, i) => i + 1);
    assert(JSON.stringify(ids) === JSON.stringify(want), `received ids ${JSON.stringify(ids)}, expected ${JSON.stringify(want)}`);
    assert(await text('#ch-dups') === '0' && await text('#ch-gaps') === '0', 'the panel counted gaps or duplicates');
    const timeline = await text('#ch-timeline');
    for (const t of ['WebSocket #', 'SSE #', 'long poll #']) assert(timeline.includes(t), `no message came over ${t.slice(0, -2)}: ${timeline}`);
    const log = await text('#ch-log');
    assert(log.includes('/ws?after=') && log.includes('/events?lastEventId=') && log.includes('/poll?after='), 'the wire log lacks a resume request');
    // The panel runs on pushwire.js and shows each switch and the state it reports.
    assert(log.includes('subscribe("' + ch + '"'), 'the wire log shows no subscribe() of pushwire.js');
    for (const sw of ['WebSocket → SSE', 'SSE → long poll', 'long poll → WebSocket']) assert(log.includes(`transport: ${sw}`), `the wire log does not show the switch ${sw}`);
    assert(await page.$eval('#chan', (e) => e.dataset.switches) === '3', 'the panel did not count 3 switches');
    assert(await text('#ch-state') === 'open · WebSocket', `the panel's state reads ${await text('#ch-state')}`);
    return timeline;
  });

  await check('webhooks: registered receiver gets a signed, verified delivery', async () => {
    await page.click('#wh-register');
    await wait(() => ['registered', 'unsupported', 'error'].includes(document.querySelector('#hook').dataset.state), null, 5000);
    let s = await state('#hook');
    if (s === 'unsupported') return { pending: true, why: 'POST /webhooks answered 501' };
    assert(s === 'registered', 'registration failed');
    await page.click('#wh-run');
    await wait(() => ['delivered', 'unsupported', 'error'].includes(document.querySelector('#hook').dataset.state), null, 25_000);
    s = await state('#hook');
    if (s === 'unsupported') return { pending: true, why: 'the receiver answered 501' };
    assert(s === 'delivered', 'no delivery was shown');
    const v = await page.$eval('#wh-deliveries', (e) => e.dataset.verified);
    assert(v === 'true', `the receiver says verified=${v}`);
    // The signature the page shows, recomputed here with Node's own HMAC.
    const d = await page.$eval('#wh-deliveries', (e) => ({ ...e.dataset }));
    const want = 'sha1=' + createHmac('sha1', d.secret).update(d.body).digest('hex');
    assert(d.signature === want, `the page shows ${d.signature}, HMAC-SHA1 gives ${want}`);
    // The one-shot callback of a job (docs/api.md section 1).
    await page.click('#wh-run-callback');
    await wait(() => document.querySelector('#hook').dataset.state === 'waiting', null, 5000).catch(() => {});
    await wait(() => ['delivered', 'unsupported', 'error'].includes(document.querySelector('#hook').dataset.state), null, 25_000);
    assert(await state('#hook') === 'delivered', 'the callback job\'s delivery was not shown');
    const v2 = await page.$eval('#wh-deliveries', (e) => e.dataset.verified);
    assert(v2 === 'true', `callback delivery verified=${v2}`);
    return 'both deliveries verified';
  });

  await check('WebSocket compression: Chromium negotiates permessage-deflate; 2 KiB of JSON both ways', async () => {
    // Chromium offers permessage-deflate on every WebSocket; the server
    // compresses messages of 64 bytes or more for connections that agreed
    // (RFC 7692). A wrong RSV1 frame or bad DEFLATE data would fail the
    // connection on Chromium's side (1002), so intact text is the check.
    const ch = 'zip-' + Date.now().toString(36);
    const r = await page.evaluate((name) => new Promise((resolve, reject) => {
      const big = JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ user: 'u' + (i * 7919 % 1000), event: ['click', 'view'][i % 2], x: i * 37 % 1280, seq: i })));
      const t = setTimeout(() => reject(new Error('no echo or no channel message within 5 s')), 5000);
      const echo = new WebSocket(`ws://${location.host}/echo`);
      const sub = new WebSocket(`ws://${location.host}/channels/${name}/ws`);
      const got = {};
      const done = () => { if (got.echo && got.sub) { clearTimeout(t); echo.close(1000); sub.close(1000); resolve(got); } };
      echo.onopen = () => echo.send(big);
      echo.onmessage = (e) => { got.echo = { ext: echo.extensions, ok: e.data === big }; done(); };
      sub.onopen = async () => {
        const p = await fetch(`/channels/${name}`, { method: 'POST', body: big });
        if (p.status !== 201) reject(new Error('publish ' + p.status));
      };
      sub.onmessage = (e) => { const m = JSON.parse(e.data); got.sub = { ext: sub.extensions, ok: m.data === big }; done(); };
      echo.onerror = sub.onerror = () => reject(new Error('a compressed WebSocket failed'));
    }), ch);
    for (const [k, v] of Object.entries(r)) {
      assert(v.ext.startsWith('permessage-deflate'), `${k}: negotiated extensions "${v.ext}"`);
      assert(v.ok, `${k}: the 2 KiB message came back changed`);
    }
    return `extensions: ${r.echo.ext}`;
  });

  await check('every wire log shows live traffic', async () => {
    for (const id of ['sp-log', 'lp-log', 'sse-log', 'ws-log', 'ch-log', 'wh-log']) {
      const n = await page.$eval('#' + id, (e) => e.childElementCount);
      assert(n > 0, `#${id} is empty`);
    }
    await wait(() => /open: \d+ http/.test(document.querySelector('#stats').textContent), null, 5000);
  });

  await check('no JavaScript error, no error answer, no request to another host', async () => {
    assert(jsErrors.length === 0, 'JavaScript errors:\n' + jsErrors.join('\n'));
    assert(foreign.length === 0, 'requests to other hosts:\n' + foreign.join('\n'));
    assert(badAnswers.length === 0, 'error answers:\n' + badAnswers.join('\n'));
  });

  await check(`screenshot saved to ${shot}`, async () => {
    mkdirSync(dirname(shot), { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: shot, fullPage: true });
    if (process.env.SCREENSHOT_MOBILE) {
      await page.setViewportSize({ width: 412, height: 900 });
      await page.screenshot({ path: process.env.SCREENSHOT_MOBILE, fullPage: true });
    }
  });

  exitCode = report() ? 1 : 0;
} catch (err) {
  console.error('browser: the run broke off:', err);
  report();
  exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  if (proxy) await proxy.close();
}
process.exit(exitCode);
