// Forward proxy mode with real clients (SPEC section 3): `http_proxy=http://<ns>%2F<name>:
// <token>@<proxy>` and plain `git` and `curl`. The tool's credentials are added only for
// targets under a listed Connector's address or URL address extension; other targets go
// without them; CONNECT to other targets is a plain tunnel; the client's token never leaves the proxy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gitHttpHandler } from '../tools/git-http';
import { basic, startProxy, type ProxyProcess } from './support/proxy';
import { run } from './support/run';
import { startUpstream, type Upstream } from './support/upstream';
import { startPypiserver, startVerdaccio, writeWheel, type PackageRegistry } from './support/package-registries';

const TOKEN = 'good-token-123';
const OTHER_TOKEN = 'other-token-456';
const GIT_CREDS = { username: 'git-tool-user', password: 'git-tool-pw-F0rw4rd' };
const API_TOKEN = 'api-bearer-secret-77';
const T = { timeout: 60_000 };

let root: string;
let gitServer: Server;
let gitOrigin: string;
const gitSeen: Array<{ url: string; authorization: string | undefined; raw: string }> = [];
let api: Upstream; // a tool with a path-prefixed address and an address extension
let mirror: Upstream; // the address extension's host
let elsewhere: Upstream; // no Connector points here
let proxy: ProxyProcess;
let gitEnv: NodeJS.ProcessEnv;
let verdaccio: PackageRegistry;
let pypi: PackageRegistry;

const echo = (req: IncomingMessage, res: import('node:http').ServerResponse): void => {
  if (req.url?.endsWith('/redirect')) {
    res.writeHead(302, { location: `${elsewhere.origin}/landed` }).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: req.url, authorization: req.headers.authorization ?? null }));
};

/** A Connector of the Basic class `fwd-git` and its Secret. */
function basicConnector(name: string, address: string, creds: { username: string; password: string }): string {
  return `---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: ${name}, namespace: team}
spec:
  connectorClassName: fwd-git
  address: ${address}
  auth: {name: basicAuth, secretRef: {name: ${name}-secret}}
---
apiVersion: v1
kind: Secret
metadata: {name: ${name}-secret, namespace: team}
type: kubernetes.io/basic-auth
stringData: {username: ${creds.username}, password: ${creds.password}}
`;
}

function manifests(): string {
  return `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: fwd-git}
spec:
  proxy: {}
  address: {type: string}
  auth: {types: [{name: basicAuth, secretType: kubernetes.io/basic-auth}]}
---
apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: fwd-api}
spec:
  proxy: {}
  address: {type: string}
  addressExtensions: [{name: mirror, type: string}]
  auth: {types: [{name: bearer, secretType: connectors.cpaas.io/bearer-token}]}
---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: api, namespace: team}
spec:
  connectorClassName: fwd-api
  address: ${api.origin}/gitlab
  addressExtensions: [{name: mirror, value: "${mirror.origin}/mirror"}]
  auth: {name: bearer, secretRef: {name: api-secret}}
---
apiVersion: v1
kind: Secret
metadata: {name: api-secret, namespace: team}
type: connectors.cpaas.io/bearer-token
stringData: {token: ${API_TOKEN}}
${basicConnector('git', gitOrigin, GIT_CREDS)}${basicConnector('npm', verdaccio.url, verdaccio)}${basicConnector('pypi', pypi.url, pypi)}`;
}

/** `http://<connectors>:<token>@127.0.0.1:<port>` as a user writes it (`/` encoded as %2F). */
function proxyUrl(connectors: string, token: string): string {
  return `http://${connectors.replace(/\//g, '%2F')}:${token}@127.0.0.1:${proxy.port}`;
}

interface Curl { code: number | null; status: number; body: string; stderr: string }

/** Real curl through the proxy given by http_proxy (curl reads it from the environment). */
async function curl(url: string, httpProxy: string, ...args: string[]): Promise<Curl> {
  const r = await run('curl', ['-sS', '-o', '-', '-w', '\n%{http_code}', ...args, url], {
    env: { PATH: process.env.PATH, http_proxy: httpProxy, HOME: root }, timeoutMs: 20_000,
  });
  const out = r.stdout.toString();
  const nl = out.lastIndexOf('\n');
  return { code: r.code, status: Number(out.slice(nl + 1)), body: out.slice(0, nl), stderr: r.stderr };
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'cproxy-fwd-'));
  const home = join(root, 'home');
  mkdirSync(home);
  writeFileSync(join(home, '.gitconfig'), '[user]\n\tname = T\n\temail = t@example.com\n[init]\n\tdefaultBranch = main\n');
  gitEnv = { PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', LANG: 'C', LC_ALL: 'C' };
  const work = join(root, 'work');
  mkdirSync(work);
  const g = (cwd: string, ...args: string[]) => run('git', args, { cwd, env: gitEnv, timeoutMs: 30_000 }).then((r) => {
    if (r.code !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  });
  await g(work, 'init', '-q');
  writeFileSync(join(work, 'README.md'), 'forward proxy mode\n');
  await g(work, 'add', '.');
  await g(work, 'commit', '-q', '-m', 'seed');
  mkdirSync(join(root, 'repos'));
  await g(root, 'clone', '-q', '--bare', work, join(root, 'repos', 'repo.git'));
  await g(join(root, 'repos', 'repo.git'), 'config', 'http.receivepack', 'true');

  const handler = gitHttpHandler({ projectRoot: join(root, 'repos'), credentials: GIT_CREDS });
  gitServer = createServer((req, res) => {
    gitSeen.push({ url: req.url ?? '', authorization: req.headers.authorization, raw: req.rawHeaders.join('\n') });
    handler(req, res);
  });
  await new Promise<void>((r) => gitServer.listen(0, '127.0.0.1', () => r()));
  gitOrigin = `http://127.0.0.1:${(gitServer.address() as AddressInfo).port}`;
  api = await startUpstream(echo);
  mirror = await startUpstream(echo);
  elsewhere = await startUpstream(echo);
  [verdaccio, pypi] = await Promise.all([startVerdaccio(), startPypiserver()]);
  await writeWheel(pypi.dir, 'fwd-pkg', '2.0.0', 'WHERE = "forward proxy"\n');
  proxy = await startProxy({ manifests: { 'fwd.yaml': manifests() } });
}, { timeout: 60_000 });

after(async () => {
  await proxy?.stop();
  if (gitServer) { gitServer.closeAllConnections(); await new Promise<void>((r) => gitServer.close(() => r())); }
  await Promise.all([api?.close(), mirror?.close(), elsewhere?.close(), verdaccio?.stop(), pypi?.stop()]);
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('forward proxy mode with git', () => {
  test('git clone and push through http_proxy: the git server sees only the Secret', T, async () => {
    const from = gitSeen.length;
    const env = { ...gitEnv, http_proxy: proxyUrl('team/git', TOKEN) };
    const clone = join(root, 'clone');
    const c = await run('git', ['-c', 'credential.helper=', 'clone', '-q', `${gitOrigin}/repo.git`, clone], { env, timeoutMs: 30_000 });
    assert.equal(c.code, 0, c.stderr);
    assert.equal(readFileSync(join(clone, 'README.md'), 'utf8'), 'forward proxy mode\n');

    writeFileSync(join(clone, 'pushed.txt'), 'through the forward proxy\n');
    for (const args of [['add', 'pushed.txt'], ['commit', '-q', '-m', 'push via proxy']]) {
      assert.equal((await run('git', args, { cwd: clone, env, timeoutMs: 10_000 })).code, 0);
    }
    const p = await run('git', ['-c', 'credential.helper=', 'push', '-q', 'origin', 'main'], { cwd: clone, env, timeoutMs: 30_000 });
    assert.equal(p.code, 0, p.stderr);
    const log = await run('git', ['log', '--format=%s', '-1', 'main'], { cwd: join(root, 'repos', 'repo.git'), env: gitEnv });
    assert.equal(log.stdout.toString().trim(), 'push via proxy', 'the push reached the server');

    const mine = gitSeen.slice(from);
    assert.ok(mine.length >= 4, 'clone and push went through');
    for (const s of mine) {
      assert.equal(s.authorization, basic(GIT_CREDS.username, GIT_CREDS.password), `${s.url} carried the Secret`);
      assert.ok(!s.raw.includes(TOKEN) && !/proxy-authorization/i.test(s.raw), `${s.url}: no client token, no Proxy-Authorization upstream`);
    }
  });

  test('git with a token of another team is refused (403) and the server sees nothing', T, async () => {
    const from = gitSeen.length;
    const env = { ...gitEnv, http_proxy: proxyUrl('team/git', OTHER_TOKEN) };
    const c = await run('git', ['-c', 'credential.helper=', 'ls-remote', `${gitOrigin}/repo.git`], { env, timeoutMs: 30_000 });
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /403/);
    assert.equal(gitSeen.length, from);
  });
});

/** An empty file under the test folder (npm refuses /dev/null as a config file). */
function emptyFile(name: string): string {
  const file = join(root, name);
  writeFileSync(file, '');
  return file;
}

describe('forward proxy mode with npm and pip (registries that require login)', () => {
  /** The environment of a client that knows only http_proxy: no registry credentials anywhere. */
  const clientEnv = (connectors: string, token: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH, HOME: join(root, 'home'), http_proxy: proxyUrl(connectors, token), no_proxy: '', NO_PROXY: '',
    npm_config_userconfig: emptyFile('npmrc'), npm_config_globalconfig: emptyFile('npmrc-global'), npm_config_cache: mkdtempSync(join(root, 'npm-cache-')),
    npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false',
    PIP_CONFIG_FILE: '/dev/null', PIP_NO_CACHE_DIR: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1',
  });

  test('npm publish and npm install against the registry\'s own address', T, async () => {
    const pkg = join(root, 'fwd-npm-pkg');
    mkdirSync(pkg);
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'fwd-pkg', version: '2.0.0', main: 'index.js' }));
    writeFileSync(join(pkg, 'index.js'), 'module.exports = "via http_proxy";\n');
    const env = clientEnv('team/npm', TOKEN);
    // npm publish refuses to start without some credential; a placeholder, which the proxy
    // replaces with the Secret's (the client's Authorization never reaches a Connector's tool).
    const publishRc = join(root, 'npmrc-publish');
    writeFileSync(publishRc, `${verdaccio.url.replace(/^http:/, '')}/:_authToken=placeholder-not-a-credential\n`);
    const pub = await run('npm', ['publish', '--registry', `${verdaccio.url}/`], { cwd: pkg, env: { ...env, npm_config_userconfig: publishRc }, timeoutMs: 90_000 });
    assert.equal(pub.code, 0, pub.stderr);
    const project = join(root, 'fwd-npm-project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), '{"name":"c","version":"0.0.0","private":true}');
    const since = proxy.logs().length;
    // A fresh cache: the tarball must come from the registry, not from the publish.
    const inst = await run('npm', ['install', 'fwd-pkg', '--registry', `${verdaccio.url}/`], { cwd: project, env: clientEnv('team/npm', TOKEN), timeoutMs: 90_000 });
    assert.equal(inst.code, 0, inst.stderr);
    assert.equal(readFileSync(join(project, 'node_modules', 'fwd-pkg', 'index.js'), 'utf8'), 'module.exports = "via http_proxy";\n');
    assert.match(proxy.logs().slice(since), /"connector":"team\/npm"[^\n]*"path":"http:\/\/127\.0\.0\.1:\d+\/fwd-pkg\/-\/fwd-pkg-2\.0\.0\.tgz","status":200/);
  });

  test('npm without the Connector in http_proxy reaches the registry without credentials: 401', T, async () => {
    const project = mkdtempSync(join(root, 'fwd-npm-denied-'));
    writeFileSync(join(project, 'package.json'), '{"name":"c","version":"0.0.0","private":true}');
    const r = await run('npm', ['install', 'fwd-pkg', '--registry', `${verdaccio.url}/`], { cwd: project, env: clientEnv('team/api', TOKEN), timeoutMs: 90_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /E401|401/);
  });

  test('pip install from the index\'s own address', T, async () => {
    const target = join(root, 'fwd-pip');
    const r = await run('python3', ['-m', 'pip', 'install', '--index-url', `${pypi.url}/simple/`, '--target', target, 'fwd-pkg'], { env: clientEnv('team/pypi', TOKEN), timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(target, 'fwd_pkg', '__init__.py'), 'utf8'), 'WHERE = "forward proxy"\n');
  });
});

describe('forward proxy mode with curl', () => {
  test('a target under the address path prefix gets the credentials', T, async () => {
    const r = await curl(`${api.origin}/gitlab/api/v4/projects?private=1`, proxyUrl('team/api', TOKEN));
    assert.equal(r.status, 200, r.stderr + r.body);
    assert.deepEqual(JSON.parse(r.body), { url: '/gitlab/api/v4/projects?private=1', authorization: `Bearer ${API_TOKEN}` });
  });

  test('the same origin outside the prefix, or a prefix look-alike, goes without credentials', T, async () => {
    for (const path of ['/other/x', '/gitlab-evil/x', '/']) {
      const r = await curl(`${api.origin}${path}`, proxyUrl('team/api', TOKEN));
      assert.equal(r.status, 200, r.body);
      assert.equal(JSON.parse(r.body).authorization, null, `${path} carried no credentials`);
    }
  });

  test('a URL address extension is a place the credentials may go', T, async () => {
    const r = await curl(`${mirror.origin}/mirror/pkg`, proxyUrl('team/api', TOKEN));
    assert.equal(JSON.parse(r.body).authorization, `Bearer ${API_TOKEN}`);
    const outside = await curl(`${mirror.origin}/elsewhere`, proxyUrl('team/api', TOKEN));
    assert.equal(JSON.parse(outside.body).authorization, null);
  });

  test('several Connectors in one http_proxy: each target gets its own Connector\'s credentials', T, async () => {
    const both = proxyUrl('team/git,team/api', TOKEN);
    const r = await curl(`${api.origin}/gitlab/x`, both);
    assert.equal(JSON.parse(r.body).authorization, `Bearer ${API_TOKEN}`);
    const g = await curl(`${gitOrigin}/repo.git/info/refs?service=git-upload-pack`, both);
    assert.equal(g.status, 200, 'the git server accepted the injected Basic credentials');
  });

  test('a target no Connector matches passes without credentials, with the client\'s own Authorization', T, async () => {
    const r = await curl(`${elsewhere.origin}/public`, proxyUrl('team/api', TOKEN), '-H', 'Authorization: Bearer clients-own-credential');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { url: '/public', authorization: 'Bearer clients-own-credential' });
    const seen = elsewhere.seen.at(-1)!;
    assert.equal(seen.headers['proxy-authorization'], undefined);
    assert.ok(!JSON.stringify(seen.rawHeaders).includes(TOKEN));
  });

  test('a redirect to another host is passed back, and following it carries no credentials', T, async () => {
    const r = await curl(`${api.origin}/gitlab/redirect`, proxyUrl('team/api', TOKEN), '-L');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { url: '/landed', authorization: null });
  });

  test('no proxy credentials → 407 with Proxy-Authenticate; a wrong token → 407; nothing reaches the tool', T, async () => {
    const before = api.seen.length;
    const none = await curl(`${api.origin}/gitlab/x`, `http://127.0.0.1:${proxy.port}`, '-i');
    assert.equal(none.status, 407);
    assert.match(none.body, /proxy-authenticate: Basic realm="connectors-proxy"/i);
    assert.match(none.body, /http_proxy=http:\/\/<namespace>%2F<connector>:<token>@<proxy>/);
    const wrong = await curl(`${api.origin}/gitlab/x`, proxyUrl('team/api', 'not-a-token'));
    assert.equal(wrong.status, 407);
    assert.ok(!wrong.body.includes('not-a-token'), 'the error body does not echo the token');
    assert.equal(api.seen.length, before);
  });

  test('a token not allowed on the matching Connector gets 403; not allowed on any listed one gets 403 for other targets too', T, async () => {
    const r = await curl(`${api.origin}/gitlab/x`, proxyUrl('team/api', OTHER_TOKEN));
    assert.equal(r.status, 403);
    assert.match(r.body, /team\/api/);
    const open = await curl(`${elsewhere.origin}/x`, proxyUrl('team/api', OTHER_TOKEN));
    assert.equal(open.status, 403, 'the proxy is not an open relay for tokens without a Connector');
  });

  test('a malformed Connector list is a 407 that says what is expected', T, async () => {
    const r = await curl(`${api.origin}/gitlab/x`, `http://no-slash:${TOKEN}@127.0.0.1:${proxy.port}`);
    assert.equal(r.status, 407);
    assert.match(r.body, /"no-slash" in the Proxy-Authorization user is not <namespace>\/<connector>/);
  });

  test('dot segments that would climb out of the prefix are refused', T, async () => {
    const raw = await rawProxyRequest(`GET ${api.origin}/gitlab/../admin HTTP/1.1`, basic('team/api', TOKEN));
    assert.match(raw, /^HTTP\/1\.1 400/);
  });

  test('CONNECT to a target that is no listed Connector\'s https origin is a plain tunnel: bytes relayed, no credentials added; 407 without proxy credentials', T, async () => {
    const before = elsewhere.seen.length;
    const r = await run('curl', ['-sS', '-i', '-p', '-x', proxyUrl('team/api', TOKEN), `http://127.0.0.1:${elsewhere.port}/through-a-tunnel`], { env: { PATH: process.env.PATH }, timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /^HTTP\/1\.1 200 Connection Established/);
    assert.equal(elsewhere.seen.length, before + 1);
    const seen = elsewhere.seen.at(-1)!;
    assert.equal(seen.url, '/through-a-tunnel');
    assert.equal(seen.headers.authorization, undefined, 'a tunnel carries no Connector credentials');
    assert.ok(!JSON.stringify(seen.rawHeaders).includes(TOKEN));
    const raw = await rawConnect();
    assert.match(raw, /^HTTP\/1\.1 407/);
    assert.match(raw, /proxy-authenticate: Basic/i);
    assert.match(raw, /https_proxy=http:\/\/<namespace>%2F<connector>:<token>@<proxy>/);
  });

  test('the log has no client token and no tool credential', () => {
    const logs = proxy.logs();
    for (const secret of [TOKEN, OTHER_TOKEN, API_TOKEN, GIT_CREDS.password, verdaccio.password, pypi.password, basic('team/api', TOKEN).slice(6)]) {
      assert.ok(!logs.includes(secret), `the log does not contain ${secret.slice(0, 4)}…`);
    }
  });
});

/** One absolute-form request with Proxy-Authorization, the answer's head as text. */
function rawProxyRequest(requestLine: string, proxyAuth: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const [, target] = requestLine.split(' ');
    const req = httpRequest({ host: '127.0.0.1', port: proxy.port, method: 'GET', path: target, headers: { 'proxy-authorization': proxyAuth, host: new URL(target!).host }, agent: false }, (res) => {
      res.resume();
      resolve(`HTTP/1.1 ${res.statusCode}`);
    });
    req.on('error', reject);
    req.end();
  });
}

function rawConnect(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(proxy.port, '127.0.0.1', () => {
      socket.write('CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n');
    });
    let text = '';
    socket.on('data', (c: Buffer) => { text += c.toString(); });
    socket.on('end', () => resolve(text));
    socket.on('error', (e) => (text === '' ? reject(e) : resolve(text)));
  });
}
