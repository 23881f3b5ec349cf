// connectors-proxy as it runs in a cluster (issue 17), against a real kube-apiserver with an
// audit log, two replicas of the proxy binary as the ServiceAccount of deploy/rbac.yaml, and
// deploy/'s own Service, ConfigMap and RBAC:
//  - the Service c-<name> per Connector of a class with spec.proxy: created, restored after a
//    hand edit, moved when the class points elsewhere, removed when the class loses spec.proxy
//    or the Connector goes (no garbage collector runs here: the proxy removes what it owns),
//    and a c-<name> someone else made is never touched (ProxyServiceReady=False naming it);
//  - every name a Pod uses for c-<name> reaches the host resolver;
//  - ProxyReady and status.proxy.httpAddress.url of a class naming deploy/'s Service, as the docs write it;
//  - feature flags from the connectors-config ConfigMap: a flip applies to the next request, a bad
//    value is logged and the last good one kept, a CLI flag or environment variable wins;
//  - leader election: one writer; the leader killed with SIGKILL, the other replica takes the
//    Lease once it expired, writes what changed meanwhile, and nothing was written twice (the
//    API server's audit log tells which replica sent each write);
//  - a kubeconfig whose user is an exec credential plugin (a shell script printing an ExecCredential).
import { FLAG_DEFINITIONS } from '../src/flags/feature-flags';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKube, type KubeCluster } from './support/kube';
import { REPO_ROOT, startProxy, type ProxyProcess } from './support/proxy';
import { startUpstream, type Upstream } from './support/upstream';
import { TestCa, caSecretYaml, startHttpsTool, type HttpsTool } from './support/test-ca';

const NS = 'team-a';
const SYS = 'connectors-system';
const API = '/apis/connectors.alauda.io/v1alpha1';
const LEASE_SECONDS = 4;
const LEASE_PATH = `/apis/coordination.k8s.io/v1/namespaces/${SYS}/leases/connectors-proxy-leader`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const deploy = (f: string): string => readFileSync(join(REPO_ROOT, 'deploy', f), 'utf8');
const docs = (...d: string[]): string => d.join('\n---\n');

// ---- objects ---------------------------------------------------------------------------

/**
 * The docs' built-in proxy configuration (docs/en/connectors/concepts/connectors_proxy.mdx,
 * "Specifying Proxy in ConnectorClass"), with an address and an auth type so its Connectors
 * can be served.
 */
function docsProxyClass(name: string, ref = 'connectors-proxy-service'): string {
  return `
apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: ${name}
spec:
  address: {type: string}
  auth:
    types:
      - {name: basic, secretType: kubernetes.io/basic-auth}
  proxy:
    ref:
      kind: Service
      name: ${ref}
      namespace: connectors-system
`;
}

const PLAIN_CLASS = `
apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: plain}
spec:
  address: {type: string}
  auth:
    types:
      - {name: basic, secretType: kubernetes.io/basic-auth, optional: true}
`;

const CREDS = { user: 'tool-user', pass: 'tool-pass-0f3c9e' };

function connectorYaml(name: string, cls: string, address?: string, extra = ''): string {
  return `
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: ${name}, namespace: ${NS}}
spec:
  connectorClassName: ${cls}
  address: ${address ?? `${upstream.origin}/t/${name}`}
  auth: {name: basic, secretRef: {name: tool-cred}}${extra}
`;
}

// ---- shared state ----------------------------------------------------------------------

let kube: KubeCluster;
let upstream: Upstream;
let tmp: string;
let auditLog: string;
let builderToken: string;
let proxyKubeconfig: string;
const proxies: ProxyProcess[] = [];
let a: ProxyProcess;
let b: ProxyProcess;
let ids: { a: string; b: string };

interface Cond { type: string; status: string; reason?: string; message?: string }
interface StatusBody {
  items: unknown[];
  featureFlags: Array<{ name: string; enabled: boolean; origin: string; configMapValue?: string; problem?: string }>;
  leader?: { identity: string; leader: boolean; holder: string };
}
interface Svc {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; labels?: Record<string, string>; ownerReferences?: Array<{ kind: string; name: string; uid: string; controller?: boolean }> };
  spec: { type: string; externalName?: string; ports?: Array<{ name?: string; port: number }> };
}
interface AuditEvent {
  verb: string; userAgent?: string; requestReceivedTimestamp: string; stageTimestamp: string;
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
}

async function kubeProxy(args: readonly string[], kubeconfig = proxyKubeconfig, env: NodeJS.ProcessEnv = {}): Promise<ProxyProcess> {
  const p = await startProxy({ manifests: {}, domain: 'svc.cluster.local', env, args: ['--source', 'kubernetes', '--kubeconfig', kubeconfig, ...args] });
  proxies.push(p);
  return p;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false, timeout: 20_000 }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function opsStatus(p: ProxyProcess): Promise<StatusBody> {
  const r = await get(p.opsPort, '/status');
  assert.equal(r.status, 200, r.text);
  return JSON.parse(r.text) as StatusBody;
}

/** A request in host form with `host` as the Host header and the builder's token. */
function viaHost(p: ProxyProcess, host: string, token = builderToken): Promise<{ status: number; text: string }> {
  return get(p.port, '/hello', { host, authorization: `Bearer ${token}` });
}

async function until<T>(what: string, f: () => Promise<T>, ok: (x: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const x = await f();
    if (ok(x)) return x;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(x).slice(0, 1500)} after ${ms} ms${tails()}`);
    await sleep(100);
  }
}

const tails = (): string => proxies.map((p, i) => `\n--- proxy ${i}, last 15 log lines:\n${p.logs().trimEnd().split('\n').slice(-15).join('\n')}`).join('');

async function service(name: string, ns = NS): Promise<Svc | undefined> {
  const r = await kube.api('GET', `/api/v1/namespaces/${ns}/services/${name}`);
  if (r.status === 404) return undefined;
  assert.equal(r.status, 200, r.text);
  return r.json as Svc;
}

async function connector(name: string): Promise<{ metadata: { uid: string }; status?: { proxy?: { httpAddress?: { url?: string } } | null; conditions?: Cond[] } } | undefined> {
  const r = await kube.api('GET', `${API}/namespaces/${NS}/connectors/${name}`);
  if (r.status === 404) return undefined;
  return r.json as never;
}

const condOf = (conds: Cond[] | undefined, type: string): Cond | undefined => conds?.find((c) => c.type === type);

async function connectorCond(name: string, type: string, status: string, reason?: string): Promise<Cond> {
  const c = await until(`Connector ${name} ${type}=${status}${reason !== undefined ? `/${reason}` : ''}`, async () => condOf((await connector(name))?.status?.conditions, type),
    (x) => x?.status === status && (reason === undefined || (x.reason ?? '') === reason));
  return c!;
}

async function classStatus(name: string): Promise<{ conditions?: Cond[]; proxy?: { httpAddress?: { url?: string } } }> {
  const r = await kube.api('GET', `${API}/connectorclasses/${name}`);
  assert.equal(r.status, 200, r.text);
  return (r.json as { status?: { conditions?: Cond[]; proxy?: { httpAddress?: { url?: string } } } }).status ?? {};
}

function audit(): AuditEvent[] {
  return readFileSync(auditLog, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as AuditEvent);
}
const identityOf = (e: AuditEvent): string => (e.userAgent ?? '').replace(/^connectors-proxy\//, '');
const isWrite = (e: AuditEvent): boolean => ['create', 'update', 'patch', 'delete'].includes(e.verb);

async function patchConfigMap(data: Record<string, string>): Promise<void> {
  const r = await kube.kubectl(['patch', 'configmap', 'connectors-config', '-n', SYS, '--type', 'merge', '-p', JSON.stringify({ data })]);
  assert.equal(r.code, 0, r.stderr);
}

async function flagOf(p: ProxyProcess, name: string): Promise<StatusBody['featureFlags'][number]> {
  const f = (await opsStatus(p)).featureFlags.find((x) => x.name === name);
  assert.ok(f, `/status lists ${name}`);
  return f;
}

// ---- setup -----------------------------------------------------------------------------

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'cluster-test-'));
  auditLog = join(tmp, 'audit.log');
  // Every write to what the proxy writes, with the User-Agent that names the replica.
  writeFileSync(join(tmp, 'audit-policy.yaml'), `
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete]
    resources:
      - {group: "", resources: [services, configmaps]}
      - {group: connectors.alauda.io, resources: [connectors/status, connectorclasses/status]}
      - {group: coordination.k8s.io, resources: [leases]}
  - level: None
`);
  upstream = await startUpstream((req, res) => {
    const m = /^\/t\/([^/?]+)/.exec(req.url ?? '');
    const ok = req.headers.authorization === `Basic ${Buffer.from(`${CREDS.user}:${CREDS.pass}`).toString('base64')}`;
    req.resume();
    res.writeHead(ok ? 200 : 401, { 'content-type': 'text/plain' }).end(`${m?.[1] ?? '?'}:${ok ? 'ok' : 'no credentials'}`);
  });
  kube = await startKube({ apiserverArgs: [`--audit-policy-file=${join(tmp, 'audit-policy.yaml')}`, `--audit-log-path=${auditLog}`] });

  await kube.applyYaml(docs(deploy('namespace.yaml'), deploy('rbac.yaml'), deploy('crds/connectorclasses.yaml'), deploy('crds/connectors.yaml')));
  await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
  await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
  await kube.applyYaml(docs(deploy('configmap.yaml'), deploy('service.yaml'), `
apiVersion: v1
kind: Service
metadata: {name: other-proxy, namespace: ${SYS}}
spec:
  ports: [{name: web, port: 8080, protocol: TCP}]`,
  `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}`,
  `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: ${NS}}`,
  `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: use-connectors, namespace: ${NS}}
rules: [{apiGroups: [connectors.alauda.io], resources: [connectors], verbs: [get]}]`,
  `
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: builder-uses, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: use-connectors}
subjects: [{kind: ServiceAccount, name: builder, namespace: ${NS}}]`,
  `
apiVersion: v1
kind: Secret
metadata: {name: tool-cred, namespace: ${NS}}
type: kubernetes.io/basic-auth
stringData: {username: ${CREDS.user}, password: ${CREDS.pass}}`,
  docsProxyClass('docs-proxy'), docsProxyClass('missing-proxy', 'nowhere'), PLAIN_CLASS,
  ));
  await kube.applyYaml(docs(connectorYaml('git', 'docs-proxy'), connectorYaml('doomed', 'docs-proxy')));
  builderToken = await kube.createServiceAccountToken(NS, 'builder');

  const proxyToken = await kube.createServiceAccountToken(SYS, 'connectors-proxy');
  proxyKubeconfig = join(tmp, 'proxy.kubeconfig');
  writeFileSync(proxyKubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: proxy',
    'clusters:', '- name: test', '  cluster:', `    server: ${kube.url}`, `    certificate-authority: ${kube.caFile}`,
    'users:', '- name: connectors-proxy', '  user:', `    token: ${proxyToken}`,
    'contexts:', '- name: proxy', '  context:', '    cluster: test', '    user: connectors-proxy', '',
  ].join('\n'), { mode: 0o600 });

  // A first, so that it leads; B once A holds the Lease.
  a = await kubeProxy(['--leader-lease-seconds', String(LEASE_SECONDS)]);
  const la = await until('proxy A leads', () => opsStatus(a), (s) => s.leader?.leader === true);
  b = await kubeProxy(['--leader-lease-seconds', String(LEASE_SECONDS)]);
  const lb = await until('proxy B sees the Lease', () => opsStatus(b), (s) => s.leader?.holder === la.leader!.identity);
  ids = { a: la.leader!.identity, b: lb.leader!.identity };
});

after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await upstream?.close();
  await kube?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---- tests -----------------------------------------------------------------------------

describe('in a cluster: Services, names, conditions, flags, one writer', () => {
  test('one leader: A holds the Lease, B follows; both serve traffic', async () => {
    const lease = await kube.api('GET', LEASE_PATH);
    assert.equal(lease.status, 200, lease.text);
    assert.equal((lease.json as { spec: { holderIdentity: string } }).spec.holderIdentity, ids.a);
    assert.notEqual(ids.a, ids.b);
    assert.equal((await opsStatus(b)).leader?.leader, false);
    for (const p of [a, b]) {
      const r = await until('served', () => viaHost(p, `c-git.${NS}.svc.cluster.local`), (x) => x.status === 200);
      assert.equal(r.text, 'git:ok');
    }
  });

  test('a Service c-<name> per Connector of a class with spec.proxy: ExternalName to deploy/\'s Service, owner reference, managed-by label; ProxyServiceReady True', async () => {
    const c = await until('Connector git', () => connector('git'), (x) => x !== undefined);
    const svc = await until('Service c-git', () => service('c-git'), (x) => x !== undefined);
    assert.equal(svc!.spec.type, 'ExternalName');
    assert.equal(svc!.spec.externalName, `connectors-proxy-service.${SYS}.svc.cluster.local`);
    assert.deepEqual(svc!.spec.ports?.map((p) => `${p.name}:${p.port}`), ['http:80'], 'the ports of the proxy Service');
    assert.equal(svc!.metadata.labels?.['app.kubernetes.io/managed-by'], 'connectors-proxy');
    assert.deepEqual(svc!.metadata.ownerReferences?.map((r) => [r.kind, r.name, r.uid, r.controller]), [['Connector', 'git', c!.metadata.uid, true]]);
    const ready = await connectorCond('git', 'ProxyServiceReady', 'True', '');
    assert.match(ready.message!, new RegExp(`Service ${NS}/c-git points at connectors-proxy-service\\.${SYS}\\.svc\\.cluster\\.local`));
    const url = await until('status.proxy.httpAddress.url', async () => (await connector('git'))?.status?.proxy?.httpAddress?.url, (u) => u !== undefined);
    assert.equal(url, `http://c-git.${NS}.svc.cluster.local`);
  });

  test('every name a Pod uses for c-<name> reaches the host resolver, with or without a port, on the leader and the follower', async () => {
    const names = [`c-git.${NS}`, `c-git.${NS}.svc`, `c-git.${NS}.svc.cluster.local`, `c-git.${NS}.svc.cluster.local.`];
    for (const p of [a, b]) {
      for (const n of names) {
        for (const host of [n, `${n}:80`, `${n}:${p.port}`]) {
          const r = await viaHost(p, host);
          assert.deepEqual([r.status, r.text], [200, 'git:ok'], `Host: ${host}`);
        }
      }
      // Control: the same name in another namespace is another Connector (none there).
      const other = await viaHost(p, 'c-git.elsewhere.svc');
      assert.equal(other.status, 403, `c-git.elsewhere is checked against namespace elsewhere: ${other.text}`);
    }
  });

  test('the docs\' class naming connectors-proxy-service: ProxyReady True and status.proxy.httpAddress.url; a class naming a missing Service: ProxyReady=False ProxyServiceNotFound, and so are its Connectors', async () => {
    const ok = await until('docs-proxy ProxyReady', () => classStatus('docs-proxy'), (s) => condOf(s.conditions, 'ProxyReady')?.status === 'True');
    assert.match(condOf(ok.conditions, 'ProxyReady')!.message!, /connectors-system\/connectors-proxy-service exists \(this proxy's own Service\)/);
    assert.equal(condOf(ok.conditions, 'Ready')?.status, 'True');
    assert.equal(ok.proxy?.httpAddress?.url, `http://connectors-proxy-service.${SYS}.svc.cluster.local`);
    const missing = await until('missing-proxy ProxyReady', () => classStatus('missing-proxy'), (s) => condOf(s.conditions, 'ProxyReady')?.status === 'False');
    assert.deepEqual([condOf(missing.conditions, 'ProxyReady')?.reason, condOf(missing.conditions, 'ProxyReady')?.message],
      ['ProxyServiceNotFound', `Service nowhere not found in namespace ${SYS}`]);
    await kube.applyYaml(connectorYaml('lost', 'missing-proxy'));
    const lost = await connectorCond('lost', 'ProxyServiceReady', 'False', 'ProxyServiceNotFound');
    assert.match(lost.message!, /Service nowhere not found in namespace connectors-system/);
    assert.equal((await until('c-lost', () => service('c-lost'), (x) => x !== undefined))!.spec.externalName, `nowhere.${SYS}.svc.cluster.local`);
  });

  test('updated: a hand edit of c-<name> is undone; a class pointing at another Service moves it there', async () => {
    const r = await kube.kubectl(['patch', 'service', 'c-git', '-n', NS, '--type', 'merge', '-p', '{"spec":{"externalName":"evil.example.com"}}']);
    assert.equal(r.code, 0, r.stderr);
    await until('c-git restored', () => service('c-git'), (s) => s?.spec.externalName === `connectors-proxy-service.${SYS}.svc.cluster.local`);
    await kube.applyYaml(docsProxyClass('docs-proxy', 'other-proxy'));
    const moved = await until('c-git moved', () => service('c-git'), (s) => s?.spec.externalName === `other-proxy.${SYS}.svc.cluster.local`);
    assert.deepEqual(moved!.spec.ports?.map((p) => `${p.name}:${p.port}`), ['web:8080']);
    await kube.applyYaml(docsProxyClass('docs-proxy'));
    await until('c-git back', () => service('c-git'), (s) => s?.spec.externalName === `connectors-proxy-service.${SYS}.svc.cluster.local`);
    await connectorCond('git', 'ProxyServiceReady', 'True', '');
  });

  test('removed: the class loses spec.proxy → Service deleted, status.proxy cleared, ProxyServiceReady True/NonProxy; back → recreated; the Connector deleted → Service deleted', async () => {
    await kube.applyYaml(PLAIN_CLASS.replace('name: plain', 'name: docs-proxy'));
    await until('c-git deleted', () => service('c-git'), (s) => s === undefined);
    await connectorCond('git', 'ProxyServiceReady', 'True', 'NonProxy');
    await until('status.proxy cleared', async () => (await connector('git'))?.status?.proxy ?? undefined, (p) => p === undefined);
    await kube.applyYaml(docsProxyClass('docs-proxy'));
    await until('c-git recreated', () => service('c-git'), (s) => s?.spec.type === 'ExternalName');
    await connectorCond('git', 'ProxyServiceReady', 'True', '');

    await kube.applyYaml(connectorYaml('short-lived', 'docs-proxy'));
    await until('c-short-lived', () => service('c-short-lived'), (s) => s !== undefined);
    const del = await kube.api('DELETE', `${API}/namespaces/${NS}/connectors/short-lived`);
    assert.equal(del.status, 200, del.text);
    await until('c-short-lived deleted by the proxy (no garbage collector here)', () => service('c-short-lived'), (s) => s === undefined);
  });

  test('conflict: a c-<name> Service someone else made is never touched; ProxyServiceReady=False ServiceConflict names it; once it is gone the proxy creates its own', async () => {
    await kube.applyYaml(`
apiVersion: v1
kind: Service
metadata: {name: c-taken, namespace: ${NS}, labels: {app: someone-else}}
spec:
  ports: [{port: 5432}]`);
    const before = (await service('c-taken'))!;
    await kube.applyYaml(connectorYaml('taken', 'docs-proxy'));
    const c = await connectorCond('taken', 'ProxyServiceReady', 'False', 'ServiceConflict');
    assert.match(c.message!, new RegExp(`Service ${NS}/c-taken exists and is not managed by connectors-proxy`));
    assert.equal((await connectorCond('taken', 'Ready', 'False')).status, 'False');
    const still = (await service('c-taken'))!;
    assert.deepEqual([still.metadata.uid, still.metadata.resourceVersion, still.spec.type], [before.metadata.uid, before.metadata.resourceVersion, 'ClusterIP']);
    assert.deepEqual(audit().filter((e) => isWrite(e) && e.objectRef?.resource === 'services' && e.objectRef.name === 'c-taken' && identityOf(e) !== '' && (e.userAgent ?? '').startsWith('connectors-proxy/')), [],
      'the proxy sent no write for c-taken');
    const del = await kube.api('DELETE', `/api/v1/namespaces/${NS}/services/c-taken`);
    assert.equal(del.status, 200, del.text);
    await until('c-taken is ours now', () => service('c-taken'), (s) => s?.spec.type === 'ExternalName' && s.metadata.labels?.['app.kubernetes.io/managed-by'] === 'connectors-proxy');
    await connectorCond('taken', 'ProxyServiceReady', 'True', '');
  });

  test('feature flags: enable-connector-proxy-permissions flipped in connectors-config applies to the next request (on every replica); a bad value is logged and the last good kept', async () => {
    for (const p of [a, b]) assert.equal((await viaHost(p, `c-git.${NS}.svc`)).status, 200);
    assert.deepEqual(await flagOf(a, 'enable-connector-proxy-permissions').then((f) => [f.enabled, f.origin]), [false, 'configmap']);
    await patchConfigMap({ 'enable-connector-proxy-permissions': 'true' });
    for (const p of [a, b]) {
      await until('the flag seen', () => flagOf(p, 'enable-connector-proxy-permissions'), (f) => f.enabled);
      // A cached "allowed" from a moment ago (TTL 30 s) is not reused under the other flag value.
      const r = await viaHost(p, `c-git.${NS}.svc`);
      assert.equal(r.status, 403, r.text);
      assert.match(r.text, /connectors\/proxy "git"/);
    }
    const since = a.logs().length;
    await patchConfigMap({ 'enable-connector-proxy-permissions': 'yes please' });
    const line = await a.waitForLog(/\{[^\n]*feature flag value is not[^\n]*\}/, 10_000, since);
    const entry = JSON.parse(line) as { configMap: string; key: string; value: string; kept: boolean };
    assert.deepEqual([entry.configMap, entry.key, entry.value, entry.kept], [`ConfigMap ${SYS}/connectors-config`, 'enable-connector-proxy-permissions', 'yes please', true]);
    const kept = await flagOf(a, 'enable-connector-proxy-permissions');
    assert.deepEqual([kept.enabled, kept.origin, kept.configMapValue], [true, 'configmap', 'yes please']);
    assert.match(kept.problem!, /is not "true" or "false"; keeping true/);
    assert.equal((await viaHost(a, `c-git.${NS}.svc`)).status, 403, 'still on');
    await patchConfigMap({ 'enable-connector-proxy-permissions': 'false' });
    for (const p of [a, b]) {
      await until('the flag off', () => flagOf(p, 'enable-connector-proxy-permissions'), (f) => !f.enabled);
      assert.equal((await viaHost(p, `c-git.${NS}.svc`)).status, 200);
    }
  });

  test('a CLI flag or environment variable given explicitly wins over the ConfigMap; /status shows each flag and its origin', async () => {
    const c = await kubeProxy(['--no-write-status', '--enable-connector-proxy-permissions=false'], proxyKubeconfig, { PROXY_ENABLE_CUSTOM_CA_CERTS: 'false' });
    await patchConfigMap({ 'enable-connector-proxy-permissions': 'true', 'enable-custom-ca-certs': 'true', 'enable-multi-connector': 'true' });
    await until('B sees the flags', () => flagOf(b, 'enable-multi-connector'), (f) => f.enabled);
    await until('C sees the ConfigMap', () => flagOf(c, 'enable-multi-connector'), (f) => f.enabled);
    const flags = new Map((await opsStatus(c)).featureFlags.map((f) => [f.name, [f.enabled, f.origin]]));
    assert.deepEqual(flags.get('enable-connector-proxy-permissions'), [false, 'cli']);
    assert.deepEqual(flags.get('enable-custom-ca-certs'), [false, 'env']);
    assert.deepEqual(flags.get('enable-multi-connector'), [true, 'configmap']);
    assert.deepEqual(flags.get('enable-connectors-approval'), [false, 'configmap']);
    assert.equal(flags.size, FLAG_DEFINITIONS.length, 'every flag: the docs\' seven and enable-connect-tunnels');
    assert.equal((await viaHost(c, `c-git.${NS}`)).status, 200, 'C: the CLI said false');
    assert.equal((await viaHost(b, `c-git.${NS}`)).status, 403, 'B: the ConfigMap says true');
    assert.equal((await opsStatus(c)).leader, undefined, '--no-write-status: C takes no part in the election');
    await patchConfigMap({ 'enable-connector-proxy-permissions': 'false', 'enable-custom-ca-certs': 'false', 'enable-multi-connector': 'false' });
    await until('B: flags back', () => flagOf(b, 'enable-connector-proxy-permissions'), (f) => !f.enabled);
  });

  test('enable-custom-ca-certs from the ConfigMap: the next request to an HTTPS tool trusts the global CA Secret, and stops when it is turned off', async () => {
    const ca = await TestCa.create('cluster-test-ca');
    let tool: HttpsTool | undefined;
    try {
      tool = await startHttpsTool(await ca.issue(['127.0.0.1']), (req, res) => {
        const ok = req.headers.authorization === `Basic ${Buffer.from(`${CREDS.user}:${CREDS.pass}`).toString('base64')}`;
        req.resume();
        res.writeHead(ok ? 200 : 401).end(ok ? 'tls:ok' : 'no credentials');
      });
      await kube.applyYaml(docs(caSecretYaml('global-ca', SYS, { 'ca.crt': ca.cert }, true), connectorYaml('tls-tool', 'docs-proxy', `https://127.0.0.1:${tool.port}`)));
      const untrusted = await until('tls-tool served (untrusted)', () => viaHost(b, `c-tls-tool.${NS}.svc`), (r) => r.status === 502);
      assert.match(untrusted.text, /not trusted.*enable-custom-ca-certs/);
      await patchConfigMap({ 'enable-custom-ca-certs': 'true' });
      await until('the flag seen', () => flagOf(b, 'enable-custom-ca-certs'), (f) => f.enabled);
      const trusted = await viaHost(b, `c-tls-tool.${NS}.svc`);
      assert.deepEqual([trusted.status, trusted.text], [200, 'tls:ok']);
      await patchConfigMap({ 'enable-custom-ca-certs': 'false' });
      await until('the flag off', () => flagOf(b, 'enable-custom-ca-certs'), (f) => !f.enabled);
      assert.equal((await viaHost(b, `c-tls-tool.${NS}.svc`)).status, 502);
    } finally {
      await tool?.close();
      ca.remove();
    }
  });

  test('failover: the leader killed (SIGKILL), the follower takes the Lease once it expired, writes what changed meanwhile; every write came from the Lease holder and nothing was written twice', async () => {
    // Everything settled under A: c-doomed exists, every status written, A quiet for 2 s.
    await until('c-doomed', () => service('c-doomed'), (s) => s !== undefined);
    await connectorCond('taken', 'ProxyServiceReady', 'True', '');
    await connectorCond('tls-tool', 'Ready', 'True');
    const lastWriteByA = (): number => Math.max(0, ...audit().filter((e) => isWrite(e) && identityOf(e) === ids.a && e.objectRef?.resource !== 'leases').map((e) => Date.parse(e.requestReceivedTimestamp)));
    await until('A has nothing left to write', async () => Date.now() - lastWriteByA(), (quiet) => quiet > 2_000, 30_000);
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    // Changes while nobody leads.
    await kube.applyYaml(connectorYaml('during-gap', 'docs-proxy'));
    assert.equal((await kube.api('DELETE', `${API}/namespaces/${NS}/connectors/doomed`)).status, 200);
    // B serves all along.
    assert.equal((await viaHost(b, `c-git.${NS}.svc`)).status, 200);

    await until('B holds the Lease', async () => (await kube.api('GET', LEASE_PATH)).json as { spec: { holderIdentity: string } }, (l) => l.spec.holderIdentity === ids.b, LEASE_SECONDS * 1000 * 3);
    await until('B says it leads', () => opsStatus(b), (s) => s.leader?.leader === true);
    const gap = await until('c-during-gap', () => service('c-during-gap'), (s) => s !== undefined);
    assert.equal(gap!.spec.externalName, `connectors-proxy-service.${SYS}.svc.cluster.local`);
    await until('c-doomed removed', () => service('c-doomed'), (s) => s === undefined);
    await connectorCond('during-gap', 'ProxyServiceReady', 'True', '');
    assert.equal((await connector('during-gap'))?.status?.proxy?.httpAddress?.url, `http://c-during-gap.${NS}.svc.cluster.local`);
    assert.equal((await viaHost(b, `c-during-gap.${NS}.svc.cluster.local`)).text, 'during-gap:ok');
    await sleep(1_000); // let B's first round of status checks finish before reading the log

    const events = audit().filter((e) => isWrite(e) && (e.userAgent ?? '').startsWith('connectors-proxy/') && (e.responseStatus?.code ?? 0) < 300);
    const leaseWrites = events.filter((e) => e.objectRef?.resource === 'leases');
    const lastRenewByA = leaseWrites.filter((e) => identityOf(e) === ids.a).map((e) => Date.parse(e.requestReceivedTimestamp)).sort().pop()!;
    const takeover = leaseWrites.filter((e) => identityOf(e) === ids.b).map((e) => Date.parse(e.requestReceivedTimestamp)).sort()[0]!;
    assert.ok(lastRenewByA <= killedAt + 50, 'A renewed until it was killed');
    // B waited out the Lease (measured from its last renewal), then took it within one more round.
    assert.ok(takeover - lastRenewByA >= LEASE_SECONDS * 1000 - 100, `B took over ${takeover - lastRenewByA} ms after A's last renewal: not before the Lease expired`);
    assert.ok(takeover - lastRenewByA <= LEASE_SECONDS * 1000 + 2_000, `B took over ${takeover - lastRenewByA} ms after A's last renewal: within the lease duration and a retry`);

    const others = events.filter((e) => e.objectRef?.resource !== 'leases');
    assert.ok(others.length > 10, `writes seen: ${others.length}`);
    for (const e of others) {
      const id = identityOf(e);
      const at = Date.parse(e.requestReceivedTimestamp);
      const what = `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.subresource ?? ''} ${e.objectRef?.namespace ?? ''}/${e.objectRef?.name}`;
      assert.ok(id === ids.a || id === ids.b, `${what} by ${id}: only the two electing replicas write`);
      if (id === ids.a) assert.ok(at <= killedAt + 50, `${what} by A after it was killed`);
      else assert.ok(at >= takeover, `${what} by B at ${e.requestReceivedTimestamp}, before it held the Lease`);
    }
    // B wrote Services only for what changed while nobody led.
    const bServices = others.filter((e) => identityOf(e) === ids.b && e.objectRef?.resource === 'services').map((e) => `${e.verb} ${e.objectRef?.name}`).sort();
    assert.deepEqual(bServices, ['create c-during-gap', 'delete c-doomed']);
    // No Service was created twice without a delete in between, by anyone.
    const alive = new Map<string, boolean>();
    for (const e of others.filter((x) => x.objectRef?.resource === 'services').sort((x, y) => x.requestReceivedTimestamp.localeCompare(y.requestReceivedTimestamp))) {
      const key = `${e.objectRef?.namespace}/${e.objectRef?.name}`;
      if (e.verb === 'create') assert.ok(!alive.get(key), `${key} created twice`);
      if (e.verb === 'create') alive.set(key, true);
      if (e.verb === 'delete') alive.set(key, false);
    }
    // B's status writes concern only objects that changed while nobody led (no rewrite of settled ones).
    const bStatus = new Set(others.filter((e) => identityOf(e) === ids.b && e.objectRef?.subresource === 'status').map((e) => `${e.objectRef?.resource}/${e.objectRef?.name}`));
    assert.deepEqual([...bStatus].filter((k) => k !== 'connectors/during-gap'), [], `B rewrote settled statuses: ${[...bStatus].join(', ')}`);
  });

  test('graceful stop: the leader releases the Lease on SIGTERM and a new replica takes it without waiting for it to expire', async () => {
    const f = await kubeProxy(['--leader-lease-seconds', '600']);
    const fid = await until('F follows B', () => opsStatus(f), (s) => s.leader?.holder === ids.b).then((s) => s.leader!.identity);
    const stopping = b.stop();
    // A 600 s Lease: F can only have it this soon because B released it.
    await until('F leads', () => opsStatus(f), (s) => s.leader?.leader === true, 15_000);
    await stopping;
    assert.match(b.logs(), /"msg":"leader Lease released"/);
    const lease = (await kube.api('GET', LEASE_PATH)).json as { spec: { holderIdentity: string; leaseDurationSeconds: number } };
    assert.deepEqual([lease.spec.holderIdentity, lease.spec.leaseDurationSeconds], [fid, 600]);
    assert.equal((await viaHost(f, `c-during-gap.${NS}.svc`)).text, 'during-gap:ok');
  });

  test('a kubeconfig whose user is an exec credential plugin (client.authentication.k8s.io/v1): the proxy syncs and checks tokens with it, runs it again after a 401 and after the expiry it printed', async () => {
    const token = await kube.createServiceAccountToken(SYS, 'connectors-proxy');
    const tokenFile = join(tmp, 'exec-token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const runs = join(tmp, 'exec-runs');
    const script = join(tmp, 'credential-plugin.sh');
    // First run: a token the API server rejects (a revoked one); later runs: the real one,
    // valid for 6 s by what it says.
    writeFileSync(script, `#!/bin/sh
echo "$KUBERNETES_EXEC_INFO" >> "$RUNS"
n=$(wc -l < "$RUNS")
if [ "$n" -eq 1 ]; then t=revoked-token; else t=$(cat "$1"); fi
exp=$(date -u -d "+6 seconds" +%Y-%m-%dT%H:%M:%SZ)
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}\\n' "$t" "$exp"
`);
    chmodSync(script, 0o700);
    const kubeconfig = join(tmp, 'exec.kubeconfig');
    writeFileSync(kubeconfig, `
apiVersion: v1
kind: Config
current-context: exec
clusters:
- name: test
  cluster: {server: "${kube.url}", certificate-authority: "${kube.caFile}"}
users:
- name: plugin
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./credential-plugin.sh
      args: ["${tokenFile}"]
      env: [{name: RUNS, value: "${runs}"}]
      interactiveMode: Never
      provideClusterInfo: true
contexts:
- name: exec
  context: {cluster: test, user: plugin}
`);
    const e = await kubeProxy(['--no-write-status'], kubeconfig);
    await until('E ready', () => get(e.opsPort, '/readyz'), (r) => r.status === 200);
    assert.equal((await viaHost(e, `c-git.${NS}.svc`)).status, 200, 'a client token checked with the plugin\'s token');
    const infos = readFileSync(runs, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { apiVersion: string; kind: string; spec: { interactive: boolean; cluster?: { server: string } } });
    assert.ok(infos.length >= 2, `the revoked token was replaced after the 401: ${infos.length} run(s)`);
    assert.deepEqual([infos[0]!.apiVersion, infos[0]!.kind, infos[0]!.spec.interactive, infos[0]!.spec.cluster?.server], ['client.authentication.k8s.io/v1', 'ExecCredential', false, kube.url]);
    const before = infos.length;
    await sleep(6_500); // past the expiry the plugin printed
    const fresh = await kube.createServiceAccountToken(NS, 'builder'); // never reviewed: the proxy must ask the API server
    assert.equal((await viaHost(e, `c-git.${NS}.svc`, fresh)).status, 200);
    const after = readFileSync(runs, 'utf8').trim().split('\n').length;
    assert.ok(after > before, `the plugin ran again after its credential expired (${before} → ${after} runs)`);
    assert.ok(!e.logs().includes(token), 'the plugin\'s token is never logged');
  });
});
