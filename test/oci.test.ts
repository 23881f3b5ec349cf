// OCI distribution through the proxy with real clients (skopeo from Debian, crane built from
// the Go module proxy) against a real registry (Debian's docker-registry, CNCF distribution
// 2.8) that uses token authentication, with a token server written for the test
// (test/support/registry.ts). The proxy is a Basic-auth registry to the clients (the SA token
// as the password) and a token-auth client to the registry with the Secret's username and
// password. Images are built here from local tarballs; nothing comes from the internet.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privateHosts } from './support/hosts';
import { request } from './support/http';
import { basic, REPO_ROOT, startProxy, type ProxyProcess } from './support/proxy';
import { startRegistryHarness, type RegistryHarness } from './support/registry';
import { run, type RunResult } from './support/run';
import { startUpstream, type Upstream } from './support/upstream';
import { mergeScopes, scopesFor } from '../src/oci/scopes';
import { parseChallenge } from '../src/http/challenge';
import { rewriteLocation } from '../src/http/headers';
import { rewriteRegistryLocation } from '../src/oci/profile';

const CRANE = join(REPO_ROOT, '.cache', 'crane');
const USER = 'reg-robot';
const PASSWORD = `reg-pw-${randomBytes(12).toString('hex')}`;
const TOKEN = 'good-token-123';
const OTHER = 'other-token-456';
const DOMAIN = 'proxy.test';

/** `/v2/namespaces/team/connectors/<name>` repository prefix as clients write it. */
const P = (name: string): string => `namespaces/team/connectors/${name}`;

function manifests(h: RegistryHarness, wrongPassword: string): string {
  const cls = (name: string, resolver: 'path' | 'host'): string => `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: ${name}
  annotations:
    connectors.cpaas.io/proxy-resolver: ${resolver}
spec:
  proxy: {}
  address:
    type: string
  auth:
    types:
      - name: tokenAuth
        secretType: cpaas.io/distribution-registry-token
        optional: true
`;
  const connector = (name: string, className: string, address: string, secret: string): string => `apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata:
  name: ${name}
  namespace: team
spec:
  connectorClassName: ${className}
  address: ${address}
  auth:
    name: tokenAuth
    secretRef:
      name: ${secret}
`;
  const secret = (name: string, password: string): string => `apiVersion: v1
kind: Secret
metadata:
  name: ${name}
  namespace: team
type: cpaas.io/distribution-registry-token
stringData:
  username: ${USER}
  password: ${JSON.stringify(password)}
`;
  return [
    cls('oci', 'path'), cls('oci-host', 'host'),
    secret('registry-creds', PASSWORD), secret('wrong-creds', wrongPassword),
    connector('registry', 'oci', h.registry.url, 'registry-creds'),
    connector('registry-h', 'oci-host', h.registry.url, 'registry-creds'),
    connector('redirecting', 'oci', h.redirecting.url, 'registry-creds'),
    connector('badcreds', 'oci', h.registry.url, 'wrong-creds'),
    // No Secret: the optional tokenAuth runs the token flow anonymously.
    `apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata:
  name: public
  namespace: team
spec:
  connectorClassName: oci
  address: ${h.registry.url}
  auth:
    name: tokenAuth
`,
  ].join('---\n');
}

describe('OCI registry token flow through the proxy (skopeo, crane, docker-registry)', () => {
  let h: RegistryHarness;
  let proxy: ProxyProcess;
  let work: string;
  let host: string;
  /** Docker config dirs: crane reads the proxy credentials from there. */
  let goodConfig: string;
  let badConfig: string;
  let otherConfig: string;
  /** The registry's own credentials, for pushes behind the proxy's back. */
  let directConfig: string;
  const WRONG = `wrong-${randomBytes(12).toString('hex')}`;

  before(async () => {
    h = await startRegistryHarness(USER, PASSWORD);
    proxy = await startProxy({ manifests: { 'oci.yaml': manifests(h, WRONG) }, domain: DOMAIN });
    host = `127.0.0.1:${proxy.port}`;
    work = mkdtempSync(join(tmpdir(), 'cproxy-oci-'));
    const dockerConfig = (name: string, token: string, hosts: string[]): string => {
      const dir = join(work, name);
      mkdirSync(dir);
      const auths: Record<string, { auth: string }> = {};
      for (const x of hosts) auths[x] = { auth: Buffer.from(`anyone:${token}`).toString('base64') };
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths }));
      return dir;
    };
    const hostForm = `c-registry-h.team.${DOMAIN}:${proxy.port}`;
    goodConfig = dockerConfig('good', TOKEN, [host, hostForm]);
    badConfig = dockerConfig('bad', 'not-a-token', [host, hostForm]);
    otherConfig = dockerConfig('other', OTHER, [host, hostForm]);
    const direct = join(work, 'direct');
    mkdirSync(direct);
    writeFileSync(join(direct, 'config.json'), JSON.stringify({ auths: { [`127.0.0.1:${h.registry.port}`]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
    directConfig = direct;
  });

  after(async () => {
    await proxy?.stop();
    await h?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const crane = (args: string[], config = goodConfig, timeoutMs = 120_000): Promise<RunResult> =>
    run(CRANE, ['--insecure', ...args], { env: { ...process.env, DOCKER_CONFIG: config, HOME: work }, timeoutMs });
  const skopeo = (args: string[], timeoutMs = 120_000): Promise<RunResult> =>
    run('skopeo', ['--insecure-policy', ...args], { env: { ...process.env, HOME: work }, timeoutMs });
  const ok = (r: RunResult, what: string): string => {
    assert.equal(r.code, 0, `${what} failed (${r.code ?? r.signal}):\n${r.stderr}\n--- proxy logs ---\n${proxy.logs().slice(-4000)}`);
    return r.stdout.toString();
  };

  /**
   * A gzipped layer tarball with `files` (name → content) made with tar; crane stores a
   * compressed layer as it is, so the returned sha256 is the layer's digest in the image.
   */
  async function layer(name: string, files: Record<string, Buffer | string>): Promise<{ path: string; digest: string }> {
    const dir = join(work, `${name}-root`);
    mkdirSync(dir, { recursive: true });
    for (const [f, c] of Object.entries(files)) writeFileSync(join(dir, f), c);
    const path = join(work, `${name}.tar.gz`);
    ok(await run('tar', ['-czf', path, '-C', dir, '.']), 'tar');
    return { path, digest: 'sha256:' + createHash('sha256').update(readFileSync(path)).digest('hex') };
  }

  /** Pushes an image straight to the registry (crane runs the token flow itself): the proxy caches nothing for it. */
  async function pushDirect(l: { path: string }, repoTag: string): Promise<void> {
    ok(await crane(['append', '--oci-empty-base', '-f', l.path, '-t', `127.0.0.1:${h.registry.port}/${repoTag}`], directConfig), 'crane push to the registry itself');
  }

  /** Asks the registry directly (not through the proxy) for a manifest; returns the status. */
  async function registryHas(repo: string, ref: string): Promise<number> {
    const token = await h.tokenFor(`repository:${repo}:pull`);
    const r = await request(`${h.registry.url}/v2/${repo}/manifests/${ref}`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json' },
    });
    return r.status;
  }

  test('the proxy answers /v2/ as a registry: Basic challenge, 401 for a bad token, 200 for a good one', async () => {
    for (const path of ['/v2/', '/v2']) {
      const none = await request(proxy.url(path));
      assert.equal(none.status, 401);
      assert.equal(none.headers['docker-distribution-api-version'], 'registry/2.0');
      assert.match(String(none.headers['www-authenticate']), /^Basic realm=/);
      assert.equal((JSON.parse(none.text) as { errors: { code: string }[] }).errors[0]!.code, 'UNAUTHORIZED');
      const bad = await request(proxy.url(path), { headers: { authorization: basic('x', 'not-a-token') } });
      assert.equal(bad.status, 401);
      assert.match(String(bad.headers['www-authenticate']), /^Basic /);
      const good = await request(proxy.url(path), { headers: { authorization: basic('x', TOKEN) } });
      assert.equal(good.status, 200, good.text);
      assert.equal(good.headers['docker-distribution-api-version'], 'registry/2.0');
    }
    // Host form: /v2/ is the Connector's registry, reached with the proxy's token flow.
    const hostForm = await request(proxy.url('/v2/'), { headers: { host: `c-registry-h.team.${DOMAIN}`, authorization: basic('x', TOKEN) } });
    assert.equal(hostForm.status, 200, hostForm.text);
    assert.equal(hostForm.headers['docker-distribution-api-version'], 'registry/2.0');
    const hostNone = await request(proxy.url('/v2/'), { headers: { host: `c-registry-h.team.${DOMAIN}` } });
    assert.equal(hostNone.status, 401);
    assert.match(String(hostNone.headers['www-authenticate']), /^Basic /);
  });

  test('crane push, manifest, pull (path form): the image lands in the registry and comes back byte for byte', async () => {
    const l = await layer('hello', { 'hello.txt': `hello ${randomBytes(8).toString('hex')}\n` });
    const ref = `${host}/${P('registry')}/apps/hello:v1`;
    ok(await crane(['append', '--oci-empty-base', '-f', l.path, '-t', ref]), 'crane append (push)');
    assert.equal(await registryHas('apps/hello', 'v1'), 200, 'the registry holds the pushed manifest');
    const manifest = JSON.parse(ok(await crane(['manifest', ref]), 'crane manifest')) as { layers: { digest: string }[] };
    assert.equal(manifest.layers.length, 1);
    assert.equal(manifest.layers[0]!.digest, l.digest, 'the layer is stored as given');
    const out = join(work, 'hello-pulled');
    ok(await crane(['pull', '--format', 'oci', ref, out]), 'crane pull');
    const blob = readFileSync(join(out, 'blobs', 'sha256', l.digest.slice(7)));
    assert.equal('sha256:' + createHash('sha256').update(blob).digest('hex'), l.digest);
    assert.deepEqual(ok(await crane(['ls', `${host}/${P('registry')}/apps/hello`]), 'crane ls').trim().split('\n'), ['v1']);
  });

  test('a large blob (24 MiB) pushed with crane and pulled back with skopeo', async () => {
    const big = randomBytes(24 * 1024 * 1024);
    const l = await layer('big', { 'big.bin': big });
    const ref = `${host}/${P('registry')}/big:1`;
    ok(await crane(['append', '--oci-empty-base', '-f', l.path, '-t', ref], goodConfig, 300_000), 'crane push of a 24 MiB layer');
    const dir = join(work, 'big-oci');
    ok(await skopeo(['copy', '--src-creds', `anyone:${TOKEN}`, '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}:1`], 300_000), 'skopeo copy (pull)');
    const blob = readFileSync(join(dir, 'blobs', 'sha256', l.digest.slice(7)));
    assert.equal(blob.length, readFileSync(l.path).length);
    assert.equal('sha256:' + createHash('sha256').update(blob).digest('hex'), l.digest);
  });

  test('a chunked upload (POST, three PATCHes, PUT) follows the rewritten Location in path and host form', async () => {
    for (const form of ['path', 'host'] as const) {
      const repo = `chunked-${form}`;
      const prefix = form === 'path' ? `/v2/${P('registry')}/${repo}` : `/v2/${repo}`;
      const headers = form === 'path' ? { authorization: basic('x', TOKEN) } : { authorization: basic('x', TOKEN), host: `c-registry-h.team.${DOMAIN}:${proxy.port}` };
      const chunks = [randomBytes(1024 * 1024 + 17), randomBytes(700_000), randomBytes(333)];
      const all = Buffer.concat(chunks);
      const digest = 'sha256:' + createHash('sha256').update(all).digest('hex');
      const start = await request(proxy.url(`${prefix}/blobs/uploads/`), { method: 'POST', headers: { ...headers, 'content-length': '0' } });
      assert.equal(start.status, 202, start.text);
      let location = String(start.headers.location);
      const expected = form === 'path' ? `http://${host}${prefix}/blobs/uploads/` : `http://c-registry-h.team.${DOMAIN}:${proxy.port}${prefix}/blobs/uploads/`;
      assert.ok(location.startsWith(expected), `Location ${location} stays on the proxy under ${expected}`);
      let offset = 0;
      for (const c of chunks) {
        const path = location.slice(location.indexOf('/v2/'));
        const r = await request(proxy.url(path), {
          method: 'PATCH', body: c,
          headers: { ...headers, 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + c.length - 1}`, 'content-length': String(c.length) },
        });
        assert.equal(r.status, 202, r.text);
        offset += c.length;
        assert.equal(r.headers.range, `0-${offset - 1}`);
        location = String(r.headers.location);
        assert.ok(location.startsWith(expected), `Location ${location} after PATCH stays on the proxy`);
      }
      const path = location.slice(location.indexOf('/v2/'));
      const put = await request(proxy.url(`${path}${path.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`), { method: 'PUT', headers: { ...headers, 'content-length': '0' } });
      assert.equal(put.status, 201, put.text);
      assert.equal(String(put.headers.location), form === 'path' ? `http://${host}${prefix}/blobs/${digest}` : `http://c-registry-h.team.${DOMAIN}:${proxy.port}${prefix}/blobs/${digest}`);
      const got = await request(proxy.url(`${prefix}/blobs/${digest}`), { headers });
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(all), 'the blob reads back whole');
    }
  });

  test('catalog paging: the registry Link header stays on the proxy under the prefix; skopeo list-tags', async () => {
    const l = await layer('paging', { 'p.txt': 'paging\n' });
    for (const tag of ['a', 'b', 'c']) await pushDirect(l, `paging:${tag}`);
    // distribution 2.8 pages the catalog (not tag lists): n=1 answers one name and a Link to the next page.
    const first = await request(proxy.url(`/v2/${P('registry')}/_catalog?n=1`), { headers: { authorization: basic('x', TOKEN) } });
    assert.equal(first.status, 200, first.text);
    const page1 = (JSON.parse(first.text) as { repositories: string[] }).repositories;
    assert.equal(page1.length, 1);
    const link = String(first.headers.link);
    const m = /^<([^>]+)>; rel="next"$/.exec(link);
    assert.ok(m, `Link ${link}`);
    assert.ok(m[1]!.startsWith(`/v2/${P('registry')}/_catalog?`) || m[1]!.startsWith(`http://${host}/v2/${P('registry')}/_catalog?`), `Link ${link} stays under the prefix`);
    const next = await request(proxy.url(m[1]!.slice(m[1]!.indexOf('/v2/'))), { headers: { authorization: basic('x', TOKEN) } });
    assert.equal(next.status, 200, next.text);
    const page2 = (JSON.parse(next.text) as { repositories: string[] }).repositories;
    assert.equal(page2.length, 1);
    assert.ok(page2[0]! > page1[0]!, 'the second page follows the first');
    assert.ok(h.tokens.count('registry:catalog:*') >= 1);
    const tags = JSON.parse(ok(await skopeo(['list-tags', '--creds', `anyone:${TOKEN}`, '--tls-verify=false', `docker://${host}/${P('registry')}/paging`]), 'skopeo list-tags')) as { Tags: string[] };
    assert.deepEqual([...tags.Tags].sort(), ['a', 'b', 'c']);
  });

  test('skopeo copy of a local OCI layout (made from a tarball) to the proxy, inspect, and copy --all of a multi-arch index', async () => {
    const amd = await layer('amd', { 'arch.txt': 'amd64\n' });
    const arm = await layer('arm', { 'arch.txt': 'arm64\n' });
    // Local images: crane writes them as tarballs (no registry), skopeo turns them into an OCI layout.
    for (const [name, l] of [['amd', amd], ['arm', arm]] as const) {
      const tar = join(work, `${name}-image.tar`);
      ok(await crane(['append', '--oci-empty-base', '-f', l.path, '-t', `local/${name}:1`, '-o', tar]), `crane append -o ${name}`);
      ok(await skopeo(['copy', `docker-archive:${tar}`, `oci:${join(work, 'layout')}:${name}`]), `skopeo copy to the ${name} layout`);
    }
    const repo = `${host}/${P('registry')}/multi`;
    for (const name of ['amd', 'arm']) {
      ok(await skopeo(['copy', '--dest-creds', `anyone:${TOKEN}`, '--dest-tls-verify=false', `oci:${join(work, 'layout')}:${name}`, `docker://${repo}:${name}`]), `skopeo copy ${name} (push)`);
    }
    const inspected = JSON.parse(ok(await skopeo(['inspect', '--creds', `anyone:${TOKEN}`, '--tls-verify=false', `docker://${repo}:amd`]), 'skopeo inspect')) as { Layers: string[]; Digest: string };
    assert.equal(inspected.Layers.length, 1);
    // Give each image its platform and tie them into an index, all through the proxy.
    ok(await crane(['mutate', `${repo}:amd`, '--set-platform', 'linux/amd64', '-t', `${repo}:amd`]), 'crane mutate amd64');
    ok(await crane(['mutate', `${repo}:arm`, '--set-platform', 'linux/arm64', '-t', `${repo}:arm`]), 'crane mutate arm64');
    ok(await crane(['index', 'append', '-m', `${repo}:amd`, '-m', `${repo}:arm`, '-t', `${repo}:index`]), 'crane index append');
    // Copy the whole index to another repository through the proxy (source and destination both).
    const copy = `${host}/${P('registry')}/multi-copy:1`;
    ok(await skopeo(['copy', '--all', '--src-creds', `anyone:${TOKEN}`, '--dest-creds', `anyone:${TOKEN}`, '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${repo}:index`, `docker://${copy}`]), 'skopeo copy --all');
    const raw = JSON.parse(ok(await skopeo(['inspect', '--raw', '--creds', `anyone:${TOKEN}`, '--tls-verify=false', `docker://${copy}`]), 'skopeo inspect --raw')) as { mediaType: string; manifests: { platform: { architecture: string } }[] };
    assert.equal(raw.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(raw.manifests.map((m) => m.platform.architecture).sort(), ['amd64', 'arm64']);
    assert.equal(await registryHas('multi-copy', '1'), 200);
    // And pulled back to a local layout with every platform.
    const pulled = join(work, 'multi-pulled');
    ok(await skopeo(['copy', '--all', '--src-creds', `anyone:${TOKEN}`, '--src-tls-verify=false', `docker://${copy}`, `oci:${pulled}:1`]), 'skopeo copy --all (pull)');
    const index = JSON.parse(readFileSync(join(pulled, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const nested = JSON.parse(readFileSync(join(pulled, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { manifests: unknown[] };
    assert.equal(nested.manifests.length, 2);
  });

  test('host form (c-<name>.<ns>.<domain>) with crane and skopeo, the name resolved through a private /etc/hosts', async (t) => {
    // A mount namespace gives the clients their own /etc/hosts; the machine's stays untouched.
    const ns = await privateHosts(work, [`c-registry-h.team.${DOMAIN}`]);
    if ('unavailable' in ns) {
      t.skip(ns.unavailable);
      return;
    }
    const inNs = (cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> =>
      ns.hosts.run(cmd, args, { env: { ...process.env, HOME: work, ...env }, timeoutMs: 120_000 });
    const l = await layer('hostform', { 'h.txt': 'host form\n' });
    const ref = `c-registry-h.team.${DOMAIN}:${proxy.port}/hostform/img:1`;
    ok(await inNs(CRANE, ['--insecure', 'append', '--oci-empty-base', '-f', l.path, '-t', ref], { DOCKER_CONFIG: goodConfig }), 'crane push (host form)');
    assert.equal(await registryHas('hostform/img', '1'), 200);
    const info = JSON.parse(ok(await inNs('skopeo', ['inspect', '--creds', `anyone:${TOKEN}`, '--tls-verify=false', `docker://${ref}`], {}), 'skopeo inspect (host form)')) as { Layers: string[] };
    assert.deepEqual(info.Layers, [l.digest]);
    const out = join(work, 'hostform-pulled');
    ok(await inNs(CRANE, ['--insecure', 'pull', '--format', 'oci', ref, out], { DOCKER_CONFIG: goodConfig }), 'crane pull (host form)');
  });

  test('a wrong SA token gets 401 and a token without permission on the Connector gets 403', async () => {
    const ref = `${host}/${P('registry')}/apps/hello:v1`;
    const bad = await crane(['manifest', ref], badConfig);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /401|UNAUTHORIZED|authentication required|token rejected/i);
    const other = await crane(['manifest', ref], otherConfig);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /403|forbidden|DENIED/i);
    const raw = await request(proxy.url(`/v2/${P('registry')}/apps/hello/manifests/v1`), { headers: { authorization: basic('x', 'not-a-token') } });
    assert.equal(raw.status, 401);
    assert.match(String(raw.headers['www-authenticate']), /^Basic /);
    const forbidden = await request(proxy.url(`/v2/${P('registry')}/apps/hello/manifests/v1`), { headers: { authorization: basic('x', OTHER) } });
    assert.equal(forbidden.status, 403);
    const sk = await skopeo(['inspect', '--creds', 'anyone:not-a-token', '--tls-verify=false', `docker://${ref}`]);
    assert.notEqual(sk.code, 0);
    assert.match(sk.stderr, /401|unauthorized|authentication required/i);
  });

  test('tokens are cached per scope: a second pull of the same repository asks the token service nothing', async () => {
    const l = await layer('cached', { 'c.txt': 'cache me\n' });
    const ref = `${host}/${P('registry')}/cached:1`;
    ok(await crane(['append', '--oci-empty-base', '-f', l.path, '-t', ref]), 'crane push');
    ok(await crane(['pull', '--format', 'oci', ref, join(work, 'cached-1')]), 'crane pull 1');
    const pulls = h.tokens.count('repository:cached:pull');
    assert.equal(pulls, 1, 'the first pull fetched one pull token');
    const total = h.tokens.total;
    ok(await crane(['pull', '--format', 'oci', ref, join(work, 'cached-2')]), 'crane pull 2');
    ok(await skopeo(['inspect', '--creds', `anyone:${TOKEN}`, '--tls-verify=false', `docker://${ref}`]), 'skopeo inspect');
    assert.equal(h.tokens.total, total, 'no token request for the second pull');
    assert.equal(h.tokens.count('repository:cached:pull,push'), 1, 'the push fetched its pull,push token once');
  });

  test('single flight: 30 concurrent requests for a new scope cost one token request', async () => {
    const l = await layer('flight', { 'f.txt': 'flight\n' });
    await pushDirect(l, 'flight:1');
    const before = h.tokens.count('repository:flight:pull');
    const replies = await Promise.all(Array.from({ length: 30 }, () =>
      request(proxy.url(`/v2/${P('registry')}/flight/blobs/${l.digest}`), { method: 'HEAD', headers: { authorization: basic('x', TOKEN) } })));
    assert.deepEqual([...new Set(replies.map((r) => r.status))], [200]);
    assert.equal(h.tokens.count('repository:flight:pull') - before, 1);
  });

  test('the registry refuses a token (revoked/expired early): the proxy fetches a new one and retries once', async () => {
    const l = await layer('retry', { 'r.txt': 'retry\n' });
    await pushDirect(l, 'retry:1');
    const before = h.tokens.count('repository:retry:pull');
    // The next token the service issues is expired already, though it says it lives 300 s.
    h.tokens.staleNext = 1;
    const manifest = JSON.parse(ok(await crane(['manifest', `${host}/${P('registry')}/retry:1`]), 'crane manifest with a refused token')) as { layers: { digest: string }[] };
    assert.equal(manifest.layers[0]!.digest, l.digest);
    assert.equal(h.tokens.staleNext, 0, 'the stale token was handed out');
    assert.equal(h.tokens.count('repository:retry:pull') - before, 2, 'one stale token, one fresh after the 401');
    assert.match(h.registry.logs(), /token not to be used after/, 'the registry refused the stale token');
    // The fresh token is cached: the next pull asks nothing.
    ok(await crane(['manifest', `${host}/${P('registry')}/retry:1`]), 'crane manifest again');
    assert.equal(h.tokens.count('repository:retry:pull') - before, 2);
  });

  test('a token service that answers access_token (not token), and expiry honoured: expires_in 2 s → a new token after it', async () => {
    const l = await layer('expiry', { 'e.txt': 'expiry\n' });
    await pushDirect(l, 'expiry:1');
    const ref = `${host}/${P('registry')}/expiry:1`;
    h.tokens.accessTokenOnly = true;
    h.tokens.expiresIn = 2;
    try {
      const before = h.tokens.count('repository:expiry:pull');
      ok(await crane(['manifest', ref]), 'crane manifest');
      assert.equal(h.tokens.count('repository:expiry:pull') - before, 1);
      ok(await crane(['manifest', ref]), 'crane manifest (cached)');
      assert.equal(h.tokens.count('repository:expiry:pull') - before, 1);
      await new Promise((r) => setTimeout(r, 2100));
      ok(await crane(['manifest', ref]), 'crane manifest (after expiry)');
      assert.equal(h.tokens.count('repository:expiry:pull') - before, 2);
    } finally {
      h.tokens.accessTokenOnly = false;
      h.tokens.expiresIn = 300;
    }
  });

  test('a cross-repository mount asks for pull on the source repository too', async () => {
    const l = await layer('mount', { 'm.txt': `mount ${randomBytes(4).toString('hex')}\n` });
    ok(await crane(['append', '--oci-empty-base', '-f', l.path, '-t', `${host}/${P('registry')}/mount-src:1`]), 'crane push');
    const r = await request(proxy.url(`/v2/${P('registry')}/mount-dst/blobs/uploads/?mount=${encodeURIComponent(l.digest)}&from=mount-src`), {
      method: 'POST', headers: { authorization: basic('x', TOKEN), 'content-length': '0' },
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(String(r.headers.location), `http://${host}/v2/${P('registry')}/mount-dst/blobs/${l.digest}`);
    assert.equal(h.tokens.count('repository:mount-dst:pull,push', 'repository:mount-src:pull'), 1);
  });

  test("a registry's Bearer challenge never reaches the client: push without permission on the repository gets the proxy's Basic one", async () => {
    h.tokens.readOnly.add('readonly');
    const before = h.tokens.count('repository:readonly:pull,push');
    const r = await request(proxy.url(`/v2/${P('registry')}/readonly/blobs/uploads/`), { method: 'POST', headers: { authorization: basic('x', TOKEN), 'content-length': '0' } });
    assert.equal(r.status, 401, r.text);
    assert.match(String(r.headers['www-authenticate']), /^Basic realm="connectors-proxy"/);
    assert.ok(!String(r.headers['www-authenticate']).includes(h.tokens.realm));
    assert.match(r.text, /UNAUTHORIZED/, 'the registry error body tells what was refused');
    // The registry's 401 (insufficient_scope) made the proxy ask once more, then relay the answer.
    assert.equal(h.tokens.count('repository:readonly:pull,push') - before, 2);
  });

  test('blob redirects to another host (storage) pass to the client untouched and carry no credentials', async () => {
    const content = `redirected ${randomBytes(8).toString('hex')}\n`;
    const l = await layer('redir', { 'r.txt': content });
    ok(await crane(['append', '--oci-empty-base', '-f', l.path, '-t', `${host}/${P('registry')}/redir:1`]), 'crane push');
    // The redirecting registry shares the storage: its blob GETs answer 307 to the blob host.
    const raw = await request(proxy.url(`/v2/${P('redirecting')}/redir/blobs/${l.digest}`), { headers: { authorization: basic('x', TOKEN) } });
    assert.equal(raw.status, 307, raw.text);
    assert.ok(String(raw.headers.location).startsWith(`${h.blobs.url}/`), `Location ${raw.headers.location} goes to the blob host`);
    assert.equal(h.blobs.requests.length, 0, 'the proxy did not follow the redirect');
    const out = join(work, 'redir-pulled');
    ok(await crane(['pull', '--format', 'oci', `${host}/${P('redirecting')}/redir:1`, out]), 'crane pull through the redirect');
    assert.equal(readFileSync(join(out, 'blobs', 'sha256', l.digest.slice(7))).length, readFileSync(l.path).length);
    const dir = join(work, 'redir-skopeo');
    ok(await skopeo(['copy', '--src-creds', `anyone:${TOKEN}`, '--src-tls-verify=false', `docker://${host}/${P('redirecting')}/redir:1`, `dir:${dir}`]), 'skopeo copy through the redirect');
    assert.ok(h.blobs.requests.some((r) => r.method === 'GET'), 'the clients fetched the blob from the blob host');
    for (const r of h.blobs.requests) {
      assert.ok(r.authorization === undefined || !/Bearer ey/.test(r.authorization), `blob host got a registry token: ${r.path}`);
      assert.ok(!(r.authorization ?? '').includes(Buffer.from(`anyone:${TOKEN}`).toString('base64')), 'blob host got the SA token');
      assert.ok(!(r.authorization ?? '').includes(Buffer.from(`${USER}:${PASSWORD}`).toString('base64')), 'blob host got the Secret');
    }
  });

  test('a Connector without a Secret (optional tokenAuth) runs the token flow anonymously: pulls of public repositories work', async () => {
    const l = await layer('public', { 'p.txt': 'public\n' });
    await pushDirect(l, 'public/img:1');
    h.tokens.anonymousPull = true;
    try {
      const before = h.tokens.anonymousRequests;
      const out = join(work, 'public-pulled');
      ok(await crane(['pull', '--format', 'oci', `${host}/${P('public')}/public/img:1`, out]), 'crane pull (anonymous upstream)');
      assert.ok(readFileSync(join(out, 'blobs', 'sha256', l.digest.slice(7))).length > 0);
      assert.ok(h.tokens.anonymousRequests > before, 'the token service was asked without credentials');
      // A push gets a pull-only token: the registry refuses, the client sees the proxy's challenge.
      const push = await request(proxy.url(`/v2/${P('public')}/public/img/blobs/uploads/`), { method: 'POST', headers: { authorization: basic('x', TOKEN), 'content-length': '0' } });
      assert.equal(push.status, 401);
      assert.match(String(push.headers['www-authenticate']), /^Basic /);
    } finally {
      h.tokens.anonymousPull = false;
    }
    const refused = await request(proxy.url(`/v2/${P('public')}/other/manifests/1`), { headers: { authorization: basic('x', TOKEN) } });
    assert.equal(refused.status, 502);
    assert.match(refused.text, /refused a token for repository:other:pull to an anonymous client \(no Secret\)/);
  });

  test('wrong Secret password: 502 naming the Connector, class, auth type and the token service answer, never the password', async () => {
    const refused = h.tokens.refused;
    const r = await request(proxy.url(`/v2/${P('badcreds')}/apps/hello/manifests/v1`), { headers: { authorization: basic('x', TOKEN) } });
    assert.equal(r.status, 502);
    assert.match(r.text, /connector team\/badcreds \(class "oci", auth type "tokenAuth"\)/);
    assert.match(r.text, /token service .* refused a token for repository:apps\/hello:pull .*HTTP 401: incorrect username or password/);
    assert.ok(!r.text.includes(WRONG));
    assert.equal(h.tokens.refused, refused + 1);
    const c = await crane(['manifest', `${host}/${P('badcreds')}/apps/hello:v1`]);
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /502|Bad Gateway/);
  });

  test('no password, Secret token, issued registry token or SA token in the proxy logs', () => {
    const logs = proxy.logs();
    assert.ok(logs.length > 0);
    assert.ok(!logs.includes(PASSWORD), 'Secret password in the logs');
    assert.ok(!logs.includes(WRONG), 'wrong Secret password in the logs');
    assert.ok(!logs.includes(TOKEN), 'SA token in the logs');
    assert.ok(!logs.includes(Buffer.from(`${USER}:${PASSWORD}`).toString('base64')), 'Basic credentials in the logs');
    assert.ok(h.tokens.issued.length > 5);
    for (const g of h.tokens.issued) assert.ok(!logs.includes(g.token.split('.')[2]!), 'an issued registry token in the logs');
  });
});

describe('OCI pieces', () => {
  test('scopesFor: pull for reads, pull,push for writes, delete, mounts, catalog, nothing for the base', () => {
    assert.deepEqual(scopesFor('GET', '/v2/'), []);
    assert.deepEqual(scopesFor('GET', '/v2/library/alpine/manifests/3.20'), ['repository:library/alpine:pull']);
    assert.deepEqual(scopesFor('HEAD', '/v2/a/b/c/blobs/sha256:00'), ['repository:a/b/c:pull']);
    assert.deepEqual(scopesFor('PUT', '/v2/app/manifests/v1'), ['repository:app:pull,push']);
    assert.deepEqual(scopesFor('POST', '/v2/app/blobs/uploads/'), ['repository:app:pull,push']);
    assert.deepEqual(scopesFor('PATCH', '/v2/app/blobs/uploads/uuid-1?_state=x'), ['repository:app:pull,push']);
    assert.deepEqual(scopesFor('DELETE', '/v2/app/manifests/sha256:00'), ['repository:app:delete']);
    assert.deepEqual(scopesFor('GET', '/v2/app/tags/list?n=10'), ['repository:app:pull']);
    assert.deepEqual(scopesFor('GET', '/v2/blobs/blobs/sha256:00'), ['repository:blobs:pull']);
    assert.deepEqual(scopesFor('GET', '/v2/x/manifests/blobs'), ['repository:x:pull']);
    assert.deepEqual(scopesFor('POST', '/v2/dst/blobs/uploads/?mount=sha256:00&from=src/repo'), ['repository:dst:pull,push', 'repository:src/repo:pull']);
    assert.deepEqual(scopesFor('GET', '/v2/_catalog?n=5'), ['registry:catalog:*']);
  });

  test('mergeScopes: the scope of a challenge joins those of the request, actions of one resource merged in a fixed order', () => {
    assert.deepEqual(mergeScopes(['repository:a:pull,push'], ['repository:a:push,pull']), ['repository:a:pull,push']);
    assert.deepEqual(mergeScopes(['repository:a:pull'], ['repository:a:push', 'repository:b/c:pull']), ['repository:a:pull,push', 'repository:b/c:pull']);
    assert.deepEqual(mergeScopes([], ['registry:catalog:*', '']), ['registry:catalog:*']);
  });

  test('parseChallenge: quoted commas, bare tokens, case', () => {
    const c = parseChallenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"');
    assert.equal(c?.scheme, 'bearer');
    assert.equal(c?.params.get('realm'), 'https://auth.example/token');
    assert.equal(c?.params.get('service'), 'reg');
    assert.equal(c?.params.get('scope'), 'repository:a/b:pull,push');
    const b = parseChallenge('basic Realm=registry');
    assert.equal(b?.scheme, 'basic');
    assert.equal(b?.params.get('realm'), 'registry');
    assert.equal(parseChallenge(''), undefined);
  });

  test('rewriteLocation: OCI path form keeps the prefix inside the repository name; other hosts untouched', () => {
    const rw = { upstreamBase: 'http://reg:5000', upstreamPath: '', publicBase: 'http://proxy/v2/namespaces/t/connectors/r', publicPath: '/v2/namespaces/t/connectors/r' };
    assert.equal(rewriteRegistryLocation('/v2/app/blobs/uploads/u?_state=s', rw), '/v2/namespaces/t/connectors/r/app/blobs/uploads/u?_state=s');
    assert.equal(rewriteRegistryLocation('http://reg:5000/v2/app/blobs/uploads/u', rw), 'http://proxy/v2/namespaces/t/connectors/r/app/blobs/uploads/u');
    assert.equal(rewriteRegistryLocation('http://s3.example/bucket/blob?sig=1', rw), 'http://s3.example/bucket/blob?sig=1');
    // distribution builds absolute URLs from X-Forwarded-Host: the proxy's origin, no prefix.
    assert.equal(rewriteRegistryLocation('http://PROXY/v2/app/blobs/uploads/u', rw), 'http://proxy/v2/namespaces/t/connectors/r/app/blobs/uploads/u');
    assert.equal(rewriteRegistryLocation('http://proxy/v2/namespaces/t/connectors/r/app/blobs/x', rw), 'http://proxy/v2/namespaces/t/connectors/r/app/blobs/x');
    assert.equal(rewriteRegistryLocation('http://proxy/other', rw), 'http://proxy/other');
    const host = { upstreamBase: 'http://reg:5000', upstreamPath: '', publicBase: 'http://c-r.t.d', publicPath: '' };
    assert.equal(rewriteRegistryLocation('http://reg:5000/v2/app/blobs/uploads/u', host), 'http://c-r.t.d/v2/app/blobs/uploads/u');
    assert.equal(rewriteLocation('http://reg:5000/v2/app/blobs/uploads/u', host), 'http://c-r.t.d/v2/app/blobs/uploads/u');
    const plain = { upstreamBase: 'http://git:80/x', upstreamPath: '/x', publicBase: 'http://proxy/namespaces/t/connectors/g', publicPath: '/namespaces/t/connectors/g' };
    assert.equal(rewriteLocation('/x/v2/y', plain), '/namespaces/t/connectors/g/v2/y');
  });
});

describe('OCI registries without a token service: Basic, or none', () => {
  let basicReg: Upstream;
  let openReg: Upstream;
  let proxy: ProxyProcess;
  const wantBasic = 'Basic ' + Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

  before(async () => {
    basicReg = await startUpstream((req, res) => {
      if (req.headers.authorization !== wantBasic) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"', 'docker-distribution-api-version': 'registry/2.0' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' }).end('{"tags":["a"]}');
    });
    openReg = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"tags":["b"]}');
    });
    const docs = [basicReg, openReg].map((u, i) => `apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: reg${i}, namespace: team}
spec:
  connectorClassName: oci
  address: ${u.origin}
  auth: {name: tokenAuth, secretRef: {name: creds}}
`);
    proxy = await startProxy({ manifests: { 'oci.yaml': `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: oci
  annotations: {connectors.cpaas.io/proxy-resolver: path}
spec:
  proxy: {}
  address: {type: string}
  auth:
    types:
      - name: tokenAuth
        secretType: cpaas.io/distribution-registry-token
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: team}
type: cpaas.io/distribution-registry-token
stringData: {username: ${USER}, password: ${JSON.stringify(PASSWORD)}}
---
${docs.join('---\n')}` } });
  });

  after(async () => {
    await proxy?.stop();
    await basicReg?.close();
    await openReg?.close();
  });

  test('a registry that challenges Basic gets the Secret as Basic; one that answers 200 gets no credentials', async () => {
    const a = await request(proxy.url(`/v2/${P('reg0')}/app/tags/list`), { headers: { authorization: basic('x', TOKEN) } });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.text, '{"tags":["a"]}');
    const b = await request(proxy.url(`/v2/${P('reg1')}/app/tags/list`), { headers: { authorization: basic('x', TOKEN) } });
    assert.equal(b.status, 200, b.text);
    assert.equal(openReg.seen.filter((r) => r.headers.authorization !== undefined).length, 0, 'nothing sent to an open registry');
    assert.ok(!proxy.logs().includes(PASSWORD));
  });
});
