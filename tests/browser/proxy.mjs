// A small fault-injecting HTTP proxy for the browser tests: it sits between
// the page and pushwire, reads the head of each request, and then either
// answers it itself (the test page, the library), refuses it the way a
// hostile middlebox would, or forwards it and pipes bytes both ways.
//
// Each TCP connection carries exactly one request: the proxy rewrites every
// non-upgrade request to `Connection: close`, so the server closes after the
// answer. That keeps the bookkeeping honest: a connection open at the proxy
// is a request in flight, an event stream or a WebSocket, never an idle
// keep-alive socket of the browser's pool.
//
// Faults, switched at any moment through `proxy.faults`:
//   refuseUpgrades  'status': answer WebSocket upgrades 403 and close;
//                   'hang': accept and never answer (a black hole)
//   refuseEvents    answer requests for /events 502 and close
//   down            close every open connection now, and each new one at once
//   dropAfterMs     [min, max]: cut every forwarded connection at a random
//                   moment in that range after it was accepted
//   dropAfterBytes  [min, max]: cut every forwarded connection after a random
//                   number of bytes of the answer (mid-head, mid-body, mid-frame)
//   rewindCursor    N: move every resume cursor (after=, lastEventId=) back by
//                   1..N, so that the server replays what the client already
//                   has (an overlapping replay, as from a lagging replica)
//
// `serve(method, target)` may answer a request (not an upgrade) itself ({status, type, body},
// or a promise of it);
// `gate({kind, method, target, fields})` may refuse one ({refuse: '401
// Unauthorized', headers: [...]}) or forward it and cut it at a moment
// ({cutAt: epoch ms}): the token spec uses it to play section 8's rules.
import net from 'node:net';

export async function startProxy({ upstreamPort, serve = () => null, gate = () => null }) {
  const faults = { refuseUpgrades: false, refuseEvents: false, down: false, dropAfterMs: null, dropAfterBytes: null, rewindCursor: 0 };
  const open = new Set();     // every client connection not yet closed
  const seen = [];            // one entry per request: {kind, method, path, fate}
  let nextId = 1;

  const server = net.createServer((client) => {
    const conn = { id: nextId++, client, upstream: null, kind: 'unknown', path: '', timer: null };
    open.add(conn);
    const kill = () => {
      clearTimeout(conn.timer);
      client.destroy();
      if (conn.upstream) conn.upstream.destroy();
    };
    conn.kill = kill;
    client.on('close', () => { open.delete(conn); kill(); });
    client.on('error', () => {});
    if (faults.down) { seen.push({ kind: 'down', path: '', fate: 'cut (down)' }); kill(); return; }

    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) { if (head.length > 65536) kill(); return; }
      client.off('data', onData);
      client.pause();
      route(conn, head.subarray(0, end).toString('latin1'), head.subarray(end + 4)).catch(() => conn.kill());
    };
    client.on('data', onData);
  });

  async function route(conn, headText, rest) {
    const { client } = conn;
    let [requestLine, ...fields] = headText.split('\r\n');
    if (faults.rewindCursor) {
      requestLine = requestLine.replace(/([?&](?:after|lastEventId)=)(\d+)/, (_, k, v) =>
        k + Math.max(0, Number(v) - 1 - Math.floor(Math.random() * faults.rewindCursor)));
    }
    const [method, target = ''] = requestLine.split(' ');
    const path = target.split('?')[0];
    const upgrade = fields.some((f) => /^upgrade:\s*websocket\s*$/i.test(f));
    conn.kind = upgrade ? 'ws' : /\/events$/.test(path) ? 'sse' : /\/poll$/.test(path) ? 'poll' : 'http';
    conn.path = path;
    conn.target = target;
    const bearer = fields.some((f) => /^authorization:\s*bearer\s+\S/i.test(f));
    const entry = { kind: conn.kind, method, path, target, bearer, fate: 'forwarded', at: Date.now() };
    seen.push(entry);

    const local = upgrade ? null : await serve(method, target);
    if (local) {
      entry.fate = 'served';
      const body = Buffer.from(local.body);
      const head = `HTTP/1.1 ${local.status || 200} OK\r\nContent-Type: ${local.type}\r\nContent-Length: ${body.length}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n`;
      client.end(Buffer.concat([Buffer.from(head), body]));
      return;
    }
    if (faults.down) { entry.fate = 'cut (down)'; conn.kill(); return; }
    const verdict = gate({ kind: conn.kind, method, target, fields }) || {};
    if (verdict.refuse) {
      entry.fate = `refused ${verdict.refuse}`;
      const body = `{"error":"refused by the test proxy"}`;
      client.end([`HTTP/1.1 ${verdict.refuse}`, 'Content-Type: application/json', `Content-Length: ${body.length}`,
        ...(verdict.headers || []), 'Connection: close', '', body].join('\r\n'));
      return;
    }
    if (upgrade && faults.refuseUpgrades === 'hang') { entry.fate = 'swallowed'; return; }
    if ((upgrade && faults.refuseUpgrades) || (conn.kind === 'sse' && faults.refuseEvents)) {
      const status = upgrade ? '403 Forbidden' : '502 Bad Gateway';
      entry.fate = `refused ${status}`;
      const body = `{"error":"refused by the test proxy"}`;
      client.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }

    // Forward: one request per connection (see the top of the file).
    const kept = fields.filter((f) => upgrade || !/^(connection|keep-alive):/i.test(f));
    if (!upgrade) kept.push('Connection: close');
    const upstream = conn.upstream = net.connect(upstreamPort, '127.0.0.1');
    upstream.on('error', () => conn.kill());
    upstream.on('close', () => conn.kill());
    upstream.on('end', () => client.end());
    client.on('end', () => upstream.end());
    upstream.write([requestLine, ...kept].join('\r\n') + '\r\n\r\n');
    if (rest.length) upstream.write(rest);
    client.pipe(upstream);
    const pick = ([lo, hi]) => lo + Math.random() * (hi - lo);
    let budget = faults.dropAfterBytes ? Math.floor(pick(faults.dropAfterBytes)) : Infinity;
    upstream.on('data', (chunk) => {
      if (chunk.length >= budget) {
        client.write(chunk.subarray(0, budget));
        entry.fate += ', cut';
        conn.kill();
        return;
      }
      budget -= chunk.length;
      if (!client.write(chunk)) { upstream.pause(); client.once('drain', () => upstream.resume()); }
    });
    client.resume();
    if (faults.dropAfterMs) {
      conn.timer = setTimeout(() => { entry.fate += ', cut'; conn.kill(); }, pick(faults.dropAfterMs));
    } else if (verdict.cutAt) {
      conn.timer = setTimeout(() => { entry.fate += ', cut at exp'; conn.kill(); }, Math.max(0, verdict.cutAt - Date.now()));
    }
  }

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    faults,
    seen,
    // The connections open now whose request path contains `part`.
    openTo: (part) => [...open].filter((c) => c.path.includes(part)).map((c) => `${c.kind} ${c.target}`),
    dropAll: () => { for (const c of open) c.kill(); },
    reset: () => { Object.assign(faults, { refuseUpgrades: false, refuseEvents: false, down: false, dropAfterMs: null, dropAfterBytes: null, rewindCursor: 0 }); },
    close: () => new Promise((resolve) => { for (const c of open) c.kill(); server.close(resolve); }),
  };
}
