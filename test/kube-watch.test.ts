// The Kubernetes watcher (src/sources/reflector.ts, kubernetes.ts) against a real API
// server, below the proxy: what the index holds after lists, watch events, reference
// changes, watch renewals, a 410 relist after an API server restart, and stop().
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { startKube, type KubeCluster } from './support/kube';
import { REPO_ROOT } from './support/proxy';
import { KubeClient, loadKubeconfig } from '../src/kube/client';
import { ObjectStore } from '../src/sources/store';
import { RouteTable } from '../src/routes/route-table';
import { KubeSource, referencedSecrets } from '../src/sources/kubernetes';
import { proxyAddress } from '../src/status/proxy-address';
import type { Connector, ConnectorClass } from '../src/types';

const NS = 'watch-a';
const NS2 = 'watch-b';
const GROUP = '/apis/connectors.alauda.io/v1alpha1';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const silent = pino({ level: 'silent' });

let kube: KubeCluster;
const clients: KubeClient[] = [];
const sources: KubeSource[] = [];

function client(): KubeClient {
  const c = new KubeClient(loadKubeconfig(kube.kubeconfig), { timeoutMs: 5000 });
  clients.push(c);
  return c;
}

function source(index: ObjectStore, restarts: string[] = [], watchTimeoutSeconds?: number): KubeSource {
  const s = new KubeSource(client(), index, silent, {
    onRestart: (resource, reason) => restarts.push(`${resource}:${reason}`),
    reflector: { backoffMs: { initial: 50, max: 500 }, watchTimeoutSeconds },
  });
  sources.push(s);
  return s;
}

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function must(method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await kube.api(method, path, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${r.text}`);
  return r.json;
}

const secret = (ns: string, name: string, password: string): unknown => ({
  apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, type: 'kubernetes.io/basic-auth',
  stringData: { username: 'u', password },
});
const connector = (ns: string, name: string, secretName?: string, secretNs?: string): unknown => ({
  apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'Connector', metadata: { name, namespace: ns },
  spec: { connectorClassName: 'watch-class', address: 'http://127.0.0.1:9/x', ...(secretName ? { auth: { name: 'basic', secretRef: { name: secretName, ...(secretNs ? { namespace: secretNs } : {}) } } } : {}) },
});
const password = (index: ObjectStore, ns: string, name: string): string | undefined => {
  const data = index.secret(ns, name)?.data?.password;
  return data === undefined ? undefined : Buffer.from(data, 'base64').toString();
};

before(async () => {
  kube = await startKube();
  for (const f of ['connectorclasses.yaml', 'connectors.yaml']) await kube.applyYaml(readFileSync(join(REPO_ROOT, 'deploy', 'crds', f), 'utf8'));
  await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
  await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
  for (const ns of [NS, NS2]) await must('POST', '/api/v1/namespaces', { metadata: { name: ns } });
  await must('POST', `${GROUP}/connectorclasses`, {
    apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'ConnectorClass', metadata: { name: 'watch-class' },
    spec: { address: { type: 'string' }, proxy: {}, auth: { types: [{ name: 'basic', secretType: 'kubernetes.io/basic-auth' }] } },
  });
  // Before any watcher starts: one referenced Secret, one unreferenced, one Connector.
  await must('POST', `/api/v1/namespaces/${NS}/secrets`, secret(NS, 'used', 'pw-used-1'));
  await must('POST', `/api/v1/namespaces/${NS}/secrets`, secret(NS, 'unused', 'pw-unused'));
  await must('POST', `${GROUP}/namespaces/${NS}/connectors`, connector(NS, 'first', 'used'));
});

after(async () => {
  for (const s of sources) s.stop();
  await Promise.all(clients.map((c) => c.destroy()));
  await kube?.stop();
});

describe('Kubernetes watcher', () => {
  test('first sync: ready only after all three lists; only referenced Secrets are kept', async () => {
    const index = new ObjectStore();
    const routes = new RouteTable(index);
    const s = source(index);
    assert.equal(index.ready, false);
    await s.start();
    assert.equal(index.ready, true);
    assert.ok(index.connectorClass('watch-class'));
    assert.ok(index.connector(NS, 'first'));
    assert.equal(password(index, NS, 'used'), 'pw-used-1');
    assert.equal(index.secret(NS, 'unused'), undefined, 'an unreferenced Secret must not be kept');
    assert.ok(index.counts().secrets >= 1);
    const route = routes.route(NS, 'first');
    assert.equal(route?.broken, undefined);
    assert.deepEqual(s.lists, { connectorclasses: 1, connectors: 1, secrets: 1 });
    s.stop();
  });

  test('events: a Secret created before its Connector is fetched; rotation, reference changes and deletes follow', async () => {
    const index = new ObjectStore();
    const routes = new RouteTable(index);
    const s = source(index);
    await s.start();
    // The Secret's ADDED event arrives while nobody references it: dropped...
    await must('POST', `/api/v1/namespaces/${NS}/secrets`, secret(NS, 'early', 'pw-early'));
    await sleep(300);
    assert.equal(index.secret(NS, 'early'), undefined);
    // ...so the Connector that references it makes the watcher GET it.
    await must('POST', `${GROUP}/namespaces/${NS}/connectors`, connector(NS, 'second', 'early'));
    await until('the early Secret', () => password(index, NS, 'early'));
    assert.equal(routes.route(NS, 'second')?.broken, undefined);

    // Rotation.
    await must('PUT', `/api/v1/namespaces/${NS}/secrets/early`, secret(NS, 'early', 'pw-early-2'));
    await until('the rotated password', () => password(index, NS, 'early') === 'pw-early-2');

    // A Connector created before its Secret: broken until the Secret arrives by watch.
    await must('POST', `${GROUP}/namespaces/${NS2}/connectors`, connector(NS2, 'third', 'late'));
    await until('third', () => index.connector(NS2, 'third'));
    assert.match(routes.route(NS2, 'third')?.broken ?? '', /Secret watch-b\/late not found/);
    await must('POST', `/api/v1/namespaces/${NS2}/secrets`, secret(NS2, 'late', 'pw-late'));
    await until('the late Secret', () => password(index, NS2, 'late'));
    assert.equal(routes.route(NS2, 'third')?.broken, undefined);

    // Re-point `second` at `used` (already kept, referenced by `first`): `early` is dropped.
    const second = await must('GET', `${GROUP}/namespaces/${NS}/connectors/second`) as Connector;
    second.spec.auth = { name: 'basic', secretRef: { name: 'used' } };
    await must('PUT', `${GROUP}/namespaces/${NS}/connectors/second`, second);
    await until('early dropped', () => index.secret(NS, 'early') === undefined);
    assert.equal(password(index, NS, 'used'), 'pw-used-1');

    // Deleting `second` keeps `used` (still referenced by `first`); deleting `third` drops `late`.
    await must('DELETE', `${GROUP}/namespaces/${NS}/connectors/second`);
    await must('DELETE', `${GROUP}/namespaces/${NS2}/connectors/third`);
    await until('third gone', () => index.connector(NS2, 'third') === undefined && routes.route(NS2, 'third') === undefined);
    await until('late dropped', () => index.secret(NS2, 'late') === undefined);
    assert.equal(index.connector(NS, 'second'), undefined);
    assert.equal(password(index, NS, 'used'), 'pw-used-1');

    // A deleted Secret leaves a broken route, not a stale credential.
    await must('POST', `/api/v1/namespaces/${NS}/secrets`, secret(NS, 'doomed', 'pw-doomed'));
    await must('POST', `${GROUP}/namespaces/${NS}/connectors`, connector(NS, 'fourth', 'doomed'));
    await until('doomed', () => password(index, NS, 'doomed'));
    await must('DELETE', `/api/v1/namespaces/${NS}/secrets/doomed`);
    await until('doomed deleted', () => index.secret(NS, 'doomed') === undefined);
    assert.match(routes.route(NS, 'fourth')?.broken ?? '', /not found/);
    s.stop();
  });

  test('a watch that the server ends is renewed from the last version: no event is lost, no relist', async () => {
    const index = new ObjectStore();
    const restarts: string[] = [];
    const s = source(index, restarts, 1);
    await s.start();
    await sleep(2500); // at least two renewals of each watch
    await must('POST', `${GROUP}/namespaces/${NS}/connectors`, connector(NS, 'after-renewal'));
    await until('after-renewal', () => index.connector(NS, 'after-renewal'));
    assert.ok(restarts.filter((r) => r === 'connectors:closed').length >= 2, restarts.join(' '));
    assert.equal(s.lists.connectors, 1, 'a renewed watch must not relist');
    s.stop();
  });

  test('API server restart: watches reconnect (relisting after 410 Gone) and see changes made after it', async () => {
    const index = new ObjectStore();
    const restarts: string[] = [];
    const s = source(index, restarts);
    await s.start();
    await kube.stopApiServer();
    await sleep(500);
    // The index keeps serving what it had while the API server is away.
    assert.ok(index.connector(NS, 'first'));
    assert.equal(password(index, NS, 'used'), 'pw-used-1');
    await kube.startApiServer();
    // Writes made while the watches were down are only visible to a relist or a resumed watch.
    await must('POST', `${GROUP}/namespaces/${NS}/connectors`, connector(NS, 'after-restart', 'used'));
    await must('PUT', `/api/v1/namespaces/${NS}/secrets/used`, secret(NS, 'used', 'pw-used-2'));
    await until('after-restart', () => index.connector(NS, 'after-restart'), 30_000);
    await until('the password changed after the restart', () => password(index, NS, 'used') === 'pw-used-2', 30_000);
    assert.ok(restarts.some((r) => r.endsWith(':error')), restarts.join(' '));
    // etcd's revision moved on while the API server was down (its own leases and events), so
    // at least one watch had to relist; the others resumed.
    const lists = s.lists;
    assert.ok(restarts.some((r) => r.endsWith(':gone')) || lists.connectors + lists.secrets + lists.connectorclasses === 3, restarts.join(' '));
    s.stop();
  });

  test('stop() ends every watch: no more changes reach the index', async () => {
    const index = new ObjectStore();
    const s = source(index);
    await s.start();
    s.stop();
    await sleep(200);
    await must('POST', `${GROUP}/namespaces/${NS}/connectors`, connector(NS, 'after-stop'));
    await sleep(500);
    assert.equal(index.connector(NS, 'after-stop'), undefined);
  });
});

describe('references and proxy addresses', () => {
  test('referencedSecrets: auth Secret (own or given namespace) and CA Secret', () => {
    const c = (spec: Partial<Connector['spec']>): Connector => ({
      apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'Connector', metadata: { name: 'c', namespace: 'ns' },
      spec: { connectorClassName: 'k', address: 'http://x', ...spec },
    });
    assert.deepEqual(referencedSecrets(c({})), []);
    assert.deepEqual(referencedSecrets(c({ auth: { secretRef: { name: 's' } } })), ['ns/s']);
    assert.deepEqual(referencedSecrets(c({ auth: { secretRef: { name: 's', namespace: 'other' } }, caCertSecretRef: { name: 'ca' } })), ['other/s', 'ns/ca']);
    // Without --allow-cross-namespace-secrets another namespace's Secret is not even watched.
    assert.deepEqual(referencedSecrets(c({ auth: { secretRef: { name: 's', namespace: 'other' } }, caCertSecretRef: { name: 'ca' } }), false), ['ns/ca']);
    assert.deepEqual(referencedSecrets(c({ auth: { secretRef: { name: 's', namespace: 'ns' } } }), false), ['ns/s']);
  });

  test('proxyAddress: host and path forms as the docs give them, none without spec.proxy', () => {
    const c: Connector = { apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'Connector', metadata: { name: 'harbor', namespace: 'default' }, spec: { connectorClassName: 'oci', address: 'https://example.com' } };
    const cls = (annotations: Record<string, string>, proxy?: object): ConnectorClass => ({
      apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'ConnectorClass', metadata: { name: 'oci', annotations }, spec: proxy ? { proxy } : {},
    });
    const o = { domain: 'svc.cluster.local', proto: 'http' as const };
    assert.equal(proxyAddress(c, cls({}, { uri: 'http://p' }), o), 'http://c-harbor.default.svc.cluster.local');
    assert.equal(proxyAddress(c, cls({ 'connectors.cpaas.io/proxy-resolver': 'path' }, { uri: 'http://p' }), o),
      'http://c-harbor.default.svc.cluster.local/namespaces/default/connectors/harbor');
    assert.equal(proxyAddress(c, cls({ 'connectors.cpaas.io/proxy-resolver': 'path' }, { uri: 'http://p' }), { ...o, publicUrl: 'https://proxy.example.com/' }),
      'https://proxy.example.com/namespaces/default/connectors/harbor');
    assert.equal(proxyAddress(c, cls({}), o), undefined);
    assert.equal(proxyAddress(c, undefined, o), undefined);
  });
});
