// Faults in Kubernetes mode, against a real kube-apiserver (test/support/kube.ts): a Secret
// deleted and recreated while traffic flows, and the API server stopped mid-traffic. Never
// an unchecked token through (a token the proxy has not seen gets 503, never 200), other
// Connectors keep being served, the proxy's descriptors do not grow while it retries, and
// everything recovers when the API server is back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKube, type KubeCluster } from './support/kube';
import { REPO_ROOT, basic, startProxy, type ProxyProcess } from './support/proxy';
import { startUpstream, type Upstream } from './support/upstream';
import { eventually, request, type Reply } from './support/http';
import { openFds, waitFor } from './support/raw';

const NS = 'sec-team';
const API = '/apis/connectors.alauda.io/v1alpha1';
const deploy = (f: string): string => readFileSync(join(REPO_ROOT, 'deploy', f), 'utf8');

const secretYaml = (name: string, pw: string): string => `apiVersion: v1
kind: Secret
metadata: {name: ${name}-cred, namespace: ${NS}}
type: kubernetes.io/basic-auth
stringData: {username: u, password: ${pw}}`;
const connectorYaml = (name: string, address: string): string => `apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: ${name}, namespace: ${NS}}
spec:
  connectorClassName: sec-path
  address: ${address}
  auth: {name: basic, secretRef: {name: ${name}-cred}}`;

describe('Kubernetes mode faults: Secret deleted mid-traffic, API server down', () => {
  let kube: KubeCluster;
  let tool: Upstream;
  let proxy: ProxyProcess;
  let pid: number;
  let token: string;
  const sensitive: string[] = ['victim-pw-1', 'steady-pw-1'];
  const get = (name: string, t = token): Promise<Reply> =>
    request(proxy.url(`/namespaces/${NS}/connectors/${name}/x`), { headers: { authorization: basic('any', t) } });

  before(async () => {
    tool = await startUpstream((req, res) => { req.resume(); res.end(req.headers.authorization ?? 'none'); });
    kube = await startKube();
    await kube.applyYaml([deploy('crds/connectorclasses.yaml'), deploy('crds/connectors.yaml')].join('\n---\n'));
    await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
    await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
    await kube.applyYaml(`apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: ${NS}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: use, namespace: ${NS}}
rules: [{apiGroups: [connectors.alauda.io], resources: [connectors], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: use, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: use}
subjects: [{kind: ServiceAccount, name: builder, namespace: ${NS}}]
---
apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: sec-path, annotations: {connectors.cpaas.io/proxy-resolver: path}}
spec:
  proxy: {}
  address: {type: string}
  auth: {types: [{name: basic, secretType: kubernetes.io/basic-auth}]}
---
${secretYaml('victim', 'victim-pw-1')}
---
${secretYaml('steady', 'steady-pw-1')}
---
${connectorYaml('victim', tool.origin)}
---
${connectorYaml('steady', tool.origin)}`);
    token = await kube.createServiceAccountToken(NS, 'builder');
    sensitive.push(token);
    proxy = await startProxy({
      manifests: {}, domain: 'kube.test',
      args: ['--source', 'kubernetes', '--kubeconfig', kube.kubeconfig, '--no-write-status', '--no-probes', '--auth-cache-ttl-ms', '60000'],
    });
    pid = proxy.child.pid!;
    await eventually('first answer', () => get('steady'), (r) => r.status === 200, 30_000, 200);
  });
  after(async () => {
    await proxy?.stop();
    await kube?.stop();
    await tool?.close();
  });

  test('a Secret deleted mid-traffic: 502 naming it, the other Connector served all along; recreated: 200', async () => {
    let stop = false;
    const statuses = new Set<number>();
    const load = (async () => {
      while (!stop) {
        const [v, s] = await Promise.all([get('victim'), get('steady')]);
        statuses.add(v.status);
        assert.equal(s.status, 200, `steady: ${s.status} ${s.text}`);
        if (v.status === 502) assert.match(v.text, new RegExp(`connector ${NS}/victim .*Secret ${NS}/victim-cred not found`));
      }
    })();
    try {
      const del = await kube.api('DELETE', `/api/v1/namespaces/${NS}/secrets/victim-cred`);
      assert.equal(del.status, 200, del.text);
      await eventually('victim without its Secret', () => get('victim'), (r) => r.status === 502, 10_000);
      await kube.applyYaml(secretYaml('victim', 'victim-pw-1'));
      await eventually('victim with its Secret again', () => get('victim'), (r) => r.status === 200, 10_000);
    } finally {
      stop = true;
      await load;
    }
    assert.deepEqual([...statuses].sort(), [200, 502]);
  });

  test('the API server down mid-traffic: cached tokens 200, unseen tokens 503 (never 200), descriptors bounded; back up: all recovers', async () => {
    const fresh = await kube.createServiceAccountToken(NS, 'builder');
    sensitive.push(fresh);
    const before = openFds(pid).total;
    await kube.stopApiServer();
    try {
      const deadline = Date.now() + 8000;
      let maxFds = 0;
      while (Date.now() < deadline) {
        const [cached, unseen, garbage] = await Promise.all([get('steady'), get('steady', fresh), get('steady', 'not-a-token')]);
        assert.equal(cached.status, 200, `a decision cached for 60 s keeps serving: ${cached.text}`);
        assert.equal(unseen.status, 503, `a token never checked cannot pass: ${unseen.status} ${unseen.text}`);
        assert.ok(garbage.status === 503 || garbage.status === 401, `${garbage.status} ${garbage.text}`);
        maxFds = Math.max(maxFds, openFds(pid).total);
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(maxFds <= before + 20, `descriptors while the API server is down: ${before} → ${maxFds}`);
    } finally {
      await kube.startApiServer();
    }
    await eventually('the unseen token once the API server is back', () => get('steady', fresh), (r) => r.status === 200, 30_000, 250);
    // The watch reconnected: a Connector created now is served.
    await kube.applyYaml(`${secretYaml('late', 'late-pw-1')}\n---\n${connectorYaml('late', tool.origin)}`);
    sensitive.push('late-pw-1');
    await eventually('a Connector created after the restart', () => get('late'), (r) => r.status === 200, 30_000, 250);
    await waitFor(() => openFds(pid).total <= before + 10, () => `descriptors after recovery: ${before} → ${openFds(pid).total}`, 30_000);
    const c = await kube.api('GET', `${API}/namespaces/${NS}/connectors/late`);
    assert.equal(c.status, 200);
  });

  test('no token or Secret value in the proxy\'s logs', () => {
    const logs = proxy.logs();
    for (const s of sensitive) assert.ok(!logs.includes(s), `the log contains ${s.slice(0, 12)}…`);
  });
});
