// https_proxy in Kubernetes mode, through the proxy binary run as deploy/'s ServiceAccount
// against a real API server: two replicas starting at once agree on one proxy CA (the
// Secret the first one creates), the real kubectl reaches the API server through CONNECT
// with nothing but HTTPS_PROXY and the proxy's ca.crt, the Connector's token replacing the
// client's (get, auth whoami, exec's Upgrade request), a client without rights on the
// Connector is refused before any tunnel, and a rotated CA Secret is what the next
// handshakes present, on both replicas, without a restart. The Connector address is
// `https://kubernetes.default.svc:<port>` (a name on the API server's certificate, not
// loopback, so Go uses the proxy for it); only the proxies resolve it (a private /etc/hosts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privateHosts, type PrivateHosts } from './support/hosts';
import { KUBE_BIN_DIR, startKube, type KubeCluster } from './support/kube';
import { REPO_ROOT, startProxy, type ProxyProcess } from './support/proxy';
import { run, type RunResult } from './support/run';
import { caSecretYaml, TestCa } from './support/test-ca';

const NS = 'team-h';
const WORK = 'work-h';
const KUBECTL = join(KUBE_BIN_DIR, 'kubectl');
const API_HOST = 'kubernetes.default.svc';
const deploy = (f: string): string => readFileSync(join(REPO_ROOT, 'deploy', f), 'utf8');
const docs = (...d: string[]): string => d.join('\n---\n');

let kube: KubeCluster;
let tmp: string;
let hosts: PrivateHosts | undefined;
let skipReason: string | undefined;
let replicas: ProxyProcess[] = [];
let clientToken: string;
let outsiderToken: string;
let deployerToken: string;
let rotated: TestCa;
let apiServer: string;

const RBAC = docs(
  `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}`,
  `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${WORK}}`,
  `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: ${WORK}}`,
  `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: client, namespace: ${NS}}`,
  `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: outsider, namespace: ${NS}}`,
  `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: deployer, namespace: ${NS}}`,
  `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: use-connectors, namespace: ${NS}}
rules: [{apiGroups: [connectors.alauda.io], resources: [connectors], verbs: [get]}]`,
  `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: client-uses, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: use-connectors}
subjects: [{kind: ServiceAccount, name: client, namespace: ${NS}}]`,
  // The Connector's identity: ConfigMaps and Pods (exec included) in WORK.
  `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: ${WORK}}
rules:
  - {apiGroups: [""], resources: [configmaps], verbs: [get, list, watch, create, update, patch]}
  - {apiGroups: [""], resources: [pods], verbs: [get, list]}
  - {apiGroups: [""], resources: [pods/exec], verbs: [create, get]}`,
  `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployer, namespace: ${WORK}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects: [{kind: ServiceAccount, name: deployer, namespace: ${NS}}]`,
);

const K8S_CLASS = `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: k8s-https}
spec:
  proxy: {}
  address: {type: string}
  auth: {types: [{name: bearerTokenAuth, secretType: connectors.cpaas.io/bearer-token}]}`;

/** The proxy CA as the replica serves it (GET /ca.crt). */
async function caOf(p: ProxyProcess): Promise<string> {
  const r = await fetch(p.url('/ca.crt'));
  return r.status === 200 ? r.text() : `(${r.status})`;
}

/** The real kubectl: --server is the API server's own name, HTTPS_PROXY the proxy, --certificate-authority the proxy's CA. */
function kubectl(p: ProxyProcess, caFile: string, token: string, args: readonly string[], proxyUser = `${NS}%2Fcluster`): Promise<RunResult> {
  const proxyUrl = `http://${proxyUser}:${token}@127.0.0.1:${p.port}`;
  return run(KUBECTL, [`--kubeconfig=${join(tmp, 'empty.kubeconfig')}`, `--cache-dir=${join(tmp, 'cache')}`, `--server=${apiServer}`,
    `--certificate-authority=${caFile}`, `--token=${token}`, '--request-timeout=30s', ...args],
  { timeoutMs: 90_000, env: { PATH: process.env.PATH, HOME: tmp, HTTPS_PROXY: proxyUrl, https_proxy: proxyUrl, NO_PROXY: '', no_proxy: '' } });
}

function ok(r: RunResult, what: string): string {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stderr}\n${r.stdout.toString()}\n--- proxy:\n${replicas[0]?.logs().slice(-2000)}`);
  return r.stdout.toString();
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'https-proxy-kube-'));
  const ns = await privateHosts(tmp, [API_HOST]);
  if ('unavailable' in ns) {
    skipReason = ns.unavailable;
    return;
  }
  hosts = ns.hosts;
  [kube, rotated] = await Promise.all([startKube(), TestCa.create('rotated-proxy-ca')]);
  apiServer = `https://${API_HOST}:${new URL(kube.url).port}`;
  writeFileSync(join(tmp, 'empty.kubeconfig'), 'apiVersion: v1\nkind: Config\n');
  await kube.applyYaml(docs(deploy('namespace.yaml'), deploy('rbac.yaml'), deploy('crds/connectorclasses.yaml'), deploy('crds/connectors.yaml')));
  await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
  await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
  await kube.applyYaml(RBAC);
  [deployerToken, clientToken, outsiderToken] = await Promise.all([
    kube.createServiceAccountToken(NS, 'deployer'), kube.createServiceAccountToken(NS, 'client'), kube.createServiceAccountToken(NS, 'outsider'),
  ]);
  await kube.applyYaml(docs(
    K8S_CLASS,
    `apiVersion: v1\nkind: Secret\nmetadata: {name: deployer-token, namespace: ${NS}}\ntype: connectors.cpaas.io/bearer-token\nstringData: {token: ${deployerToken}}`,
    caSecretYaml('cluster-ca', NS, { 'ca.crt': kube.caCert }),
    `apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: cluster, namespace: ${NS}}
spec:
  connectorClassName: k8s-https
  address: ${apiServer}
  auth: {name: bearerTokenAuth, secretRef: {name: deployer-token}}
  caCertSecretRef: {name: cluster-ca}`,
    `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seeded, namespace: ${WORK}}\ndata: {from: admin}`,
    // No scheduler and no kubelet run: a Pod bound to a node that does not exist.
    `apiVersion: v1\nkind: Pod\nmetadata: {name: shell, namespace: ${WORK}}\nspec: {nodeName: ghost-node, automountServiceAccountToken: false, containers: [{name: c, image: busybox}]}`,
  ));
  const proxyToken = await kube.createServiceAccountToken('connectors-system', 'connectors-proxy');
  const proxyKubeconfig = join(tmp, 'proxy.kubeconfig');
  writeFileSync(proxyKubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: proxy',
    'clusters:', '- name: test', '  cluster:', `    server: ${kube.url}`, `    certificate-authority: ${kube.caFile}`,
    'users:', '- name: connectors-proxy', '  user:', `    token: ${proxyToken}`,
    'contexts:', '- name: proxy', '  context:', '    cluster: test', '    user: connectors-proxy', '',
  ].join('\n'), { mode: 0o600 });
  // Two replicas at once on a cluster without the CA Secret.
  const start = (): Promise<ProxyProcess> => startProxy({
    manifests: {}, domain: 'kube.test', wrap: hosts!.wrap,
    args: ['--source', 'kubernetes', '--kubeconfig', proxyKubeconfig, '--no-write-status', '--no-probes', '--enable-custom-ca-certs'],
    env: { PROXY_NAMESPACE: 'connectors-system' },
  });
  replicas = await Promise.all([start(), start()]);
  await Promise.all(replicas.map((p) => p.waitForLog(/Kubernetes resources synced/, 60_000)));
}, { timeout: 300_000 });

after(async () => {
  await Promise.all(replicas.map((p) => p.stop()));
  await kube?.stop();
  rotated?.remove();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const T = { timeout: 180_000 };

describe('https_proxy in Kubernetes mode (two replicas, real kubectl)', () => {
  test('the first replica created the proxy CA Secret; both serve its certificate at GET /ca.crt', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    let secret: { type: string; data: Record<string, string> } | undefined;
    await until('the CA Secret', async () => {
      const r = await kube.api('GET', '/api/v1/namespaces/connectors-system/secrets/connectors-proxy-ca');
      secret = r.status === 200 ? r.json as typeof secret : undefined;
      return secret !== undefined;
    });
    assert.equal(secret!.type, 'kubernetes.io/tls');
    const pem = Buffer.from(secret!.data['tls.crt']!, 'base64').toString();
    await until('both replicas serving it', async () => (await Promise.all(replicas.map(caOf))).every((c) => c === pem));
    assert.equal(new X509Certificate(pem).ca, true);
    writeFileSync(join(tmp, 'proxy-ca.crt'), pem);
  });

  test('kubectl get and auth whoami through either replica: the API server saw the Connector\'s identity, not the client\'s', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const ca = join(tmp, 'proxy-ca.crt');
    for (const p of replicas) {
      const out = ok(await kubectl(p, ca, clientToken, ['-n', WORK, 'get', 'configmaps', '-o', 'name']), 'kubectl get');
      assert.match(out, /configmap\/seeded/);
      const who = ok(await kubectl(p, ca, clientToken, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']), 'kubectl auth whoami');
      assert.equal(who, `system:serviceaccount:${NS}:deployer`);
    }
    for (const p of replicas) await p.waitForLog(/"way":"connect","connector":"team-h\/cluster"[^\n]*"status":200/);
  });

  test('kubectl exec: the Upgrade request goes through the tunnel to the API server as the Connector\'s identity (which then needs a kubelet)', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const r = await kubectl(replicas[0]!, join(tmp, 'proxy-ca.crt'), clientToken, ['-n', WORK, 'exec', 'shell', '--', 'true']);
    assert.notEqual(r.code, 0);
    // Authorized (pods/exec is the deployer's, not the client's) and answered by the API server:
    // it looked for the Pod's node, which no kubelet serves here.
    assert.doesNotMatch(r.stderr, /forbidden|Forbidden|x509|proxyconnect/, r.stderr);
    assert.match(r.stderr, /ghost-node/, r.stderr);
  });

  test('a client without get on the Connector: the CONNECT is refused (403), kubectl never reaches the API server', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const r = await kubectl(replicas[0]!, join(tmp, 'proxy-ca.crt'), outsiderToken, ['-n', WORK, 'get', 'configmaps']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Forbidden|403/, r.stderr);
    // Access lines are written asynchronously: wait for it.
    await replicas[0]!.waitForLog(/"user":"system:serviceaccount:team-h:outsider","method":"CONNECT","path":"kubernetes\.default\.svc:\d+","status":403/);
  });

  test('rotation: an edit of the CA Secret is what new handshakes present on both replicas, no restart', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const secret = await run(KUBECTL, ['create', 'secret', 'tls', 'connectors-proxy-ca', '-n', 'connectors-system', `--cert=${rotated.certFile}`, `--key=${rotated.keyFile}`,
      '--dry-run=client', '-o', 'yaml'], { timeoutMs: 30_000 });
    assert.equal(secret.code, 0, secret.stderr);
    await kube.applyYaml(secret.stdout.toString());
    await until('both replicas serving the rotated CA', async () => (await Promise.all(replicas.map(caOf))).every((c) => c === rotated.cert));
    for (const p of replicas) {
      ok(await kubectl(p, rotated.certFile, clientToken, ['-n', WORK, 'get', 'configmap', 'seeded', '-o', 'name']), 'kubectl with the rotated CA');
      const old = await kubectl(p, join(tmp, 'proxy-ca.crt'), clientToken, ['-n', WORK, 'get', 'configmap', 'seeded']);
      assert.notEqual(old.code, 0, 'the previous CA no longer vouches for new leaves');
      assert.match(old.stderr, /x509|certificate/i);
    }
  });

  test('no token and no CA key in the replicas\' logs', (t) => {
    if (skipReason) return t.skip(skipReason);
    const keyLines = rotated.key.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'));
    for (const p of replicas) {
      const logs = p.logs();
      for (const s of [clientToken, outsiderToken, deployerToken, deployerToken.split('.')[2]!, clientToken.split('.')[2]!]) {
        assert.ok(!logs.includes(s), 'no token in the logs');
      }
      for (const l of keyLines) assert.ok(!logs.includes(l), 'no line of the CA key in the logs');
    }
  });
});
