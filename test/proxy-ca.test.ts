// The proxy CA (src/tls/proxy-ca.ts). Embedded mode: generated once into a folder and reused
// (also by processes starting at once), given as files, bad files refused naming the file,
// edits picked up by the watch. Kubernetes mode against a real API server, as a
// ServiceAccount with only the Role the CA needs: created when absent, two replicas agree on
// one CA, an existing Secret is used as is, an edit (rotation) is used without a restart, a
// bad edit keeps the previous CA, a deleted Secret is created again. The CA key never
// appears in the log output.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { KubeApiError, KubeClient, StaticToken, type KubeWatchApi } from '../src/kube/client';
import { CA_BUNDLE_FILE, CA_CERT_FILE, FileProxyCa, KubeProxyCa, createProxyCa, type SigningCa } from '../src/tls/proxy-ca';
import { LeafCertificates } from '../src/tls/leaf-certs';
import { startKube, type KubeCluster } from './support/kube';
import { TestCa } from './support/test-ca';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A logger whose output the test reads (JSON lines). */
function capture(): { log: Logger; text: () => string } {
  let out = '';
  return { log: pino({ level: 'debug' }, { write: (s: string) => { out += s; } }), text: () => out };
}

/** The base64 body lines of a PEM private key: what a leak of the key would contain. */
function keyMarkers(keyPem: string): string[] {
  return keyPem.split('\n').filter((l) => l !== '' && !l.startsWith('-----')).map((l) => l.slice(0, 40));
}

function assertNoKey(logText: string, keyPem: string): void {
  assert.doesNotMatch(logText, /PRIVATE KEY/);
  for (const m of keyMarkers(keyPem)) assert.ok(!logText.includes(m), 'a line of the CA key is in the log');
  const b64 = Buffer.from(keyPem).toString('base64').slice(0, 40);
  assert.ok(!logText.includes(b64), 'the base64 of the CA key is in the log');
}

let work: string;
before(() => { work = mkdtempSync(join(tmpdir(), 'cproxy-proxyca-')); });
after(() => rmSync(work, { recursive: true, force: true }));

describe('embedded mode', () => {
  test('generated once into the folder (key 0600, ca.crt for clients) and reused by the next start', async () => {
    const dir = join(work, 'gen');
    const logs = capture();
    const first = new FileProxyCa({ dir, watch: false }, { log: logs.log });
    await first.ready;
    const bundle = join(dir, CA_BUNDLE_FILE);
    assert.equal(statSync(bundle).mode & 0o777, 0o600, 'the key file is private');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const caCrt = readFileSync(join(dir, CA_CERT_FILE), 'utf8');
    assert.equal(caCrt, first.caCertPem());
    assert.doesNotMatch(caCrt, /PRIVATE KEY/, 'ca.crt holds the certificate only');
    const cert = new X509Certificate(caCrt);
    assert.equal(cert.ca, true);
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(Date.parse(cert.validTo) > Date.now() + 9 * 365 * 86_400_000, 'a generated CA lasts years');
    assert.match(logs.text(), /proxy CA generated/);
    first.stop();

    const second = new FileProxyCa({ dir, watch: false }, { log: logs.log });
    await second.ready;
    assert.equal(second.current()!.id, first.current()!.id, 'the same CA after a restart');
    assert.equal((logs.text().match(/proxy CA generated/g) ?? []).length, 1, 'generated once');
    assertNoKey(logs.text(), readFileSync(bundle, 'utf8'));
    assert.ok(!JSON.stringify(second.current()).includes('PRIVATE'), 'the CA object holds no key text');
    second.stop();
  });

  test('several processes starting at once on an empty folder end with one CA', async () => {
    const dir = join(work, 'race');
    const cas = Array.from({ length: 6 }, () => new FileProxyCa({ dir, watch: false }, { log: pino({ level: 'silent' }) }));
    await Promise.all(cas.map((c) => c.ready));
    const ids = new Set(cas.map((c) => c.current()!.id));
    assert.equal(ids.size, 1, 'all use the same CA');
    assert.equal(readFileSync(join(dir, CA_CERT_FILE), 'utf8'), cas[0]!.caCertPem());
    for (const c of cas) c.stop();
  });

  test('a cert/key pair given as files is used (also one file holding both)', async () => {
    const given = await TestCa.create('given');
    try {
      const files = new FileProxyCa({ certFile: given.certFile, keyFile: given.keyFile, dir: join(work, 'unused'), watch: false }, { log: pino({ level: 'silent' }) });
      await files.ready;
      assert.equal(files.current()!.id, new X509Certificate(given.cert).fingerprint256);
      files.stop();
      const both = join(work, 'both.pem');
      writeFileSync(both, given.key + given.cert);
      const one = new FileProxyCa({ certFile: both, keyFile: both, dir: join(work, 'unused'), watch: false }, { log: pino({ level: 'silent' }) });
      await one.ready;
      assert.equal(one.current()!.id, new X509Certificate(given.cert).fingerprint256);
      one.stop();
    } finally {
      given.remove();
    }
  });

  test('unusable files: ready rejects with the file and the fault, never the key', async () => {
    const a = await TestCa.create('bad-a');
    const b = await TestCa.create('bad-b');
    const leaf = await a.issueFiles(['leaf.test']);
    try {
      const notPem = join(work, 'not-pem.crt');
      writeFileSync(notPem, 'hello');
      const cases: [string, string, RegExp][] = [
        [notPem, a.keyFile, new RegExp(`${notPem}: not a PEM certificate`)],
        [a.certFile, join(work, 'missing.key'), /missing\.key: ENOENT/],
        [a.certFile, b.keyFile, /the key does not belong to the certificate/],
        [leaf.certFile, leaf.keyFile, new RegExp(`${leaf.certFile}: not a CA certificate`)],
      ];
      for (const [certFile, keyFile, expected] of cases) {
        const logs = capture();
        const files = new FileProxyCa({ certFile, keyFile, dir: work, watch: false }, { log: logs.log });
        await assert.rejects(files.ready, expected);
        await files.ready.catch((e: Error) => {
          assert.doesNotMatch(e.message, /PRIVATE KEY|BEGIN/);
          for (const m of keyMarkers(b.key).concat(keyMarkers(a.key))) assert.ok(!e.message.includes(m));
        });
        assert.match(logs.text(), /proxy CA unusable/);
        assertNoKey(logs.text(), a.key);
        assertNoKey(logs.text(), b.key);
      }
      assert.throws(() => createProxyCa({ source: 'files', namespace: 'x', watch: false, proxyCa: { secretName: 'x', certFile: a.certFile, dir: work } }, { log: pino({ level: 'silent' }) }),
        /--proxy-ca-cert and --proxy-ca-key go together/);
    } finally {
      a.remove();
      b.remove();
    }
  });

  test('an edit of the files is picked up by the watch; a bad edit keeps the previous CA', async () => {
    const one = await TestCa.create('watch-one');
    const two = await TestCa.create('watch-two');
    try {
      const dir = mkdtempSync(join(work, 'watched-'));
      const certFile = join(dir, 'ca.crt');
      const keyFile = join(dir, 'ca.key');
      writeFileSync(certFile, one.cert);
      writeFileSync(keyFile, one.key);
      const logs = capture();
      const reloads: boolean[] = [];
      const files = new FileProxyCa({ certFile, keyFile, dir, watch: true }, { log: logs.log, onReload: (ok) => reloads.push(ok) });
      await files.ready;
      const changes: SigningCa[] = [];
      files.onChange((c) => changes.push(c));
      writeFileSync(keyFile, two.key); // half an update: key of two, certificate of one
      await until('the bad edit to be seen', () => reloads.includes(false));
      assert.equal(files.current()!.id, new X509Certificate(one.cert).fingerprint256, 'the previous CA stays');
      assert.match(logs.text(), /proxy CA not reloaded: keeping the previous one/);
      writeFileSync(certFile, two.cert);
      const rotated = await until('the rotation', () => changes[0]);
      assert.equal(rotated.id, new X509Certificate(two.cert).fingerprint256);
      assert.equal(files.caCertPem(), two.cert.trim() + '\n');
      assertNoKey(logs.text(), one.key);
      assertNoKey(logs.text(), two.key);
      files.stop();
    } finally {
      one.remove();
      two.remove();
    }
  });
});

describe('Kubernetes mode (real API server)', () => {
  const NS = 'connectors-system';
  let kube: KubeCluster;
  const clients: KubeClient[] = [];
  const cas: KubeProxyCa[] = [];
  let token: string;

  before(async () => {
    kube = await startKube();
    // Exactly what the proxy CA needs in its own namespace, nothing cluster-wide.
    await kube.applyYaml(`
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: connectors-proxy, namespace: ${NS}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: connectors-proxy-ca, namespace: ${NS}}
rules:
  - {apiGroups: [""], resources: [secrets], verbs: [get, list, watch, create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: connectors-proxy-ca, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: connectors-proxy-ca}
subjects: [{kind: ServiceAccount, name: connectors-proxy, namespace: ${NS}}]
`);
    token = await kube.createServiceAccountToken(NS, 'connectors-proxy');
  });

  after(async () => {
    for (const c of cas) c.stop();
    for (const c of clients) await c.destroy();
    await kube?.stop();
  });

  function replica(name: string, log: Logger = pino({ level: 'silent' })): KubeProxyCa {
    const client = new KubeClient({ server: kube.url, ca: kube.caCert, insecureSkipTlsVerify: false, token: new StaticToken(token) }, { timeoutMs: 5000 });
    clients.push(client);
    const ca = new KubeProxyCa(client, NS, name, { log }).start();
    cas.push(ca);
    return ca;
  }

  async function secretData(name: string): Promise<Record<string, string> | undefined> {
    const r = await kube.api('GET', `/api/v1/namespaces/${NS}/secrets/${name}`);
    if (r.status === 404) return undefined;
    const s = r.json as { type: string; data: Record<string, string> };
    assert.equal(s.type, 'kubernetes.io/tls');
    return Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }

  async function putSecret(name: string, cert: string, key: string): Promise<void> {
    const r = await kube.api('PUT', `/api/v1/namespaces/${NS}/secrets/${name}`, {
      apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, type: 'kubernetes.io/tls',
      data: { 'tls.crt': Buffer.from(cert).toString('base64'), 'tls.key': Buffer.from(key).toString('base64') },
    });
    assert.equal(r.status, 200, r.text);
  }

  test('absent: generated and created as a kubernetes.io/tls Secret; two replicas starting at once agree on one CA', async () => {
    const logs = capture();
    const a = replica('connectors-proxy-ca', logs.log);
    const b = replica('connectors-proxy-ca', logs.log);
    await Promise.all([a.ready, b.ready]);
    await until('both replicas on the stored CA', async () => {
      const stored = await secretData('connectors-proxy-ca');
      return stored !== undefined && a.caCertPem() === stored['tls.crt'] && b.caCertPem() === stored['tls.crt'];
    });
    assert.equal(a.current()!.id, b.current()!.id);
    const stored = (await secretData('connectors-proxy-ca'))!;
    assert.ok(new X509Certificate(stored['tls.crt']!).checkPrivateKey((await import('node:crypto')).createPrivateKey(stored['tls.key']!)));
    assert.ok(a.creates + b.creates >= 1 && a.creates + b.creates <= 2, `creates: ${a.creates + b.creates}`);
    assertNoKey(logs.text(), stored['tls.key']!);
  });

  test('a create that loses the race (409 AlreadyExists) reads and uses the winner\'s CA', async () => {
    const winner = await TestCa.create('kube-winner');
    try {
      const client = new KubeClient({ server: kube.url, ca: kube.caCert, insecureSkipTlsVerify: false, token: new StaticToken(token) }, { timeoutMs: 5000 });
      clients.push(client);
      const answers: number[] = [];
      // Another replica creates the Secret between this one's empty list and its create.
      const racing: KubeWatchApi = {
        watch: (path, onEvent, opts) => client.watch(path, onEvent, opts),
        async request<T>(method: string, path: string, body?: unknown): Promise<T> {
          if (method === 'POST') {
            const r = await kube.api('POST', path, {
              apiVersion: 'v1', kind: 'Secret', metadata: { name: 'raced-ca', namespace: NS }, type: 'kubernetes.io/tls',
              data: { 'tls.crt': Buffer.from(winner.cert).toString('base64'), 'tls.key': Buffer.from(winner.key).toString('base64') },
            });
            assert.equal(r.status, 201, r.text);
          }
          try {
            return await client.request<T>(method, path, body);
          } catch (e) {
            if (e instanceof KubeApiError) answers.push(e.status);
            throw e;
          }
        },
      };
      const ca = new KubeProxyCa(racing, NS, 'raced-ca', { log: pino({ level: 'silent' }) }).start();
      cas.push(ca);
      await ca.ready;
      // The watch may deliver the winner's Secret before the 409 arrives.
      await until('the answer to the create', () => answers.length > 0);
      assert.deepEqual(answers, [409], 'the create was refused');
      assert.equal(ca.creates, 1);
      assert.equal(ca.current()!.id, new X509Certificate(winner.cert).fingerprint256, 'the winner\'s CA is used');
    } finally {
      winner.remove();
    }
  });

  test('an existing Secret is used as it is: no create', async () => {
    const given = await TestCa.create('kube-given');
    try {
      const r = await kube.api('POST', `/api/v1/namespaces/${NS}/secrets`, {
        apiVersion: 'v1', kind: 'Secret', metadata: { name: 'given-ca', namespace: NS }, type: 'kubernetes.io/tls',
        data: { 'tls.crt': Buffer.from(given.cert).toString('base64'), 'tls.key': Buffer.from(given.key).toString('base64') },
      });
      assert.equal(r.status, 201, r.text);
      const ca = replica('given-ca');
      await ca.ready;
      assert.equal(ca.current()!.id, new X509Certificate(given.cert).fingerprint256);
      assert.equal(ca.creates, 0);
    } finally {
      given.remove();
    }
  });

  test('rotation: an edit of the Secret is used without a restart (new leaves); a bad edit keeps the previous CA', async () => {
    const one = await TestCa.create('kube-one');
    const two = await TestCa.create('kube-two');
    try {
      const r = await kube.api('POST', `/api/v1/namespaces/${NS}/secrets`, {
        apiVersion: 'v1', kind: 'Secret', metadata: { name: 'rotating-ca', namespace: NS }, type: 'kubernetes.io/tls',
        data: { 'tls.crt': Buffer.from(one.cert).toString('base64'), 'tls.key': Buffer.from(one.key).toString('base64') },
      });
      assert.equal(r.status, 201, r.text);
      const logs = capture();
      const ca = replica('rotating-ca', logs.log);
      await ca.ready;
      const leaves = new LeafCertificates(ca);
      await leaves.secureContextFor('rot.example.test');
      const changes: SigningCa[] = [];
      ca.onChange((c) => changes.push(c));

      await putSecret('rotating-ca', one.cert, two.key); // a bad edit: the key of another CA
      await until('the bad edit to be logged', () => /proxy CA not reloaded: keeping the previous one/.test(logs.text()));
      assert.match(logs.text(), /Secret connectors-system\/rotating-ca data\[\\"tls.crt\\"\] and Secret connectors-system\/rotating-ca data\[\\"tls.key\\"\]: the key does not belong/);
      assert.equal(ca.current()!.id, new X509Certificate(one.cert).fingerprint256);
      assert.ok(!(leaves.secureContextFor('rot.example.test') instanceof Promise), 'leaves of the kept CA stay cached');

      await putSecret('rotating-ca', two.cert, two.key);
      const rotated = await until('the rotation', () => changes[0]);
      assert.equal(rotated.id, new X509Certificate(two.cert).fingerprint256);
      assert.ok(leaves.secureContextFor('rot.example.test') instanceof Promise, 'a fresh leaf for the new CA');
      assert.match(logs.text(), /proxy CA rotated/);
      assertNoKey(logs.text(), one.key);
      assertNoKey(logs.text(), two.key);
      leaves.close();
    } finally {
      one.remove();
      two.remove();
    }
  });

  test('a deleted Secret is created again with a new CA', async () => {
    const ca = replica('deleted-ca');
    await ca.ready;
    const firstId = ca.current()!.id;
    const r = await kube.api('DELETE', `/api/v1/namespaces/${NS}/secrets/deleted-ca`);
    assert.equal(r.status, 200, r.text);
    await until('a new CA', () => ca.current()!.id !== firstId);
    const stored = await until('the Secret again', () => secretData('deleted-ca'));
    assert.equal(stored['tls.crt'], ca.caCertPem());
  });

  test('a Secret without tls.key: logged naming the Secret and the key; the CA waits for a good one', async () => {
    const given = await TestCa.create('kube-partial');
    try {
      const r = await kube.api('POST', `/api/v1/namespaces/${NS}/secrets`, {
        apiVersion: 'v1', kind: 'Secret', metadata: { name: 'partial-ca', namespace: NS }, type: 'Opaque',
        data: { 'tls.crt': Buffer.from(given.cert).toString('base64') },
      });
      assert.equal(r.status, 201, r.text);
      const logs = capture();
      const ca = replica('partial-ca', logs.log);
      await until('the error', () => /data\[\\"tls.key\\"\] is missing/.test(logs.text()));
      assert.equal(ca.current(), undefined);
      assert.equal(ca.creates, 0, 'a Secret that exists is never overwritten');
      const patched = await kube.api('PUT', `/api/v1/namespaces/${NS}/secrets/partial-ca`, {
        apiVersion: 'v1', kind: 'Secret', metadata: { name: 'partial-ca', namespace: NS }, type: 'Opaque',
        data: { 'tls.crt': Buffer.from(given.cert).toString('base64'), 'tls.key': Buffer.from(given.key).toString('base64') },
      });
      assert.equal(patched.status, 200, patched.text);
      await ca.ready;
      assert.equal(ca.current()!.id, new X509Certificate(given.cert).fingerprint256);
    } finally {
      given.remove();
    }
  });
});
