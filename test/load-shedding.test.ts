// Admission control (issue 19) on the real proxy binary: beyond --max-concurrent-exchanges
// a request is answered 503 with Retry-After at once and nothing reaches the tool, while the
// admitted streams complete byte for byte; beyond --max-client-connections a new
// connection's request gets 503 and the connection is closed. Upgrade sessions count as
// exchanges. Counters, in-flight and descriptors go back to their baseline.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import { connectorManifests, startProxy, type ProxyProcess } from './support/proxy';
import { openFds, openSocket, startRecordingUpstream, waitFor, type RecordingUpstream } from './support/raw';
import { request } from './support/http';
import { run } from './support/run';
import { capacityDefaults, cgroupMemoryLimit } from '../src/server/capacity';
import { fakeLimitUnavailable, underFakeLimit } from './support/cgroup';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const P = '/namespaces/team/connectors/tool';
const AUTH = 'Bearer good-token-123';
const CAP = 3;
const BODY = randomBytes(4 * 1024 * 1024);
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');

describe('admission control: caps on exchanges in flight and client connections', () => {
  let up: RecordingUpstream;
  let proxy: ProxyProcess;
  /** Releases the held /hold responses. */
  let release: () => void = () => undefined;
  let released = new Promise<void>((r) => { release = r; });

  before(async () => {
    up = await startRecordingUpstream((req, res) => {
      if (req.url?.startsWith('/base/hold')) {
        // Headers and the first half now, the rest when the test releases: a long stream.
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BODY.length) });
        res.write(BODY.subarray(0, BODY.length / 2));
        void released.then(() => res.end(BODY.subarray(BODY.length / 2)));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('quick');
    });
    up.server.on('upgrade', (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      socket.on('error', () => undefined); // the proxy may reset it when the client goes
      socket.pipe(socket);
    });
    proxy = await startProxy({
      manifests: { 'tool.yaml': connectorManifests({ address: `${up.origin}/base`, name: 'tool', resolver: 'path' }) },
      args: ['--max-concurrent-exchanges', String(CAP), '--max-client-connections', '6'],
    });
  });
  after(async () => {
    release();
    await proxy?.stop();
    await up?.close();
  });

  const metric = async (re: RegExp): Promise<number> => Number(re.exec((await request(`http://127.0.0.1:${proxy.opsPort}/metrics`)).text)?.[1] ?? NaN);

  /** A download through the proxy that resolves with its status and body hash when it ends. */
  const download = (): { headers: Promise<number>; done: Promise<{ status: number; sha: string; bytes: number }> } => {
    let headersSeen: (s: number) => void = () => undefined;
    const headers = new Promise<number>((r) => { headersSeen = r; });
    const done = new Promise<{ status: number; sha: string; bytes: number }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: `${P}/hold`, headers: { authorization: AUTH }, agent: false }, (res) => {
        headersSeen(res.statusCode!);
        const h = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => { h.update(c); bytes += c.length; });
        res.on('end', () => resolve({ status: res.statusCode!, sha: h.digest('hex'), bytes }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    return { headers, done };
  };

  test('beyond the exchange cap: 503 with Retry-After at once, nothing reaches the tool; the admitted streams complete byte for byte', async () => {
    const fds = openFds(proxy.child.pid!).total;
    const held = Array.from({ length: CAP }, download);
    assert.deepEqual(await Promise.all(held.map((d) => d.headers)), Array(CAP).fill(200));
    await waitFor(async () => (await metric(/connectors_proxy_requests_in_flight (\d+)/)) === CAP, 'the held streams in flight');
    const seenBefore = up.requests.length;
    for (let i = 0; i < 4; i++) {
      const r = await request(proxy.url(`${P}/quick`), { headers: { authorization: AUTH }, agent: false });
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '2');
      assert.match(r.text, /at its limit of 3 requests in flight \(--max-concurrent-exchanges\): try again in 2 s/);
    }
    assert.equal(up.requests.length, seenBefore, 'no shed request reached the tool');
    assert.equal(await metric(/connectors_proxy_shed_total\{reason="exchanges"\} (\d+)/), 4);
    // git, a real client, says what happened.
    const git = await run('git', ['ls-remote', `http://any:good-token-123@127.0.0.1:${proxy.port}${P}/repo.git`], { env: { PATH: process.env.PATH, GIT_TERMINAL_PROMPT: '0' }, timeoutMs: 20_000 });
    assert.notEqual(git.code, 0);
    assert.match(git.stderr, /503/);
    release();
    for (const d of held) assert.deepEqual(await d.done, { status: 200, sha: BODY_SHA, bytes: BODY.length });
    await waitFor(async () => (await metric(/connectors_proxy_requests_in_flight (\d+)/)) === 0, 'in flight back to 0');
    const ok = await request(proxy.url(`${P}/quick`), { headers: { authorization: AUTH }, agent: false });
    assert.equal(ok.status, 200);
    await waitFor(() => openFds(proxy.child.pid!).total <= fds + 2, () => `descriptors back near ${fds} (now ${openFds(proxy.child.pid!).total})`);
  });

  test('an Upgrade session counts as an exchange while it lasts', async () => {
    const sessions: Socket[] = [];
    for (let i = 0; i < CAP; i++) {
      const s = await openSocket(proxy.port);
      s.write(`GET ${P}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${AUTH}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
      await new Promise<void>((r) => s.once('data', (d: Buffer) => { assert.match(d.toString(), /^HTTP\/1\.1 101/); r(); }));
      sessions.push(s);
    }
    const shed = await request(proxy.url(`${P}/quick`), { headers: { authorization: AUTH }, agent: false });
    assert.equal(shed.status, 503);
    for (const s of sessions) s.destroy();
    await waitFor(async () => (await metric(/connectors_proxy_requests_in_flight (\d+)/)) === 0, 'sessions ended');
    assert.equal((await request(proxy.url(`${P}/quick`), { headers: { authorization: AUTH }, agent: false })).status, 200);
  });

  test('beyond the connection cap a new connection gets 503 on its first request and is closed; one closing makes room', async () => {
    await waitFor(async () => (await metric(/connectors_proxy_client_connections\{kind="open"\} (\d+)/)) <= 1, 'earlier connections closed');
    const idle: Socket[] = [];
    for (let i = 0; i < 6; i++) idle.push(await openSocket(proxy.port));
    await waitFor(async () => (await metric(/connectors_proxy_client_connections\{kind="open"\} (\d+)/)) >= 6, 'six open');
    const extra = await openSocket(proxy.port);
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      extra.on('data', (d: Buffer) => { text += d.toString(); });
      extra.on('close', () => resolve(text));
      extra.write(`GET ${P}/quick HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${AUTH}\r\n\r\n`);
    });
    assert.match(answer, /^HTTP\/1\.1 503/);
    assert.match(answer, /retry-after: 2/i);
    assert.match(answer, /at its limit of 6 client connections \(--max-client-connections\)/);
    idle.pop()!.destroy();
    await waitFor(async () => (await metric(/connectors_proxy_client_connections\{kind="open"\} (\d+)/)) <= 6, 'one closed');
    const r = await request(proxy.url(`${P}/quick`), { headers: { authorization: AUTH }, agent: false });
    assert.equal(r.status, 200);
    for (const s of idle) s.destroy();
    assert.ok((await metric(/connectors_proxy_shed_total\{reason="connections"\} (\d+)/)) >= 1);
  });
});

describe('admission control: caps left unset come from the memory limit', () => {
  test('the start-up line and the cap gauge carry the caps derived from this machine\'s cgroup limit', async () => {
    const expected = capacityDefaults(cgroupMemoryLimit()?.bytes);
    const proxy = await startProxy({ manifests: { 'tool.yaml': connectorManifests({ address: 'http://127.0.0.1:9/base', name: 'tool', resolver: 'path' }) } });
    try {
      const line = proxy.logs().split('\n').find((l) => l.includes('connectors-proxy listening'));
      assert.ok(line, proxy.logs());
      const info = JSON.parse(line) as { maxConcurrentExchanges: number; maxClientConnections: number };
      assert.equal(info.maxConcurrentExchanges, expected.maxConcurrentExchanges);
      assert.equal(info.maxClientConnections, expected.maxClientConnections);
      assert.ok(info.maxConcurrentExchanges >= 32 && info.maxClientConnections > info.maxConcurrentExchanges);
      const text = (await request(`http://127.0.0.1:${proxy.opsPort}/metrics`)).body.toString();
      assert.match(text, new RegExp(`connectors_proxy_client_connections\\{kind="cap"\\} ${expected.maxClientConnections}\\b`));
    } finally {
      await proxy.stop();
    }
  });

  test('0 turns a cap off, as documented', async () => {
    const proxy = await startProxy({
      manifests: { 'tool.yaml': connectorManifests({ address: 'http://127.0.0.1:9/base', name: 'tool', resolver: 'path' }) },
      args: ['--max-concurrent-exchanges', '0', '--max-client-connections', '0'],
    });
    try {
      const info = JSON.parse(proxy.logs().split('\n').find((l) => l.includes('connectors-proxy listening'))!) as { maxConcurrentExchanges: number; maxClientConnections: number };
      assert.equal(info.maxConcurrentExchanges, 0);
      assert.equal(info.maxClientConnections, 0);
    } finally {
      await proxy.stop();
    }
  });
});

describe('admission control: a burst beyond the cap inside a 256 MiB container', { skip: fakeLimitUnavailable() ?? false }, () => {
  const STREAMS = 100;
  const BURST_CAP = 40;
  const BIG = randomBytes(8 * 1024 * 1024);
  const BIG_SHA = createHash('sha256').update(BIG).digest('hex');
  let up: RecordingUpstream;
  let proxy: ProxyProcess;
  let dir: string;

  before(async () => {
    up = await startRecordingUpstream((_req, res) => { res.writeHead(200, { 'content-length': String(BIG.length) }).end(BIG); });
    dir = mkdtempSync(join(tmpdir(), 'cproxy-burst-'));
    const limitFile = join(dir, 'memory-limit');
    writeFileSync(limitFile, String(256 * 1024 * 1024));
    proxy = await startProxy({
      manifests: { 'tool.yaml': connectorManifests({ address: `${up.origin}/base`, name: 'tool', resolver: 'path' }) },
      args: ['--max-concurrent-exchanges', String(BURST_CAP)],
      // The proxy sees a 256 MiB limit as in a Pod (its own cgroup file, bind-mounted over).
      wrap: (cmd, args) => ({ cmd: 'unshare', args: underFakeLimit(limitFile, [cmd, ...args]) }),
    });
  });
  after(async () => {
    await proxy?.stop();
    await up?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test(`${STREAMS} downloads of 8 MiB at once, cap ${BURST_CAP}: the excess gets 503 at once, the admitted complete byte for byte, RSS stays under the limit, descriptors and in-flight go back`, async () => {
    const info = JSON.parse(proxy.logs().split('\n').find((l) => l.includes('connectors-proxy listening'))!) as { memoryLimitMiB: number; maxClientConnections: number };
    assert.equal(info.memoryLimitMiB, 256, 'the proxy read the limit the test set');
    assert.equal(info.maxClientConnections, capacityDefaults(256 * 1024 * 1024).maxClientConnections, 'the connection cap derived from it');
    const pid = proxy.child.pid!;
    const fds = openFds(pid).total;
    const metric = async (re: RegExp): Promise<number> => Number(re.exec((await request(`http://127.0.0.1:${proxy.opsPort}/metrics`)).text)?.[1] ?? NaN);
    const upstreamBefore = up.requests.length;
    // Every client waits before reading: the admitted streams stay open (back-pressure up to
    // the tool) while the others are answered.
    let go: () => void = () => undefined;
    const reading = new Promise<void>((r) => { go = r; });
    const started = Date.now();
    const results = Array.from({ length: STREAMS }, () => new Promise<{ status: number; sha: string; answeredMs: number }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: `${P}/big`, headers: { authorization: AUTH }, agent: false }, (res) => {
        const answeredMs = Date.now() - started;
        res.pause();
        const h = createHash('sha256');
        res.on('data', (c: Buffer) => h.update(c));
        res.on('end', () => resolve({ status: res.statusCode!, sha: h.digest('hex'), answeredMs }));
        res.on('error', reject);
        if (res.statusCode === 503) res.resume();
        else void reading.then(() => res.resume());
      });
      req.on('error', reject);
      req.end();
    }));
    await waitFor(async () => (await metric(/connectors_proxy_shed_total\{reason="exchanges"\} (\d+)/)) === STREAMS - BURST_CAP, 'the excess shed', 20_000);
    assert.equal(await metric(/connectors_proxy_requests_in_flight (\d+)/), BURST_CAP);
    go();
    const done = await Promise.all(results);
    const admitted = done.filter((d) => d.status === 200);
    const shed = done.filter((d) => d.status === 503);
    assert.equal(admitted.length, BURST_CAP);
    assert.equal(shed.length, STREAMS - BURST_CAP);
    for (const d of admitted) assert.equal(d.sha, BIG_SHA);
    assert.equal(up.requests.length - upstreamBefore, BURST_CAP, 'only the admitted reached the tool');
    const peakMiB = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
    assert.ok(peakMiB < 256, `peak RSS ${peakMiB.toFixed(0)} MiB within the 256 MiB limit`);
    await waitFor(async () => (await metric(/connectors_proxy_requests_in_flight (\d+)/)) === 0, 'in flight back to 0');
    await waitFor(() => openFds(pid).total <= fds + 2, () => `descriptors back near ${fds} (now ${openFds(pid).total})`);
  });
});
