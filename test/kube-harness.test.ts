// The Kubernetes test harness against a real etcd and kube-apiserver: what Kubernetes mode
// relies on (ServiceAccount tokens, TokenReview, SubjectAccessReview with RBAC, CRDs) works.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SA_ISSUER, startKube, type KubeCluster } from './support/kube';

const NS = 'team-a';
const SA = 'builder';
const SA_USER = `system:serviceaccount:${NS}:${SA}`;

const CONNECTOR_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: connectors.connectors.alauda.io
spec:
  group: connectors.alauda.io
  scope: Namespaced
  names: { plural: connectors, singular: connector, kind: Connector, listKind: ConnectorList }
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: { status: {} }
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
`;

interface TokenReviewStatus { authenticated?: boolean; user?: { username?: string; groups?: string[] }; audiences?: string[]; error?: string }
interface SarStatus { allowed?: boolean; denied?: boolean; reason?: string }

function jwtPayload(token: string): Record<string, unknown> {
  const parts = token.split('.');
  assert.equal(parts.length, 3, `a JWT has three parts: ${token.slice(0, 40)}...`);
  return JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('Kubernetes harness (real etcd + kube-apiserver)', () => {
  let kube: KubeCluster;

  before(async () => {
    kube = await startKube();
    process.stderr.write(`# kube-apiserver ready in ${kube.startupMs} ms at ${kube.url}\n`);
  });
  after(async () => { await kube?.stop(); });

  const tokenReview = async (token: string, audiences?: string[]): Promise<TokenReviewStatus> => {
    const r = await kube.api('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, ...(audiences ? { audiences } : {}) },
    });
    assert.equal(r.status, 201, r.text);
    return (r.json as { status: TokenReviewStatus }).status;
  };

  const canGetConnector = async (name: string, subresource?: string): Promise<SarStatus> => {
    const r = await kube.api('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
      spec: {
        user: SA_USER, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
        resourceAttributes: { namespace: NS, verb: 'get', group: 'connectors.alauda.io', resource: 'connectors', name, subresource },
      },
    });
    assert.equal(r.status, 201, r.text);
    return (r.json as { status: SarStatus }).status;
  };

  test('the admin kubeconfig works and anonymous or wrong tokens are refused', async () => {
    const ok = await kube.kubectl(['get', 'namespace', 'default', '-o', 'jsonpath={.metadata.name}']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'default');
    const bad = await kube.api('GET', '/api/v1/namespaces', undefined, 'not-a-valid-token');
    assert.equal(bad.status, 401, bad.text);
    const anonymous = await kube.api('GET', '/api/v1/namespaces', undefined, '');
    assert.equal(anonymous.status, 403, anonymous.text);
    assert.match(anonymous.text, /system:anonymous/);
  });

  test('creates a namespace and a ServiceAccount', async () => {
    for (const args of [['create', 'namespace', NS], ['create', 'serviceaccount', SA, '-n', NS]]) {
      const r = await kube.kubectl(args);
      assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    }
    const sa = await kube.api('GET', `/api/v1/namespaces/${NS}/serviceaccounts/${SA}`);
    assert.equal(sa.status, 200, sa.text);
    assert.equal((sa.json as { metadata: { name: string } }).metadata.name, SA);
    // No controller-manager: nothing creates a `default` ServiceAccount (see test/support/kube.ts).
    const missing = await kube.api('GET', `/api/v1/namespaces/${NS}/serviceaccounts/default`);
    assert.equal(missing.status, 404, missing.text);
  });

  test('kubectl create token returns a JWT for the ServiceAccount', async () => {
    const token = await kube.createServiceAccountToken(NS, SA);
    const claims = jwtPayload(token);
    assert.equal(claims.sub, SA_USER);
    assert.equal(claims.iss, SA_ISSUER);
    assert.deepEqual(claims.aud, [SA_ISSUER]);
    const custom = jwtPayload(await kube.createServiceAccountToken(NS, SA, ['connectors-proxy']));
    assert.deepEqual(custom.aud, ['connectors-proxy']);
  });

  test('TokenReview authenticates the ServiceAccount token and rejects others', async () => {
    const token = await kube.createServiceAccountToken(NS, SA);
    const good = await tokenReview(token);
    assert.equal(good.authenticated, true, JSON.stringify(good));
    assert.equal(good.user?.username, SA_USER);
    assert.ok(good.user?.groups?.includes(`system:serviceaccounts:${NS}`), JSON.stringify(good.user));

    // A changed signature is not authenticated.
    const tampered = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    assert.notEqual((await tokenReview(tampered)).authenticated, true);

    // Audiences: a token for `connectors-proxy` passes only a review asking for that audience.
    const scoped = await kube.createServiceAccountToken(NS, SA, ['connectors-proxy']);
    const forProxy = await tokenReview(scoped, ['connectors-proxy']);
    assert.equal(forProxy.authenticated, true, JSON.stringify(forProxy));
    assert.deepEqual(forProxy.audiences, ['connectors-proxy']);
    assert.notEqual((await tokenReview(scoped)).authenticated, true, 'the API audience must not accept it');
  });

  test('SubjectAccessReview: get connectors is denied until a Role and RoleBinding grant it', async () => {
    assert.equal((await canGetConnector('git')).allowed, false);
    await kube.applyYaml(`
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: use-git-connector, namespace: ${NS} }
rules:
  - apiGroups: [connectors.alauda.io]
    resources: [connectors]
    resourceNames: [git]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: builder-uses-git, namespace: ${NS} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: use-git-connector }
subjects:
  - { kind: ServiceAccount, name: ${SA}, namespace: ${NS} }
`);
    // The RBAC authorizer reads through an informer: the grant shows up within moments.
    let status = await canGetConnector('git');
    for (let i = 0; i < 100 && !status.allowed; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await canGetConnector('git');
    }
    assert.equal(status.allowed, true, JSON.stringify(status));
    assert.match(status.reason ?? '', /use-git-connector/);
    // Only what was granted: another Connector and the proxy subresource stay denied.
    assert.equal((await canGetConnector('other')).allowed, false);
    assert.equal((await canGetConnector('git', 'proxy')).allowed, false);
  });

  test('a CRD for connectors.connectors.alauda.io becomes Established and is served', async () => {
    await kube.applyYaml(CONNECTOR_CRD);
    await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
    const crd = await kube.api('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/connectors.connectors.alauda.io');
    const conditions = (crd.json as { status: { conditions: { type: string; status: string }[] } }).status.conditions;
    assert.ok(conditions.some((c) => c.type === 'Established' && c.status === 'True'), JSON.stringify(conditions));

    await kube.applyYaml(`
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: { name: git, namespace: ${NS} }
spec: { connectorClassName: git, address: https://git.example.com }
`);
    const got = await kube.kubectl(['get', 'connectors.connectors.alauda.io', 'git', '-n', NS, '-o', 'jsonpath={.spec.address}']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'https://git.example.com');
  });

  test('stopApiServer/startApiServer: same URL, CA and tokens; objects survive; requests fail while it is down', async () => {
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'before-restart', namespace: 'default' }, data: { k: 'v' } };
    const created = await kube.api('POST', '/api/v1/namespaces/default/configmaps', cm);
    assert.equal(created.status, 201, created.text);
    const token = await kube.createServiceAccountToken(NS, SA);
    const before = kube.pids;
    const url = kube.url;

    await kube.stopApiServer();
    assert.equal(running(before.apiserver), false, 'the old kube-apiserver still runs');
    assert.equal(running(kube.pids.etcd), true, 'etcd must keep running');
    await assert.rejects(kube.api('GET', '/api/v1/namespaces/default/configmaps/before-restart'),
      (e: NodeJS.ErrnoException) => { assert.equal(e.code, 'ECONNREFUSED', String(e)); return true; });
    const kubectlDown = await kube.kubectl(['get', 'namespace', 'default', '--request-timeout=5s']);
    assert.notEqual(kubectlDown.code, 0, 'kubectl must fail while the API server is down');
    await kube.startApiServer();
    await assert.rejects(kube.startApiServer(), /running already/);

    const after = kube.pids;
    assert.notEqual(after.apiserver, before.apiserver, 'a new process');
    assert.equal(after.etcd, before.etcd, 'the same etcd');
    assert.equal(kube.url, url, 'the same address');
    // Objects written before the restart are still there (etcd kept them)...
    const got = await kube.api('GET', '/api/v1/namespaces/default/configmaps/before-restart');
    assert.equal(got.status, 200, got.text);
    assert.deepEqual((got.json as { data: Record<string, string> }).data, { k: 'v' });
    const sa = await kube.api('GET', `/api/v1/namespaces/${NS}/serviceaccounts/${SA}`);
    assert.equal(sa.status, 200, sa.text);
    // ...the same CA verifies the server (kube.api uses kube.caCert), and a token signed
    // before the restart still authenticates: the same ServiceAccount key.
    const review = await tokenReview(token);
    assert.equal(review.authenticated, true, JSON.stringify(review));
    const ok = await kube.kubectl(['get', 'configmap', 'before-restart', '-n', 'default', '-o', 'jsonpath={.data.k}']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'v');
  });
});

/** Running, as opposed to gone or a zombie nobody has reaped yet. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Starts a cluster in a child node process (restarting its API server first when `restart`),
 * SIGKILLs that process and checks that the reaper kills etcd and the current API server and
 * removes the folder.
 */
async function killedClusterIsReaped(restart: boolean): Promise<void> {
  const then = restart ? '(k) => k.stopApiServer().then(() => k.startApiServer()).then(() => k)' : '(k) => k';
  const script = `require(${JSON.stringify(join(__dirname, 'support', 'kube.js'))}).startKube().then(${then})
    .then((k) => { console.log(JSON.stringify({ dir: k.dir, pids: k.pids })); setInterval(() => {}, 1000); },
          (e) => { console.error(e.message); process.exit(1); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  try {
    while (!out.includes('\n')) {
      assert.equal(child.exitCode, null, `the cluster process exited: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  const { dir, pids } = JSON.parse(out) as { dir: string; pids: { etcd: number; apiserver: number } };
  assert.ok(pids.etcd > 0 && pids.apiserver > 0, out);
  const deadline = Date.now() + 15_000;
  while ((running(pids.etcd) || running(pids.apiserver) || existsSync(dir)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(running(pids.etcd), false, 'etcd still runs');
  assert.equal(running(pids.apiserver), false, 'kube-apiserver still runs');
  assert.equal(existsSync(dir), false, `${dir} still exists`);
}

test('etcd and kube-apiserver die and the folder goes when the test process is SIGKILLed', () => killedClusterIsReaped(false));

test('a restarted kube-apiserver dies too when the test process is SIGKILLed', () => killedClusterIsReaped(true));
