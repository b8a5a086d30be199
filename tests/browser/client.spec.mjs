// The browser client library (src/app/pushwire.js, docs/api.md section 3) in a
// headless Chromium, with the fault-injecting proxy of proxy.mjs between the
// page and pushwire. Every check compares exact sequences: the ids handed
// to onmessage, the gaps handed to ongap, the states handed to
// onstatechange, the requests the proxy saw.
//
//   node client.spec.mjs path/to/pushwire
//
// It starts two servers of its own: one with the default history, one with
// --history 5 (for truncation).
import { readFileSync } from 'node:fs';
import {
  LIB_PATH, assert, check, driver, launch, pageBehindProxy, publishAll, range, report, same, sleep, startServer,
} from './harness.mjs';

const bin = process.argv[2] || process.env.PUSHWIRE_BIN;
if (!bin) { console.error('usage: node client.spec.mjs path/to/pushwire'); process.exit(2); }

const watchdog = setTimeout(() => { console.error('client: the run took longer than 75 s; giving up'); report('client'); process.exit(1); }, 75_000);
const uniq = Date.now().toString(36);
const TRANSPORTS = ['websocket', 'sse', 'longpoll'];
const texts = (a, b) => range(a, b).map((i) => `m${i}`);
// Quick retries so a test spends its time on faults, not on waiting.
const FAST = { backoffMs: 50, maxBackoffMs: 400, pollTimeout: 5 };

let exitCode = 1;
const servers = [], browser = await launch();
try {
  const main = await startServer(bin); servers.push(main);
  const short = await startServer(bin, ['--history', '5']); servers.push(short);
  const A = await pageBehindProxy(browser.context, main);
  const B = await pageBehindProxy(browser.context, short);
  const a = driver(A.page), b = driver(B.page);
  const requestsTo = (proxy, ch) => proxy.seen.filter((s) => s.path.includes(`/${ch}/`));
  console.log(`client: servers at ${main.url} and ${short.url} (--history 5); pages through proxies ${A.proxy.url} and ${B.proxy.url}; pushwire.js from ${A.libFrom}`);

  await check('pushwire.js: one module, no eval, no dependency, no global, under 400 lines', async () => {
    const src = readFileSync(LIB_PATH, 'utf8');
    const lines = src.split('\n').length;
    assert(lines <= 400, `${lines} lines`);
    assert(!/\beval\s*\(|new\s+Function\b/.test(src), 'uses eval or new Function');
    assert(!/^\s*import\b|\brequire\s*\(/m.test(src), 'imports something');
    assert(!/\b(window|globalThis|self)\s*\.\s*\w+\s*=/.test(src), 'assigns a global');
    same(A.globals, [], 'globals added by importing it');
    const exported = await A.page.evaluate(() => Object.keys(window.pw).sort());
    same(exported, ['publish', 'subscribe'], 'exports');
    return `${lines} lines`;
  });

  await check('publish(): resolves to {id}, rejects with the server\'s sentence', async () => {
    const ch = `pub-${uniq}`;
    const r = await A.page.evaluate(async (c) => {
      const one = await window.pw.publish(c, 'first');
      const two = await window.pw.publish(c, 'second');
      let err = null;
      try { await window.pw.publish('no spaces allowed', 'x'); } catch (e) { err = e.message; }
      return { one, two, err };
    }, ch);
    same([r.one, r.two], [{ id: 1 }, { id: 2 }], 'answers');
    assert(r.err && !/HTTP 400/.test(r.err) && r.err.length > 5, `the rejection says ${r.err}`);
    return `rejection: "${r.err}"`;
  });

  await check('(1) every connection cut at random moments, resumes replaying up to 5 old messages, 200 messages: 1..200 exactly once, in order, on each transport', async () => {
    const chs = [...TRANSPORTS, 'default'].map((t) => ({ t, ch: `drop-${t}-${uniq}` }));
    A.proxy.faults.dropAfterMs = [0, 600];
    A.proxy.faults.dropAfterBytes = [0, 4000];
    A.proxy.faults.rewindCursor = 5;
    for (const { t, ch } of chs) await a.start(ch, ch, { ...FAST, ...(t === 'default' ? {} : { transports: [t] }) });
    for (const { ch } of chs) await a.until(ch, "r.last !== null && r.states.some((s) => s.startsWith('open'))");
    for (let i = 1; i <= 200; i += 5) {
      await Promise.all(chs.map(({ ch }) => publishAll(main.url, ch, texts(i, i + 4))));
      await sleep(80);
    }
    for (const { ch } of chs) await a.until(ch, 'r.ids.length >= 200', 20_000);
    A.proxy.reset();
    await sleep(400);  // a late duplicate would show up here
    const notes = [];
    for (const { t, ch } of chs) {
      const r = await a.look(ch);
      same(r.ids, range(1, 200), `${t}: ids`);
      same(r.data, texts(1, 200), `${t}: data`);
      same(r.gaps, [], `${t}: gaps`);
      const cuts = requestsTo(A.proxy, ch).filter((s) => /cut/.test(s.fate)).length;
      assert(cuts >= 4, `${t}: only ${cuts} connections were cut`);
      notes.push(`${t}: ${cuts} cuts, ended on ${r.transport}`);
      await a.close(ch);
    }
    return notes.join('; ');
  });

  await check('(2) WebSocket upgrades refused (403): SSE, nothing lost; WebSocket again once upgrades pass', async () => {
    const ch = `noupgrade-${uniq}`;
    A.proxy.faults.refuseUpgrades = 'status';
    await a.start(ch, ch, { ...FAST, upgradeAfterMs: 1500 });
    await a.until(ch, 'r.last !== null');
    let n = 0;
    const more = (k) => { const from = n + 1; n += k; return publishAll(main.url, ch, texts(from, n)); };
    await more(5);  // while it falls back
    await a.until(ch, "r.states.includes('open sse')");
    await more(5);
    await a.until(ch, `r.ids.length === ${n}`);
    let r = await a.look(ch);
    same(r.states, ['connecting websocket', 'connecting sse', 'open sse'], 'states');
    same(requestsTo(A.proxy, ch).filter((s) => s.kind === 'ws').map((s) => s.fate), ['refused 403 Forbidden', 'refused 403 Forbidden'], 'upgrade attempts');
    // 1.5 s later it tries WebSocket again, is refused once, and goes back to SSE.
    const pump = setInterval(() => { more(1).catch(() => {}); }, 100);
    try {
      await a.until(ch, 'r.states.length >= 6', 5000);
      A.proxy.faults.refuseUpgrades = false;
      await a.until(ch, "r.states.at(-1) === 'open websocket'", 5000);
    } finally { clearInterval(pump); }
    await sleep(150);
    await more(3);
    await a.until(ch, `r.ids.length >= ${n}`);
    await sleep(200);
    r = await a.look(ch);
    same(r.states, ['connecting websocket', 'connecting sse', 'open sse', 'reconnecting websocket', 'reconnecting sse', 'open sse', 'reconnecting websocket', 'open websocket'], 'states');
    same(r.ids, range(1, n), 'ids');
    same(r.gaps, [], 'gaps');
    await a.close(ch);
    return `${n} messages; ${r.states.join(' → ')}`;
  });

  await check('(2b) WebSocket upgrades swallowed (never answered): SSE after the connect timeout, nothing lost, no socket left', async () => {
    const ch = `blackhole-${uniq}`;
    A.proxy.faults.refuseUpgrades = 'hang';
    await a.start(ch, ch, { ...FAST, connectTimeoutMs: 700 });
    await a.until(ch, 'r.last !== null');
    await publishAll(main.url, ch, texts(1, 4));
    await a.until(ch, "r.states.includes('open sse')", 5000);
    await publishAll(main.url, ch, texts(5, 8));
    await a.until(ch, 'r.ids.length === 8');
    const r = await a.look(ch);
    same(r.states, ['connecting websocket', 'connecting sse', 'open sse'], 'states');
    same(r.ids, range(1, 8), 'ids');
    await sleep(200);
    same(A.proxy.openTo(`/${ch}/`).map((s) => s.split(' ')[0]), ['sse'], 'connections open at the proxy');
    A.proxy.faults.refuseUpgrades = false;
    await a.close(ch);
    return `${requestsTo(A.proxy, ch).filter((s) => s.fate === 'swallowed').length} upgrades swallowed`;
  });

  await check('(3) upgrades and event streams refused: long polling, nothing lost', async () => {
    const ch = `nostream-${uniq}`;
    A.proxy.faults.refuseUpgrades = 'status';
    A.proxy.faults.refuseEvents = true;
    await a.start(ch, ch, { ...FAST });
    await a.until(ch, 'r.last !== null');
    await publishAll(main.url, ch, texts(1, 5));
    await a.until(ch, "r.states.includes('open longpoll')");
    await publishAll(main.url, ch, texts(6, 10), { gapMs: 30 });
    await a.until(ch, 'r.ids.length >= 10');
    await sleep(200);
    const r = await a.look(ch);
    same(r.states, ['connecting websocket', 'connecting sse', 'connecting longpoll', 'open longpoll'], 'states');
    same(r.ids, range(1, 10), 'ids');
    same(r.data, texts(1, 10), 'data');
    const kinds = requestsTo(A.proxy, ch).map((s) => `${s.kind} ${s.fate.split(' ')[0]}`);
    same(kinds.slice(0, 5), ['poll forwarded', 'ws refused', 'ws refused', 'sse refused', 'sse refused'], 'the first requests');
    assert(kinds.slice(5).every((k) => k === 'poll forwarded'), `then: ${kinds.slice(5)}`);
    A.proxy.reset();
    await a.close(ch);
    return `${kinds.length} requests`;
  });

  await check('(4) more published while away than --history 5 keeps: ongap once with after/oldest, then delivery goes on', async () => {
    const chs = TRANSPORTS.map((t) => ({ t, ch: `gap-${t}-${uniq}` }));
    for (const { t, ch } of chs) await b.start(ch, ch, { ...FAST, transports: [t] });
    for (const { ch } of chs) await b.until(ch, "r.states.some((s) => s.startsWith('open'))");
    for (const { ch } of chs) await publishAll(short.url, ch, texts(1, 3));
    for (const { ch } of chs) await b.until(ch, 'r.ids.length === 3');
    B.proxy.faults.down = true;
    B.proxy.dropAll();
    await sleep(100);
    for (const { ch } of chs) await publishAll(short.url, ch, texts(4, 23));
    await sleep(300);
    B.proxy.faults.down = false;
    for (const { ch } of chs) await b.until(ch, 'r.ids.length >= 8');
    for (const { ch } of chs) await publishAll(short.url, ch, texts(24, 26));
    for (const { ch } of chs) await b.until(ch, 'r.ids.length >= 11');
    await sleep(300);
    for (const { t, ch } of chs) {
      const r = await b.look(ch);
      same(r.gaps, [{ after: 3, oldest: 19 }], `${t}: gaps`);
      same(r.ids, [1, 2, 3, ...range(19, 26)], `${t}: ids`);
      same(r.data, [...texts(1, 3), ...texts(19, 26)], `${t}: data`);
      await b.close(ch);
    }
    return 'ongap({after: 3, oldest: 19}) once on each transport';
  });

  await check('(4b) a cursor from before a restart (after > last id): ongap, then the channel from its oldest', async () => {
    const chs = TRANSPORTS.map((t) => ({ t, ch: `ahead-${t}-${uniq}` }));
    for (const { ch } of chs) await publishAll(short.url, ch, texts(1, 3));
    for (const { t, ch } of chs) await b.start(ch, ch, { ...FAST, transports: [t], after: 50 });
    for (const { ch } of chs) await b.until(ch, 'r.ids.length >= 3');
    for (const { ch } of chs) await publishAll(short.url, ch, texts(4, 4));
    for (const { ch } of chs) await b.until(ch, 'r.ids.length >= 4');
    await sleep(200);
    for (const { t, ch } of chs) {
      const r = await b.look(ch);
      same(r.gaps, [{ after: 50, oldest: 1 }], `${t}: gaps`);
      same(r.ids, [1, 2, 3, 4], `${t}: ids`);
      await b.close(ch);
    }
  });

  await check('(7) offline: failures do not count toward fallback; the online event ends the backoff at once', async () => {
    const ch = `offline-${uniq}`, cold = `offline-cold-${uniq}`;
    await a.start(ch, ch, { transports: ['websocket', 'sse'], backoffMs: 60000, maxBackoffMs: 60000 });
    await a.until(ch, "r.states.includes('open websocket')");
    await publishAll(main.url, ch, texts(1, 2));
    await a.until(ch, 'r.ids.length === 2');
    await A.page.context().setOffline(true);
    same(await A.page.evaluate(() => navigator.onLine), false, 'navigator.onLine while offline');
    A.proxy.dropAll();
    // Subscribing while offline: every connect fails, none counts.
    await a.start(cold, cold, { transports: ['websocket', 'sse'], after: 0, fallbackAfter: 1, backoffMs: 100, maxBackoffMs: 200 });
    await publishAll(main.url, ch, texts(3, 5));
    await publishAll(main.url, cold, texts(1, 2));
    await sleep(1200);
    await A.page.context().setOffline(false);
    const t0 = Date.now();
    await a.until(ch, 'r.ids.length === 5', 3000);
    const took = Date.now() - t0;
    await a.until(cold, 'r.ids.length === 2', 3000);
    const r = await a.look(ch), c = await a.look(cold);
    same(r.ids, range(1, 5), 'ids');
    same(r.states, ['connecting websocket', 'open websocket', 'reconnecting websocket', 'open websocket'], 'states');
    same(c.states, ['connecting websocket', 'open websocket'], 'states of the one subscribed offline');
    same(c.ids, [1, 2], 'ids of the one subscribed offline');
    const waited = r.log.map((l) => /reconnecting in (\d+) ms/.exec(l)).filter(Boolean).map((m) => Number(m[1]));
    await a.close(ch); await a.close(cold);
    return `back ${took} ms after the online event (the backoff said ${waited.join(', ')} ms); ${c.log.filter((l) => /ended/.test(l)).length} offline failures, none counted`;
  });

  await check('(6) close() leaves no connection open at the proxy, no timer, no listener, and nothing arrives after it', async () => {
    // Whatever an earlier check left open is closed first, by close() too.
    await A.page.evaluate(() => { for (const r of Object.values(window.recs)) r.sub.close(); });
    const chs = TRANSPORTS.map((t) => ({ t, ch: `close-${t}-${uniq}` }));
    for (const { t, ch } of chs) await a.start(ch, ch, { ...FAST, transports: [t] });
    for (const { ch } of chs) await a.until(ch, "r.states.some((s) => s.startsWith('open'))");
    for (const { ch } of chs) await publishAll(main.url, ch, texts(1, 1));
    for (const { ch } of chs) await a.until(ch, 'r.ids.length === 1');
    for (const { ch } of chs) assert(A.proxy.openTo(`/${ch}/`).length === 1, `${ch}: ${A.proxy.openTo(`/${ch}/`)}`);
    for (const { ch } of chs) await a.close(ch);
    const closedAt = Date.now();
    await sleep(300);
    for (const { ch } of chs) same(A.proxy.openTo(`/${ch}/`), [], `${ch}: connections open at the proxy after close()`);
    same(await a.pending(), { timers: 0, listeners: [], intervals: 0 }, 'the library\'s timers and listeners after close()');
    for (const { ch } of chs) await publishAll(main.url, ch, texts(2, 2));
    await sleep(800);
    for (const { t, ch } of chs) {
      const r = await a.look(ch);
      same(r.ids, [1], `${t}: ids`);
      same(r.states.at(-1), 'closed', `${t}: last state`);
      same(requestsTo(A.proxy, ch).filter((s) => s.at > closedAt), [], `${t}: requests after close()`);
    }
    // And while it waits out a backoff, or hangs in a connect.
    const waiting = `close-waiting-${uniq}`, hanging = `close-hanging-${uniq}`;
    A.proxy.faults.refuseUpgrades = 'hang';
    await a.start(hanging, hanging, { after: 0 });
    await a.until(hanging, 'r.log.some((l) => /ws\\?after=0/.test(l))');
    await sleep(200);
    same(A.proxy.openTo(`/${hanging}/`).length, 1, 'the swallowed upgrade is open');
    A.proxy.faults.down = true;
    // (SSE: Chromium holds a second WebSocket to a host while one is still connecting.)
    await a.start(waiting, waiting, { backoffMs: 20000, after: 0, transports: ['sse'] });
    await a.until(waiting, 'r.log.some((l) => /reconnecting in/.test(l))');
    await a.close(waiting); await a.close(hanging);
    const t1 = Date.now();
    await sleep(500);
    same(A.proxy.openTo(`/${hanging}/`), [], 'connections open after close() during a connect');
    same(await a.pending(), { timers: 0, listeners: [], intervals: 0 }, 'the library\'s timers and listeners after close() during a backoff and a connect');
    same(A.proxy.seen.filter((s) => s.at > t1).length, 0, 'requests after close()');
    A.proxy.reset();
  });

  await check('no uncaught error in the pages', async () => {
    same([...A.errors, ...B.errors], [], 'page errors');
  });
  await A.proxy.close(); await B.proxy.close();
  exitCode = report('client') ? 1 : 0;
} catch (err) {
  console.error('client: the run broke off:', err);
  report('client');
  exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await browser.close();
  for (const s of servers) await s.stop();
}
process.exit(exitCode);
