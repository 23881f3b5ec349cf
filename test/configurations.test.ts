// Rendered configurations (SPEC §2, §8, connectors_csi.mdx): the HTTP endpoints on the proxy
// port, authenticated like proxy traffic, and the `configurations` CLI that writes what the
// CSI driver would mount into a folder. The proof is a real client: `git clone` of the
// Connector's ORIGINAL address with nothing but the rendered .gitconfig (HOME pointing at the
// CLI's folder), or nothing but the built-in `.env` (forward proxy), must succeed through the
// proxy against a real `git http-backend` that wants the Secret's credentials. The data model
// (.connector, .connectors, .connectorclass, .context, .configurations), the built-in files for
// one and several Connectors, `!<file>` exclusions and configuration.params with defaults are
// checked on rendered text. The examples in examples/configurations/ load and render.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { gitHttpHandler } from '../tools/git-http';
import { validateResource } from '../src/sources/validate';
import { request, type Reply } from './support/http';
import { MAIN, REPO_ROOT, basic, startProxy, type ProxyProcess } from './support/proxy';
import { run, type RunResult } from './support/run';

const NS = 'team';
const API_VERSION = 'connectors.alauda.io/v1alpha1';
const TOKEN = 'good-token-123'; // team/*
const OTHER_TOKEN = 'other-token-456'; // other/*
const TOOL = { username: 'git-tool-user', password: 'git-tool-pw-Zq81x' };
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const SENSITIVE = [TOKEN, OTHER_TOKEN, b64(`:${TOKEN}`), b64(`any:${TOKEN}`), TOOL.password, b64(`${TOOL.username}:${TOOL.password}`)];
const EXAMPLES = join(REPO_ROOT, 'examples', 'configurations');
const example = (f: string): string => readFileSync(join(EXAMPLES, f), 'utf8');

interface Seen { readonly url: string; readonly authorization: string | undefined; readonly raw: string }

let root: string;
let gitServer: Server;
let gitOrigin: string;
const seen: Seen[] = [];
let proxy: ProxyProcess;
let port: number;
let gitEnv: NodeJS.ProcessEnv;
let readme: string;

const docs = (...objs: Array<object | string>): string => objs.map((o) => (typeof o === 'string' ? o : stringify(o))).join('\n---\n');

function connector(name: string, cls: string, address: string, withSecret = true, namespace = NS): string {
  const c = {
    apiVersion: API_VERSION, kind: 'Connector', metadata: { name, namespace },
    spec: { connectorClassName: cls, address, auth: { name: 'basicAuth', ...(withSecret ? { secretRef: { name: `${name}-secret` } } : {}) } },
  };
  if (!withSecret) return docs(c);
  return docs(c, { apiVersion: 'v1', kind: 'Secret', metadata: { name: `${name}-secret`, namespace }, type: 'kubernetes.io/basic-auth', stringData: TOOL });
}

function configClass(name: string, configurations: Array<{ name: string; data: Record<string, string> }>): object {
  return {
    apiVersion: API_VERSION, kind: 'ConnectorClass', metadata: { name },
    spec: { address: { type: 'string' }, auth: { types: [{ name: 'basicAuth', secretType: 'kubernetes.io/basic-auth', optional: true }] }, configurations },
  };
}

/** The class with spec.proxy: its Connectors are served (and get a proxy address). */
function served(cls: object): object {
  const c = cls as { spec: Record<string, unknown> };
  return { ...c, spec: { ...c.spec, proxy: {} } };
}

/** The example Git class as the path resolver's variant `git-path`. */
function gitPathClass(): string {
  const cls = parse(example('git.yaml')) as { metadata: { name: string; annotations?: Record<string, string> } };
  cls.metadata.name = 'git-path';
  cls.metadata.annotations = { ...cls.metadata.annotations, 'connectors.cpaas.io/proxy-resolver': 'path' };
  return stringify(cls);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await run('git', args, { cwd, env: gitEnv, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed (${r.code ?? r.signal}):\n${r.stderr}`);
  return r.stdout.toString().trim();
}

const cfgUrl = (rest: string): string => `http://127.0.0.1:${port}/configurations/namespaces/${rest}`;
const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

function cli(args: readonly string[]): Promise<RunResult> {
  return run(process.execPath, [MAIN, 'configurations', '--proxy', `http://127.0.0.1:${port}`, ...args], { timeoutMs: 20_000, env: { PATH: process.env.PATH } });
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'cproxy-config-'));
  mkdirSync(join(root, 'home'));
  gitEnv = { PATH: process.env.PATH, HOME: join(root, 'home'), GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', LANG: 'C', LC_ALL: 'C' };
  writeFileSync(join(root, 'home', '.gitconfig'), '[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n');
  const work = join(root, 'work');
  mkdirSync(work);
  await git(work, 'init', '-q');
  readme = `configurations test ${Date.now()}\n`;
  writeFileSync(join(work, 'README'), readme);
  await git(work, 'add', 'README');
  await git(work, 'commit', '-q', '-m', 'seed');
  // Separate roots: a path-form request that lost its /git prefix finds nothing.
  await git(root, 'clone', '-q', '--bare', work, join(root, 'host-repos', 'repo.git'));
  await git(root, 'clone', '-q', '--bare', work, join(root, 'path-repos', 'repo.git'));

  const plain = gitHttpHandler({ projectRoot: join(root, 'host-repos'), credentials: TOOL });
  const prefixed = gitHttpHandler({ projectRoot: join(root, 'path-repos'), credentials: TOOL, prefix: '/git' });
  gitServer = createServer((req: IncomingMessage, res) => {
    seen.push({ url: req.url ?? '', authorization: req.headers.authorization, raw: req.rawHeaders.join('\n') });
    if ((req.url ?? '').startsWith('/git/')) prefixed(req, res);
    else plain(req, res);
  });
  await new Promise<void>((r) => gitServer.listen(0, '127.0.0.1', () => r()));
  gitOrigin = `http://127.0.0.1:${(gitServer.address() as AddressInfo).port}`;

  // The proxy's public URL names its port: rendered addresses must reach this very proxy.
  port = await freePort();
  proxy = await startProxy({
    // `c-<name>.<ns>.localhost` resolves to loopback inside libcurl (git's HTTP client).
    domain: 'localhost',
    manifests: {
      'git.yaml': example('git.yaml'),
      'oci.yaml': example('oci.yaml'),
      'forward-proxy.yaml': example('forward-proxy.yaml'),
      'git-path.yaml': gitPathClass(),
      'connectors.yaml': docs(
        connector('repo', 'git', gitOrigin),
        connector('repo-path', 'git-path', `${gitOrigin}/git`),
        connector('registry', 'oci', 'https://registry.example.com', false),
        connector('fwd', 'forward-proxy', 'https://tool.example.com', false),
      ),
      'model.yaml': docs(
        // connectors_csi.mdx "Configuration Merging": one file for several Connectors of a class.
        served(configClass('multi', [{ name: 'config', data: { '.multi-connector-config': '{{- range .connectors }}\n# Configuration for Connector: {{ .name }}\nparam_name = {{ .name }}\nparam_value = {{ .spec.address }}\n{{- end }}\n' } }])),
        // The whole data model, and configuration params with a declared default (nexus-style).
        { ...served(configClass('model', [])), spec: { address: { type: 'string' }, proxy: {}, configurations: [
          { name: 'model', params: [{ name: 'mirrorRepository', type: 'string', default: 'maven-public' }, { name: 'registry', type: 'string' }], data: {
            'model.txt': 'connector={{ .connector.metadata.namespace }}/{{ .connector.name }} address={{ .connector.spec.address }} proxyAddress={{ .connector.status.proxyAddress }}\n' +
              'connectors={{ range .connectors }}{{ .metadata.name }},{{ end }}\nclass={{ .connectorclass.metadata.name }} proxy={{ .connectorclass.proxyAddress }} ready={{ range .connectorclass.status.conditions }}{{ .type }}{{ end }}\n' +
              'token={{ .context.token }} ca=[{{ .context.proxy.caCert }}]\nmirror={{ .configurations.mirrorRepository }} registry={{ index .configurations "registry" }} extra={{ .configurations.extra }}\n' +
              '{{ $p := urlParse .connectorclass.proxyAddress }}host={{ $p.host }} scheme={{ $p.scheme }}\n',
          } },
          { name: 'other', data: { 'other.txt': 'other of {{ .connector.name }}', 'model.txt': 'overwritten by other' } },
        ] }, status: { conditions: [{ type: 'Ready', status: 'True' }] } },
        connector('m1', 'model', 'https://nexus.example.com', false),
        connector('m2', 'model', 'https://nexus2.example.com/base', false),
        connector('mx1', 'multi', 'https://a.example.com', false),
        connector('mx2', 'multi', 'https://b.example.com', false),
        connector('other-ns', 'multi', 'https://c.example.com', false, 'other'),
      ),
      'bad.yaml': docs(
        configClass('broken-cfg', [{ name: 'config', data: { 'ok.txt': 'fine', 'bad.txt': 'line one\n{{ printf ":%s" .context.token | nosuchfunc }}\n' } }]),
        configClass('failing-cfg', [{ name: 'config', data: { 'leak.txt': 'x {{ fail (printf "no access for %s (%s)" .context.token (b64enc .context.token)) }}' } }]),
        configClass('trav-file', [{ name: 'config', data: { 'fine.txt': 'ok', '../x': 'escaped {{ .context.token }}' } }]),
        connector('broken', 'broken-cfg', gitOrigin, false),
        connector('failing', 'failing-cfg', gitOrigin, false),
        connector('trav-file', 'trav-file', gitOrigin, false),
      ),
    },
    args: ['--listen', `127.0.0.1:${port}`, '--public-url', `http://127.0.0.1:${port}`, '--no-probes'],
  });
}, { timeout: 60_000 });

after(async () => {
  await proxy?.stop();
  if (gitServer) {
    gitServer.closeAllConnections();
    await new Promise<void>((r) => gitServer.close(() => r()));
  }
  if (root) rmSync(root, { recursive: true, force: true });
});

/** The .gitconfig the example class renders for TOKEN. */
function expectedGitconfig(proxyAddress: string, address: string): string {
  return `[http]\n    extraHeader = Authorization: Basic ${b64(`:${TOKEN}`)}\n[url "${proxyAddress}/"]\n    insteadOf = ${address}/\n`;
}

function assertNoSecrets(r: Reply, what: string): void {
  for (const s of SENSITIVE) assert.ok(!r.text.includes(s), `${what}: the body contains ${s}: ${r.text}`);
}

describe('configurations over HTTP (proxy port, the caller\'s token)', () => {
  test('all configurations as JSON, one configuration, one raw file; Bearer or Basic', async () => {
    const all = await request(cfgUrl(`${NS}/connectors/repo`), { headers: bearer(TOKEN) });
    assert.equal(all.status, 200, all.text);
    assert.match(String(all.headers['content-type']), /^application\/json/);
    assert.equal(all.headers['cache-control'], 'no-store');
    const gitconfig = expectedGitconfig(`http://c-repo.${NS}.localhost:${port}`, gitOrigin);
    assert.deepEqual(JSON.parse(all.text), { configurations: [{ name: 'gitconfig', data: { '.gitconfig': gitconfig } }] });

    const one = await request(cfgUrl(`${NS}/connectors/repo-path/gitconfig`), { headers: { authorization: basic('any', TOKEN) } });
    assert.equal(one.status, 200, one.text);
    assert.deepEqual(JSON.parse(one.text), {
      name: 'gitconfig', data: { '.gitconfig': expectedGitconfig(`http://127.0.0.1:${port}/namespaces/${NS}/connectors/repo-path`, `${gitOrigin}/git`) },
    });

    const raw = await request(cfgUrl(`${NS}/connectors/repo/gitconfig/.gitconfig`), { headers: bearer(TOKEN) });
    assert.equal(raw.status, 200, raw.text);
    assert.match(String(raw.headers['content-type']), /^text\/plain/);
    assert.equal(raw.text, gitconfig);
    const head = await request(cfgUrl(`${NS}/connectors/repo/gitconfig/.gitconfig`), { method: 'HEAD', headers: bearer(TOKEN) });
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
  });

  test('401 without or with an unknown token, 403 for another team, 404 for unknown connector/configuration/file, 405 for writes', async () => {
    const cases: Array<[string, Record<string, string>, number, RegExp, string?]> = [
      [`${NS}/connectors/repo`, {}, 401, /authentication required/],
      [`${NS}/connectors/repo`, bearer('not-a-known-token'), 401, /token rejected/],
      [`${NS}/connectors/repo/gitconfig/.gitconfig`, { authorization: basic('any', 'not-a-known-token') }, 401, /token rejected/],
      [`${NS}/connectors/repo`, bearer(OTHER_TOKEN), 403, /forbidden/],
      [`${NS}/connectors/repo/gitconfig/.gitconfig`, bearer(OTHER_TOKEN), 403, /forbidden/],
      [`${NS}/connectors/nope`, bearer(TOKEN), 404, /connector team\/nope not found/],
      [`${NS}/connectors/repo/nope`, bearer(TOKEN), 404, /ConnectorClass "git" has no configuration "nope"/],
      [`${NS}/connectors/repo/gitconfig/nope.txt`, bearer(TOKEN), 404, /configuration "gitconfig" of ConnectorClass "git" has no file "nope.txt"/],
      [`${NS}/connectors/repo`, bearer(TOKEN), 405, /GET/, 'POST'],
    ];
    for (const [path, headers, status, body, method] of cases) {
      const r = await request(cfgUrl(path), { headers, method });
      assert.equal(r.status, status, `${method ?? 'GET'} ${path}: ${r.status} ${r.text}`);
      assert.match(r.text, body, `${path}: ${r.text}`);
      if (status === 401) assert.match(String(r.headers['www-authenticate']), /^Basic/);
      assertNoSecrets(r, path);
    }
    // The token is checked first: another team learns nothing about which Connectors exist.
    const hidden = await request(cfgUrl(`${NS}/connectors/nope`), { headers: bearer(OTHER_TOKEN) });
    assert.equal(hidden.status, 403, hidden.text);
  });

  test('a broken template → 502 naming class, field and line:col, never the token', async () => {
    const r = await request(cfgUrl(`${NS}/connectors/broken`), { headers: bearer(TOKEN) });
    assert.equal(r.status, 502, r.text);
    assert.match(r.text, /ConnectorClass broken-cfg, spec\.configurations\[0\]\.data\["bad\.txt"\]:2:\d+: function "nosuchfunc" not defined/);
    assertNoSecrets(r, 'broken');
    // A template whose execution error would print the token (sprig's fail).
    const f = await request(cfgUrl(`${NS}/connectors/failing/config/leak.txt`), { headers: bearer(TOKEN) });
    assert.equal(f.status, 502, f.text);
    assert.match(f.text, /ConnectorClass failing-cfg, spec\.configurations\[0\]\.data\["leak\.txt"\]:1:\d+/);
    assertNoSecrets(f, 'failing');
    assert.ok(!f.text.includes(b64(TOKEN)), f.text);
    const logs = proxy.logs();
    assert.match(logs, /configuration not rendered/);
    for (const s of [...SENSITIVE, b64(TOKEN)]) assert.ok(!logs.includes(s), `the log contains ${s}`);
  });
});

const filesUrl = (q: Record<string, string>, file?: string): string =>
  `http://127.0.0.1:${port}/configurations/files${file === undefined ? '' : `/${encodeURIComponent(file)}`}?${new URLSearchParams(q)}`;

async function mount(q: Record<string, string>, token = TOKEN): Promise<{ status: number; files: Record<string, string>; text: string }> {
  const r = await request(filesUrl(q), { headers: bearer(token) });
  return { status: r.status, text: r.text, files: r.status === 200 ? (JSON.parse(r.text) as { files: Record<string, string> }).files : {} };
}

describe('what the CSI driver mounts: GET /configurations/files (connectors_csi.mdx)', () => {
  const host = (): string => `127.0.0.1:${port}`;

  test('built-in files for one Connector: .env, http.proxy, https.proxy, context.token, connector.status.proxyAddress, and the proxy CA as ca.crt, ca.cert, context.proxy.caCert', async () => {
    const r = await mount({ connectors: `${NS}/repo` });
    assert.equal(r.status, 200, r.text);
    const url = `http://${NS}%2Frepo:${TOKEN}@${host()}`;
    assert.deepEqual(Object.keys(r.files).sort(), ['.env', 'ca.cert', 'ca.crt', 'connector.status.proxyAddress', 'context.proxy.caCert', 'context.token', 'http.proxy', 'https.proxy']);
    // The CA https_proxy clients trust: the one the proxy serves at /ca.crt.
    const ca = await request(`http://${host()}/ca.crt`);
    assert.equal(ca.status, 200);
    assert.match(ca.text, /^-----BEGIN CERTIFICATE-----/);
    for (const f of ['ca.crt', 'ca.cert', 'context.proxy.caCert']) assert.equal(r.files[f], ca.text, f);
    assert.equal(r.files['http.proxy'], url);
    assert.equal(r.files['https.proxy'], url);
    assert.equal(r.files['context.token'], TOKEN);
    assert.equal(r.files['connector.status.proxyAddress'], `http://c-repo.${NS}.localhost:${port}`);
    const env = Object.fromEntries(r.files['.env']!.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.deepEqual(Object.keys(env).sort(), ['HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']);
    for (const k of ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY']) assert.equal(env[k], url);
    // Cluster-internal names stay off the proxy, except what a listed tool lives at (127.0.0.1 here).
    assert.equal(env.no_proxy, env.NO_PROXY);
    assert.deepEqual(env.no_proxy!.split(','), ['localhost', '::1', '.localhost', '.svc', 'kubernetes.default', 'kubernetes.default.svc']);
    // The raw file, as `export http_proxy=$(cat http.proxy)` reads it.
    const raw = await request(filesUrl({ connectors: `${NS}/repo` }, 'http.proxy'), { headers: bearer(TOKEN) });
    assert.equal(raw.status, 200);
    assert.equal(raw.text, url);
  });

  test('several Connectors: one proxy URL listing them all; a bare name takes namespace=; the last one\'s proxy address', async () => {
    const r = await mount({ connectors: `${NS}/repo,repo-path`, namespace: NS });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.files['http.proxy'], `http://${NS}%2Frepo,${NS}%2Frepo-path:${TOKEN}@${host()}`);
    assert.equal(r.files['connector.status.proxyAddress'], `http://127.0.0.1:${port}/namespaces/${NS}/connectors/repo-path`);
    const u = new URL(r.files['http.proxy']!);
    assert.equal(decodeURIComponent(u.username), `${NS}/repo,${NS}/repo-path`);
  });

  test('!<file> excludes built-in and class files; configurations override built-ins; unknown names fail only when none is found', async () => {
    const r = await mount({ connectors: `${NS}/repo`, 'configuration.names': 'gitconfig,nope,!context.token,!.env,!ca.cert,!context.proxy.caCert' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.files).sort(), ['.gitconfig', 'ca.crt', 'connector.status.proxyAddress', 'http.proxy', 'https.proxy']);
    const only = await mount({ connectors: `${NS}/repo`, 'configuration.names': '!context.token' });
    assert.equal(only.status, 200);
    assert.ok(!('context.token' in only.files) && 'http.proxy' in only.files);
    const none = await mount({ connectors: `${NS}/repo`, 'configuration.names': 'nope,!context.token' });
    assert.equal(none.status, 404, none.text);
    assert.match(none.text, /configuration\.names: none of "nope" is a configuration of ConnectorClass "git"/);
    const later = await mount({ connectors: `${NS}/m1`, 'configuration.names': 'model,other' });
    assert.equal(later.files['model.txt'], 'overwritten by other', 'a later configuration wins');
  });

  test('the data model: .connector, .connectors, .connectorclass (status, proxyAddress), .context, .configurations with defaults', async () => {
    const r = await mount({ connectors: `${NS}/m1,${NS}/m2`, 'configuration.names': 'model', 'configuration.params': JSON.stringify({ model: { registry: 'npm-proxy', extra: 'x' }, other: { ignored: 1 } }) });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.files['model.txt'],
      `connector=${NS}/m1 address=https://nexus.example.com proxyAddress=http://c-m1.${NS}.localhost:${port}\n` +
      `connectors=m1,m2,\nclass=model proxy=http://${host()} ready=Ready\n` +
      `token=${TOKEN} ca=[${(await request(`http://${host()}/ca.crt`)).text}]\nmirror=maven-public registry=npm-proxy extra=x\n` +
      `host=${host()} scheme=http\n`);
    assert.doesNotMatch(r.files['model.txt']!, /<no value>/);
    // The caller's value wins over the default.
    const own = await mount({ connectors: `${NS}/m1`, 'configuration.names': 'model', 'configuration.params': '{"model": {"mirrorRepository": "releases"}}' });
    assert.match(own.files['model.txt']!, /^mirror=releases registry=<no value> extra=<no value>$/m);
    const bad = await mount({ connectors: `${NS}/m1`, 'configuration.names': 'model', 'configuration.params': '["x"]' });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /configuration\.params: must be a JSON object keyed by configuration name/);
  });

  test('the docs\' multi-Connector template renders one section per Connector', async () => {
    const r = await mount({ connectors: `${NS}/mx1,${NS}/mx2`, 'configuration.names': 'config' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.files['.multi-connector-config'],
      '\n# Configuration for Connector: mx1\nparam_name = mx1\nparam_value = https://a.example.com\n# Configuration for Connector: mx2\nparam_name = mx2\nparam_value = https://b.example.com\n');
  });

  test('refusals: no token 401, a Connector the token may not use 403 (nothing rendered), unknown 404, malformed 400', async () => {
    const anon = await request(filesUrl({ connectors: `${NS}/repo` }));
    assert.equal(anon.status, 401);
    const mixed = await mount({ connectors: `${NS}/repo,other/other-ns` });
    assert.equal(mixed.status, 403, mixed.text);
    assertNoSecrets({ status: mixed.status, text: mixed.text, headers: {} } as Reply, 'mixed');
    assert.equal((await mount({ connectors: `${NS}/nope` })).status, 404);
    for (const [q, re] of [[{}, /name at least one Connector/], [{ connectors: 'a/b/c' }, /is not <namespace>\/<name>/], [{ connectors: `${NS}/repo`, 'configuration.names': '!' }, /"!" must be followed by a file name/]] as const) {
      const r = await mount(q);
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, re);
    }
  });

  test('forward proxy with nothing but the built-in .env: git clone of the original address gets the Secret\'s credentials', async () => {
    const dir = join(root, 'env-mount');
    const r = await cli(['--connectors', `${NS}/repo`, '--token', TOKEN, '--dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    const seenStart = seen.length;
    const target = join(root, 'clone-env');
    const clone = await run('sh', ['-c', `set -a && . "${join(dir, '.env')}" && set +a && git clone -q "${gitOrigin}/repo.git" "${target}"`], {
      cwd: root, timeoutMs: 60_000,
      env: { PATH: process.env.PATH, HOME: join(root, 'empty-home'), GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', LANG: 'C', LC_ALL: 'C' },
    });
    assert.equal(clone.code, 0, `git clone through .env failed:\n${clone.stderr}\n${proxy.logs().slice(-2000)}`);
    assert.equal(readFileSync(join(target, 'README'), 'utf8'), readme);
    const got = seen.slice(seenStart);
    assert.ok(got.length > 0);
    for (const s of got) assert.equal(s.authorization, basic(TOOL.username, TOOL.password), `${s.url} reached the git server without the Secret`);
  });
});

describe('the configurations CLI and a real git clone of the original address', () => {
  const forms = [
    { form: 'host', connector: 'repo', address: () => gitOrigin, proxyPath: '/repo.git/info/refs', upstreamPath: '/repo.git/info/refs' },
    { form: 'path', connector: 'repo-path', address: () => `${gitOrigin}/git`, proxyPath: `/namespaces/${NS}/connectors/repo-path/repo.git/info/refs`, upstreamPath: '/git/repo.git/info/refs' },
  ] as const;

  for (const f of forms) {
    test(`${f.form} form: the CLI writes .gitconfig (0600); HOME=<folder> git clone ${f.form === 'host' ? '<address>' : '<address with /git>'}/repo.git goes through the proxy`, async () => {
      const home = join(root, `cfg-${f.form}`);
      if (f.form === 'host') {
        // --token, <namespace>/<name> and --names (the CSI attributes).
        const r = await cli(['--connectors', `${NS}/${f.connector}`, '--names', 'gitconfig', '--token', TOKEN, '--dir', home]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout.toString().trim().split('\n').sort(), ['.env', '.gitconfig', 'ca.cert', 'ca.crt', 'connector.status.proxyAddress', 'context.proxy.caCert', 'context.token', 'http.proxy', 'https.proxy'].map((n) => join(home, n)));
      } else {
        // --token-file (a projected ServiceAccount token), a bare name with --namespace, --configuration.
        const tokenFile = join(root, 'sa-token');
        writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
        const r = await cli(['--namespace', NS, '--connector', f.connector, '--token-file', tokenFile, '--configuration', 'gitconfig', '--dir', home]);
        assert.equal(r.code, 0, r.stderr);
      }
      const file = join(home, '.gitconfig');
      assert.equal(statSync(file).mode & 0o777, 0o600, 'the file holds the caller\'s token: owner only');
      const proxyAddress = f.form === 'host' ? `http://c-repo.${NS}.localhost:${port}` : `http://127.0.0.1:${port}/namespaces/${NS}/connectors/repo-path`;
      assert.equal(readFileSync(file, 'utf8'), expectedGitconfig(proxyAddress, f.address()));

      const logStart = proxy.logs().length;
      const seenStart = seen.length;
      const target = join(root, `clone-${f.form}`);
      // Only the rendered .gitconfig: no system config, no credential helper, no prompts.
      const r = await run('git', ['clone', '-q', `${f.address()}/repo.git`, target], {
        cwd: root, timeoutMs: 60_000,
        env: { PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', LANG: 'C', LC_ALL: 'C' },
      });
      assert.equal(r.code, 0, `git clone failed:\n${r.stderr}\n--- proxy log:\n${proxy.logs().slice(logStart)}`);
      assert.equal(readFileSync(join(target, 'README'), 'utf8'), readme);

      // Through the proxy: its access log has the requests for this Connector...
      const lines = proxy.logs().slice(logStart).split('\n').filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l) as { connector?: string; path: string; status: number; user?: string });
      const refs = lines.find((l) => l.path === f.proxyPath);
      assert.ok(refs, `the proxy served ${f.proxyPath}: ${JSON.stringify(lines)}`);
      assert.equal(refs.connector, `${NS}/${f.connector}`);
      assert.equal(refs.status, 200);
      assert.equal(refs.user, 'system:serviceaccount:team:builder');
      assert.ok(lines.some((l) => l.path.endsWith('/git-upload-pack') && l.status === 200), 'the pack came through the proxy');
      // ...and the git server saw only the Secret's credentials, never the client token.
      const got = seen.slice(seenStart);
      assert.ok(got.some((s) => s.url.startsWith(`${f.upstreamPath}?service=git-upload-pack`)), got.map((s) => s.url).join(', '));
      for (const s of got) {
        assert.equal(s.authorization, basic(TOOL.username, TOOL.password), `${s.url} reached the git server without the Secret (not through the proxy?)`);
        for (const t of [TOKEN, b64(`:${TOKEN}`)]) assert.ok(!s.raw.includes(t), `the client token reached the git server: ${s.raw}`);
      }
    });
  }

  test('a file name that leaves the folder (../x) is refused before anything is written', async () => {
    const dir = join(root, 'trav', 'out');
    mkdirSync(join(root, 'trav'));
    const r = await cli(['--connectors', `${NS}/trav-file`, '--names', 'config', '--token', TOKEN, '--dir', dir]);
    assert.notEqual(r.code, 0, `the CLI must fail: ${r.stdout.toString()}`);
    assert.match(r.stderr, /refusing to write a file named "\.\.\/x"/);
    assert.ok(!existsSync(join(root, 'trav', 'x')), 'a file was written outside the folder');
    assert.ok(!existsSync(dir), 'names are checked before anything is written');
  });

  test('written again over a looser file or a planted symlink: a fresh 0600 file replaces it', async () => {
    const dir = join(root, 'again');
    mkdirSync(dir, { recursive: true });
    const victim = join(root, 'victim.txt');
    writeFileSync(victim, 'untouched\n', { mode: 0o644 });
    symlinkSync(victim, join(dir, '.gitconfig'));
    const args = ['--connectors', `${NS}/repo`, '--names', 'gitconfig,!.env,!http.proxy,!https.proxy,!connector.status.proxyAddress,!context.token,!ca.crt,!ca.cert,!context.proxy.caCert', '--token', TOKEN, '--dir', dir];
    const first = await cli(args);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(readFileSync(victim, 'utf8'), 'untouched\n', 'the symlink was not written through');
    const file = join(dir, '.gitconfig');
    assert.ok(!lstatSync(file).isSymbolicLink());
    chmodSync(file, 0o644);
    const second = await cli(args);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['.gitconfig'], 'exclusions honoured, no temporary file left behind');
  });

  test('CLI errors: no token, a refused token (the proxy\'s answer is shown, no token in it)', async () => {
    const none = await cli(['--namespace', NS, '--connector', 'repo', '--dir', join(root, 'never')]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /--token or --token-file/);
    const nameless = await cli(['--connectors', 'repo', '--token', TOKEN, '--dir', join(root, 'never')]);
    assert.equal(nameless.code, 1);
    assert.match(nameless.stderr, /answered 400: connectors-proxy: connectors: "repo" has no namespace/);
    const other = await cli(['--namespace', NS, '--connector', 'repo', '--token', OTHER_TOKEN, '--dir', join(root, 'never')]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /answered 403/);
    assert.ok(!other.stderr.includes(OTHER_TOKEN));
    assert.ok(!existsSync(join(root, 'never')), 'nothing written on failure');
  });
});

describe('examples/configurations: accepted by the manifest validator and rendered', () => {
  test('every document of every example validates', () => {
    const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(files.sort(), ['forward-proxy.yaml', 'git.yaml', 'oci.yaml']);
    for (const f of files) {
      parseAllDocuments(example(f)).forEach((d, i) => {
        assert.equal(d.errors.length, 0, `${f}: ${d.errors.join('; ')}`);
        const r = validateResource(d.toJS(), `${f} (document ${i + 1})`);
        assert.equal(r.kind, 'ConnectorClass');
        assert.ok((r.spec as { configurations?: unknown[] }).configurations?.length, `${f}: has configurations`);
      });
    }
    // The proxy loaded them too, with the test's own five classes, and logged no manifest error.
    const loaded = /\{[^\n]*"msg":"manifests loaded"[^\n]*\}/.exec(proxy.logs());
    assert.ok(loaded);
    assert.equal((JSON.parse(loaded[0]) as { classes: number }).classes, 3 + 6);
    assert.doesNotMatch(proxy.logs(), /"level":(40|50)[^\n]*manifest/);
  });

  const host = (): string => `127.0.0.1:${port}`;

  test('oci.yaml: config.json (valid JSON, auth = <anything>:<token> for the proxy host), daemon.json, buildkitd.toml', async () => {
    const r = await request(cfgUrl(`${NS}/connectors/registry`), { headers: bearer(TOKEN) });
    assert.equal(r.status, 200, r.text);
    const confs = new Map((JSON.parse(r.text) as { configurations: Array<{ name: string; data: Record<string, string> }> }).configurations.map((c) => [c.name, c.data]));
    assert.deepEqual([...confs.keys()], ['docker-config', 'dockerd', 'buildkitd']);

    const config = JSON.parse(confs.get('docker-config')!['config.json']!) as { auths: Record<string, { auth: string }> };
    assert.deepEqual(Object.keys(config.auths), [host()]);
    const decoded = Buffer.from(config.auths[host()]!.auth, 'base64').toString('utf8');
    assert.match(decoded, /^[^:]*:/);
    assert.equal(decoded.slice(decoded.indexOf(':') + 1), TOKEN);

    assert.deepEqual(JSON.parse(confs.get('dockerd')!['daemon.json']!), { 'insecure-registries': [host()] });
    const toml = confs.get('buildkitd')!['buildkitd.toml']!;
    assert.match(toml, new RegExp(`^\\[registry\\."${host().replace(/\./g, '\\.')}"\\]\\n\\s+http = true\\n$`), toml);
  });

  test('forward-proxy.yaml: http.proxy / https.proxy = http://<ns>%2F<name>:<token>@<proxy host:port>', async () => {
    for (const file of ['http.proxy', 'https.proxy']) {
      const r = await request(cfgUrl(`${NS}/connectors/fwd/forward-proxy/${file}`), { headers: bearer(TOKEN) });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.text, `http://${NS}%2Ffwd:${TOKEN}@${host()}`);
      const u = new URL(r.text);
      assert.equal(decodeURIComponent(u.username), `${NS}/fwd`);
      assert.equal(decodeURIComponent(u.password), TOKEN);
      assert.equal(u.host, host());
    }
  });
});
