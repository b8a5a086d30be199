// pushwire.js: the browser client for pushwire channels (docs/api.md section 3).
//
//   import { subscribe, publish } from '/pushwire.js';
//   const sub = subscribe('news', {
//     onmessage: ({ id, data }) => console.log(id, data),
//     ongap: ({ after, oldest }) => console.log(`#${after + 1}..#${oldest - 1} are gone`),
//     onstatechange: (state, transport) => console.log(state, transport),
//   });
//   await publish('news', 'hello');
//   sub.close();
//
// One subscription is one cursor (`last`, the id of the last message handed
// to the application) carried from connection to connection. Every connect
// resumes after it, whatever the transport (`ws?after=N`,
// `events?lastEventId=N`, `poll?after=N`), and every message whose id is not
// above it is a replay already handed over and is dropped: so each message
// reaches `onmessage` once, in id order, across reconnects and fallbacks.
//
// Transports are tried in order (WebSocket, then SSE, then long polling);
// one that cannot be established `fallbackAfter` times in a row is left for
// the next one, and after `upgradeAfterMs` on a fallback the first one is
// tried again. docs/client.md tells the whole story with real exchanges.
//
// No dependency, no global, no eval: a module you can read in one sitting.

// Every tunable, with its default. Any of them may be given in `options`.
const DEFAULTS = {
  transports: ['websocket', 'sse', 'longpoll'],
  base: null,               // the server's URL; default: where this file was loaded from
  after: null,              // start after this id; default: from now on
  token: null,              // a string, or a function returning (a promise of) one
  backoffMs: 500,           // the first retry waits up to this long ...
  maxBackoffMs: 30000,      // ... doubling per failure up to this cap (full jitter)
  healthyMs: 10000,         // a connection open this long resets the backoff
  fallbackAfter: 2,         // failures to establish in a row before the next transport
  upgradeAfterMs: 60000,    // on a fallback transport, try the first one again after this
  connectTimeoutMs: 10000,  // a connect that has not opened by then has failed
  pollTimeout: 25,          // seconds the server may hold a long poll (API: 0..=120)
  onmessage: null, ongap: null, onstatechange: null,
  log: null,                // log(direction, text): '→' sent, '←' received, '·' a decision
};

// Where the server is: `options.base`, else the origin that served this
// module (so a page on another origin that imports it from pushwire works).
function serverUrl(base) {
  const url = new URL(base || '/', import.meta.url);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

// The token for one connect: `options.token` as a string, or what its
// function returns now (a token that expires is replaced on the next connect).
async function tokenFrom(token) {
  const value = typeof token === 'function' ? await token() : token;
  return value ? String(value) : null;
}

// A JWT's `exp` in milliseconds (read, not verified: that is the server's
// job), so that a stream the server ends at `exp` (docs/api.md section 8) is
// recognised as the token's end and not blamed on the transport.
function expiryOf(token) {
  try {
    const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return typeof claims.exp === 'number' ? claims.exp * 1000 : Infinity;
  } catch (_) {
    return Infinity;
  }
}

// Publishes one message: resolves to `{id}` (the 201's body), rejects with
// the server's error sentence otherwise.
export async function publish(channel, data, options = {}) {
  const token = await tokenFrom(options.token);
  const url = new URL(`channels/${encodeURIComponent(channel)}`, serverUrl(options.base));
  const res = await fetch(url, {
    method: 'POST', body: String(data),
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  const body = await res.json().catch(() => null);
  if (res.status !== 201) throw new Error((body && body.error) || `publish: HTTP ${res.status}`);
  return body;
}

export function subscribe(channel, options = {}) {
  const o = { ...DEFAULTS, ...options };
  const order = o.transports.filter((t) => t in TRANSPORTS);
  if (!order.length) throw new TypeError(`subscribe: no known transport in ${o.transports}`);
  const root = serverUrl(o.base);
  // The application's callbacks. One that throws is reported as uncaught,
  // and delivery goes on (a throw must not stop a long-poll loop).
  const notify = (name, ...args) => {
    try { if (o[name]) o[name](...args); } catch (err) { (globalThis.reportError || console.error)(err); }
  };
  const say = (dir, text) => notify('log', dir, text);

  let last = o.after == null ? null : Number(o.after);  // the cursor
  let current = 0;         // index into `order` of the transport in use
  let probing = null;      // while trying the first transport again: the index to go back to
  let failures = 0;        // failures to establish in a row on order[current]
  let attempt = 0;         // the backoff's exponent
  let conn = null;         // the connection (or connect) in progress
  let retryTimer = null, probeTimer = null;
  let everOpen = false, closed = false, wentOffline = false;
  let state = null, stateTransport = null;

  const setState = (s, t) => {
    if (s === state && t === stateTransport) return;
    state = s; stateTransport = t;
    notify('onstatechange', s, t);
  };

  // A URL for this channel, for `how` = 'fetch', 'sse' or 'ws'. fetch sends
  // the token as a header; EventSource and WebSocket cannot set one, so
  // they carry it as `access_token` (RFC 6750), added last and never logged.
  const urlFor = (suffix, params, token, how) => {
    const url = new URL(`channels/${encodeURIComponent(channel)}${suffix}`, root);
    for (const [k, v] of Object.entries(params)) if (v != null) url.searchParams.set(k, v);
    say('→', `GET ${url.pathname}${url.search}${how === 'ws' ? '  (WebSocket upgrade)' : ''}`);
    if (token && how !== 'fetch') url.searchParams.set('access_token', token);
    if (how === 'ws') url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url;
  };
  const fetchJson = async (url, token, signal) => {
    const res = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {}, signal, cache: 'no-store' });
    const text = await res.text();
    say('←', `${res.status} ${text.length > 200 ? text.slice(0, 200) + '…' : text}`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return JSON.parse(text);
  };

  // What a transport reports, for connection `c`. A connection we have
  // already left may still report (a late frame, an answer in flight):
  // `c !== conn` drops it.
  const events = (c) => ({
    open() {
      if (c !== conn) return;
      clearTimeout(c.connectTimer);
      c.openedAt = Date.now(); everOpen = true; probing = null;
      setState('open', c.t);
      // On a fallback, the better transport may get through later.
      if (current > 0) probeTimer = setTimeout(probe, o.upgradeAfterMs);
    },
    message(id, data) {
      if (c !== conn || !Number.isSafeInteger(id)) return;
      c.got = true;
      if (last !== null && id <= last) return;  // a replay of what we handed over
      last = id;
      notify('onmessage', { id, data });
    },
    gap(after, oldest) {
      if (c !== conn) return;
      c.got = true;
      say('·', `truncated: the messages after #${after} are gone, resuming at #${oldest}`);
      last = oldest - 1;  // so the next connect resumes there, and reports no gap again
      notify('ongap', { after, oldest });
    },
    end(reason) { ended(c, reason); },
    cursor: () => last,
    setCursor: (id) => { if (c === conn) last = id; },
  });

  async function connect() {
    retryTimer = null;
    const t = order[current];
    const c = conn = { t, got: false, openedAt: 0, exp: Infinity, stop: null, ac: new AbortController() };
    setState(everOpen ? 'reconnecting' : 'connecting', t);
    c.connectTimer = setTimeout(() => ended(c, `not open after ${o.connectTimeoutMs} ms`), o.connectTimeoutMs);
    let token;
    try {
      token = await tokenFrom(o.token);
    } catch (err) {
      // The application's token source failed: that says nothing about the
      // transport, so it counts toward no fallback; try again later.
      c.tokenFailed = true;
      return ended(c, `no token: ${String(err && err.message || err)}`);
    }
    try {
      if (token) c.exp = expiryOf(token);
      // Without a cursor, "from now on" is the channel's last id now: a
      // zero-timeout poll without `after` answers it. From then on every
      // connect carries a cursor, so nothing published after this moment
      // can fall between two connections. (Long polling learns it itself.)
      if (last === null && t !== 'longpoll') {
        const answer = await fetchJson(urlFor('/poll', { timeout: 0 }, token, 'fetch'), token, c.ac.signal);
        if (c === conn && last === null) last = answer.last;
      }
      if (c !== conn) return;
      c.stop = TRANSPORTS[t]({ urlFor, fetchJson, token, signal: c.ac.signal, tokenNow: () => tokenFrom(o.token), o }, events(c));
    } catch (err) {
      ended(c, String(err && err.message || err));
    }
  }

  // Leaves connection `c`: whatever it still reports is ignored.
  function detach(c) {
    conn = null;
    clearTimeout(c.connectTimer); clearTimeout(probeTimer);
    c.ac.abort();
    if (c.stop) c.stop();
  }

  // A connection (or a connect) is over: decide what comes next.
  function ended(c, reason) {
    if (c !== conn) return;
    detach(c);
    const lived = c.openedAt ? Date.now() - c.openedAt : 0;
    say('·', `${c.t} ended after ${lived} ms: ${reason}`);
    if (closed) return;
    if (lived >= 500 && (Date.now() >= c.exp - 1000 || /token expired/.test(reason))) {
      // The server ends a stream at its token's `exp` (a second of slack for
      // clocks): not the transport's fault. Connect again at once, which
      // asks for a fresh token. (Not for a stream that lived under half a
      // second: a token about to expire must not make a tight loop.)
      say('·', 'the token expired: reconnecting with a new one');
      return connect();
    }
    if (lived >= o.healthyMs) attempt = 0;
    if (c.tokenFailed) {
      // Not the transport's failure (see connect): back off, same transport.
    } else if (c.openedAt && (c.got || lived >= o.healthyMs)) {
      failures = 0;
    } else if (probing !== null) {
      say('·', `${c.t} still does not get through: back to ${order[probing]}`);
      current = probing; probing = null; failures = 0;
      return connect();
    } else if (navigator.onLine !== false && ++failures >= o.fallbackAfter && current < order.length - 1) {
      // Offline, nothing gets through: that says nothing about the transport.
      say('·', `${c.t} failed ${failures} times in a row: falling back to ${order[current + 1]}`);
      current++; failures = 0;
      return connect();
    }
    // Full jitter (anywhere from 0 to the exponential bound) spreads the
    // reconnects of many clients after a server restart.
    const delay = Math.round(Math.random() * Math.min(o.maxBackoffMs, o.backoffMs * 2 ** attempt));
    attempt++;
    say('·', `reconnecting in ${delay} ms`);
    setState(everOpen ? 'reconnecting' : 'connecting', order[current]);
    retryTimer = setTimeout(connect, delay);
  }

  // The periodic second chance of the first transport: if it fails to
  // establish once, `ended` goes straight back to the fallback.
  function probe() {
    if (closed || !conn) return;
    say('·', `trying ${order[0]} again`);
    probing = current; current = 0; failures = 0;
    detach(conn);
    connect();
  }

  // Waiting out a backoff is pointless once the network is back or the user
  // looks at the page: connect now. After an offline spell an open
  // connection may be dead without knowing it: replace it.
  const connectNow = () => {
    if (closed || retryTimer === null) return;
    clearTimeout(retryTimer);
    connect();
  };
  const onOnline = () => {
    const stale = wentOffline && conn && conn.openedAt;
    wentOffline = false;
    if (stale && !closed) { say('·', 'back online: replacing the connection'); detach(conn); connect(); } else connectNow();
  };
  const onOffline = () => { wentOffline = true; };
  const onVisible = () => { if (document.visibilityState === 'visible') connectNow(); };
  addEventListener('online', onOnline);
  addEventListener('offline', onOffline);
  if (typeof document !== 'undefined') document.addEventListener('visibilitychange', onVisible);

  connect();

  return {
    get last() { return last; },
    get transport() { return conn ? conn.t : null; },
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(retryTimer); clearTimeout(probeTimer);
      retryTimer = probeTimer = null;
      if (conn) ended(conn, 'closed by the application');
      removeEventListener('online', onOnline);
      removeEventListener('offline', onOffline);
      if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', onVisible);
      setState('closed', null);
    },
  };
}

// The transports. Each opens one connection from the cursor, reports
// through `on` (open, message, gap, end) and returns a function that stops
// it without another report.
const TRANSPORTS = {
  // WebSocket: text frames {"id","data"} and {"truncated":true,"after","oldest"}.
  websocket(c, on) {
    const ws = new WebSocket(c.urlFor('/ws', { after: on.cursor() }, c.token, 'ws'));
    ws.onopen = () => on.open();
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch (_) { return; }
      c.o.log && c.o.log('←', e.data.length > 200 ? e.data.slice(0, 200) + '…' : e.data);
      if (m.truncated) on.gap(m.after, m.oldest); else on.message(m.id, m.data);
    };
    ws.onclose = (e) => on.end(`close ${e.code}${e.reason ? ' ' + e.reason : ''}`);
    return () => { ws.onopen = ws.onmessage = ws.onclose = null; ws.close(1000); };
  },

  // Server-Sent Events. The browser's own reconnect is switched off (close
  // on the first error): ours brings a fresh token, a backoff and fallback.
  sse(c, on) {
    const es = new EventSource(c.urlFor('/events', { lastEventId: on.cursor() }, c.token, 'sse'));
    es.onopen = () => on.open();
    es.onmessage = (e) => {
      c.o.log && c.o.log('←', `id: ${e.lastEventId}  data: ${e.data.length > 200 ? e.data.slice(0, 200) + '…' : e.data}`);
      on.message(Number(e.lastEventId), e.data);
    };
    es.addEventListener('truncated', (e) => {
      c.o.log && c.o.log('←', `event: truncated  data: ${e.data}`);
      const d = JSON.parse(e.data);
      on.gap(d.after, d.oldest);
    });
    es.onerror = () => { es.close(); on.end('the event stream failed or ended'); };
    return () => { es.onopen = es.onmessage = es.onerror = null; es.close(); };
  },

  // Long polling: one request after another, each from the cursor. The
  // first is a zero-timeout poll, so "open" means the server answered.
  longpoll(c, on) {
    (async () => {
      for (let opened = false; !c.signal.aborted; opened = true) {
        const after = on.cursor();
        const timeout = opened ? c.o.pollTimeout : 0;
        // A held request that outlives its timeout by far is a dead connection.
        const guard = setTimeout(() => on.end('no answer to a long poll'), (timeout * 1000) + c.o.connectTimeoutMs);
        try {
          const token = opened ? await c.tokenNow() : c.token;  // every request is a connect
          if (c.signal.aborted) return;
          const answer = await c.fetchJson(c.urlFor('/poll', { after, timeout }, token, 'fetch'), token, c.signal);
          if (c.signal.aborted) return;
          if (!opened) on.open();
          if (answer.truncated) {
            // The long poll says only "truncated": the first message it holds
            // is the oldest kept, or, with none kept, the next id to come.
            on.gap(after, answer.messages.length ? answer.messages[0].id : answer.last + 1);
          }
          for (const m of answer.messages) on.message(m.id, m.data);
          const now = on.cursor();
          if (now === null || answer.last > now) on.setCursor(answer.last);
        } catch (err) {
          return on.end(String(err && err.message || err));
        } finally {
          clearTimeout(guard);
        }
      }
    })();
    return () => {};  // the AbortController of the connection stops the request
  },
};
