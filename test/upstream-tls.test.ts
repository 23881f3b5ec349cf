// HTTPS tools behind the proxy (embedded mode): a real HTTPS server with a certificate from a
// throwaway CA made by openssl, trusted through the Connector's spec.caCertSecretRef Secret or
// a global CA Secret (label connectors.cpaas.io/ca-cert="true" in --namespace), only with
// --enable-custom-ca-certs; the system roots stay; untrusted → 502 saying how to fix it; CA and
// certificate rotation and global CA removal picked up without a restart; SNI from the address;
// insecureSkipVerify only as an explicit Connector param, warned about.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, request, type Reply } from './support/http';
import { basic, startProxy, type ProxyProcess } from './support/proxy';
import { TestCa, caSecretYaml, startHttpsTool, type HttpsTool, type KeyPair } from './support/test-ca';

const CLIENT = basic('anyone', 'good-token-123');
const TOOL_PASSWORD = 'tls-tool-secret-pw-7f3a';
const DECOY = 'decoy-token-in-ca-secret-9b1c';
const PROXY_NS = 'proxy-system';

let caA: TestCa;
let caB: TestCa;
let pairA: KeyPair;
let pairB: KeyPair;
let tool: HttpsTool;
const proxies: ProxyProcess[] = [];

function classYaml(): string {
  return `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: https-tool}
spec:
  proxy: {}
  address: {type: string}
  livenessProbe: {http: {path: /healthz}}
  auth:
    types:
      - {name: basic, secretType: kubernetes.io/basic-auth}
---
apiVersion: v1
kind: Secret
metadata: {name: tool-cred, namespace: team}
type: kubernetes.io/basic-auth
stringData: {username: tool-user, password: ${TOOL_PASSWORD}}
`;
}

function connectorYaml(name: string, o: { ca?: string; insecure?: boolean } = {}): string {
  return `apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: ${name}, namespace: team}
spec:
  connectorClassName: https-tool
  address: https://localhost:${tool.port}/base
  auth: {name: basic, secretRef: {name: tool-cred}}${o.ca ? `\n  caCertSecretRef: {name: ${o.ca}}` : ''}${o.insecure ? '\n  params: [{name: insecureSkipVerify, value: "true"}]' : ''}
`;
}

function call(proxy: ProxyProcess, name: string, path = '/x'): Promise<Reply> {
  return request(proxy.url(path), { headers: { host: `c-${name}.team.proxy.test:${proxy.port}`, authorization: CLIENT } });
}

async function proxyWith(manifests: Record<string, string>, args: readonly string[]): Promise<ProxyProcess> {
  const p = await startProxy({ manifests, args: ['--namespace', PROXY_NS, ...args] });
  proxies.push(p);
  return p;
}

function assertNoSecretsLogged(p: ProxyProcess): void {
  const logs = p.logs();
  for (const s of [TOOL_PASSWORD, Buffer.from(`tool-user:${TOOL_PASSWORD}`).toString('base64'), DECOY, 'good-token-123']) {
    assert.ok(!logs.includes(s), 'no credential in the logs');
  }
}

before(async () => {
  [caA, caB] = await Promise.all([TestCa.create('connectors-test-ca-a'), TestCa.create('connectors-test-ca-b')]);
  [pairA, pairB] = await Promise.all([caA.issue(['localhost', '127.0.0.1']), caB.issue(['localhost', '127.0.0.1'])]);
  tool = await startHttpsTool(pairA, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ path: req.url, authorization: req.headers.authorization ?? null }));
  });
});

after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await tool?.close();
  caA?.remove();
  caB?.remove();
});

describe('per-Connector CA (spec.caCertSecretRef)', () => {
  let proxy: ProxyProcess;
  before(async () => {
    proxy = await proxyWith({
      'class.yaml': classYaml(),
      'own.yaml': connectorYaml('own', { ca: 'own-ca' }) + '---\n' + caSecretYaml('own-ca', 'team', { 'ca.crt': caA.cert, token: DECOY }),
      'pemvalue.yaml': connectorYaml('pemvalue', { ca: 'pemvalue-ca' }) + '---\n' + caSecretYaml('pemvalue-ca', 'team', { bundle: caA.cert }),
      'none.yaml': connectorYaml('none'),
    }, ['--enable-custom-ca-certs']);
  });

  test('the tool answers through the proxy with full verification; credentials injected, SNI from the address', async () => {
    const before = tool.serverNames.length;
    const r = await call(proxy, 'own', '/x?y=1');
    assert.equal(r.status, 200, r.text);
    const body = JSON.parse(r.text) as { path: string; authorization: string };
    assert.equal(body.path, '/base/x?y=1');
    assert.equal(body.authorization, basic('tool-user', TOOL_PASSWORD));
    assert.ok(tool.serverNames.slice(before).includes('localhost'), `SNI sent: ${tool.serverNames.join(',')}`);
  });

  test('keep-alive: repeated requests reuse the pool\'s TLS connection', async () => {
    await call(proxy, 'own');
    const handshakes = tool.handshakes;
    for (let i = 0; i < 10; i++) assert.equal((await call(proxy, 'own')).status, 200);
    assert.equal(tool.handshakes, handshakes, 'no new handshakes');
  });

  test('a value with a PEM header is loaded whatever its key is called', async () => {
    assert.equal((await call(proxy, 'pemvalue')).status, 200);
  });

  test('without a CA the certificate is not trusted: 502 saying so and how to fix it', async () => {
    const r = await call(proxy, 'none');
    assert.equal(r.status, 502);
    assert.match(r.text, /connector team\/none/);
    assert.match(r.text, /not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN)\)/);
    assert.match(r.text, /spec\.caCertSecretRef\.name/);
    assert.match(r.text, /connectors\.cpaas\.io\/ca-cert="true"/);
    assert.match(r.text, /--enable-custom-ca-certs/);
  });

  test('rotation: the tool moves to a certificate of another CA, then the Secret gets that CA; no restart', async () => {
    tool.use(pairB);
    try {
      const bad = await eventually('untrusted after the tool rotated', () => call(proxy, 'own'), (r) => r.status === 502 && /not trusted/.test(r.text));
      assert.match(bad.text, /not trusted/);
      proxy.writeManifest('own.yaml', connectorYaml('own', { ca: 'own-ca' }) + '---\n' + caSecretYaml('own-ca', 'team', { 'ca.crt': caB.cert }));
      await eventually('trusted after the CA Secret rotated', () => call(proxy, 'own'), (r) => r.status === 200);
      // A bundle with both CAs trusts both certificates.
      proxy.writeManifest('own.yaml', connectorYaml('own', { ca: 'own-ca' }) + '---\n' + caSecretYaml('own-ca', 'team', { 'old.pem': caA.cert, 'new.crt': caB.cert }));
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await call(proxy, 'own')).status, 200);
      tool.use(pairA);
      assert.equal((await eventually('old CA still in the bundle', () => call(proxy, 'own'), (r) => r.status === 200)).status, 200);
    } finally {
      tool.use(pairA);
      proxy.writeManifest('own.yaml', connectorYaml('own', { ca: 'own-ca' }) + '---\n' + caSecretYaml('own-ca', 'team', { 'ca.crt': caA.cert, token: DECOY }));
    }
  });

  test('liveness probes reach the tool with the same CA trust', async () => {
    const liveness = async (name: string): Promise<string | undefined> => {
      const r = await request(`http://127.0.0.1:${proxy.opsPort}/status`);
      const items = (JSON.parse(r.text) as { items: { kind: string; name: string; conditions: { type: string; status: string }[] }[] }).items;
      return items.find((i) => i.kind === 'Connector' && i.name === name)?.conditions.find((c) => c.type === 'LivenessReady')?.status;
    };
    const deadline = Date.now() + 10_000;
    while ((await liveness('own')) === undefined || (await liveness('none')) === undefined) {
      assert.ok(Date.now() < deadline, 'probes ran');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await liveness('own'), 'True');
    assert.equal(await liveness('none'), 'False');
  });

  test('no credential and no Secret value in the logs', () => assertNoSecretsLogged(proxy));
});

describe('global CA Secrets', () => {
  let proxy: ProxyProcess;
  before(async () => {
    proxy = await proxyWith({
      'class.yaml': classYaml(),
      'plain.yaml': connectorYaml('plain'),
      // Labelled, but outside the proxy's namespace: not a global CA.
      'elsewhere.yaml': caSecretYaml('elsewhere-ca', 'team', { 'ca.crt': caA.cert }, true),
    }, ['--enable-custom-ca-certs']);
  });

  test('a labelled Secret outside the proxy namespace trusts nothing', async () => {
    assert.equal((await call(proxy, 'plain')).status, 502);
  });

  test('adding a labelled Secret in the proxy namespace trusts its CA for every Connector; removing it stops', async () => {
    proxy.writeManifest('global.yaml', caSecretYaml('global-ca', PROXY_NS, { 'ca.crt': caA.cert }, true));
    await eventually('trusted through the global CA', () => call(proxy, 'plain'), (r) => r.status === 200);
    // Several labelled Secrets are aggregated.
    proxy.writeManifest('global2.yaml', caSecretYaml('global-ca-2', PROXY_NS, { 'ca.crt': caB.cert }, true));
    tool.use(pairB);
    try {
      await eventually('second global CA', () => call(proxy, 'plain'), (r) => r.status === 200);
    } finally {
      tool.use(pairA);
    }
    // The label removed: no longer a global CA.
    proxy.writeManifest('global.yaml', caSecretYaml('global-ca', PROXY_NS, { 'ca.crt': caA.cert }, false));
    // A kept-alive connection opened before the change may fail otherwise first: wait for the trust verdict itself.
    const r = await eventually('untrusted once the label is gone', () => call(proxy, 'plain'), (x) => x.status === 502 && /not trusted/.test(x.text));
    assert.match(r.text, /not trusted/);
  });
});

describe('--enable-custom-ca-certs off (the default)', () => {
  let proxy: ProxyProcess;
  before(async () => {
    proxy = await proxyWith({
      'class.yaml': classYaml(),
      'own.yaml': connectorYaml('own', { ca: 'own-ca' }) + '---\n' + caSecretYaml('own-ca', 'team', { 'ca.crt': caA.cert }),
      'global.yaml': caSecretYaml('global-ca', PROXY_NS, { 'ca.crt': caA.cert }, true),
      'insecure.yaml': connectorYaml('insecure', { insecure: true }),
    }, []);
  });

  test('neither the Connector\'s CA Secret nor a global one is trusted', async () => {
    const r = await call(proxy, 'own');
    assert.equal(r.status, 502);
    assert.match(r.text, /not trusted.*--enable-custom-ca-certs/);
  });

  test('insecureSkipVerify=true (explicit Connector param) skips verification, with a warning in the log', async () => {
    const r = await call(proxy, 'insecure');
    assert.equal(r.status, 200, r.text);
    const line = await proxy.waitForLog(/\{[^\n]*"connector":"team\/insecure"[^\n]*verification is OFF[^\n]*\}/);
    assert.equal(JSON.parse(line).level, 40, 'logged as a warning');
    // Logged again on the next reload.
    const since = proxy.logs().length;
    proxy.writeManifest('touch.yaml', '# reload\n');
    await proxy.waitForLog(/"connector":"team\/insecure"[^\n]*verification is OFF/, 5000, since);
    assertNoSecretsLogged(proxy);
  });
});
