// The proxy binary in Kubernetes mode (`--source kubernetes`) end to end against a real
// kube-apiserver: it watches ConnectorClasses, Connectors and Secrets, authenticates clients
// with TokenReview + SubjectAccessReview, writes status.proxy.httpAddress.url, and survives an
// API server restart without ever letting an unchecked request through. The proxy talks to
// the API server AS ITS OWN ServiceAccount bound by deploy/rbac.yaml, so these tests also
// prove that RBAC is sufficient. One cluster for the whole file; two proxies:
//  - `gated`: --enable-connector-proxy-permissions --no-write-status, reaching the API server
//    through a TCP relay that holds connections until released (to observe /readyz 503);
//  - `main`: short auth cache TTLs (1 s) and --public-url, writing status.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKube, type KubeCluster } from './support/kube';
import { REPO_ROOT, startProxy, type ProxyProcess } from './support/proxy';
import { startUpstream, type Upstream } from './support/upstream';

const NS = 'team-a';
const DOMAIN = 'kube.test';
const PUBLIC_URL = 'http://proxy.kube.test:8080';
const API = '/apis/connectors.alauda.io/v1alpha1';
/** "Within ~2 s" for watch-driven changes (rotation, new and deleted Connectors), with some slack. */
const SETTLE_MS = 3_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const deploy = (f: string): string => readFileSync(join(REPO_ROOT, 'deploy', f), 'utf8');
const b64 = (s: string): string => Buffer.from(s).toString('base64');

// ---- objects ---------------------------------------------------------------------------

/** `proxy`: a spec.proxy with a uri; `none`: no spec.proxy (the docs: no proxy capability, not served). */
function classYaml(name: string, o: { path?: boolean; proxy?: boolean; none?: boolean } = {}): string {
  return `
apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: ${name}${o.path ? '\n  annotations: {connectors.cpaas.io/proxy-resolver: path}' : ''}
spec:
  address: {type: string}
  auth:
    types:
      - {name: basic, secretType: kubernetes.io/basic-auth}${o.proxy ? '\n  proxy: {uri: "http://whatever"}' : o.none ? '' : '\n  proxy: {}'}
`;
}

/** Credentials of each Connector's Secret: what the upstream accepts and the tests expect. */
const creds = new Map<string, { user: string; pass: string }>();
/** Every client token and Secret value of this file: none may appear in a log or reach a tool. */
const sensitive: string[] = [];

function newCreds(name: string): { user: string; pass: string } {
  const c = { user: `${name}-user`, pass: `pw-${name}-${randomBytes(8).toString('hex')}` };
  creds.set(name, c);
  sensitive.push(c.pass, b64(`${c.user}:${c.pass}`));
  return c;
}

function secretYaml(name: string): string {
  const c = creds.get(name) ?? newCreds(name);
  return `
apiVersion: v1
kind: Secret
metadata: {name: ${name}-cred, namespace: ${NS}}
type: kubernetes.io/basic-auth
stringData: {username: ${c.user}, password: ${c.pass}}
`;
}

function connectorYaml(name: string, cls: string): string {
  return `
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: ${name}, namespace: ${NS}}
spec:
  connectorClassName: ${cls}
  address: ${upstream.origin}/t/${name}
  auth: {name: basic, secretRef: {name: ${name}-cred}}
`;
}

const docs = (...d: string[]): string => d.join('\n---\n');

function roleBinding(name: string, role: string, sa: string): string {
  return `
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ${name}, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ${role}}
subjects: [{kind: ServiceAccount, name: ${sa}, namespace: ${NS}}]
`;
}

// Client ServiceAccounts: builder (get connectors), pp (get connectors and connectors/proxy),
// outsider (nothing), temp (get connectors, binding removed by a test), latecomer (granted
// by a test).
const CLIENT_SAS = ['builder', 'pp', 'outsider', 'temp', 'latecomer'];
const RBAC = docs(
  `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: use-connectors, namespace: ${NS}}
rules: [{apiGroups: [connectors.alauda.io], resources: [connectors], verbs: [get]}]`,
  `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: proxy-connectors, namespace: ${NS}}
rules: [{apiGroups: [connectors.alauda.io], resources: [connectors/proxy], verbs: [get]}]`,
  roleBinding('builder-uses', 'use-connectors', 'builder'),
  roleBinding('pp-uses', 'use-connectors', 'pp'),
  roleBinding('pp-proxies', 'proxy-connectors', 'pp'),
  roleBinding('temp-binding', 'use-connectors', 'temp'),
);

// ---- shared state ----------------------------------------------------------------------

let kube: KubeCluster;
let upstream: Upstream;
let tmp: string;
let relay: Relay;
const tokens: Record<string, string> = {};
const proxies: ProxyProcess[] = [];
let gated: ProxyProcess | undefined;
let mainProxy: Promise<ProxyProcess> | undefined;

/** A TCP relay to the API server (TLS passes through) that holds new connections until released. */
interface Relay { port: number; release(): void; close(): Promise<void> }

async function startRelay(target: number): Promise<Relay> {
  let held = true;
  const pending: Socket[] = [];
  const sockets = new Set<Socket>();
  const pipe = (c: Socket): void => {
    if (c.destroyed) return;
    const u = connect(target, '127.0.0.1');
    sockets.add(u);
    u.on('error', () => c.destroy());
    u.on('close', () => sockets.delete(u));
    c.pipe(u).pipe(c);
  };
  const server: Server = createServer((c) => {
    sockets.add(c);
    c.on('error', () => {});
    c.on('close', () => sockets.delete(c));
    if (held) pending.push(c);
    else pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    release() { held = false; for (const c of pending.splice(0)) pipe(c); },
    close: () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      return closed;
    },
  };
}

function writeKubeconfig(file: string, server: string, token: string): string {
  writeFileSync(file, [
    'apiVersion: v1', 'kind: Config', 'current-context: proxy',
    'clusters:', '- name: test', '  cluster:', `    server: ${server}`, `    certificate-authority: ${kube.caFile}`,
    'users:', '- name: connectors-proxy', '  user:', `    token: ${token}`,
    'contexts:', '- name: proxy', '  context:', '    cluster: test', '    user: connectors-proxy', '',
  ].join('\n'), { mode: 0o600 });
  return file;
}

async function kubeProxy(kubeconfig: string, args: readonly string[]): Promise<ProxyProcess> {
  const p = startProxy({ manifests: {}, domain: DOMAIN, args: ['--source', 'kubernetes', '--kubeconfig', kubeconfig, ...args] });
  p.then((x) => proxies.push(x), () => {});
  return p;
}

/** The main proxy, started by the first test that needs it (after the --no-write-status test). */
function main(): Promise<ProxyProcess> {
  mainProxy ??= (async () => {
    const p = await kubeProxy(join(tmp, 'direct.kubeconfig'), [
      '--auth-cache-ttl-ms', '1000', '--auth-negative-cache-ttl-ms', '1000', '--public-url', PUBLIC_URL,
    ]);
    await waitReady(p);
    return p;
  })();
  return mainProxy;
}

// ---- requests --------------------------------------------------------------------------

interface Reply { status: number; headers: IncomingHttpHeaders; text: string; echo?: Echo }
/** What the upstream answers: the Connector the request reached and the credentials it carried. */
interface Echo { connector: string; path: string; user?: string; pass?: string; ok: boolean }

function send(port: number, path: string, headers: Record<string, string>, timeoutMs = 20_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => {
        let echo: Echo | undefined;
        if (res.headers['x-test-upstream'] === '1') echo = JSON.parse(text) as Echo;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, echo });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

type Auth = { bearer: string } | { basic: string } | undefined;
function authHeader(a: Auth): Record<string, string> {
  if (a === undefined) return {};
  if ('bearer' in a) return { authorization: `Bearer ${a.bearer}` };
  return { authorization: `Basic ${b64(`any:${a.basic}`)}` };
}

/** Host form: Host c-<name>.<ns>.<domain>, the path passed through. */
function viaHost(p: ProxyProcess, name: string, auth: Auth, path = '/hello?x=1'): Promise<Reply> {
  return send(p.port, path, { host: `c-${name}.${NS}.${DOMAIN}:${p.port}`, ...authHeader(auth) });
}

/** Path form: /namespaces/<ns>/connectors/<name>/<rest>. */
function viaPath(p: ProxyProcess, name: string, auth: Auth, rest = '/some/file.txt'): Promise<Reply> {
  return send(p.port, `/namespaces/${NS}/connectors/${name}${rest}`, authHeader(auth));
}

const tail = (p: ProxyProcess | undefined, n = 25): string => (p ? `\n--- proxy log, last ${n} lines:\n${p.logs().trimEnd().split('\n').slice(-n).join('\n')}` : '');
const show = (r: Reply): string => `${r.status} ${r.text.slice(0, 300)}`;

/** Asserts a 200 from the upstream with the Connector's current Secret credentials. */
function assertServed(r: Reply, name: string, path: string, p?: ProxyProcess): void {
  assert.equal(r.status, 200, `${name}: ${show(r)}${tail(p)}`);
  assert.ok(r.echo, `the answer comes from the upstream: ${show(r)}`);
  const c = creds.get(name)!;
  assert.deepEqual(r.echo, { connector: name, path, user: c.user, pass: c.pass, ok: true });
}

/** Polls `f` every 100 ms until `ok` holds or `ms` pass; returns every reply seen. */
async function until(ms: number, f: () => Promise<Reply>, ok: (r: Reply) => boolean): Promise<Reply[]> {
  const seen: Reply[] = [];
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await f();
    seen.push(r);
    if (ok(r) || Date.now() > deadline) return seen;
    await sleep(100);
  }
}
const statuses = (rs: readonly Reply[]): string => rs.map((r) => r.status).join(',');
const last = <T>(xs: readonly T[]): T => xs[xs.length - 1]!;

async function readyz(p: ProxyProcess): Promise<number> {
  return (await send(p.opsPort, '/readyz', {})).status;
}

async function waitReady(p: ProxyProcess, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while ((await readyz(p)) !== 200) {
    if (Date.now() > deadline) assert.fail(`/readyz not 200 after ${ms} ms${tail(p, 40)}`);
    await sleep(50);
  }
}

/** RBAC reads through an informer in the API server: waits until it allows (or denies) `sa`. */
async function waitForAccess(sa: string, allowed: boolean, subresource?: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await kube.api('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${NS}:${sa}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
        resourceAttributes: { namespace: NS, verb: 'get', group: 'connectors.alauda.io', resource: 'connectors', name: 'git', subresource },
      },
    });
    if (((r.json as { status?: { allowed?: boolean } }).status?.allowed === true) === allowed) return;
    await sleep(50);
  }
  throw new Error(`RBAC for ${sa} (${subresource ?? 'connectors'}) never became allowed=${allowed}`);
}

async function connectorStatusUrl(name: string): Promise<string | undefined> {
  const r = await kube.api('GET', `${API}/namespaces/${NS}/connectors/${name}`);
  assert.equal(r.status, 200, r.text);
  return (r.json as { status?: { proxy?: { httpAddress?: { url?: string } } } }).status?.proxy?.httpAddress?.url;
}

async function newToken(sa: string): Promise<string> {
  const t = await kube.createServiceAccountToken(NS, sa);
  // The whole token and its signature alone: neither may leak.
  sensitive.push(t, t.split('.')[2]!, b64(`any:${t}`));
  return t;
}

// ---- setup -----------------------------------------------------------------------------

before(async () => {
  upstream = await startUpstream((req, res) => {
    // A tool behind the proxy: /t/<connector>/... must carry that Connector's Basic credentials.
    const m = /^\/t\/([^/?]+)(.*)$/.exec(req.url ?? '');
    const name = m?.[1] ?? '';
    const decoded = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [user, pass] = decoded ? Buffer.from(decoded, 'base64').toString('utf8').split(/:(.*)/s) : [];
    const want = creds.get(name);
    const ok = want !== undefined && user === want.user && pass === want.pass;
    req.resume();
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json', 'x-test-upstream': '1' });
    res.end(JSON.stringify({ connector: name, path: m?.[2] ?? '', user, pass, ok }));
  });
  kube = await startKube();
  tmp = mkdtempSync(join(tmpdir(), 'kube-mode-test-'));

  await kube.applyYaml(docs(deploy('namespace.yaml'), deploy('rbac.yaml'), deploy('crds/connectorclasses.yaml'), deploy('crds/connectors.yaml')));
  await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
  await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
  await kube.applyYaml(docs(
    `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}`,
    ...CLIENT_SAS.map((sa) => `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ${sa}, namespace: ${NS}}`),
  ));
  await kube.applyYaml(RBAC);
  // Objects that exist before any proxy starts.
  await kube.applyYaml(docs(
    classYaml('cls-host'), classYaml('cls-path', { path: true }),
    classYaml('cls-host-proxy', { proxy: true }), classYaml('cls-path-proxy', { path: true, proxy: true }),
    classYaml('cls-none', { none: true }),
    ...['git', 'rot', 'gone', 'restart', 'st-host', 'st-path', 'repo', 'np'].map(secretYaml),
    connectorYaml('git', 'cls-host'), connectorYaml('rot', 'cls-host'), connectorYaml('gone', 'cls-host'),
    connectorYaml('restart', 'cls-host'), connectorYaml('repo', 'cls-path'),
    connectorYaml('st-host', 'cls-host-proxy'), connectorYaml('st-path', 'cls-path-proxy'),
    connectorYaml('np', 'cls-none'),
  ));
  await waitForAccess('builder', true);
  await waitForAccess('pp', true, 'proxy');
  await waitForAccess('temp', true);
  for (const sa of CLIENT_SAS) tokens[sa] = await newToken(sa);

  // The proxy's own identity: the ServiceAccount of deploy/rbac.yaml, nothing more.
  const proxyToken = await kube.createServiceAccountToken('connectors-system', 'connectors-proxy');
  sensitive.push(proxyToken, proxyToken.split('.')[2]!);
  writeKubeconfig(join(tmp, 'direct.kubeconfig'), kube.url, proxyToken);
  relay = await startRelay(Number(new URL(kube.url).port));
  writeKubeconfig(join(tmp, 'relay.kubeconfig'), `https://127.0.0.1:${relay.port}`, proxyToken);
});

after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await relay?.close();
  await upstream?.close();
  await kube?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---- tests -----------------------------------------------------------------------------

describe('Kubernetes mode: the proxy binary against a real API server, as its own ServiceAccount', () => {
  test('/readyz is 503 until the first sync, then 200; Connectors that existed before start are served', async () => {
    // The relay holds the proxy's connections to the API server: no sync can happen yet.
    const starting = kubeProxy(join(tmp, 'relay.kubeconfig'), ['--enable-connector-proxy-permissions', '--no-write-status']);
    const early = await Promise.race([starting, sleep(3_000).then(() => undefined)]);
    if (early) {
      assert.equal(await readyz(early), 503, `not ready before the first sync${tail(early)}`);
      await sleep(500);
      assert.equal(await readyz(early), 503, `still not ready while the API server cannot be reached${tail(early)}`);
      assert.equal((await send(early.opsPort, '/healthz', {})).status, 200, 'alive meanwhile');
    } else {
      process.stderr.write('# the proxy listens only after its first sync: /readyz 503 not observable\n');
    }
    relay.release();
    gated = await starting;
    await waitReady(gated);
    assertServed(await viaHost(gated, 'git', { bearer: tokens.pp! }), 'git', '/hello?x=1', gated);
    assertServed(await viaPath(gated, 'repo', { bearer: tokens.pp! }), 'repo', '/some/file.txt', gated);
  });

  test('--enable-connector-proxy-permissions: get connectors alone is 403, with get connectors/proxy 200', async () => {
    assert.ok(gated, 'needs the proxy of the first test');
    const only = await viaHost(gated, 'git', { bearer: tokens.builder! });
    assert.equal(only.status, 403, `builder lacks connectors/proxy: ${show(only)}${tail(gated)}`);
    assert.equal(only.echo, undefined, 'the upstream was not reached');
    const both = await viaHost(gated, 'git', { basic: tokens.pp! });
    assertServed(both, 'git', '/hello?x=1', gated);
  });

  test('--no-write-status: status.proxy.httpAddress.url stays empty', async () => {
    assert.ok(gated, 'needs the proxy of the first test');
    // The proxy has synced and serves both Connectors of classes with spec.proxy...
    assertServed(await viaHost(gated, 'st-host', { bearer: tokens.pp! }), 'st-host', '/hello?x=1', gated);
    assertServed(await viaPath(gated, 'st-path', { bearer: tokens.pp! }), 'st-path', '/some/file.txt', gated);
    // ...and does not write their status (the main proxy, which does, is not started yet).
    await sleep(2_000);
    assert.equal(await connectorStatusUrl('st-host'), undefined);
    assert.equal(await connectorStatusUrl('st-path'), undefined);
  });

  test('allowed: a token with get on the Connector → 200, the tool gets the Secret, never the client token', async () => {
    const p = await main();
    const n = upstream.seen.length;
    for (const auth of [{ bearer: tokens.builder! }, { basic: tokens.builder! }]) {
      assertServed(await viaHost(p, 'git', auth), 'git', '/hello?x=1', p);
      assertServed(await viaPath(p, 'repo', auth, '/some/file.txt?q=1'), 'repo', '/some/file.txt?q=1', p);
    }
    const seen = upstream.seen.slice(n);
    assert.equal(seen.length, 4);
    for (const s of seen) {
      const all = s.url + '\n' + s.rawHeaders.join('\n');
      assert.ok(!all.includes(tokens.builder!) && !all.includes(b64(`any:${tokens.builder!}`)), `the client token reached the tool: ${all}`);
      assert.match(s.headers.authorization ?? '', /^Basic /);
    }
  });

  test('refused: no grant → 403, garbage or no token → 401, unknown Connector → 404 (token checked first)', async () => {
    const p = await main();
    const n = upstream.seen.length;
    const forbidden = await viaHost(p, 'git', { bearer: tokens.outsider! });
    assert.equal(forbidden.status, 403, show(forbidden) + tail(p));
    const forbiddenPath = await viaPath(p, 'repo', { basic: tokens.outsider! });
    assert.equal(forbiddenPath.status, 403, show(forbiddenPath));
    for (const auth of [{ bearer: 'garbage-token-not-a-jwt' }, { basic: 'garbage-token-not-a-jwt' }, undefined]) {
      const r = await viaHost(p, 'git', auth);
      assert.equal(r.status, 401, `${JSON.stringify(auth)}: ${show(r)}`);
      assert.match(String(r.headers['www-authenticate']), /^Basic/i);
    }
    const unknown = await viaHost(p, 'nope', { bearer: tokens.builder! });
    assert.equal(unknown.status, 404, show(unknown));
    const unknownPath = await viaPath(p, 'nope', { bearer: tokens.builder! });
    assert.equal(unknownPath.status, 404, show(unknownPath));
    // Without a grant, an unknown Connector is 403 like a known one: nothing learned.
    const probing = await viaHost(p, 'nope', { bearer: tokens.outsider! });
    assert.equal(probing.status, 403, show(probing));
    assert.equal(upstream.seen.length, n, 'no refused request reached the tool');
  });

  test('status.proxy.httpAddress.url: host form and --public-url path form for classes with spec.proxy', async () => {
    await main();
    // The public URL's port (8080) is where the c-<name> hosts are served too.
    const want = { 'st-host': `http://c-st-host.${NS}.${DOMAIN}:8080`, 'st-path': `${PUBLIC_URL}/namespaces/${NS}/connectors/st-path` };
    const deadline = Date.now() + 10_000;
    const got: Record<string, string | undefined> = {};
    for (;;) {
      for (const name of Object.keys(want)) got[name] = await connectorStatusUrl(name);
      if (JSON.stringify(got) === JSON.stringify(want) || Date.now() > deadline) break;
      await sleep(200);
    }
    assert.deepEqual(got, want, `got ${JSON.stringify(got)}${tail(await main())}`);
    // A class without spec.proxy: nothing written, and not served (no proxy capability).
    assert.equal(await connectorStatusUrl('np'), undefined);
    const p = await main();
    const n = upstream.seen.length;
    const np = await viaHost(p, 'np', { bearer: tokens.builder! });
    assert.equal(np.status, 502, show(np));
    assert.match(np.text, /ConnectorClass "cls-none" has no proxy capability \(spec\.proxy is not set\)/);
    assert.equal(upstream.seen.length, n, 'the tool was not reached');
  });

  test('Secret rotation: the next requests carry the new password', async () => {
    const p = await main();
    assertServed(await viaHost(p, 'rot', { bearer: tokens.builder! }), 'rot', '/hello?x=1', p);
    const old = creds.get('rot')!.pass;
    const c = newCreds('rot'); // from now on the tool accepts only the new password
    const r = await kube.kubectl(['patch', 'secret', 'rot-cred', '-n', NS, '--type', 'merge', '-p', JSON.stringify({ stringData: { password: c.pass } })]);
    assert.equal(r.code, 0, r.stderr);
    const seen = await until(SETTLE_MS, () => viaHost(p, 'rot', { bearer: tokens.builder! }), (x) => x.status === 200);
    assertServed(last(seen), 'rot', '/hello?x=1', p);
    // Before the change arrived the old password was sent (the tool said 401), never anything else.
    for (const x of seen.slice(0, -1)) assert.deepEqual([x.status, x.echo?.pass], [401, old], show(x));
  });

  test('Connectors created after start are served within moments (Secret created after or before)', async () => {
    const p = await main();
    newCreds('late1');
    newCreds('late2');
    // Secret after the Connector: first 502 naming what is missing, then served.
    await kube.applyYaml(connectorYaml('late1', 'cls-host'));
    const missing = await until(SETTLE_MS, () => viaHost(p, 'late1', { bearer: tokens.builder! }), (x) => x.status === 502);
    assert.equal(last(missing).status, 502, `a Connector without its Secret: ${statuses(missing)} ${show(last(missing))}${tail(p)}`);
    assert.match(last(missing).text, /secret/i);
    await kube.applyYaml(secretYaml('late1'));
    const served = await until(SETTLE_MS, () => viaHost(p, 'late1', { bearer: tokens.builder! }), (x) => x.status === 200);
    assertServed(last(served), 'late1', '/hello?x=1', p);
    // Secret before the Connector.
    await kube.applyYaml(secretYaml('late2'));
    await kube.applyYaml(connectorYaml('late2', 'cls-path'));
    const served2 = await until(SETTLE_MS, () => viaPath(p, 'late2', { bearer: tokens.builder! }), (x) => x.status === 200);
    assertServed(last(served2), 'late2', '/some/file.txt', p);
  });

  test('a deleted Connector is 404 within moments', async () => {
    const p = await main();
    assertServed(await viaHost(p, 'gone', { bearer: tokens.builder! }), 'gone', '/hello?x=1', p);
    const del = await kube.api('DELETE', `${API}/namespaces/${NS}/connectors/gone`);
    assert.equal(del.status, 200, del.text);
    const seen = await until(SETTLE_MS, () => viaHost(p, 'gone', { bearer: tokens.builder! }), (x) => x.status === 404);
    assert.equal(last(seen).status, 404, `after deletion: ${statuses(seen)}${tail(p)}`);
    assert.ok(seen.every((x) => x.status === 200 || x.status === 404), statuses(seen));
  });

  test('decision caches expire (TTL 1 s): a removed RoleBinding → 403, a new grant → 200', async () => {
    const p = await main();
    assertServed(await viaHost(p, 'git', { bearer: tokens.temp! }), 'git', '/hello?x=1', p);
    const del = await kube.kubectl(['delete', 'rolebinding', 'temp-binding', '-n', NS]);
    assert.equal(del.code, 0, del.stderr);
    const revoked = await until(8_000, () => viaHost(p, 'git', { bearer: tokens.temp! }), (x) => x.status === 403);
    assert.equal(last(revoked).status, 403, `after the RoleBinding was removed: ${statuses(revoked)}${tail(p)}`);
    assert.ok(revoked.every((x) => x.status === 200 || x.status === 403), statuses(revoked));

    const denied = await viaHost(p, 'git', { bearer: tokens.latecomer! });
    assert.equal(denied.status, 403, show(denied)); // now cached as a negative decision
    await kube.applyYaml(roleBinding('late-binding', 'use-connectors', 'latecomer'));
    const granted = await until(8_000, () => viaHost(p, 'git', { bearer: tokens.latecomer! }), (x) => x.status === 200);
    assertServed(last(granted), 'git', '/hello?x=1', p);
    assert.ok(granted.every((x) => x.status === 200 || x.status === 403), statuses(granted));
  });

  test('API server restart mid-traffic: 200 or 503 only, unchecked tokens never pass; recovers and the watch reconnects', async () => {
    const p = await main();
    // Tokens nobody has used yet: no decision of them can be cached anywhere.
    const freshOutsider = await newToken('outsider');
    const freshBuilder = await newToken('builder');
    const hitsBefore = upstream.seen.filter((s) => s.url.startsWith('/t/restart')).length;
    let served = 0; // 200s for the `restart` Connector: each must match one upstream hit

    type Phase = 'up' | 'stopping' | 'down' | 'starting' | 'recovered';
    let phase: Phase = 'up';
    const log: Array<{ phase: Phase; status: number }> = [];
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const at = phase;
        const r = await viaHost(p, 'restart', { bearer: tokens.builder! });
        if (r.status === 200) { served++; assertServed(r, 'restart', '/hello?x=1', p); }
        log.push({ phase: at, status: r.status });
        await sleep(25);
      }
    })();
    const byPhase = (ph: Phase): number[] => log.filter((e) => e.phase === ph).map((e) => e.status);
    try {
      while (byPhase('up').filter((s) => s === 200).length < 3) await sleep(20);

      const t0 = Date.now();
      const mark = (what: string): void => { process.stderr.write(`# restart: ${what} at +${Date.now() - t0} ms\n`); };
      phase = 'stopping';
      await kube.stopApiServer();
      mark('API server stopped');
      phase = 'down';
      const downUntil = Date.now() + 3_000;
      while (Date.now() < downUntil) {
        for (const [who, t] of [['never-used outsider', freshOutsider], ['never-used builder', freshBuilder]] as const) {
          const r = await viaHost(p, 'restart', { bearer: t });
          assert.equal(r.status, 503, `${who} token while the API server is down: ${show(r)}${tail(p)}`);
        }
        await sleep(200);
      }
      assert.ok(byPhase('down').includes(503), `the 1 s cached decision expired while down: expected 503s, got ${byPhase('down').join(',')}`);

      phase = 'starting';
      await kube.startApiServer();
      mark('API server ready again');
      phase = 'recovered';
      const recovered = await until(10_000, () => viaHost(p, 'restart', { bearer: freshBuilder }), (x) => x.status === 200);
      assertServed(last(recovered), 'restart', '/hello?x=1', p);
      served++;
      mark('a never-used token is checked and served');
      const outsider = await until(5_000, () => viaHost(p, 'restart', { bearer: freshOutsider }), (x) => x.status === 403);
      assert.equal(last(outsider).status, 403, `${statuses(outsider)}${tail(p)}`);
      const deadline = Date.now() + 10_000;
      while (!byPhase('recovered').includes(200) && Date.now() < deadline) await sleep(50);
      assert.ok(byPhase('recovered').includes(200), `the loop recovers: ${byPhase('recovered').join(',')}`);

      // Changes made after the restart arrive: the watches reconnected.
      newCreds('after-restart');
      await kube.applyYaml(docs(secretYaml('after-restart'), connectorYaml('after-restart', 'cls-host')));
      const fresh = await until(10_000, () => viaHost(p, 'after-restart', { bearer: tokens.builder! }), (x) => x.status === 200);
      assert.equal(last(fresh).status, 200, `a Connector created after the restart: ${statuses(fresh)}${tail(p, 40)}`);
      assertServed(last(fresh), 'after-restart', '/hello?x=1', p);
      mark('a Connector created after the restart is served');
    } finally {
      stop = true;
      await loop;
      if (!(await kube.api('GET', '/readyz').then((r) => r.status === 200, () => false))) await kube.startApiServer().catch(() => {});
    }
    const bad = log.filter((e) => e.status !== 200 && e.status !== 503);
    assert.deepEqual(bad, [], `only 200 (a cached, still valid decision) or 503: ${JSON.stringify(bad)}`);
    const hits = upstream.seen.filter((s) => s.url.startsWith('/t/restart')).length - hitsBefore;
    assert.equal(hits, served, 'every request that reached the tool was answered 200 after a check');
  });

  test('no client token, Secret value or proxy credential in the logs; no client token reached a tool', async () => {
    const p = await main();
    assert.ok(gated);
    const logs = p.logs() + gated.logs();
    assert.match(p.logs(), /"msg":"request"/, 'the access log is on');
    assert.ok(sensitive.length > 20, `collected ${sensitive.length} values`);
    for (const s of sensitive) assert.ok(!logs.includes(s), `log output contains ${s.slice(0, 24)}...`);
    const clientTokens = sensitive.filter((s) => s.startsWith('eyJ'));
    for (const seen of upstream.seen) {
      const all = seen.url + '\n' + seen.rawHeaders.join('\n');
      for (const t of clientTokens) assert.ok(!all.includes(t), `a client token reached the tool: ${seen.url}`);
    }
  });
});
