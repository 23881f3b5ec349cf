// WebSocket through the proxy with the real `ws` package: the echo tool accepts the upgrade
// only with the Secret's credentials, the client authenticates with its Bearer token, and
// text and binary (1 MiB) messages travel both ways. Host form and path form (with prefix).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { LookupFunction, AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { basic, connectorManifests, startProxy, type ProxyProcess } from './support/proxy';
import { request } from './support/http';

const CLIENT_TOKEN = 'good-token-123';
const TOOL = { username: 'ws-tool-user', password: 'ws-tool-pw-R4n8' };
const TOOL_AUTH = basic(TOOL.username, TOOL.password);
const MiB = 1024 * 1024;
/** A broken relay shows up as a hang: fail instead. */
const T = { timeout: 20_000 };

/** An upgrade request as the echo tool saw it, and whether it accepted it. */
interface SeenUpgrade {
  readonly url: string;
  readonly authorization: string | undefined;
  readonly rawHeaders: string;
  readonly accepted: boolean;
}

let server: Server;
let wss: WebSocketServer;
let origin: string;
const seen: SeenUpgrade[] = [];
/** The tool's side of every accepted WebSocket, in order. */
const serverSockets: WebSocket[] = [];
/** Every client socket, terminated in `after` so a failed test cannot keep the process alive. */
const clientSockets: WebSocket[] = [];
let proxy: ProxyProcess;

// Node's resolver does not map `*.localhost` to loopback (libcurl and browsers do).
const loopback: LookupFunction = (_host, options, cb) => {
  if (options.all) (cb as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  else cb(null, '127.0.0.1', 4);
};

before(async () => {
  server = createServer((_req, res) => res.writeHead(426, { upgrade: 'websocket' }).end('upgrade required\n'));
  wss = new WebSocketServer({
    server,
    maxPayload: 4 * MiB,
    // Negotiated in the handshake headers: both must pass through the proxy untouched.
    perMessageDeflate: true,
    handleProtocols: (protocols) => (protocols.has('echo.v1') ? 'echo.v1' : false),
    verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string, headers?: Record<string, string>) => void) => {
      const ok = info.req.headers.authorization === TOOL_AUTH;
      seen.push({ url: info.req.url ?? '', authorization: info.req.headers.authorization, rawHeaders: info.req.rawHeaders.join('\n'), accepted: ok });
      if (ok) done(true);
      else done(false, 401, 'Unauthorized', { 'www-authenticate': 'Basic realm="echo"' });
    },
  });
  wss.on('headers', (headers) => headers.push('X-Echo-Tool: yes'));
  wss.on('connection', (ws) => {
    ws.send('welcome'); // the tool speaks first, as exec/attach streams do
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    serverSockets.push(ws);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy = await startProxy({
    domain: 'localhost',
    manifests: {
      'host.yaml': connectorManifests({ address: origin, name: 'echo', secretData: TOOL }),
      'path.yaml': connectorManifests({ address: `${origin}/base`, name: 'echo-path', resolver: 'path', secretData: TOOL }),
      'wrong.yaml': connectorManifests({ address: origin, name: 'echo-wrong', resolver: 'path', secretData: { username: TOOL.username, password: 'not-the-password' } }),
    },
  });
}, { timeout: 30_000 });

after(async () => {
  for (const c of clientSockets) c.terminate();
  await proxy?.stop();
  for (const c of wss?.clients ?? []) c.terminate();
  await new Promise<void>((r) => (wss ? wss.close(() => r()) : r()));
  if (server) {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}, { timeout: 30_000 });

/** Opens a WebSocket; rejects with the status when the handshake is answered otherwise. */
function open(url: string, headers: Record<string, string>, protocols: string[] = []): Promise<{ ws: WebSocket; response: IncomingMessage; next: Next }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers, lookup: loopback, handshakeTimeout: 10_000 });
    clientSockets.push(ws);
    // Listening from the start: a message may be emitted before a caller's `await` resumes.
    const next = inbox(ws);
    ws.once('upgrade', (response) => ws.once('open', () => resolve({ ws, response, next })));
    ws.once('unexpected-response', (req, res) => {
      req.destroy();
      reject(new Error(`handshake answered ${res.statusCode}`));
    });
    ws.once('error', reject);
  });
}

/** Attempts a handshake that must be refused; resolves with the status and body. */
function refused(url: string, headers: Record<string, string>): Promise<{ status: number; body: string; headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, lookup: loopback, handshakeTimeout: 10_000 });
    clientSockets.push(ws);
    ws.once('open', () => { ws.terminate(); reject(new Error('the handshake succeeded')); });
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => { req.destroy(); resolve({ status: res.statusCode ?? 0, body, headers: res.headers }); });
      res.on('error', reject);
    });
    ws.once('error', (e) => reject(e));
  });
}

type Next = () => Promise<{ data: Buffer; isBinary: boolean }>;

/** Messages in arrival order, awaited one by one. */
function inbox(ws: WebSocket): Next {
  const queue: Array<{ data: Buffer; isBinary: boolean }> = [];
  const waiting: Array<(m: { data: Buffer; isBinary: boolean }) => void> = [];
  ws.on('message', (data, isBinary) => {
    const m = { data: data as Buffer, isBinary };
    const w = waiting.shift();
    if (w) w(m);
    else queue.push(m);
  });
  return () => new Promise((resolve, reject) => {
    const m = queue.shift();
    if (m) return resolve(m);
    const timer = setTimeout(() => reject(new Error('no echo within 10 s')), 10_000);
    waiting.push((x) => { clearTimeout(timer); resolve(x); });
  });
}

const MODES = [
  {
    form: 'host',
    url: () => `ws://c-echo.team.localhost:${proxy.port}/echo?room=1`,
    upstreamUrl: '/echo?room=1',
  },
  {
    form: 'path',
    url: () => `ws://127.0.0.1:${proxy.port}/namespaces/team/connectors/echo-path/echo?room=1`,
    upstreamUrl: '/base/echo?room=1',
  },
] as const;

test('the echo tool itself refuses an upgrade without the tool credentials', T, async () => {
  const from = seen.length;
  const r = await refused(`ws://127.0.0.1:${new URL(origin).port}/echo`, {});
  assert.equal(r.status, 401);
  assert.equal(seen.length, from + 1);
  assert.equal(seen[from]!.accepted, false);
});

for (const mode of MODES) {
  describe(`WebSocket through the proxy, ${mode.form} form`, () => {
    test('echo of text and a 1 MiB binary message with the client Bearer token', T, async () => {
      const from = seen.length;
      const logMark = proxy.logs().length;
      const { ws, response, next } = await open(mode.url(), { authorization: `Bearer ${CLIENT_TOKEN}` }, ['echo.v1']);
      assert.equal(response.statusCode, 101);
      assert.equal(response.headers['x-echo-tool'], 'yes', "the tool's 101 headers are relayed");
      assert.equal(ws.protocol, 'echo.v1', 'subprotocol negotiated with the tool');
      assert.match(ws.extensions, /permessage-deflate/, 'extension negotiated with the tool');
      assert.equal((await next()).data.toString(), 'welcome');

      const texts = ['hello', 'second message', 'ünïcödé ✓', ''];
      for (const t of texts) ws.send(t);
      for (const t of texts) {
        const m = await next();
        assert.equal(m.isBinary, false);
        assert.equal(m.data.toString('utf8'), t);
      }
      const big = randomBytes(MiB);
      ws.send(big);
      ws.send('after the binary one');
      const echoed = await next();
      assert.equal(echoed.isBinary, true);
      assert.equal(echoed.data.length, big.length);
      assert.ok(echoed.data.equals(big), 'the 1 MiB binary message came back intact');
      assert.equal((await next()).data.toString(), 'after the binary one');

      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      ws.close(1000, 'done');
      assert.equal(await closed, 1000, 'the close handshake passed through');

      const mine = seen.slice(from);
      assert.equal(mine.length, 1, 'one upgrade reached the tool');
      assert.equal(mine[0]!.url, mode.upstreamUrl);
      assert.equal(mine[0]!.authorization, TOOL_AUTH);
      assert.equal(mine[0]!.accepted, true);
      assert.ok(!mine[0]!.rawHeaders.includes(CLIENT_TOKEN), 'the tool never sees the client token');
      const conn = mode.form === 'host' ? 'team/echo' : 'team/echo-path';
      await proxy.waitForLog(new RegExp(`"connector":"${conn}"[^\\n]*"status":101`), 5000, logMark);
    });

    test('either side dropping the connection closes the other side', T, async () => {
      const first = serverSockets.length;
      const a = (await open(mode.url(), { authorization: `Bearer ${CLIENT_TOKEN}` })).ws;
      const toolA = serverSockets[first]!;
      assert.ok(toolA, 'the tool accepted the first connection');
      const toolSawClose = new Promise<void>((r) => toolA.once('close', () => r()));
      a.terminate(); // no close frame: only the TCP connection ends
      await toolSawClose;

      const b = (await open(mode.url(), { authorization: `Bearer ${CLIENT_TOKEN}` })).ws;
      const toolB = serverSockets[first + 1]!;
      assert.ok(toolB, 'the tool accepted the second connection');
      const clientSawClose = new Promise<number>((r) => b.once('close', (code) => r(code)));
      toolB.terminate();
      assert.equal(await clientSawClose, 1006, 'the client saw the connection end abnormally');
    });

    test('no token or a wrong token: 401 on the upgrade, nothing reaches the tool', T, async () => {
      const from = seen.length;
      const none = await refused(mode.url(), {});
      assert.equal(none.status, 401);
      assert.match(none.headers['www-authenticate'] ?? '', /^Basic /);
      assert.match(none.body, /authentication required/);
      const wrong = await refused(mode.url(), { authorization: 'Bearer not-a-token' });
      assert.equal(wrong.status, 401);
      assert.equal(seen.length, from, 'no upgrade reached the tool');
    });
  });
}

test("the tool's own refusal (wrong Secret) is relayed as 401", T, async () => {
  const from = seen.length;
  const r = await refused(`ws://127.0.0.1:${proxy.port}/namespaces/team/connectors/echo-wrong/echo`, { authorization: `Bearer ${CLIENT_TOKEN}` });
  assert.equal(r.status, 401);
  assert.equal(r.body, 'Unauthorized', "the tool's own answer, not the proxy's");
  assert.equal(seen.length, from + 1);
  assert.equal(seen[from]!.accepted, false);
  assert.equal(seen[from]!.authorization, basic(TOOL.username, 'not-the-password'));
});

test('every upgrade exchange has ended: no request left in flight', T, async () => {
  let metrics = '';
  for (let i = 0; i < 100; i++) {
    metrics = (await request(`http://127.0.0.1:${proxy.opsPort}/metrics`)).text;
    if (/^connectors_proxy_requests_in_flight 0$/m.test(metrics)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.match(metrics, /^connectors_proxy_requests_in_flight 0$/m);
  // Each form opened three sessions, one of them cut by the client without a close frame:
  // all three are sessions that were upgraded, so all three count as 101.
  for (const c of ['echo', 'echo-path']) {
    const ended = [...metrics.matchAll(new RegExp(`^connectors_proxy_requests_total\\{connector="team/${c}",class="cls-${c}",way="reverse",code="(\\d+)"\\} (\\d+)$`, 'gm'))];
    const byCode = new Map(ended.map((m) => [m[1]!, Number(m[2])]));
    assert.equal(byCode.get('101'), 3, `${c}: ${JSON.stringify([...byCode])}`);
    assert.equal([...byCode.values()].reduce((a, b) => a + b, 0), 3, `${c}: every session was accounted once`);
  }
});

test('no client token or tool credential in the proxy logs; the tool never saw the client token', T, async () => {
  const logs = proxy.logs();
  assert.match(logs, /"msg":"request"/, 'the access log is on');
  for (const secret of [CLIENT_TOKEN, 'not-a-token', TOOL.password, TOOL_AUTH.slice(6), 'not-the-password']) {
    assert.ok(!logs.includes(secret), `proxy log output contains ${secret}`);
  }
  assert.ok(seen.length >= 3);
  for (const s of seen) assert.ok(!s.rawHeaders.includes(CLIENT_TOKEN), `${s.url}: client token upstream`);
});
