// Graceful drain on SIGTERM, with the real binary and a real streaming tool: while a long
// response streams through the proxy, SIGTERM turns /readyz to 503, the listener stops
// accepting, the stream finishes intact and the process exits 0; a stream longer than
// --shutdown-grace-ms is cut when the grace period ends and the process still exits 0; so are
// the sockets the listeners handed over (a plain CONNECT tunnel, an intercepted one, a WebSocket).
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import { basic, connectorManifests, startProxy, type ProxyProcess } from './support/proxy';
import { startUpstream, type Upstream } from './support/upstream';

const CLIENT = basic('anyone', 'good-token-123');
const CHUNK = 16 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A tool that streams `chunks` deterministic chunks (or forever when undefined), one every `everyMs`. */
async function streamingTool(chunks: number | undefined, everyMs: number): Promise<Upstream & { sent: () => string; upstreamClosed: Promise<void> }> {
  const h = createHash('sha256');
  let closed!: () => void;
  const upstreamClosed = new Promise<void>((r) => { closed = r; });
  const up = await startUpstream((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', ...(chunks === undefined ? {} : { 'content-length': chunks * CHUNK }) });
    let i = 0;
    const timer = setInterval(() => {
      const chunk = Buffer.alloc(CHUNK, i % 251);
      h.update(chunk);
      res.write(chunk);
      if (chunks !== undefined && ++i === chunks) { clearInterval(timer); res.end(); }
      else if (chunks === undefined) i++;
    }, everyMs);
    res.on('close', () => { clearInterval(timer); closed(); });
  });
  return Object.assign(up, { sent: () => h.copy().digest('hex'), upstreamClosed });
}

interface Streamed {
  /** Resolves when the first bytes arrived. */
  readonly started: Promise<void>;
  /** Bytes received so far. */
  received(): number;
  /** Whole body (and whether it ended cleanly) once the response is over. */
  readonly done: Promise<{ ok: boolean; bytes: number; sha: string; error?: string }>;
}

function stream(proxy: ProxyProcess, path: string): Streamed {
  const h = createHash('sha256');
  let bytes = 0;
  let started!: () => void;
  const startedP = new Promise<void>((r) => { started = r; });
  const done = new Promise<{ ok: boolean; bytes: number; sha: string; error?: string }>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path, agent: false, headers: { authorization: CLIENT } }, (res: IncomingMessage) => {
      res.on('data', (c: Buffer) => { bytes += c.length; h.update(c); started(); });
      res.on('end', () => resolve({ ok: res.complete, bytes, sha: h.digest('hex') }));
      res.on('error', (e) => resolve({ ok: false, bytes, sha: '', error: e.message }));
      res.on('aborted', () => resolve({ ok: false, bytes, sha: '', error: 'aborted' }));
    });
    req.on('error', (e) => resolve({ ok: false, bytes, sha: '', error: e.message }));
    req.end();
  });
  return { started: startedP, received: () => bytes, done };
}

async function readyz(proxy: ProxyProcess): Promise<{ status: number; text: string }> {
  const r = await fetch(`http://127.0.0.1:${proxy.opsPort}/readyz`);
  return { status: r.status, text: await r.text() };
}

/** Polls until a new TCP connection to `port` is refused (the listener closed). */
async function refusedSoon(port: number): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const r = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve('connected'); });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    if (r !== 'connected') return r;
    await sleep(20);
  }
  return 'still accepting';
}

describe('graceful drain on SIGTERM', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => { while (cleanup.length > 0) await cleanup.pop()!(); });

  test('a streaming response in flight completes intact; readiness fails and new connections are refused meanwhile; exit 0', async () => {
    const up = await streamingTool(30, 100); // about 3 s
    cleanup.push(() => up.close());
    const proxy = await startProxy({
      manifests: { 'tool.yaml': connectorManifests({ address: up.origin, name: 'tool', resolver: 'path' }) },
      args: ['--shutdown-grace-ms', '20000', '--no-probes'],
    });
    cleanup.push(() => proxy.stop());
    assert.equal((await readyz(proxy)).status, 200);

    const s = stream(proxy, '/namespaces/team/connectors/tool/stream');
    await s.started;
    const exited = new Promise<{ code: number | null; bytesAtExit: number }>((r) => proxy.child.once('exit', (code) => r({ code, bytesAtExit: s.received() })));
    proxy.child.kill('SIGTERM');

    // While the stream is still flowing: not ready, and no new connections.
    const notReady = await (async () => {
      for (let i = 0; i < 200; i++) {
        const r = await readyz(proxy);
        if (r.status !== 200) return r;
        await sleep(20);
      }
      return readyz(proxy);
    })();
    assert.equal(notReady.status, 503);
    assert.match(notReady.text, /shutting down/);
    assert.equal(await refusedSoon(proxy.port), 'ECONNREFUSED');
    assert.ok(s.received() < 30 * CHUNK, 'the checks above ran while the stream was in flight');

    const body = await s.done;
    assert.equal(body.error, undefined);
    assert.equal(body.ok, true);
    assert.equal(body.bytes, 30 * CHUNK);
    assert.equal(body.sha, up.sent(), 'the client got exactly what the tool sent');
    const exit = await exited;
    assert.equal(exit.code, 0);
    assert.equal(exit.bytesAtExit, 30 * CHUNK, 'the process exited only after the stream was delivered');
    assert.match(proxy.logs(), /"msg":"draining"/);
    assert.match(proxy.logs(), /"msg":"stopped"/);
  });

  test('a stream longer than --shutdown-grace-ms is cut when the grace period ends, and the process still exits 0', async () => {
    const up = await streamingTool(undefined, 50); // never ends by itself
    cleanup.push(() => up.close());
    const proxy = await startProxy({
      manifests: { 'tool.yaml': connectorManifests({ address: up.origin, name: 'tool', resolver: 'path' }) },
      args: ['--shutdown-grace-ms', '1500', '--no-probes'],
    });
    cleanup.push(() => proxy.stop());

    const s = stream(proxy, '/namespaces/team/connectors/tool/forever');
    await s.started;
    const exited = new Promise<number | null>((r) => proxy.child.once('exit', (code) => r(code)));
    proxy.child.kill('SIGTERM');
    const atSigterm = s.received();
    const body = await s.done;
    assert.equal(body.ok, false, 'the endless stream was cut');
    assert.ok(body.bytes > atSigterm, 'bytes kept flowing during the grace period');
    assert.equal(await exited, 0);
    // The proxy let go of the tool as well: its upstream request was closed.
    await up.upstreamClosed;
  });

  test('CONNECT tunnels and Upgrade sessions: a plain tunnel keeps flowing during the grace period, then it, an idle intercepted tunnel and a WebSocket are cut; exit 0', { timeout: 60_000 }, async () => {
    // The proxy cuts the tunnel at the end of the grace period: a reset here is expected.
    const echo = createNetServer((sock) => { sock.on('error', () => undefined); sock.pipe(sock); });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => echo.close(r)));
    const wsUp = await startUpstream((_req, res) => { res.writeHead(426).end(); });
    cleanup.push(() => wsUp.close());
    new WebSocketServer({ server: wsUp.server }).on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
    const caDir = mkdtempSync(join(tmpdir(), 'cproxy-drain-ca-'));
    cleanup.push(async () => rmSync(caDir, { recursive: true, force: true }));
    const proxy = await startProxy({
      manifests: {
        'ws.yaml': connectorManifests({ address: wsUp.origin, name: 'ws', resolver: 'path' }),
        // Intercepted at CONNECT; nothing listens there, and the tunnel sends no request.
        'https.yaml': connectorManifests({ address: 'https://127.0.0.1:9', name: 'secure' }),
      },
      args: ['--shutdown-grace-ms', '1500', '--no-probes', '--proxy-ca-dir', caDir],
    });
    cleanup.push(() => proxy.stop());
    const tunnel = async (authority: string): Promise<Socket> => {
      const sock = connect(proxy.port, '127.0.0.1');
      sock.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\nproxy-authorization: ${basic('team/ws,team/secure', 'good-token-123')}\r\n\r\n`);
      const head = await new Promise<string>((r) => sock.once('data', (c: Buffer) => r(c.toString())));
      assert.match(head, /^HTTP\/1\.1 200/);
      sock.on('error', () => undefined);
      return sock;
    };
    const plain = await tunnel(`127.0.0.1:${(echo.address() as AddressInfo).port}`);
    let echoed = 0;
    plain.on('data', (c: Buffer) => { echoed += c.length; });
    const ticker = setInterval(() => plain.write('x'.repeat(64)), 50);
    cleanup.push(async () => clearInterval(ticker));
    const intercepted = tlsConnect({ socket: await tunnel('127.0.0.1:9'), rejectUnauthorized: false });
    intercepted.on('error', () => undefined);
    await new Promise((r) => intercepted.once('secureConnect', r));
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/namespaces/team/connectors/ws/`, { headers: { authorization: CLIENT } });
    ws.on('error', () => undefined);
    await new Promise((r) => ws.once('open', r));
    const closed = (e: { once(ev: 'close', f: () => void): unknown }): Promise<void> => new Promise((r) => e.once('close', () => r()));
    const allClosed = Promise.all([closed(plain), closed(intercepted), closed(ws)]);

    const exited = new Promise<number | null>((r) => proxy.child.once('exit', (code) => r(code)));
    proxy.child.kill('SIGTERM');
    const atSigterm = echoed;
    // Far past the grace period: a process still running then would never have exited by itself.
    const killer = setTimeout(() => proxy.child.kill('SIGKILL'), 15_000);
    cleanup.push(async () => clearTimeout(killer));
    assert.equal(await exited, 0, 'exited by itself (not killed)');
    await allClosed;
    assert.ok(echoed > atSigterm, 'the plain tunnel kept flowing during the grace period');
  });
});
