// Probes and conditions the docs define beyond the seed's (connectorclass.mdx, connector.mdx),
// against real HTTP servers: `response.cel` (the docs' SonarQube class, verbatim, against a
// SonarQube-like server that answers {"status":"DOWN"} or {"valid":false} with 200),
// `http.host` and `http.scheme`, `probe.api` and `livenessProbe.api` through a ConnectorClass
// API that checks X-Plugin-Meta/Auth/Secret; CACertReady (only with --enable-custom-ca-certs,
// severity Info, outside Ready); the one validator (a Connector its class refuses is not
// served, ConnectorClassReady's reason names the field); a class without spec.proxy (not
// served, no proxy address). Kubernetes mode: the same refusals and CACertReady reach a real
// API server with the Warning Events CACertSecretNotFound / InvalidCACert.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { request } from './support/http';
import { startKube, type KubeCluster } from './support/kube';
import { REPO_ROOT, startProxy, type ProxyProcess } from './support/proxy';
import { startUpstream, type Upstream } from './support/upstream';
import { docsExamples } from './support/docs-fixtures';
import { TestCa } from './support/test-ca';
import { readFileSync } from 'node:fs';

const NS = 'team';
const API_VERSION = 'connectors.alauda.io/v1alpha1';
const TOKEN = 'good-token-123';
const SONAR_TOKEN = 'squ_tool-token-Zx81';
const API_TOKEN = 'api-tool-token-Qw17';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const docs = (...objs: Array<object | string>): string => objs.map((o) => (typeof o === 'string' ? o : stringify(o))).join('\n---\n');

interface Cond { type: string; status: string; reason?: string; message?: string; severity?: string }
type Want = Record<string, string | [string, string] | undefined>;
const byType = (conds: readonly Cond[]): Record<string, Cond> => Object.fromEntries(conds.map((c) => [c.type, c]));
const show = (conds: Record<string, Cond> | undefined): string =>
  conds === undefined ? '(none)' : Object.values(conds).map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ''}: ${c.message ?? ''}`).join('\n  ');

/** `undefined` in `want`: the condition must be absent. */
function matches(conds: Record<string, Cond>, want: Want): boolean {
  return Object.entries(want).every(([type, w]) => {
    const c = conds[type];
    if (w === undefined) return c === undefined;
    if (c === undefined) return false;
    const [status, reason] = Array.isArray(w) ? w : [w, undefined];
    return c.status === status && (reason === undefined || (c.reason ?? '') === reason);
  });
}

async function waitFor(p: ProxyProcess, key: string, want: Want, ms = 15_000): Promise<Record<string, Cond>> {
  const deadline = Date.now() + ms;
  let last: Record<string, Cond> | undefined;
  for (;;) {
    const r = await request(`http://127.0.0.1:${p.opsPort}/status`);
    const item = (JSON.parse(r.text) as { items: Array<{ kind: string; namespace?: string; name: string; conditions: Cond[] }> }).items
      .find((i) => i.kind === 'Connector' && `${i.namespace}/${i.name}` === key);
    last = item && byType(item.conditions);
    if (last !== undefined && matches(last, want)) return last;
    if (Date.now() > deadline) assert.fail(`${key}: wanted ${JSON.stringify(want)}; last:\n  ${show(last)}\n${p.logs().split('\n').slice(-10).join('\n')}`);
    await sleep(100);
  }
}

interface Seen { server: string; method: string; url: string; headers: IncomingMessage['headers'] }
const seen: Seen[] = [];
const json = (res: ServerResponse, status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)); };

let sonarUp: Upstream;
let sonarDown: Upstream;
let probed: Upstream;
let other: Upstream;
let api: Upstream;
let proxy: ProxyProcess;
let caProxy: ProxyProcess;
let testCa: TestCa;

/** A SonarQube-like tool: /api/system/status and /api/authentication/validate as SonarQube answers them. */
function sonar(name: string, status: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    seen.push({ server: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    if (req.url === '/api/system/status') return json(res, 200, { id: 'x', version: '10.4', status });
    if (req.url === '/api/authentication/validate') return json(res, 200, { valid: req.headers.authorization === `Bearer ${SONAR_TOKEN}` });
    json(res, 404, { errors: [{ msg: 'not found' }] });
  };
}

function sonarClass(): string {
  const cls = docsExamples().find((e) => e.object.kind === 'ConnectorClass' && e.object.metadata.name === 'sonarqube' && e.source.includes('connector-sonar'));
  assert.ok(cls, 'the docs\' SonarQube class is among the fixtures');
  return cls.text;
}

function connector(name: string, cls: string, address: string, o: { secret?: Record<string, string>; type?: string; ext?: Array<{ name: string; value: string }>; ca?: string; authName?: string } = {}): string {
  const c = {
    apiVersion: API_VERSION, kind: 'Connector', metadata: { name, namespace: NS },
    spec: {
      connectorClassName: cls, address,
      ...(o.ext ? { addressExtensions: o.ext } : {}),
      ...(o.authName ? { auth: { name: o.authName, ...(o.secret ? { secretRef: { name: `${name}-secret` } } : {}) } } : {}),
      ...(o.ca ? { caCertSecretRef: { name: o.ca } } : {}),
    },
  };
  if (!o.secret) return docs(c);
  return docs(c, { apiVersion: 'v1', kind: 'Secret', metadata: { name: `${name}-secret`, namespace: NS }, type: o.type, stringData: o.secret });
}

before(async () => {
  sonarUp = await startUpstream(sonar('sonar-up', 'UP'));
  sonarDown = await startUpstream(sonar('sonar-down', 'DOWN'));
  probed = await startUpstream((req, res) => { seen.push({ server: 'probed', method: req.method ?? '', url: req.url ?? '', headers: req.headers }); req.resume(); json(res, 200, { ok: true }); });
  // Serves /health only: anything else it is asked is a probe that went to the wrong host.
  other = await startUpstream((req, res) => { seen.push({ server: 'other', method: req.method ?? '', url: req.url ?? '', headers: req.headers }); req.resume(); json(res, req.url === '/health' ? 200 : 500, {}); });
  testCa = await TestCa.create('probes-ca');
  // A ConnectorClass API (connectorclass_api_spec.mdx): the Connector comes in X-Plugin-* headers.
  api = await startUpstream((req, res) => {
    seen.push({ server: 'api', method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    if (req.url === '/api/health') return json(res, 200, { ok: true });
    if (req.url === '/api/auth/check') {
      const secret = JSON.parse(Buffer.from(String(req.headers['x-plugin-secret'] ?? ''), 'base64').toString('utf8') || '{}') as Record<string, string>;
      const token = Buffer.from(secret.token ?? '', 'base64').toString('utf8');
      return json(res, token === API_TOKEN ? 200 : 401, { status: token === API_TOKEN ? 'Success' : 'Failure' });
    }
    json(res, 404, {});
  });
  const sonarSecret = (token: string): { secret: Record<string, string>; type: string; authName: string } => ({ secret: { token }, type: 'connectors.cpaas.io/bearer-token', authName: 'tokenAuth' });
  const manifests = {
    'sonarqube-class.yaml': sonarClass(),
    'sonar.yaml': docs(
      connector('sonar-up', 'sonarqube', sonarUp.origin, sonarSecret(SONAR_TOKEN)),
      connector('sonar-down', 'sonarqube', sonarDown.origin, sonarSecret(SONAR_TOKEN)),
      connector('sonar-badtoken', 'sonarqube', sonarUp.origin, sonarSecret('squ_wrong')),
    ),
    'host-scheme.yaml': docs(
      {
        apiVersion: API_VERSION, kind: 'ConnectorClass', metadata: { name: 'elsewhere' },
        spec: {
          proxy: {}, auth: { types: [{ name: 'token', secretType: 'connectors.cpaas.io/bearer-token' }] },
          // http.host: the tool's API lives on another host than its address.
          authProbes: [{ authName: 'token', probe: { http: { host: new URL(probed.origin).host, scheme: 'http', path: '/check/{{ .Connector.Name }}', httpHeaders: [{ name: 'Authorization', value: 'Bearer {{ .Secret.StringData.token }}' }] } } }],
          // http.scheme: the address is https, its health page plain http on the same host and port.
          livenessProbe: { http: { scheme: 'http', path: '/health' } },
        },
      },
      // An https address on a plain-HTTP server: only http.scheme makes the liveness probe work.
      connector('hosted', 'elsewhere', `https://127.0.0.1:${other.port}/base`, { secret: { token: 'tool-token' }, type: 'connectors.cpaas.io/bearer-token', authName: 'token' }),
    ),
    'api-probe.yaml': docs(
      {
        apiVersion: API_VERSION, kind: 'ConnectorClass', metadata: { name: 'with-api' },
        spec: {
          proxy: {}, api: { uri: `${api.origin}/api` },
          auth: { types: [{ name: 'token', secretType: 'connectors.cpaas.io/bearer-token' }] },
          livenessProbe: { api: { path: '/health' } },
          authProbes: [{ authName: 'token', probe: { api: { path: '/auth/check' } } }],
        },
      },
      connector('api-good', 'with-api', 'https://tool.example.com', { secret: { token: API_TOKEN }, type: 'connectors.cpaas.io/bearer-token', authName: 'token' }),
      connector('api-bad', 'with-api', 'https://tool.example.com', { secret: { token: 'wrong-api-token' }, type: 'connectors.cpaas.io/bearer-token', authName: 'token' }),
    ),
    'contract.yaml': docs(
      { apiVersion: API_VERSION, kind: 'ConnectorClass', metadata: { name: 'github-like' }, spec: { proxy: {}, addressExtensions: [{ name: 'api', type: 'string' }, { name: 'upload', type: 'string', default: 'https://uploads.example.com' }] } },
      connector('ext-ok', 'github-like', probed.origin, { ext: [{ name: 'api', value: other.origin }] }),
      connector('ext-missing', 'github-like', probed.origin),
      connector('ext-unknown', 'github-like', probed.origin, { ext: [{ name: 'api', value: other.origin }, { name: 'nope', value: 'https://nope.example.com' }] }),
      { apiVersion: API_VERSION, kind: 'ConnectorClass', metadata: { name: 'no-proxy' }, spec: {} },
      connector('unproxied', 'no-proxy', probed.origin),
    ),
  };
  proxy = await startProxy({ manifests, args: ['--probe-interval-ms', '500', '--probe-timeout-ms', '2000'] });
  caProxy = await startProxy({
    manifests: {
      'ca.yaml': docs(
        { apiVersion: API_VERSION, kind: 'ConnectorClass', metadata: { name: 'plain' }, spec: { proxy: {} } },
        connector('no-ca', 'plain', probed.origin),
        connector('ca-missing', 'plain', probed.origin, { ca: 'absent-ca' }),
        connector('ca-junk', 'plain', probed.origin, { ca: 'junk-ca' }),
        connector('ca-good', 'plain', probed.origin, { ca: 'good-ca' }),
        { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'junk-ca', namespace: NS }, stringData: { 'ca.crt': '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n' } },
        { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'good-ca', namespace: NS }, stringData: { 'ca.crt': testCa.cert } },
      ),
    },
    args: ['--probe-interval-ms', '500', '--enable-custom-ca-certs'],
  });
}, { timeout: 60_000 });

after(async () => {
  await proxy?.stop();
  await caProxy?.stop();
  for (const u of [sonarUp, sonarDown, probed, other, api]) await u?.close();
  testCa?.remove();
});

describe('probes as connectorclass.mdx defines them, against real HTTP servers', () => {
  test('response.cel (the docs\' SonarQube class): {"status":"UP"} → LivenessReady=True, {"status":"DOWN"} with 200 → False', async () => {
    const up = await waitFor(proxy, `${NS}/sonar-up`, { LivenessReady: 'True', AuthReady: 'True', Ready: 'True' });
    assert.match(up.LivenessReady!.message!, /GET http:\/\/127\.0\.0\.1:\d+\/api\/system\/status answered 200; spec\.livenessProbe\.http\.response\.cel is true/);
    const down = await waitFor(proxy, `${NS}/sonar-down`, { LivenessReady: ['False', 'ProbeFailed'], Ready: 'False' });
    assert.match(down.LivenessReady!.message!, /answered 200; spec\.livenessProbe\.http\.response\.cel is false/);
    assert.ok(seen.some((s) => s.server === 'sonar-down' && s.url === '/api/system/status'), 'the DOWN server was asked');
  });

  test('response.cel on the auth probe: {"valid":false} with 200 → AuthReady=False Unauthorized; the right token → True', async () => {
    const bad = await waitFor(proxy, `${NS}/sonar-badtoken`, { AuthReady: ['False', 'Unauthorized'], Ready: 'False' });
    assert.match(bad.AuthReady!.message!, /\/api\/authentication\/validate answered 200; spec\.authProbes\[0\]\.probe\.http\.response\.cel is false/);
    assert.ok(!bad.AuthReady!.message!.includes('squ_wrong'));
    const validations = seen.filter((s) => s.server === 'sonar-up' && s.url === '/api/authentication/validate');
    assert.ok(validations.some((s) => s.headers.authorization === `Bearer ${SONAR_TOKEN}`), 'the Secret\'s token was sent');
  });

  test('http.host sends the auth probe to another host; http.scheme probes liveness over http for an https address', async () => {
    const c = await waitFor(proxy, `${NS}/hosted`, { AuthReady: 'True', LivenessReady: 'True' });
    assert.match(c.AuthReady!.message!, new RegExp(`GET ${probed.origin.replace(/\./g, '\\.')}/check/hosted answered 200`));
    assert.match(c.LivenessReady!.message!, new RegExp(`GET ${other.origin.replace(/\./g, '\\.')}/health answered 200`), 'http, not https, and the address path prefix dropped');
    const check = seen.find((s) => s.server === 'probed' && s.url === '/check/hosted');
    assert.equal(check?.headers.authorization, 'Bearer tool-token');
    assert.ok(!seen.some((s) => s.server === 'other' && s.url !== '/health'), 'the auth probe did not go to the address\'s own host');
  });

  test('probe.api and livenessProbe.api: the ConnectorClass API gets X-Plugin-Meta/Auth/Secret; 200 → True, 401 → Unauthorized', async () => {
    const good = await waitFor(proxy, `${NS}/api-good`, { LivenessReady: 'True', AuthReady: 'True', Ready: 'True' });
    assert.match(good.AuthReady!.message!, /GET http:\/\/127\.0\.0\.1:\d+\/api\/auth\/check answered 200/);
    const bad = await waitFor(proxy, `${NS}/api-bad`, { AuthReady: ['False', 'Unauthorized'] });
    assert.match(bad.AuthReady!.message!, /answered 401/);
    const check = seen.find((s) => s.server === 'api' && s.url === '/api/auth/check' && s.headers['x-plugin-secret']);
    assert.ok(check, 'the API was asked');
    assert.deepEqual(JSON.parse(Buffer.from(String(check.headers['x-plugin-meta']), 'base64').toString()), { baseURL: 'https://tool.example.com' });
    assert.equal(Buffer.from(String(check.headers['x-plugin-auth']), 'base64').toString(), 'connectors.cpaas.io/bearer-token');
    const health = seen.find((s) => s.server === 'api' && s.url === '/api/health');
    assert.ok(health && health.headers['x-plugin-secret'] === undefined, 'the liveness probe sends no Secret');
  });
});

describe('one validator, classes without proxy capability', () => {
  test('a Connector its class refuses is not served (502 naming the field), ConnectorClassReady=False with the field in its reason', async () => {
    const missing = await waitFor(proxy, `${NS}/ext-missing`, { ConnectorClassReady: ['False', 'MissingAddressExtensions'], Ready: 'False' });
    assert.match(missing.ConnectorClassReady!.message!, /spec\.addressExtensions: ConnectorClass "github-like" requires address extension "api" \(it has no default\)/);
    const unknown = await waitFor(proxy, `${NS}/ext-unknown`, { ConnectorClassReady: ['False', 'InvalidAddressExtensionsName'] });
    assert.match(unknown.ConnectorClassReady!.message!, /spec\.addressExtensions\[1\]\.name: ConnectorClass "github-like" declares no address extension "nope" \(declared: api, upload\)/);
    await waitFor(proxy, `${NS}/ext-ok`, { ConnectorClassReady: 'True', Ready: 'True' });
    const n = seen.length;
    for (const name of ['ext-missing', 'ext-unknown']) {
      const r = await request(`http://127.0.0.1:${proxy.port}/x`, { headers: { host: `c-${name}.${NS}.proxy.test`, authorization: `Bearer ${TOKEN}` } });
      assert.equal(r.status, 502, r.text);
      assert.match(r.text, /spec\.addressExtensions/);
    }
    const ok = await request(`http://127.0.0.1:${proxy.port}/served`, { headers: { host: `c-ext-ok.${NS}.proxy.test`, authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.status, 200, ok.text);
    // (Probes keep running meanwhile: only the client requests are counted.)
    const client = seen.slice(n).map((s) => s.url).filter((u) => u === '/x' || u === '/served');
    assert.deepEqual(client, ['/served'], 'only the valid Connector reached its tool');
  });

  test('a class without spec.proxy: its Connector is not served (502 saying so), ProxyServiceReady=True NonProxy, no proxy address in its configurations', async () => {
    const c = await waitFor(proxy, `${NS}/unproxied`, { ProxyServiceReady: ['True', 'NonProxy'], Ready: 'True' });
    assert.ok(c);
    const n = seen.length;
    const r = await request(`http://127.0.0.1:${proxy.port}/x`, { headers: { host: `c-unproxied.${NS}.proxy.test`, authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 502, r.text);
    assert.match(r.text, /ConnectorClass "no-proxy" has no proxy capability \(spec\.proxy is not set\)/);
    assert.ok(!seen.slice(n).some((s) => s.url === '/x'), 'the tool was not reached');
    const files = await request(`http://127.0.0.1:${proxy.port}/configurations/files?connectors=${NS}/unproxied`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(files.status, 200, files.text);
    assert.deepEqual(Object.keys((JSON.parse(files.text) as { files: object }).files), ['context.token'], 'no proxy files for a Connector the proxy does not serve');
  });
});

describe('CACertReady (connector.mdx): only with --enable-custom-ca-certs, severity Info, not part of Ready', () => {
  test('NoCACert, SecretNotFound, InvalidPEM, Valid; Ready stays True', async () => {
    const want: Array<[string, string, string, RegExp]> = [
      ['no-ca', 'True', 'NoCACert', /spec\.caCertSecretRef is not set/],
      ['ca-missing', 'False', 'SecretNotFound', /Secret "absent-ca" \(spec\.caCertSecretRef\) not found in namespace "team"/],
      ['ca-junk', 'False', 'InvalidPEM', /holds no valid PEM-encoded certificate/],
      ['ca-good', 'True', 'Valid', /CA certificate loaded from secret "good-ca"/],
    ];
    for (const [name, status, reason, message] of want) {
      const c = await waitFor(caProxy, `${NS}/${name}`, { CACertReady: [status, reason], Ready: 'True' });
      assert.equal(c.CACertReady!.severity, 'Info');
      assert.match(c.CACertReady!.message!, message);
    }
    assert.match(caProxy.logs(), /"reason":"CACertSecretNotFound"/, 'embedded mode logs the warning it would record as an Event');
  });

  test('without the flag there is no CACertReady', async () => {
    await waitFor(proxy, `${NS}/ext-ok`, { Ready: 'True', CACertReady: undefined });
  });
});

describe('Kubernetes mode: refusals and CACertReady on a real API server, with Warning Events', () => {
  let kube: KubeCluster;
  let kproxy: ProxyProcess | undefined;
  let kdir = '';
  const API = `/apis/${API_VERSION}`;
  const KNS = 'kteam';
  const deploy = (f: string): string => readFileSync(join(REPO_ROOT, 'deploy', f), 'utf8');

  before(async () => {
    kube = await startKube();
    kdir = mkdtempSync(join(tmpdir(), 'probes-kube-'));
    await kube.applyYaml(docs(deploy('namespace.yaml'), deploy('rbac.yaml'), deploy('crds/connectorclasses.yaml'), deploy('crds/connectors.yaml')));
    await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
    await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
    await kube.applyYaml(docs(`apiVersion: v1\nkind: Namespace\nmetadata: {name: ${KNS}}`));
    const k = (s: string): string => s.replace(/namespace: team/g, `namespace: ${KNS}`);
    await kube.applyYaml(k(docs(
      { apiVersion: API_VERSION, kind: 'ConnectorClass', metadata: { name: 'github-like' }, spec: { proxy: {}, addressExtensions: [{ name: 'api', type: 'string' }] } },
      connector('ext-missing', 'github-like', probed.origin),
      connector('ca-missing', 'github-like', probed.origin, { ext: [{ name: 'api', value: other.origin }], ca: 'absent-ca' }),
      connector('ca-junk', 'github-like', probed.origin, { ext: [{ name: 'api', value: other.origin }], ca: 'junk-ca' }),
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'junk-ca', namespace: NS }, stringData: { 'ca.crt': 'not a certificate' } },
    )));
    const saToken = await kube.createServiceAccountToken('connectors-system', 'connectors-proxy');
    const kubeconfig = join(kdir, 'proxy.kubeconfig');
    writeFileSync(kubeconfig, [
      'apiVersion: v1', 'kind: Config', 'current-context: proxy',
      'clusters:', '- name: test', '  cluster:', `    server: ${kube.url}`, `    certificate-authority: ${kube.caFile}`,
      'users:', '- name: connectors-proxy', '  user:', `    token: ${saToken}`,
      'contexts:', '- name: proxy', '  context:', '    cluster: test', '    user: connectors-proxy', '',
    ].join('\n'), { mode: 0o600 });
    kproxy = await startProxy({ manifests: {}, domain: 'kube.test', args: ['--source', 'kubernetes', '--kubeconfig', kubeconfig, '--probe-interval-ms', '500', '--enable-custom-ca-certs'] });
  }, { timeout: 90_000 });

  after(async () => {
    await kproxy?.stop();
    await kube?.stop();
    if (kdir) rmSync(kdir, { recursive: true, force: true });
  }, { timeout: 30_000 });

  async function apiConds(name: string, want: Want, ms = 20_000): Promise<Record<string, Cond>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = await kube.api('GET', `${API}/namespaces/${KNS}/connectors/${name}`);
      const conds = byType((r.json as { status?: { conditions?: Cond[] } }).status?.conditions ?? []);
      if (matches(conds, want)) return conds;
      if (Date.now() > deadline) assert.fail(`${name}: wanted ${JSON.stringify(want)}; API server has:\n  ${show(conds)}\n${kproxy?.logs().split('\n').slice(-10).join('\n')}`);
      await sleep(200);
    }
  }

  test('a Connector the API server admitted but its class refuses: ConnectorClassReady=False naming the field', async () => {
    const c = await apiConds('ext-missing', { ConnectorClassReady: ['False', 'MissingAddressExtensions'], Ready: 'False' });
    assert.match(c.ConnectorClassReady!.message!, /requires address extension "api"/);
  });

  test('CACertReady=False SecretNotFound / InvalidPEM with severity Info, and Warning Events CACertSecretNotFound / InvalidCACert', async () => {
    // (Ready is not asked: no proxy Service runs in this cluster, so ProxyServiceReady is False;
    // that CACertReady stays out of Ready is checked in embedded mode above.)
    const missing = await apiConds('ca-missing', { CACertReady: ['False', 'SecretNotFound'] });
    assert.equal(missing.CACertReady!.severity, 'Info');
    assert.doesNotMatch(missing.Ready!.message ?? '', /CACertReady/);
    await apiConds('ca-junk', { CACertReady: ['False', 'InvalidPEM'] });
    const deadline = Date.now() + 15_000;
    let events: Array<{ reason: string; type: string; message: string; involvedObject: { name: string; kind: string; uid?: string } }> = [];
    for (;;) {
      const r = await kube.api('GET', `/api/v1/namespaces/${KNS}/events`);
      events = (r.json as { items: typeof events }).items;
      if (events.some((e) => e.reason === 'CACertSecretNotFound') && events.some((e) => e.reason === 'InvalidCACert')) break;
      if (Date.now() > deadline) assert.fail(`events: ${JSON.stringify(events)}\n${kproxy?.logs().split('\n').slice(-10).join('\n')}`);
      await sleep(200);
    }
    const nf = events.find((e) => e.reason === 'CACertSecretNotFound')!;
    assert.equal(nf.type, 'Warning');
    assert.deepEqual([nf.involvedObject.kind, nf.involvedObject.name], ['Connector', 'ca-missing']);
    assert.ok(nf.involvedObject.uid, 'tied to the object (kubectl describe shows it)');
    const described = await kube.kubectl(['describe', 'connector', 'ca-junk', '-n', KNS]);
    assert.match(described.stdout, /Warning\s+InvalidCACert/);
    assert.doesNotMatch(kproxy!.logs(), /event not recorded|status not written/, 'deploy/rbac.yaml allows both');
  });
});
