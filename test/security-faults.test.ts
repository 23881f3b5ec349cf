// Faults on the tool side and in the configuration, against the real proxy binary: a tool
// that refuses, resets (before and in the middle of a body), hangs, or answers garbage; a
// Secret deleted while traffic flows; a policy that does not compile. Each gives its
// documented status and message, a healthy Connector keeps being served throughout, and
// the proxy's sockets, descriptors and in-flight count come back to where they were.
// (API server faults in Kubernetes mode: kube-mode.test.ts "API server restart
// mid-traffic" and kube-auth.test.ts "unreachable → 503", "5xx answers and timeouts → 503".)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectorManifests, startProxy, type ProxyProcess } from './support/proxy';
import { openFds, rawExchange, waitFor } from './support/raw';
import { eventually, request, type Reply } from './support/http';
import { startUpstream, type Upstream } from './support/upstream';

const AUTH = { authorization: 'Bearer good-token-123' };
const HEADERS_TIMEOUT = 600;
const BODY_IDLE = 600;

/** A TCP server that runs `onSocket` for each connection (garbage, resets, silence). */
async function rawTool(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number; sockets: Set<Socket>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    server, port, sockets,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/** Reads one request head from a raw socket, then calls `then`. */
function afterHead(s: Socket, then: (head: string) => void): void {
  let got = '';
  const onData = (d: Buffer): void => {
    got += d.toString('latin1');
    const end = got.indexOf('\r\n\r\n');
    if (end < 0) return;
    s.off('data', onData);
    then(got.slice(0, end));
  };
  s.on('data', onData);
}

describe('faults: the tool, the Secret, the policy', () => {
  let healthy: Upstream;
  let proxy: ProxyProcess;
  const tools: Array<{ close(): Promise<void> }> = [];
  let pid: number;
  const get = (name: string, path = '/x', opts: { method?: string; body?: string } = {}): Promise<Reply> =>
    request(proxy.url(`/namespaces/team/connectors/${name}${path}`), { headers: AUTH, ...opts });

  async function stillServing(): Promise<void> {
    const r = await get('healthy');
    assert.equal(r.status, 200, `the healthy Connector: ${r.status} ${r.text}`);
  }
  async function inFlight(): Promise<number> {
    const m = await request(`http://127.0.0.1:${proxy.opsPort}/metrics`);
    return Number(/connectors_proxy_requests_in_flight (\d+)/.exec(m.text)![1]);
  }

  before(async () => {
    healthy = await startUpstream((req, res) => {
      if (req.url?.includes('/slow-body')) {
        res.writeHead(200, { 'content-length': 100 });
        res.write('first part');
        return; // then silence: the proxy's body idle timeout must cut it
      }
      res.end('ok');
    });
    const garbage = await rawTool((s) => afterHead(s, () => s.end('HELLO THIS IS NOT HTTP\r\n\r\n')));
    const badStatus = await rawTool((s) => afterHead(s, () => s.end('HTTP/1.1 9999 Nope\r\ncontent-length: 0\r\n\r\n')));
    const badLength = await rawTool((s) => afterHead(s, () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!')));
    const splitHeader = await rawTool((s) => afterHead(s, () => s.end('HTTP/1.1 200 OK\r\nx-a: 1\rx-b: 2\r\ncontent-length: 0\r\n\r\n')));
    const resetAtOnce = await rawTool((s) => afterHead(s, () => s.resetAndDestroy()));
    const resetMidBody = await rawTool((s) => afterHead(s, () => { s.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n' + 'x'.repeat(5000)); setTimeout(() => s.resetAndDestroy(), 50); }));
    const hang = await rawTool(() => undefined);
    // Reads part of an upload, then resets: the client's body was being streamed.
    const resetUpload = await rawTool((s) => afterHead(s, () => setTimeout(() => s.resetAndDestroy(), 100)));
    tools.push(garbage, badStatus, badLength, splitHeader, resetAtOnce, resetMidBody, hang, resetUpload);
    const port = (t: { port: number }): string => `http://127.0.0.1:${t.port}`;
    proxy = await startProxy({
      manifests: {
        'healthy.yaml': connectorManifests({ address: healthy.origin, name: 'healthy', resolver: 'path' }),
        'refused.yaml': connectorManifests({ address: 'http://127.0.0.1:9', name: 'refused', resolver: 'path' }),
        'garbage.yaml': connectorManifests({ address: port(garbage), name: 'garbage', resolver: 'path' }),
        'badstatus.yaml': connectorManifests({ address: port(badStatus), name: 'badstatus', resolver: 'path' }),
        'badlength.yaml': connectorManifests({ address: port(badLength), name: 'badlength', resolver: 'path' }),
        'splitheader.yaml': connectorManifests({ address: port(splitHeader), name: 'splitheader', resolver: 'path' }),
        'reset.yaml': connectorManifests({ address: port(resetAtOnce), name: 'reset', resolver: 'path' }),
        'midbody.yaml': connectorManifests({ address: port(resetMidBody), name: 'midbody', resolver: 'path' }),
        'hang.yaml': connectorManifests({ address: port(hang), name: 'hang', resolver: 'path' }),
        'upload.yaml': connectorManifests({ address: port(resetUpload), name: 'upload', resolver: 'path' }),
        'victim.yaml': connectorManifests({ address: healthy.origin, name: 'victim', resolver: 'path' }),
        'policy.yaml': policyManifests(healthy.origin),
      },
      args: ['--headers-timeout-ms', String(HEADERS_TIMEOUT), '--body-idle-timeout-ms', String(BODY_IDLE), '--upstream-keepalive-ms', '500'],
    });
    pid = proxy.child.pid!;
    await stillServing();
  });
  after(async () => {
    await proxy?.stop();
    await healthy?.close();
    for (const t of tools) await t.close();
  });

  test('each tool failure gives its documented status and message; the healthy Connector is served after each', async () => {
    const baseline = openFds(pid);
    const cases: Array<[string, number, RegExp, { method?: string; body?: string }?]> = [
      ['refused', 502, /connector team\/refused .*refused the connection/],
      ['garbage', 502, /connector team\/garbage .*invalid HTTP response/],
      ['badstatus', 502, /connector team\/badstatus .*(invalid HTTP response|failed)/],
      ['badlength', 502, /connector team\/badlength .*(invalid HTTP response|failed)/],
      ['splitheader', 502, /connector team\/splitheader .*(invalid HTTP response|failed)/],
      ['reset', 502, /connector team\/reset .*closed the connection unexpectedly/],
      ['hang', 504, /connector team\/hang .*did not send response headers in time/],
      ['upload', 502, /connector team\/upload .*(closed the connection unexpectedly|failed)/, { method: 'PUT', body: 'u'.repeat(4 * 1024 * 1024) }],
    ];
    for (const [name, status, message, opts] of cases) {
      const started = Date.now();
      const r = await get(name, '/x', opts);
      assert.equal(r.status, status, `${name}: ${r.status} ${r.text}`);
      assert.match(r.text, message, name);
      assert.ok(Date.now() - started < HEADERS_TIMEOUT + 3000, `${name} answered in bounded time`);
      await stillServing();
    }
    await waitFor(async () => (await inFlight()) === 0, 'nothing stays in flight');
    await waitFor(async () => openFds(pid).total <= baseline.total + 2, () => `descriptors back: ${baseline.total} → ${openFds(pid).total}`);
  });

  test('a reset or a stall in the middle of a response body: the client sees a cut response, never a complete one', async () => {
    for (const [name, path] of [['midbody', '/x'], ['healthy', '/slow-body']]) {
      const r = await rawExchange(proxy.port, `GET /namespaces/team/connectors/${name}${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer good-token-123\r\n\r\n`, BODY_IDLE + 3000);
      assert.equal(r.statuses[0], 200, r.text);
      assert.ok(r.closed, `${name}: the connection is cut`);
      const declared = Number(/content-length: (\d+)/i.exec(r.text)![1]);
      const body = r.text.slice(r.text.indexOf('\r\n\r\n') + 4);
      assert.ok(body.length < declared, `${name}: ${body.length} of ${declared} bytes, then the cut`);
      await stillServing();
    }
    const logs = proxy.logs();
    assert.match(logs, /"upstreamError":"stopped sending the response body"/);
  });

  test('a Secret deleted mid-traffic: 502 naming it, then 200 again when it is back; others unaffected', async () => {
    const manifest = join(proxy.manifestsDir, 'victim.yaml');
    // Replaced in one rename, as kubectl or a volume update would: never a half-written file.
    const replace = (text: string): void => { writeFileSync(join(proxy.manifestsDir, '.victim.tmp'), text); renameSync(join(proxy.manifestsDir, '.victim.tmp'), manifest); };
    const withSecret = connectorManifests({ address: healthy.origin, name: 'victim', resolver: 'path' });
    let stop = false;
    const statuses = new Set<number>();
    // Traffic on both Connectors while the Secret disappears and comes back.
    const load = (async () => {
      while (!stop) {
        const [v, h] = await Promise.all([get('victim'), get('healthy')]);
        statuses.add(v.status);
        assert.equal(h.status, 200, 'the other Connector is served all along');
        if (v.status === 502) assert.match(v.text, /connector team\/victim .*Secret team\/victim-secret not found/);
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 200));
      replace(withSecret.slice(0, withSecret.indexOf('---\napiVersion: v1')));
      await eventually('victim without its Secret', () => get('victim'), (r) => r.status === 502);
      // A second replacement of the same file: Node's recursive watcher on Linux missed it.
      replace(withSecret);
      await eventually('victim with its Secret again', () => get('victim'), (r) => r.status === 200);
      unlinkSync(manifest);
      await eventually('victim gone', () => get('victim'), (r) => r.status === 404);
    } finally {
      stop = true;
      await load;
    }
    assert.ok(statuses.has(200) && statuses.has(502), [...statuses].join(','));
    assert.ok([...statuses].every((s) => s === 200 || s === 502 || s === 404), [...statuses].join(','));
  });

  test('a policy that does not compile: 502 naming class, auth type and the OPA message; a fixed policy serves', async () => {
    const r = await get('policy');
    assert.equal(r.status, 502, r.text);
    assert.match(r.text, /connector team\/policy \(class "cls-policy", auth type "gen"\).*(compile|undefined|rego)/i);
    assert.ok(!r.text.includes('policy-secret'), 'no Secret value in the message');
    await stillServing();
    proxy.writeManifest('policy.yaml', policyManifests(healthy.origin, true));
    await eventually('fixed policy', () => get('policy'), (x) => x.status === 200, 60_000, 250);
    assert.equal(healthy.seen.at(-1)!.headers['x-key'], 'policy-secret');
  });
});

function policyManifests(address: string, fixed = false): string {
  const rule = fixed ? 'auth = {"position": "header", "auth": {"X-Key": input.value}}' : 'auth = {"position": "header", "auth": {"X-Key": no_such_function(input.value)}}';
  return `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: cls-policy, annotations: {connectors.cpaas.io/proxy-resolver: path}}
spec:
  proxy: {}
  address: {type: string}
  auth:
    types:
      - name: gen
        secretType: Opaque
        params: [{name: value, type: string}]
        generator:
          rego: |
            package proxy
            ${rule}
---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: policy, namespace: team}
spec:
  connectorClassName: cls-policy
  address: ${address}
  auth: {name: gen, secretRef: {name: policy-secret}}
---
apiVersion: v1
kind: Secret
metadata: {name: policy-secret, namespace: team}
type: Opaque
stringData: {value: policy-secret}
`;
}
