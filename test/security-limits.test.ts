// Limits against abusive clients, on the real proxy binary: header size and count, URL
// length, slowloris, stalled bodies, idle keep-alive and many connections. Each must be
// refused or cut in bounded time, and the proxy's sockets, descriptors and memory go back.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { connectorManifests, startProxy, type ProxyProcess } from './support/proxy';
import { closedWithin, openFds, openSocket, rawExchange, rssOf, startRecordingUpstream, waitFor, type RecordingUpstream } from './support/raw';
import { request } from './support/http';

const P = '/namespaces/team/connectors/tool';
const H = 'Host: 127.0.0.1\r\nAuthorization: Bearer good-token-123\r\n';
const HEADERS_TIMEOUT = 1000;
const KEEPALIVE = 500;
const IDLE = 1500;

describe('limits on what a client may make the proxy hold', () => {
  let up: RecordingUpstream;
  let proxy: ProxyProcess;
  let pid: number;

  before(async () => {
    up = await startRecordingUpstream((req, res, body) => {
      const delay = /slow=(\d+)/.exec(req.url ?? '');
      const answer = (): void => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: req.url, n: body.length })); };
      if (delay) setTimeout(answer, Number(delay[1])); else answer();
    });
    proxy = await startProxy({
      manifests: { 'tool.yaml': connectorManifests({ address: `${up.origin}/base`, name: 'tool', resolver: 'path' }) },
      args: [
        '--client-headers-timeout-ms', String(HEADERS_TIMEOUT), '--client-keepalive-ms', String(KEEPALIVE),
        '--client-idle-timeout-ms', String(IDLE), '--max-header-size', '16384', '--max-url-length', '4096',
      ],
    });
    pid = proxy.child.pid!;
    // A tool that accepts any Upgrade and echoes what comes after it.
    up.server.on('upgrade', (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      socket.on('error', () => undefined); // the proxy may reset it when the client goes
      socket.pipe(socket);
    });
  });
  after(async () => {
    await proxy?.stop();
    await up?.close();
  });
  beforeEach(() => up.reset());

  async function inFlight(): Promise<number> {
    const m = await request(`http://127.0.0.1:${proxy.opsPort}/metrics`);
    return Number(/connectors_proxy_requests_in_flight (\d+)/.exec(m.text)![1]);
  }

  test('a header block over --max-header-size → 431, nothing reaches the tool', async () => {
    const r = await rawExchange(proxy.port, `GET ${P}/big HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.equal(r.statuses[0], 431, r.text);
    assert.ok(r.closed);
    assert.equal(up.requests.length, 0);
  });

  test('too many header fields → 431 (not silently cut at Node\'s 2000)', async () => {
    const many = Array.from({ length: 1500 }, (_, i) => `x-${i}: 1\r\n`).join('');
    const r = await rawExchange(proxy.port, `GET ${P}/many HTTP/1.1\r\n${H}${many}Connection: close\r\n\r\n`);
    assert.equal(r.statuses[0], 431, r.text);
    assert.match(r.text, /header fields/);
    assert.equal(up.requests.length, 0);
    const fine = Array.from({ length: 100 }, (_, i) => `x-${i}: 1\r\n`).join('');
    const ok = await rawExchange(proxy.port, `GET ${P}/fine HTTP/1.1\r\n${H}${fine}Connection: close\r\n\r\n`);
    assert.equal(ok.statuses[0], 200, ok.text);
    assert.equal(up.requests[0]!.headers['x-99'], '1');
  });

  test('a URL over --max-url-length → 414 naming the limit, nothing reaches the tool', async () => {
    const r = await request(proxy.url(`${P}/${'u'.repeat(5000)}`), { headers: { authorization: 'Bearer good-token-123' } });
    assert.equal(r.status, 414, r.text);
    assert.match(r.text, /4096/);
    assert.equal(up.requests.length, 0);
    const ok = await request(proxy.url(`${P}/${'u'.repeat(3000)}`), { headers: { authorization: 'Bearer good-token-123' } });
    assert.equal(ok.status, 200);
    const forward = await rawExchange(proxy.port, `GET http://127.0.0.1:${up.port}/${'u'.repeat(5000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.equal(forward.statuses[0], 414, 'forward-proxy targets too');
  });

  test('slowloris: headers trickled in are cut after --client-headers-timeout-ms', async () => {
    const s = await openSocket(proxy.port);
    s.write(`GET ${P}/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
    const timer = setInterval(() => { if (!s.destroyed) s.write('X-Drip: 1\r\n'); }, 200);
    const ms = await closedWithin(s, HEADERS_TIMEOUT * 4);
    clearInterval(timer);
    assert.ok(ms > 0, 'the proxy closed the connection');
    assert.ok(ms < HEADERS_TIMEOUT * 3, `closed after ${ms} ms`);
    assert.equal(up.requests.length, 0);
  });

  test('a stalled request body is cut after --client-idle-timeout-ms, and the upstream request aborted', async () => {
    const s = await openSocket(proxy.port);
    s.write(`PUT ${P}/stall HTTP/1.1\r\n${H}Content-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
    const ms = await closedWithin(s, IDLE * 4);
    assert.ok(ms > 0 && ms < IDLE * 3, `closed after ${ms} ms`);
    assert.ok(!up.requests.some((q) => q.url === '/base/stall'), 'the tool never got a complete body');
    await waitFor(async () => (await inFlight()) === 0, 'no request stays in flight');
  });

  test('an Upgrade session is not cut by --client-idle-timeout-ms (kubectl exec may idle)', async () => {
    const s = await openSocket(proxy.port);
    let got = '';
    s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    s.write(`GET ${P}/ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
    await waitFor(() => got.includes('101 Switching'), () => `no 101: ${got}`);
    await new Promise((r) => setTimeout(r, IDLE * 2));
    assert.ok(!s.destroyed, 'the session is still open after twice the idle timeout');
    s.write('ping-after-idle');
    await waitFor(() => got.includes('ping-after-idle'), () => `no echo: ${got}`);
    s.destroy();
  });

  test('an idle keep-alive connection is closed after --client-keepalive-ms', async () => {
    const s = await openSocket(proxy.port);
    s.write(`GET ${P}/ka HTTP/1.1\r\n${H}\r\n`);
    const ms = await closedWithin(s, KEEPALIVE * 8);
    assert.ok(ms > 0 && ms < KEEPALIVE * 5, `closed after ${ms} ms`);
  });

  test('an open connection that never sends a byte is closed too', async () => {
    const s = await openSocket(proxy.port);
    const ms = await closedWithin(s, HEADERS_TIMEOUT * 4);
    assert.ok(ms > 0 && ms < HEADERS_TIMEOUT * 3, `closed after ${ms} ms`);
  });

  test('1000 idle connections: still serving, then all closed; descriptors and memory come back', async () => {
    await request(proxy.url(`${P}/warm`), { headers: { authorization: 'Bearer good-token-123' } });
    const before = openFds(pid);
    const rssBefore = rssOf(pid);
    const sockets: Socket[] = [];
    // Opened in batches of 100 at once; under load the first ones may already be timed out.
    for (let b = 0; b < 10; b++) {
      sockets.push(...await Promise.all(Array.from({ length: 100 }, async (_, i) => {
        const s = await openSocket(proxy.port);
        s.on('error', () => undefined);
        s.write(`GET ${P}/idle-${b * 100 + i} HTTP/1.1\r\nHost: 127.0.0.1\r\n`); // headers never finished
        return s;
      })));
    }
    // The proxy accepts from its backlog at its own pace: the highest count it reached.
    let held = 0;
    for (let i = 0; i < 50 && held < before.sockets + 900; i++) {
      held = Math.max(held, openFds(pid).sockets);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(held >= before.sockets + 900, `the proxy held the connections (${before.sockets} → at most ${held})`);
    const ok = await request(proxy.url(`${P}/meanwhile`), { headers: { authorization: 'Bearer good-token-123' } });
    assert.equal(ok.status, 200, 'other clients are served meanwhile');
    const grew = rssOf(pid) - rssBefore;
    assert.ok(grew < 64 * 1024 * 1024, `RSS grew ${Math.round(grew / 1048576)} MiB for 1000 connections`);
    await Promise.all(sockets.map((s) => closedWithin(s, HEADERS_TIMEOUT * 5)));
    assert.ok(sockets.every((s) => s.destroyed), 'every slow connection was closed by the proxy');
    await waitFor(() => Promise.resolve(openFds(pid).total <= before.total + 5), () => `descriptors back (${before.total} → ${openFds(pid).total})`);
  });

  test('200 concurrent requests to a slow tool: all answered, then sockets and in-flight back to the baseline', async () => {
    const before = openFds(pid);
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) =>
      request(proxy.url(`${P}/c${i}?slow=300`), { headers: { authorization: 'Bearer good-token-123' } })));
    assert.deepEqual([...new Set(replies.map((r) => r.status))], [200]);
    assert.equal(up.requests.length, 200);
    assert.equal(await inFlight(), 0);
    // Idle upstream connections are kept (--upstream-keepalive-ms); client ones closed (agent: false).
    await waitFor(() => Promise.resolve(openFds(pid).sockets <= before.sockets + 200), () => `sockets ${before.sockets} → ${openFds(pid).sockets}`);
  });
});
