// kubectl through a K8s-class Connector, and upstream CA trust in Kubernetes mode. The tool is
// the real kube-apiserver of test/support/kube.ts: HTTPS with its own private CA, trusted via
// the Connector's spec.caCertSecretRef (or a global CA Secret labelled
// connectors.cpaas.io/ca-cert="true" in the proxy's namespace) with --enable-custom-ca-certs.
// The real `kubectl --server=<proxy>/namespaces/<ns>/connectors/<name> --token=<client SA token>`
// runs get, get --watch and apply: the client ServiceAccount may only `get` the Connector
// (checked by TokenReview + SubjectAccessReview), the proxy injects the Connector's own token
// (another ServiceAccount, with rights on ConfigMaps in namespace `work`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KUBE_BIN_DIR, startKube, type KubeCluster } from './support/kube';
import { eventually as retry, request, type Reply } from './support/http';
import { REPO_ROOT, startProxy, type ProxyProcess } from './support/proxy';
import { run } from './support/run';
import { TestCa, caSecretYaml as caSecret } from './support/test-ca';

const caSecretYaml = (name: string, namespace: string, pem: string, global = false): string => caSecret(name, namespace, { 'ca.crt': pem }, global);
/** Watch-driven changes through a real API server: a little more time. */
const eventually = (what: string, fn: () => Promise<Reply>, check: (r: Reply) => boolean): Promise<Reply> => retry(what, fn, check, 15_000, 200);

const NS = 'team-k';
const WORK = 'work';
const KUBECTL = join(KUBE_BIN_DIR, 'kubectl');
const deploy = (f: string): string => readFileSync(join(REPO_ROOT, 'deploy', f), 'utf8');
const docs = (...d: string[]): string => d.join('\n---\n');
const b64 = (s: string): string => Buffer.from(s).toString('base64');

// The K8s ConnectorClass of the docs (docs/en/connectors-k8s): bearer token of a ServiceAccount
// of the target cluster. Path resolver, so kubectl needs no DNS name: --server carries the path.
const K8S_CLASS = `
apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: k8s
  annotations: {connectors.cpaas.io/proxy-resolver: path}
spec:
  proxy: {}
  address: {type: string}
  auth:
    types:
      - {name: bearerTokenAuth, secretType: connectors.cpaas.io/bearer-token}
`;

const RBAC = docs(
  `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}`,
  `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${WORK}}`,
  `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: client, namespace: ${NS}}`,
  `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: deployer, namespace: ${NS}}`,
  // The client may use the Connectors of its namespace, nothing else.
  `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: use-connectors, namespace: ${NS}}
rules: [{apiGroups: [connectors.alauda.io], resources: [connectors], verbs: [get]}]`,
  `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: client-uses, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: use-connectors}
subjects: [{kind: ServiceAccount, name: client, namespace: ${NS}}]`,
  // The Connector's identity: ConfigMaps in `work`.
  `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: configmaps, namespace: ${WORK}}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list, watch, create, update, patch]}]`,
  `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployer-configmaps, namespace: ${WORK}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmaps}
subjects: [{kind: ServiceAccount, name: deployer, namespace: ${NS}}]`,
);

function connectorYaml(name: string, ca?: string): string {
  return `
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: ${name}, namespace: ${NS}}
spec:
  connectorClassName: k8s
  address: ${kube.url}
  auth: {name: bearerTokenAuth, secretRef: {name: deployer-token}}${ca ? `\n  caCertSecretRef: {name: ${ca}}` : ''}
`;
}

let kube: KubeCluster;
let tmp: string;
let otherCa: TestCa;
/** Signs the certificate of the proxy's HTTPS listener (what kubectl verifies). */
let listenerCa: TestCa;
let proxy: ProxyProcess;
let clientToken: string;
let deployerToken: string;
let proxyKubeconfig: string;
const extraProxies: ProxyProcess[] = [];

const prefix = (name: string): string => `/namespaces/${NS}/connectors/${name}`;

/** The proxy's HTTPS listener (its port is in the "listening" log line). */
function tlsServer(p: ProxyProcess, name: string): string {
  const line = /"tls":"[^"]*:(\d+)"/.exec(p.logs());
  assert.ok(line, 'the proxy serves --tls-listen');
  return `https://127.0.0.1:${line[1]}${prefix(name)}`;
}

/**
 * The real kubectl, as the client: --server (the proxy's HTTPS listener, path form), its CA,
 * and --token; no kubeconfig of its own. (client-go never sends a bearer token over plain http.)
 */
function kubectlArgs(p: ProxyProcess, name: string, args: readonly string[]): string[] {
  return [`--kubeconfig=${join(tmp, 'empty.kubeconfig')}`, `--cache-dir=${join(tmp, 'cache')}`, `--server=${tlsServer(p, name)}`,
    `--certificate-authority=${join(listenerCa.dir, 'ca.crt')}`, `--token=${clientToken}`, '--request-timeout=20s', ...args];
}

function kubectl(p: ProxyProcess, name: string, args: readonly string[], input?: string): ReturnType<typeof run> {
  return run(KUBECTL, kubectlArgs(p, name, args), { input, timeoutMs: 60_000, env: { ...process.env, HOME: tmp } });
}

function viaProxy(p: ProxyProcess, name: string, path: string): Promise<Reply> {
  return request(`http://127.0.0.1:${p.port}${prefix(name)}${path}`, { headers: { authorization: `Bearer ${clientToken}` } });
}

async function kubeProxy(args: readonly string[]): Promise<ProxyProcess> {
  // --namespace as the Deployment sets it through the downward API (PROXY_NAMESPACE).
  return startProxy({
    manifests: {}, domain: 'kube.test',
    args: ['--source', 'kubernetes', '--kubeconfig', proxyKubeconfig, '--no-write-status', '--no-probes',
      '--tls-listen', '127.0.0.1:0', '--tls-cert', join(tmp, 'listener.crt'), '--tls-key', join(tmp, 'listener.key'), ...args],
    env: { PROXY_NAMESPACE: 'connectors-system' },
  });
}

before(async () => {
  [kube, otherCa, listenerCa] = await Promise.all([startKube(), TestCa.create('unrelated-ca'), TestCa.create('proxy-listener-ca')]);
  tmp = mkdtempSync(join(tmpdir(), 'kubectl-test-'));
  const listener = await listenerCa.issue(['127.0.0.1', 'localhost']);
  writeFileSync(join(tmp, 'listener.crt'), listener.cert);
  writeFileSync(join(tmp, 'listener.key'), listener.key, { mode: 0o600 });
  writeFileSync(join(tmp, 'empty.kubeconfig'), 'apiVersion: v1\nkind: Config\n');
  await kube.applyYaml(docs(deploy('namespace.yaml'), deploy('rbac.yaml'), deploy('crds/connectorclasses.yaml'), deploy('crds/connectors.yaml')));
  await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
  await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
  await kube.applyYaml(RBAC);
  deployerToken = await kube.createServiceAccountToken(NS, 'deployer');
  clientToken = await kube.createServiceAccountToken(NS, 'client');
  await kube.applyYaml(docs(
    K8S_CLASS,
    `apiVersion: v1\nkind: Secret\nmetadata: {name: deployer-token, namespace: ${NS}}\ntype: connectors.cpaas.io/bearer-token\nstringData: {token: ${deployerToken}}`,
    caSecretYaml('cluster-ca', NS, kube.caCert),
    connectorYaml('cluster', 'cluster-ca'),
    connectorYaml('plain'),
    `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seeded, namespace: ${WORK}}\ndata: {from: admin}`,
  ));
  // The proxy's own identity: the ServiceAccount of deploy/rbac.yaml.
  const proxyToken = await kube.createServiceAccountToken('connectors-system', 'connectors-proxy');
  proxyKubeconfig = join(tmp, 'proxy.kubeconfig');
  writeFileSync(proxyKubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: proxy',
    'clusters:', '- name: test', '  cluster:', `    server: ${kube.url}`, `    certificate-authority: ${kube.caFile}`,
    'users:', '- name: connectors-proxy', '  user:', `    token: ${proxyToken}`,
    'contexts:', '- name: proxy', '  context:', '    cluster: test', '    user: connectors-proxy', '',
  ].join('\n'), { mode: 0o600 });
  proxy = await kubeProxy(['--enable-custom-ca-certs']);
  await proxy.waitForLog(/Kubernetes resources synced/, 30_000);
});

after(async () => {
  await Promise.all([proxy?.stop(), ...extraProxies.map((p) => p.stop())]);
  await kube?.stop();
  otherCa?.remove();
  listenerCa?.remove();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('kubectl through a K8s Connector (Kubernetes mode)', () => {
  test('the client token alone has no rights on ConfigMaps', async () => {
    const r = await run(KUBECTL, [`--kubeconfig=${join(tmp, 'empty.kubeconfig')}`, `--server=${kube.url}`, `--certificate-authority=${kube.caFile}`,
      `--token=${clientToken}`, '-n', WORK, 'get', 'configmaps'], { timeoutMs: 30_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /forbidden/i);
  });

  test('kubectl get: the proxy injects the Connector\'s token toward the private-CA API server', async () => {
    await eventually('Connector served', () => viaProxy(proxy, 'cluster', '/version'), (r) => r.status === 200);
    const r = await kubectl(proxy, 'cluster', ['-n', WORK, 'get', 'configmaps', '-o', 'name']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /configmap\/seeded/);
    const who = await kubectl(proxy, 'cluster', ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
    assert.equal(who.code, 0, who.stderr);
    assert.equal(who.stdout.toString(), `system:serviceaccount:${NS}:deployer`, 'the API server saw the Connector\'s identity');
  });

  test('kubectl get --watch: an event made meanwhile arrives through the proxy', async () => {
    const child = spawn(KUBECTL, kubectlArgs(proxy, 'cluster', ['-n', WORK, 'get', 'configmaps', '--watch', '-o', 'name']),
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: tmp } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    try {
      const until = async (re: RegExp, what: string): Promise<void> => {
        const deadline = Date.now() + 20_000;
        while (!re.test(out)) {
          if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${what}: kubectl printed ${JSON.stringify(out)}, stderr ${err}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      await until(/configmap\/seeded/, 'initial list');
      await kube.applyYaml(`apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched, namespace: ${WORK}}\ndata: {n: "1"}`);
      await until(/configmap\/watched/, 'the watch event');
      await kube.applyYaml(`apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched, namespace: ${WORK}}\ndata: {n: "2"}`);
      await until(/configmap\/watched\n[^]*configmap\/watched\n/, 'the modification');
    } finally {
      child.kill('SIGTERM');
    }
  });

  test('kubectl apply creates and then updates through the proxy', async () => {
    const cm = (v: string): string => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied, namespace: ${WORK}}\ndata: {version: "${v}"}\n`;
    const first = await kubectl(proxy, 'cluster', ['apply', '-f', '-'], cm('1'));
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout.toString(), /configmap\/applied created/);
    const second = await kubectl(proxy, 'cluster', ['apply', '-f', '-'], cm('2'));
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout.toString(), /configmap\/applied configured/);
    const r = await kube.api('GET', `/api/v1/namespaces/${WORK}/configmaps/applied`);
    assert.equal((r.json as { data: { version: string } }).data.version, '2');
    // What the proxy may not do with the Connector's token either stays refused by the API server.
    const denied = await kubectl(proxy, 'cluster', ['-n', 'default', 'get', 'configmaps']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /forbidden.*system:serviceaccount:team-k:deployer/i);
  });
});

describe('upstream CA trust in Kubernetes mode', () => {
  test('without caCertSecretRef and without a global CA the API server is not trusted (502 saying how to fix it)', async () => {
    const r = await viaProxy(proxy, 'plain', '/version');
    assert.equal(r.status, 502);
    assert.match(r.text, /not trusted.*spec\.caCertSecretRef\.name/);
  });

  test('a global CA Secret in the proxy namespace is picked up, and dropped when its label goes', async () => {
    await kube.applyYaml(caSecretYaml('cluster-ca-global', 'connectors-system', kube.caCert, true));
    await eventually('trusted via the global CA Secret', () => viaProxy(proxy, 'plain', '/version'), (r) => r.status === 200);
    const r = await kubectl(proxy, 'plain', ['-n', WORK, 'get', 'configmap', 'seeded', '-o', 'jsonpath={.data.from}']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'admin');
    await kube.kubectl(['label', 'secret', '-n', 'connectors-system', 'cluster-ca-global', 'connectors.cpaas.io/ca-cert-']);
    await eventually('untrusted once unlabelled', () => viaProxy(proxy, 'plain', '/version'), (x) => x.status === 502);
    await kube.kubectl(['label', 'secret', '-n', 'connectors-system', 'cluster-ca-global', 'connectors.cpaas.io/ca-cert=true']);
    await eventually('trusted once labelled again', () => viaProxy(proxy, 'plain', '/version'), (x) => x.status === 200);
    await kube.kubectl(['delete', 'secret', '-n', 'connectors-system', 'cluster-ca-global']);
    await eventually('untrusted once deleted', () => viaProxy(proxy, 'plain', '/version'), (x) => x.status === 502);
  });

  test('a labelled Secret in another namespace is not a global CA', async () => {
    await kube.applyYaml(caSecretYaml('not-global', NS, kube.caCert, true));
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await viaProxy(proxy, 'plain', '/version')).status, 502);
  });

  test('rotation of the caCertSecretRef Secret is used by the next request', async () => {
    await kube.applyYaml(caSecretYaml('cluster-ca', NS, otherCa.cert));
    const bad = await eventually('wrong CA', () => viaProxy(proxy, 'cluster', '/version'), (r) => r.status === 502);
    assert.match(bad.text, /not trusted/);
    await kube.applyYaml(caSecretYaml('cluster-ca', NS, `${otherCa.cert}\n${kube.caCert}`));
    await eventually('right CA again', () => viaProxy(proxy, 'cluster', '/version'), (r) => r.status === 200);
  });

  test('with --enable-custom-ca-certs off the caCertSecretRef is not used', async () => {
    const off = await kubeProxy([]);
    extraProxies.push(off);
    await off.waitForLog(/Kubernetes resources synced/, 30_000);
    const r = await eventually('answered', () => viaProxy(off, 'cluster', '/version'), (x) => x.status !== 503);
    assert.equal(r.status, 502);
    assert.match(r.text, /not trusted/);
  });

  test('no token in the proxies\' logs', () => {
    for (const p of [proxy, ...extraProxies]) {
      const logs = p.logs();
      for (const s of [clientToken, deployerToken, clientToken.split('.')[2]!, deployerToken.split('.')[2]!, b64(deployerToken)]) {
        assert.ok(!logs.includes(s), 'no token in the logs');
      }
    }
  });
});
