// Kubernetes mode's client authentication against a real kube-apiserver: the kubeconfig and
// in-cluster loaders, TokenReview + SubjectAccessReview decisions, their caches and
// coalescing, and 503 (never allowed) when the API server cannot answer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKube, type KubeCluster } from './support/kube';
import { run } from './support/run';
import {
  FileToken, KubeApiError, KubeClient, KubeConfigError, KubeUnavailableError, inClusterConfig, loadKubeClientConfig, loadKubeconfig,
  type KubeApi, type KubeClientConfig,
} from '../src/kube/client';
import { KubeAuthenticator, type KubeAuthenticatorOptions } from '../src/auth/kube-authenticator';
import type { AuthDecision } from '../src/auth/authenticator';

const NS = 'team-a';
const SA = 'builder';
const SA_USER = `system:serviceaccount:${NS}:${SA}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let kube: KubeCluster;
let tmp: string;
const clients: KubeClient[] = [];

function adminConfig(server = kube.url): KubeClientConfig {
  return { ...loadKubeconfig(kube.kubeconfig), server };
}
function newClient(config: KubeClientConfig = adminConfig(), timeoutMs?: number): KubeClient {
  const c = new KubeClient(config, { timeoutMs });
  clients.push(c);
  return c;
}

/** A KubeApi that records which review each request was (the last path segment). */
function counting(client: KubeApi): { api: KubeApi; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    api: { request: <T>(m: string, p: string, b?: unknown): Promise<T> => { calls.push(p.slice(p.lastIndexOf('/') + 1)); return client.request<T>(m, p, b); } },
  };
}

function role(name: string, resource: string, names: readonly string[]): string {
  return `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: ${name}, namespace: ${NS} }
rules:
  - { apiGroups: [connectors.alauda.io], resources: [${resource}], resourceNames: [${names.join(', ')}], verbs: [get] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: ${name}, namespace: ${NS} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: ${name} }
subjects:
  - { kind: ServiceAccount, name: ${SA}, namespace: ${NS} }
`;
}

/** RBAC reads through an informer: waits until the API server itself allows the grant. */
async function waitForGrant(name: string, subresource?: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await kube.api('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
      spec: { user: SA_USER, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
        resourceAttributes: { namespace: NS, verb: 'get', group: 'connectors.alauda.io', resource: 'connectors', name, subresource } },
    });
    if ((r.json as { status?: { allowed?: boolean } }).status?.allowed === true) return;
    await sleep(50);
  }
  throw new Error(`the grant on ${name}/${subresource ?? ''} never took effect`);
}

const isPromise = (x: unknown): boolean => x instanceof Promise;

before(async () => {
  kube = await startKube();
  tmp = mkdtempSync(join(tmpdir(), 'kube-auth-test-'));
  for (const args of [['create', 'namespace', NS], ['create', 'serviceaccount', SA, '-n', NS]]) {
    const r = await kube.kubectl(args);
    assert.equal(r.code, 0, r.stderr);
  }
  await kube.applyYaml(role('use-connectors', 'connectors', ['git', 'registry']));
  await waitForGrant('git');
  await waitForGrant('registry');
});

after(async () => {
  await Promise.all(clients.map((c) => c.destroy()));
  await kube?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('Kubernetes client config', () => {
  test('the admin kubeconfig: server, CA file and token reach the API server', async () => {
    const cfg = loadKubeconfig(kube.kubeconfig);
    assert.equal(cfg.server, kube.url);
    assert.equal(cfg.ca, kube.caCert);
    assert.equal(cfg.token?.current(), kube.adminToken);
    assert.equal(cfg.insecureSkipTlsVerify, false);
    const client = newClient(cfg);
    const ns = await client.request<{ metadata: { name: string } }>('GET', '/api/v1/namespaces/default');
    assert.equal(ns.metadata.name, 'default');
    await assert.rejects(client.request('GET', '/api/v1/namespaces/no-such-namespace'), (e: unknown) => {
      assert.ok(e instanceof KubeApiError, String(e));
      assert.equal(e.status, 404);
      assert.equal(e.reason, 'NotFound');
      assert.match(e.message, /no-such-namespace/);
      return true;
    });
    assert.equal(client.requests, 2);
  });

  test('a hand-written kubeconfig with inline CA, client certificate and key', async () => {
    const dir = join(tmp, 'cert');
    await run('mkdir', ['-p', dir]);
    writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n');
    const ssl = async (args: string[]): Promise<void> => {
      const r = await run('openssl', args, { cwd: dir, timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
    };
    await ssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'client.key',
      '-out', 'client.csr', '-subj', '/O=system:masters/CN=cert-admin']);
    await ssl(['x509', '-req', '-in', 'client.csr', '-CA', join(kube.dir, 'ca.crt'), '-CAkey', join(kube.dir, 'ca.key'),
      '-CAcreateserial', '-out', 'client.crt', '-days', '1', '-extfile', 'client.ext']);
    const b64 = (f: string): string => readFileSync(f).toString('base64');
    const file = join(dir, 'kubeconfig');
    writeFileSync(file, `
apiVersion: v1
kind: Config
current-context: other
clusters:
  - name: decoy
    cluster: { server: https://127.0.0.1:1 }
  - name: real
    cluster:
      server: ${kube.url}
      certificate-authority-data: ${b64(kube.caFile)}
users:
  - name: cert
    user:
      client-certificate-data: ${b64(join(dir, 'client.crt'))}
      client-key-data: ${b64(join(dir, 'client.key'))}
contexts:
  - { name: decoy, context: { cluster: decoy, user: cert } }
  - { name: other, context: { cluster: real, user: cert } }
`);
    const cfg = loadKubeconfig(file);
    assert.equal(cfg.server, kube.url);
    assert.equal(cfg.ca, kube.caCert);
    assert.equal(cfg.token, undefined);
    const who = await newClient(cfg).request<{ status: { userInfo: { username: string; groups: string[] } } }>(
      'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
    assert.equal(who.status.userInfo.username, 'cert-admin');
    assert.ok(who.status.userInfo.groups.includes('system:masters'), JSON.stringify(who.status.userInfo));

    // Without the CA the server certificate is not trusted: unavailable, not an API answer...
    const noCa = newClient({ ...cfg, ca: undefined }, 5_000);
    await assert.rejects(noCa.request('GET', '/api/v1/namespaces/default'), KubeUnavailableError);
    // ...unless insecure-skip-tls-verify says so.
    writeFileSync(file, readFileSync(file, 'utf8').replace(/certificate-authority-data: .*/, 'insecure-skip-tls-verify: true'));
    const insecure = loadKubeconfig(file);
    assert.equal(insecure.insecureSkipTlsVerify, true);
    assert.equal(insecure.ca, undefined);
    const ns = await newClient(insecure).request<{ metadata: { name: string } }>('GET', '/api/v1/namespaces/default');
    assert.equal(ns.metadata.name, 'default');
  });

  test('token-file and certificate-authority paths relative to the kubeconfig; a rotated token is re-read', async () => {
    const dir = join(tmp, 'rel');
    await run('mkdir', ['-p', dir]);
    writeFileSync(join(dir, 'ca.pem'), kube.caCert);
    writeFileSync(join(dir, 'token'), 'not-the-admin-token\n');
    const file = join(dir, 'config');
    writeFileSync(file, [
      'apiVersion: v1', 'kind: Config', 'current-context: c',
      'clusters: [{name: k, cluster: {server: "' + kube.url + '", certificate-authority: ca.pem}}]',
      'users: [{name: u, user: {token-file: token}}]',
      'contexts: [{name: c, context: {cluster: k, user: u}}]', '',
    ].join('\n'));
    const cfg = loadKubeconfig(file);
    assert.ok(cfg.token instanceof FileToken);
    assert.equal(cfg.token.current(), 'not-the-admin-token');
    const client = newClient(cfg);
    await assert.rejects(client.request('GET', '/api/v1/namespaces/default'), (e: unknown) => {
      assert.ok(e instanceof KubeApiError, String(e));
      assert.equal(e.status, 401);
      assert.equal(e.reason, 'Unauthorized');
      return true;
    });
    // Rotation: a new file swapped in (as the kubelet does) is used by the next request.
    writeFileSync(join(dir, 'token.new'), `${kube.adminToken}\n`);
    await run('mv', [join(dir, 'token.new'), join(dir, 'token')]);
    const ns = await client.request<{ metadata: { name: string } }>('GET', '/api/v1/namespaces/default');
    assert.equal(ns.metadata.name, 'default');
  });

  test('in-cluster: KUBERNETES_SERVICE_HOST/PORT and the ServiceAccount folder', async () => {
    assert.equal(inClusterConfig({}, '/nonexistent'), undefined);
    const dir = join(tmp, 'sa');
    await run('mkdir', ['-p', dir]);
    writeFileSync(join(dir, 'ca.crt'), kube.caCert);
    writeFileSync(join(dir, 'token'), kube.adminToken);
    const port = new URL(kube.url).port;
    const cfg = inClusterConfig({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }, dir);
    assert.ok(cfg);
    assert.equal(cfg.server, kube.url);
    const ns = await newClient(cfg).request<{ metadata: { name: string } }>('GET', '/api/v1/namespaces/default');
    assert.equal(ns.metadata.name, 'default');
    assert.equal(inClusterConfig({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, dir)?.server, 'https://[fd00::1]:443');
  });

  test('kubeconfig errors name the file and the field', () => {
    const file = join(tmp, 'bad.kubeconfig');
    const cases: [string, RegExp][] = [
      ['current-context: x\n', /current-context|contexts: no entry named "x"/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n', /clusters: no entry named "k"/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: k, cluster: {server: "ftp://x"}}]\n',
        /clusters\[k\]\.server: must be an http or https URL/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: k, cluster: {server: "https://x", certificate-authority: missing.pem}}]\n',
        /clusters\[k\]\.certificate-authority: cannot read .*missing\.pem: ENOENT/],
      ['{', /not valid YAML/],
      // Never silently ignored: fields the proxy cannot honour are refused by name.
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://x"}}]\n' + 'users: [{name: u, user: {as: admin, token: t}}]\n', /users\[u\]\.as: not supported: impersonation is not supported/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://x"}}]\n' + 'users: [{name: u, user: {as-groups: [x], token: t}}]\n', /users\[u\]\.as-groups: not supported: impersonation/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://x"}}]\n' + 'users: [{name: u, user: {auth-provider: {name: gcp}}}]\n', /users\[u\]\.auth-provider: not supported: auth-provider plugins are not supported.*exec credential plugin/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://x"}}]\n' + 'users: [{name: u, user: {tokn: typo}}]\n', /users\[u\]\.tokn: unknown field/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: k, cluster: {server: "https://x", proxy-url: "socks5://127.0.0.1:1080"}}]\n',
        /clusters\[k\]\.proxy-url: socks5 proxies are not supported: use an http or https proxy/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: k, cluster: {server: "https://x", compression: false}}]\n', /clusters\[k\]\.compression: unknown field/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://x"}}]\n' + 'users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: aws}}}]\n',
        /users\[u\]\.exec\.apiVersion: "client\.authentication\.k8s\.io\/v1alpha1" is not supported: use client\.authentication\.k8s\.io\/v1 or/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://x"}}]\n' + 'users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: aws, interactiveMode: Always}}}]\n',
        /users\[u\]\.exec\.interactiveMode: Always needs a terminal/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://x"}}]\n' + 'users: [{name: u, user: {token: t, exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}}}]\n', /give one of token\/tokenFile, username\/password or exec/],
      ['current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://x"}}]\n' + 'users: [{name: u, user: {username: bob}}]\n', /users\[u\]\.password: username and password go together/],
    ];
    for (const [text, re] of cases) {
      writeFileSync(file, text);
      assert.throws(() => loadKubeconfig(file), (e: unknown) => {
        assert.ok(e instanceof KubeConfigError, String(e));
        assert.ok(e.message.startsWith(file), e.message);
        assert.match(e.message, re);
        return true;
      }, text);
    }
  });
});

describe('kubeconfig: contexts, KUBECONFIG lists, proxy-url and exec credential plugins against the API server', () => {
  type Who = { status: { userInfo: { username: string; groups?: string[] } } };
  const whoAmI = (cfg: KubeClientConfig): Promise<Who> => newClient(cfg).request<Who>(
    'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });

  test('KUBECONFIG lists are merged as kubectl does (first definition and current-context win, missing files skipped); a context is chosen by name', async () => {
    const dir = join(tmp, 'merge');
    mkdirSync(dir, { recursive: true });
    const saToken = await kube.createServiceAccountToken(NS, SA);
    writeFileSync(join(dir, 'ca.pem'), kube.caCert);
    // First file: clusters and contexts; its current-context wins over the second's.
    writeFileSync(join(dir, 'one'), [
      'apiVersion: v1', 'kind: Config', 'current-context: as-admin',
      'clusters: [{name: test, cluster: {server: "' + kube.url + '", certificate-authority: ca.pem}}]',
      'contexts: [{name: as-admin, context: {cluster: test, user: admin}}, {name: as-builder, context: {cluster: test, user: builder}}]', '',
    ].join('\n'));
    // Second file, elsewhere: the users (its relative paths are its own), a decoy cluster of the same name (the first wins).
    const other = join(tmp, 'merge-other');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'builder.token'), saToken);
    writeFileSync(join(other, 'two'), [
      'apiVersion: v1', 'kind: Config', 'current-context: as-builder',
      'clusters: [{name: test, cluster: {server: "https://127.0.0.1:1"}}]',
      'users: [{name: admin, user: {token: "' + kube.adminToken + '"}}, {name: builder, user: {tokenFile: builder.token}}]', '',
    ].join('\n'));
    const env = { KUBECONFIG: [join(dir, 'one'), join(dir, 'missing'), join(other, 'two')].join(':') };
    const current = loadKubeClientConfig(undefined, env);
    assert.equal(current.server, kube.url);
    assert.equal((await whoAmI(current)).status.userInfo.username, 'admin');
    const chosen = loadKubeClientConfig(undefined, env, 'as-builder');
    assert.equal((await whoAmI(chosen)).status.userInfo.username, SA_USER);
    assert.match(chosen.origin!, /context as-builder/);
    // A context is a kubeconfig matter: even in a Pod, --context means the kubeconfig files.
    const inPod = { ...env, KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '1' };
    assert.equal(loadKubeClientConfig(undefined, inPod, 'as-builder').server, kube.url);
    assert.throws(() => loadKubeClientConfig(undefined, env, 'nope'), /--context: contexts: no entry named "nope"/);
    assert.throws(() => loadKubeClientConfig(undefined, { KUBECONFIG: join(dir, 'missing') }), /no kubeconfig file exists/);
  });

  test('proxy-url: the API server is reached through an HTTP CONNECT proxy', async () => {
    const connects: string[] = [];
    const tunnels = new Set<Socket>();
    const proxy: HttpServer = createHttpServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req, client: Socket, head: Buffer) => {
      connects.push(req.url ?? '');
      tunnels.add(client);
      const [host, port] = (req.url ?? '').split(':');
      const upstream = connect(Number(port), host!, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client).pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    try {
      const file = join(tmp, 'proxied.kubeconfig');
      const port = (proxy.address() as { port: number }).port;
      writeFileSync(file, [
        'apiVersion: v1', 'kind: Config', 'current-context: c',
        `clusters: [{name: k, cluster: {server: "${kube.url}", certificate-authority: "${kube.caFile}", proxy-url: "http://127.0.0.1:${port}"}}]`,
        `users: [{name: u, user: {token: "${kube.adminToken}"}}]`,
        'contexts: [{name: c, context: {cluster: k, user: u}}]', '',
      ].join('\n'));
      const cfg = loadKubeconfig(file);
      assert.equal(cfg.proxyUrl, `http://127.0.0.1:${port}`);
      assert.equal((await whoAmI(cfg)).status.userInfo.username, 'admin');
      assert.deepEqual(connects, [new URL(kube.url).host], 'one tunnel to the API server, TLS inside it');
    } finally {
      for (const t of tunnels) t.destroy(); // tunnels are no longer the HTTP server's connections
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });

  test('exec plugin: a client certificate it prints authenticates; a failing plugin gives an error naming the entry, its exit code and last stderr line, never its output', async () => {
    const dir = join(tmp, 'exec-cert');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n');
    const ssl = async (args: string[]): Promise<void> => {
      const r = await run('openssl', args, { cwd: dir, timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
    };
    await ssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=plugin-user']);
    await ssl(['x509', '-req', '-in', 'client.csr', '-CA', join(kube.dir, 'ca.crt'), '-CAkey', join(kube.dir, 'ca.key'), '-CAcreateserial', '-out', 'client.crt', '-days', '1', '-extfile', 'client.ext']);
    const cred = JSON.stringify({
      apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential',
      status: { clientCertificateData: readFileSync(join(dir, 'client.crt'), 'utf8'), clientKeyData: readFileSync(join(dir, 'client.key'), 'utf8') },
    });
    writeFileSync(join(dir, 'cred.json'), cred);
    writeFileSync(join(dir, 'plugin.sh'), '#!/bin/sh\ncat "$(dirname "$0")/cred.json"\n');
    writeFileSync(join(dir, 'broken.sh'), '#!/bin/sh\necho \'{"status":{"token":"leaked-if-shown"}}\'\necho "warming up" >&2\necho "login expired: run aws sso login" >&2\nexit 3\n');
    chmodSync(join(dir, 'plugin.sh'), 0o755);
    chmodSync(join(dir, 'broken.sh'), 0o755);
    const file = join(dir, 'kubeconfig');
    const write = (command: string): void => writeFileSync(file, [
      'apiVersion: v1', 'kind: Config', 'current-context: c',
      `clusters: [{name: k, cluster: {server: "${kube.url}", certificate-authority: "${kube.caFile}"}}]`,
      `users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: ${command}}}}]`,
      'contexts: [{name: c, context: {cluster: k, user: u}}]', '',
    ].join('\n'));
    write('./plugin.sh');
    assert.equal((await whoAmI(loadKubeconfig(file))).status.userInfo.username, 'plugin-user');
    write('./broken.sh');
    await assert.rejects(whoAmI(loadKubeconfig(file)), (e: unknown) => {
      assert.ok(e instanceof KubeUnavailableError, String(e));
      assert.match(e.message, /users\[u\]\.exec: the credential plugin ".*broken\.sh" exited with code 3: login expired: run aws sso login$/);
      assert.ok(!e.message.includes('leaked-if-shown'));
      return true;
    });
    write('no-such-plugin-on-path');
    await assert.rejects(whoAmI(loadKubeconfig(file)), /"no-such-plugin-on-path" command not found/);
  });
});

describe('KubeAuthenticator (TokenReview + SubjectAccessReview)', () => {
  let token: string;
  before(async () => { token = await kube.createServiceAccountToken(NS, SA); });

  const authenticator = (opts: KubeAuthenticatorOptions = {}, client: KubeApi = newClient()): { auth: KubeAuthenticator; calls: string[] } => {
    const c = counting(client);
    return { auth: new KubeAuthenticator(c.api, opts), calls: c.calls };
  };

  test('allowed with a grant, 403 without, 401 for invalid tokens', async () => {
    const { auth } = authenticator();
    assert.deepEqual(await auth.check(token, { namespace: NS, name: 'git' }), { allowed: true, user: SA_USER });
    const denied = await auth.check(token, { namespace: NS, name: 'other' });
    assert.equal(denied.allowed, false);
    assert.ok(!denied.allowed && denied.status === 403, JSON.stringify(denied));
    assert.equal(denied.user, SA_USER);
    assert.match(denied.reason, /system:serviceaccount:team-a:builder.*connectors "other" in namespace "team-a"/);
    // The grant is per namespace too.
    assert.equal((await auth.check(token, { namespace: 'default', name: 'git' })).allowed, false);

    const tampered = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    for (const bad of ['not-a-token', tampered, '']) {
      const d = await auth.check(bad, { namespace: NS, name: 'git' });
      assert.deepEqual(d, { allowed: false, status: 401, reason: 'missing or invalid token' });
    }
  });

  test('audiences: a token for another audience is 401', async () => {
    const scoped = await kube.createServiceAccountToken(NS, SA, ['connectors-proxy']);
    const { auth } = authenticator({ audiences: ['connectors-proxy'] });
    assert.deepEqual(await auth.check(scoped, { namespace: NS, name: 'git' }), { allowed: true, user: SA_USER });
    const d = await auth.check(token, { namespace: NS, name: 'git' });
    assert.equal(!d.allowed && d.status, 401, JSON.stringify(d));
    // Without configured audiences the API server's own audience applies: the scoped one fails.
    const { auth: plain } = authenticator();
    const p = await plain.check(scoped, { namespace: NS, name: 'git' });
    assert.equal(!p.allowed && p.status, 401, JSON.stringify(p));
  });

  test('proxyPermission: connectors/proxy is required as well', async () => {
    const { auth, calls } = authenticator({ proxyPermission: true, negativeTtlMs: 0 });
    const d = await auth.check(token, { namespace: NS, name: 'registry' });
    assert.ok(!d.allowed && d.status === 403, JSON.stringify(d));
    assert.match(d.reason, /connectors\/proxy "registry"/);
    assert.deepEqual(calls, ['tokenreviews', 'subjectaccessreviews', 'subjectaccessreviews']);
    await kube.applyYaml(role('proxy-registry', 'connectors/proxy', ['registry']));
    await waitForGrant('registry', 'proxy');
    assert.deepEqual(await auth.check(token, { namespace: NS, name: 'registry' }), { allowed: true, user: SA_USER });
    // connectors/proxy alone is not enough: `get connectors` is still required.
    await kube.applyYaml(role('proxy-only', 'connectors/proxy', ['proxy-only']));
    await waitForGrant('proxy-only', 'proxy');
    const only = await auth.check(token, { namespace: NS, name: 'proxy-only' });
    assert.ok(!only.allowed && only.status === 403, JSON.stringify(only));
    assert.match(only.reason, /may not get connectors "proxy-only"/);
    // Without the flag, `get connectors` is enough (git has no proxy grant).
    const { auth: off } = authenticator();
    assert.equal((await off.check(token, { namespace: NS, name: 'git' })).allowed, true);
    const on = await auth.check(token, { namespace: NS, name: 'git' });
    assert.ok(!on.allowed && on.status === 403, JSON.stringify(on));
  });

  test('checkApi: never connectors/proxy; the method\'s verb on connectors/apis/<class>, else on connectors/apis/<class><template>; cached', async () => {
    const { auth, calls } = authenticator({ proxyPermission: true, negativeTtlMs: 0 });
    const git = { namespace: NS, name: 'git' };
    // The gateway without apis permissions: `get connectors` alone, even with the proxy flag on.
    assert.deepEqual(await auth.checkApi(token, git, undefined), { allowed: true, user: SA_USER });
    assert.deepEqual(calls, ['tokenreviews', 'subjectaccessreviews']);
    const branches = { verb: 'create', className: 'gitlab', template: '/api/v4/projects/{id}/repository/branches' } as const;
    calls.length = 0;
    const denied = await auth.checkApi(token, git, branches);
    assert.ok(!denied.allowed && denied.status === 403, JSON.stringify(denied));
    assert.match(denied.reason, /may not create connectors\/apis\/gitlab nor connectors\/apis\/gitlab\/api\/v4\/projects\/\{id\}\/repository\/branches of connector "git"/);
    assert.deepEqual(calls, ['subjectaccessreviews', 'subjectaccessreviews', 'subjectaccessreviews'], 'get, class level, path level');
    // A rule naming the path template (and the Connector by resourceNames).
    await kube.applyYaml(`
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: branch-writer, namespace: ${NS} }
rules:
  - { apiGroups: [connectors.alauda.io], resources: ["connectors/apis/gitlab/api/v4/projects/{id}/repository/branches"], resourceNames: [git], verbs: [create] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: branch-writer, namespace: ${NS} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: branch-writer }
subjects: [{ kind: ServiceAccount, name: ${SA}, namespace: ${NS} }]
`);
    for (let i = 0; i < 200 && !(await auth.checkApi(token, git, branches)).allowed; i++) await sleep(50);
    assert.deepEqual(await auth.checkApi(token, git, branches), { allowed: true, user: SA_USER });
    calls.length = 0;
    const hit = auth.checkApi(token, git, branches);
    assert.ok(!isPromise(hit), 'a cached decision answers synchronously');
    assert.deepEqual(calls, []);
    // Another verb, another template, another Connector: each its own decision.
    assert.equal((await auth.checkApi(token, git, { ...branches, verb: 'delete' })).allowed, false);
    assert.equal((await auth.checkApi(token, git, { ...branches, template: '/api/v4/projects/{id}/repository/tags' })).allowed, false);
    assert.equal((await auth.checkApi(token, { namespace: NS, name: 'registry' }, branches)).allowed, false);
    // A class-level grant answers without the path-level review.
    await kube.applyYaml(role('gitlab-apis', 'connectors/apis/gitlab', ['git']));
    await waitForGrant('git', 'apis/gitlab');
    calls.length = 0;
    assert.equal((await auth.checkApi(token, git, { verb: 'get', className: 'gitlab', template: '/anything' })).allowed, true);
    assert.deepEqual(calls, ['subjectaccessreviews', 'subjectaccessreviews']);
  });

  test('proxyPermission as a function (the feature flag, changed at run time): each check reads it, and a decision made under one value is never reused under the other', async () => {
    let flag = false;
    const { auth, calls } = authenticator({ proxyPermission: () => flag });
    assert.equal((await auth.check(token, { namespace: NS, name: 'git' })).allowed, true);
    assert.equal((auth.check(token, { namespace: NS, name: 'git' }) as AuthDecision).allowed, true, 'cached while the flag is off');
    flag = true;
    const on = await auth.check(token, { namespace: NS, name: 'git' });
    assert.ok(!on.allowed && on.status === 403, `the allowed decision of a moment ago is not reused: ${JSON.stringify(on)}`);
    flag = false;
    const off = auth.check(token, { namespace: NS, name: 'git' });
    assert.ok(!isPromise(off) && (off as AuthDecision).allowed, 'off again: the earlier decision (still fresh) serves');
    assert.deepEqual(calls, ['tokenreviews', 'subjectaccessreviews', 'subjectaccessreviews', 'subjectaccessreviews']);
  });

  test('cache: a hit answers synchronously without an API call; one TokenReview per token', async () => {
    const { auth, calls } = authenticator();
    const first = auth.check(token, { namespace: NS, name: 'git' });
    assert.ok(isPromise(first));
    assert.equal((await first).allowed, true);
    assert.deepEqual(calls, ['tokenreviews', 'subjectaccessreviews']);
    const second = auth.check(token, { namespace: NS, name: 'git' });
    assert.ok(!isPromise(second), 'a cache hit must not be a Promise');
    assert.deepEqual(second, { allowed: true, user: SA_USER });
    // A negative decision is cached too.
    const denied = await auth.check(token, { namespace: NS, name: 'other' });
    assert.equal(denied.allowed, false);
    const deniedAgain = auth.check(token, { namespace: NS, name: 'other' });
    assert.ok(!isPromise(deniedAgain));
    assert.deepEqual(deniedAgain, denied);
    const invalid = await auth.check('not-a-token', { namespace: NS, name: 'git' });
    assert.equal(!invalid.allowed && invalid.status, 401);
    assert.ok(!isPromise(auth.check('not-a-token', { namespace: NS, name: 'git' })));
    // The other Connector cost a SubjectAccessReview, not another TokenReview.
    assert.deepEqual(calls, ['tokenreviews', 'subjectaccessreviews', 'subjectaccessreviews', 'tokenreviews']);
    assert.deepEqual(auth.cacheSize, { decisions: 3, reviews: 2 });
  });

  test('the cache is bounded: the least recently used entry goes', async () => {
    const { auth, calls } = authenticator({ maxEntries: 2 });
    for (const name of ['git', 'registry', 'other']) await auth.check(token, { namespace: NS, name });
    assert.equal(auth.cacheSize.decisions, 2);
    assert.ok(!isPromise(auth.check(token, { namespace: NS, name: 'other' })));
    assert.ok(!isPromise(auth.check(token, { namespace: NS, name: 'registry' })));
    const n = calls.length;
    const evicted = auth.check(token, { namespace: NS, name: 'git' });
    assert.ok(isPromise(evicted), 'the oldest entry was evicted');
    assert.equal((await evicted).allowed, true);
    assert.deepEqual(calls.slice(n), ['subjectaccessreviews']);
  });

  test('TTLs: a denied decision turns into allowed once the negative TTL passed; allowed stays for the positive TTL', async () => {
    let clock = 1_000_000;
    const { auth, calls } = authenticator({ now: () => clock, negativeTtlMs: 1_000, positiveTtlMs: 60_000 });
    const ref = { namespace: NS, name: 'late' };
    const denied = await auth.check(token, ref);
    assert.ok(!denied.allowed && denied.status === 403, JSON.stringify(denied));
    await kube.applyYaml(role('use-late', 'connectors', ['late']));
    await waitForGrant('late');
    // Within the negative TTL the cached denial stands, with no API call.
    clock += 999;
    const n = calls.length;
    assert.deepEqual(auth.check(token, ref), denied);
    assert.equal(calls.length, n);
    clock += 2;
    const allowed = await auth.check(token, ref);
    assert.deepEqual(allowed, { allowed: true, user: SA_USER });
    // Revoked: the allowed decision stays for the positive TTL, then turns into 403.
    const del = await kube.kubectl(['delete', 'rolebinding', 'use-late', '-n', NS]);
    assert.equal(del.code, 0, del.stderr);
    clock += 59_999;
    assert.deepEqual(auth.check(token, ref), allowed);
    clock += 2;
    let after: AuthDecision = allowed;
    // RBAC's informer may lag the delete by a moment; the negative TTL is 1 s of fake time.
    for (let i = 0; i < 200 && after.allowed; i++) {
      after = await auth.check(token, ref);
      if (after.allowed) { clock += 60_001; await sleep(50); }
    }
    assert.ok(!after.allowed && after.status === 403, JSON.stringify(after));
  });

  test('coalescing: 20 concurrent checks of an uncached key cost one TokenReview and one SubjectAccessReview', async () => {
    const { auth, calls } = authenticator();
    const ref = { namespace: NS, name: 'git' };
    const all = Array.from({ length: 20 }, () => auth.check(token, ref));
    assert.ok(all.every(isPromise));
    for (const d of await Promise.all(all)) assert.deepEqual(d, { allowed: true, user: SA_USER });
    assert.deepEqual(calls, ['tokenreviews', 'subjectaccessreviews']);
    // 20 Connectors at once with one (new) token: one TokenReview, 20 SubjectAccessReviews.
    const other = await kube.createServiceAccountToken(NS, SA);
    calls.length = 0;
    const names = Array.from({ length: 20 }, (_, i) => (i === 0 ? 'git' : `c${i}`));
    const ds = await Promise.all(names.map((name) => auth.check(other, { namespace: NS, name })));
    assert.deepEqual(ds.map((d) => d.allowed), names.map((n) => n === 'git'));
    assert.equal(calls.filter((c) => c === 'tokenreviews').length, 1);
    assert.equal(calls.filter((c) => c === 'subjectaccessreviews').length, 20);
  });

  test('the API server unreachable → 503, never allowed, not cached; recovers when it is back', async () => {
    const port = new URL(kube.url).port;
    // A TCP relay in front of the API server (its certificate is for 127.0.0.1, so TLS
    // passes through): closing it makes the API server unreachable for the client.
    const sockets = new Set<Socket>();
    const relay: Server = createServer((c) => {
      const u = connect(Number(port), '127.0.0.1');
      for (const s of [c, u]) { sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); }
      c.pipe(u).pipe(c);
    });
    const listen = (p: number): Promise<number> => new Promise((resolve, reject) => {
      relay.once('error', reject);
      relay.listen(p, '127.0.0.1', () => { relay.off('error', reject); resolve((relay.address() as { port: number }).port); });
    });
    const down = async (): Promise<void> => {
      const closed = new Promise<void>((r) => relay.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    };
    const relayPort = await listen(0);
    try {
      const errors: Error[] = [];
      const { auth, calls } = authenticator({ onError: (e) => errors.push(e) }, newClient(adminConfig(`https://127.0.0.1:${relayPort}`), 5_000));
      assert.equal((await auth.check(token, { namespace: NS, name: 'git' })).allowed, true);

      await down();
      for (const name of ['registry', 'registry']) {
        const d = auth.check(token, { namespace: NS, name });
        assert.ok(isPromise(d), '503 is not cached');
        const r = await d;
        assert.ok(!r.allowed && r.status === 503, JSON.stringify(r));
        assert.match(r.reason, /^cannot check the token now: the Kubernetes API server is unreachable/);
      }
      // A token not seen before fails at its TokenReview: 503 too, not 401.
      const fresh = await kube.createServiceAccountToken(NS, SA);
      const f = await auth.check(fresh, { namespace: NS, name: 'git' });
      assert.ok(!f.allowed && f.status === 503, JSON.stringify(f));
      assert.ok(errors.length >= 3 && errors.every((e) => e instanceof KubeUnavailableError), errors.map(String).join('\n'));
      for (const e of errors) assert.ok(!e.message.includes(token) && !e.message.includes(fresh), 'no token in error messages');
      // A cached decision still answers.
      assert.deepEqual(auth.check(token, { namespace: NS, name: 'git' }), { allowed: true, user: SA_USER });

      await listen(relayPort);
      const n = calls.length;
      assert.equal((await auth.check(token, { namespace: NS, name: 'registry' })).allowed, true);
      assert.equal((await auth.check(fresh, { namespace: NS, name: 'git' })).allowed, true);
      assert.deepEqual(calls.slice(n), ['subjectaccessreviews', 'tokenreviews', 'subjectaccessreviews']);
    } finally {
      if (relay.listening) await down();
    }
  });

  test('API server 5xx answers and timeouts → 503, not cached', async () => {
    // The real API server does not fail on demand, so a stand-in answers as a failing one would.
    let hits = 0;
    let mode: 'error' | 'hang' = 'error';
    const fake: HttpServer = createHttpServer((req, res) => {
      hits++;
      req.resume();
      if (mode === 'hang') return; // never answers
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'InternalError', message: 'etcd is sad', code: 500 }));
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;
      const errors: Error[] = [];
      const { auth } = authenticator({ onError: (e) => errors.push(e) },
        newClient({ server: url, insecureSkipTlsVerify: false }, 300));
      for (let i = 1; i <= 2; i++) {
        const d = await auth.check(token, { namespace: NS, name: 'git' });
        assert.deepEqual(d, { allowed: false, status: 503, reason: 'cannot check the token now: the Kubernetes API server answered 500 InternalError' });
        assert.equal(hits, i);
      }
      assert.ok(errors[0] instanceof KubeApiError && errors[0].message.includes('etcd is sad'), String(errors[0]));
      mode = 'hang';
      const h = await auth.check(token, { namespace: NS, name: 'git' });
      assert.ok(!h.allowed && h.status === 503, JSON.stringify(h));
      assert.ok(errors[2] instanceof KubeUnavailableError, String(errors[2]));
      assert.equal(hits, 3);
    } finally {
      fake.closeAllConnections();
      await new Promise<void>((r) => fake.close(() => r()));
    }
  });
});
