// The HTTPS forward proxy (`https_proxy`, CONNECT) with real clients against real HTTPS tools
// (test/support/https-tools.ts: nginx + git http-backend, docker-registry with an HTTPS token
// realm, Verdaccio, pypiserver behind nginx, all with one private CA the proxy trusts through
// the Connectors' spec.caCertSecretRef). Each client gets nothing but https_proxy (the
// Connector and the client's token) and its own trust setting pointing at the proxy's CA, as
// fetched from `GET /ca.crt`; no tool credential. The clients run outside the private
// /etc/hosts: the tool names resolve only for the proxy, so a client that went around it fails.
// What each tool saw is read on the tool's side (nginx access log, the registry's token
// service, Verdaccio's package metadata, a recording server).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import { TOOL_HOSTS } from './support/hosts';
import { startHttpsTools, type HttpsTools } from './support/https-tools';
import { writeWheel } from './support/package-registries';
import { MAIN, REPO_ROOT, startProxy, type ProxyProcess } from './support/proxy';
import { run, type RunResult } from './support/run';
import { caSecretYaml, httpsGet, startHttpsTool, TestCa, type HttpsTool } from './support/test-ca';

const CRANE = join(REPO_ROOT, '.cache', 'crane');
const TOKEN = 'good-token-123';
const OTHER_TOKEN = 'other-token-456';
const API_TOKEN = 'api-tool-token-Q7x';
const WS_TOKEN = 'ws-tool-token-W5s';
/** Test names served only to the proxy (through its private /etc/hosts). */
const HOSTS = { api: 'api.tools.test', ws: 'ws.tools.test', elsewhere: 'elsewhere.tools.test', untrusted: 'untrusted.tools.test' } as const;

let tools: HttpsTools;
let skipReason: string | undefined;
let proxy: ProxyProcess;
/** A second proxy with enable-connect-tunnels=false. */
let strict: ProxyProcess;
let proxyCaPem: string;
let proxyCaFile: string;
let proxyCaDir: string;
let otherCa: TestCa;
let api: HttpsTool;
let elsewhere: HttpsTool;
let untrusted: HttpsTool;
let wsTool: HttpsTool;
const apiSeen: { url: string; headers: IncomingMessage['headers'] }[] = [];
const elsewhereSeen: { url: string; headers: IncomingMessage['headers'] }[] = [];
const untrustedSeen: { url: string; headers: IncomingMessage['headers'] }[] = [];
const wsSeen: { authorization: string | undefined }[] = [];
/** Everything clients printed or received: scanned for tool credentials at the end. */
const clientSide: string[] = [];

const origin = (host: string, port: number): string => `https://${host}:${port}`;

function record(seen: { url: string; headers: IncomingMessage['headers'] }[]) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`hello from ${req.headers.host}${req.url}\n`);
    });
  };
}

function manifests(): string {
  const g = tools.git!;
  const reg = tools.registry!;
  const npm = tools.npm!;
  const pypi = tools.pypi!;
  const cls = (name: string, secretType: string): string => `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: ${name}}
spec:
  proxy: {}
  address: {type: string}
  auth: {types: [{name: auth, secretType: ${secretType}}]}`;
  const connector = (name: string, className: string, address: string, secretType: string, data: Record<string, string>, ns = 'team'): string => `apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: ${name}, namespace: ${ns}}
spec:
  connectorClassName: ${className}
  address: ${address}
  auth: {name: auth, secretRef: {name: ${name}-secret}}
  caCertSecretRef: {name: tools-ca}
---
apiVersion: v1
kind: Secret
metadata: {name: ${name}-secret, namespace: ${ns}}
type: ${secretType}
stringData: ${JSON.stringify(data)}`;
  const BASIC = 'kubernetes.io/basic-auth';
  const BEARER = 'connectors.cpaas.io/bearer-token';
  const OCI = 'cpaas.io/distribution-registry-token';
  return [
    cls('https-basic', BASIC), cls('https-bearer', BEARER), cls('https-oci', OCI),
    caSecretYaml('tools-ca', 'team', { 'ca.crt': tools.ca.cert }),
    caSecretYaml('tools-ca', 'other', { 'ca.crt': tools.ca.cert }),
    connector('git', 'https-basic', g.url, BASIC, { username: g.username, password: g.password }),
    connector('npm', 'https-basic', npm.url, BASIC, { username: npm.username, password: npm.password }),
    connector('pypi', 'https-basic', pypi.url, BASIC, { username: pypi.username, password: pypi.password }),
    connector('registry', 'https-oci', reg.registry.url, OCI, { username: reg.tokens.username, password: reg.tokens.password }),
    // Only the /v1 prefix of this origin is the Connector's: other paths go without credentials.
    connector('api', 'https-bearer', `${origin(HOSTS.api, api.port)}/v1`, BEARER, { token: API_TOKEN }),
    connector('ws', 'https-bearer', origin(HOSTS.ws, wsTool.port), BEARER, { token: WS_TOKEN }),
    // Its certificate comes from a CA that tools-ca does not hold.
    connector('untrusted', 'https-bearer', origin(HOSTS.untrusted, untrusted.port), BEARER, { token: 'untrusted-tool-token' }),
    connector('git', 'https-basic', g.url, BASIC, { username: 'other-team-user', password: 'other-team-pw' }, 'other'),
  ].join('\n---\n') + '\n';
}

/** `http://<ns>%2F<name>,...:<token>@127.0.0.1:<port>`, as a user writes https_proxy. */
function proxyUrl(connectors: string, token: string, p: ProxyProcess = proxy): string {
  return `http://${connectors.replace(/\//g, '%2F')}:${token}@127.0.0.1:${p.port}`;
}

/** The client's environment: https_proxy (both cases), HOME in the test folder, nothing else from the machine. */
function proxyEnv(connectors: string, token = TOKEN, more: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const url = proxyUrl(connectors, token);
  return { PATH: process.env.PATH, HOME: join(tools.dir, 'home'), https_proxy: url, HTTPS_PROXY: url, no_proxy: '', NO_PROXY: '', ...more };
}

/** A real client, outside the private /etc/hosts: the tool names resolve only through the proxy. */
async function client(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<RunResult> {
  const r = await run(cmd, args, { env, cwd, timeoutMs: 180_000 });
  clientSide.push(r.stdout.toString(), r.stderr);
  return r;
}

function ok(r: RunResult, what: string): string {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stderr}\n${r.stdout.toString()}\n--- proxy:\n${proxy.logs().slice(-3000)}`);
  return r.stdout.toString();
}

interface Tunnel {
  /** The proxy's answer to CONNECT: status line and headers. */
  readonly head: string;
  readonly status: number;
  /** The proxy's whole answer when it refused (head and body). */
  readonly refusal: string;
  /** The socket after a 200 (bytes after the head unshifted). */
  readonly socket: Socket;
}

/** A raw `CONNECT authority` with optional Proxy-Authorization; resolves with the proxy's answer. */
function openTunnel(authority: string, proxyAuth: string | undefined, p: ProxyProcess = proxy): Promise<Tunnel> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(p.port, '127.0.0.1', () => {
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n${proxyAuth === undefined ? '' : `proxy-authorization: ${proxyAuth}\r\n`}\r\n`);
    });
    let buf = Buffer.alloc(0);
    let headDone: { head: string; status: number } | undefined;
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0 || headDone) return;
      const head = buf.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      headDone = { head, status };
      if (status === 200) {
        socket.off('data', onData);
        const rest = buf.subarray(end + 4);
        if (rest.length > 0) socket.unshift(rest);
        resolve({ head, status, refusal: '', socket });
      }
    };
    socket.on('data', onData);
    socket.on('close', () => {
      if (headDone && headDone.status !== 200) resolve({ ...headDone, refusal: buf.toString('utf8'), socket });
      else if (!headDone) reject(new Error(`the proxy closed without answering CONNECT ${authority}: ${buf.toString()}`));
    });
    socket.on('error', (e) => { if (!headDone) reject(e); });
  });
}

/** A TLS handshake inside a tunnel (no verification: the test reads what was presented). */
function handshake(socket: Socket, servername: string | undefined): Promise<{ tls: TLSSocket; peer: PeerCertificate } | { error: string }> {
  return new Promise((resolve) => {
    const tls = tlsConnect({ socket, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    tls.once('secureConnect', () => resolve({ tls, peer: tls.getPeerCertificate() }));
    tls.once('error', (e) => resolve({ error: e.message }));
  });
}

/** One HTTP/1.1 request over an established TLS socket; the raw answer. */
function rawRequest(tls: TLSSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    tls.on('data', (c: Buffer) => { out += c.toString(); });
    tls.on('end', () => resolve(out));
    tls.on('close', () => resolve(out));
    tls.write(text);
  });
}

const basicAuth = (user: string, password: string): string => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

before(async () => {
  tools = await startHttpsTools({ extraHosts: Object.values(HOSTS) });
  if (!tools.hosts) {
    skipReason = tools.hostsUnavailable ?? 'no private /etc/hosts';
    return;
  }
  otherCa = await TestCa.create('not-the-tools-ca');
  const [apiPair, elsewherePair, wsPair, untrustedPair] = await Promise.all([
    tools.ca.issue([HOSTS.api]), tools.ca.issue([HOSTS.elsewhere]), tools.ca.issue([HOSTS.ws]), otherCa.issue([HOSTS.untrusted]),
  ]);
  api = await startHttpsTool(apiPair, record(apiSeen));
  elsewhere = await startHttpsTool(elsewherePair, record(elsewhereSeen));
  untrusted = await startHttpsTool(untrustedPair, record(untrustedSeen));
  wsTool = await startHttpsTool(wsPair, (_req, res) => { res.writeHead(426).end(); });
  const wss = new WebSocketServer({ server: wsTool.server });
  wss.on('connection', (ws, req) => {
    wsSeen.push({ authorization: req.headers.authorization });
    ws.on('message', (m) => ws.send(`echo: ${m.toString()}`));
  });
  await tools.git!.createRepo('demo', { 'README.md': 'hello through https_proxy\n' });
  proxyCaDir = join(tools.dir, 'proxy-ca');
  const common = { manifests: { 'tools.yaml': manifests() }, wrap: tools.hosts.wrap };
  const args = ['--enable-custom-ca-certs', '--proxy-ca-dir', proxyCaDir];
  [proxy, strict] = await Promise.all([
    startProxy({ ...common, args }),
    startProxy({ ...common, args: [...args, '--enable-connect-tunnels=false'] }),
  ]);
  // What a client does first: fetch the CA from the proxy's own host.
  const r = await fetch(proxy.url('/ca.crt'));
  assert.equal(r.status, 200);
  proxyCaPem = await r.text();
  proxyCaFile = join(tools.dir, 'proxy-ca.crt');
  writeFileSync(proxyCaFile, proxyCaPem);
  mkdirSync(join(tools.dir, 'home'), { recursive: true });
}, { timeout: 240_000 });

after(async () => {
  await Promise.all([proxy?.stop(), strict?.stop(), api?.close(), elsewhere?.close(), untrusted?.close(), wsTool?.close()]);
  await tools?.stop();
  otherCa?.remove();
});

const T = { timeout: 240_000 };

describe('the proxy CA', () => {
  test('GET /ca.crt: the CA certificate (PEM, CA:TRUE), no key; both proxies on one --proxy-ca-dir serve the same one', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const cert = new X509Certificate(proxyCaPem);
    assert.equal(cert.ca, true);
    assert.doesNotMatch(proxyCaPem, /PRIVATE KEY/);
    assert.equal(await (await fetch(strict.url('/ca.crt'))).text(), proxyCaPem);
    const head = await fetch(proxy.url('/ca.crt'), { method: 'HEAD' });
    assert.equal(head.headers.get('content-type'), 'application/x-pem-file');
  });
});

describe('real clients through https_proxy (intercepted Connector origins)', () => {
  test('git clone and push with GIT_SSL_CAINFO=ca.crt: nginx saw the Secret\'s user on every request, the client held no tool password', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const g = tools.git!;
    const before = g.accessLog().length;
    const dest = join(tools.dir, 'clone');
    const env = proxyEnv('team/git', TOKEN, {
      GIT_SSL_CAINFO: proxyCaFile, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0',
      GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x.test', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x.test',
    });
    ok(await client('git', ['clone', '-q', `${g.url}/demo.git`, dest], env), 'git clone');
    assert.equal(readFileSync(join(dest, 'README.md'), 'utf8'), 'hello through https_proxy\n');
    writeFileSync(join(dest, 'pushed.txt'), 'pushed through https_proxy\n');
    ok(await client('git', ['-C', dest, 'add', '-A'], env), 'git add');
    ok(await client('git', ['-C', dest, 'commit', '-q', '-m', 'pushed through https_proxy'], env), 'git commit');
    ok(await client('git', ['-C', dest, 'push', '-q', 'origin', 'main'], env), 'git push');
    assert.deepEqual(await g.log('demo'), ['pushed through https_proxy', 'seed demo']);
    const lines = g.accessLog().slice(before);
    assert.ok(lines.some((l) => /^POST \/demo\.git\/git-upload-pack 200 git-tool-user$/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /^POST \/demo\.git\/git-receive-pack 200 git-tool-user$/.test(l)), lines.join('\n'));
    assert.ok(lines.every((l) => / (git-tool-user|-)$/.test(l)), lines.join('\n'));
    await proxy.waitForLog(/"way":"connect","connector":"team\/git"[^\n]*"path":"\/demo\.git\/git-receive-pack","status":200/);
  });

  test('git with another team\'s token: the CONNECT is refused (403), nothing reaches nginx', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const g = tools.git!;
    const before = g.accessLog().length;
    const r = await client('git', ['ls-remote', `${g.url}/demo.git`], proxyEnv('team/git', OTHER_TOKEN, { GIT_SSL_CAINFO: proxyCaFile, GIT_TERMINAL_PROMPT: '0' }));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /403/);
    assert.equal(g.accessLog().length, before);
  });

  test('curl: under the address prefix the Connector\'s token replaces the client\'s Authorization; outside it none is added (same CA trust)', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const url = origin(HOSTS.api, api.port);
    const env = proxyEnv('team/api');
    const under = await client('curl', ['-sS', '-v', '--cacert', proxyCaFile, '-H', `Authorization: Bearer ${TOKEN}`, `${url}/v1/items?page=2`], env);
    assert.equal(ok(under, 'curl under the prefix'), `hello from ${HOSTS.api}:${api.port}/v1/items?page=2\n`);
    assert.equal(apiSeen.at(-1)!.headers.authorization, `Bearer ${API_TOKEN}`);
    assert.equal(apiSeen.at(-1)!.headers['proxy-authorization'], undefined);
    assert.equal(apiSeen.at(-1)!.headers['x-forwarded-proto'], 'https');
    // The leaf names the host and is signed by the proxy CA (curl verified it against ca.crt).
    assert.match(under.stderr, new RegExp(`subjectAltName: host "${HOSTS.api.replace(/\./g, '\\.')}" matched`));
    const outside = await client('curl', ['-sS', '--cacert', proxyCaFile, `${url}/v1-not-under/x`], env);
    ok(outside, 'curl outside the prefix');
    assert.equal(apiSeen.at(-1)!.url, '/v1-not-under/x');
    assert.equal(apiSeen.at(-1)!.headers.authorization, undefined, 'no credentials outside the prefix');
    // Several requests over one kept-alive tunnel (curl reuses the connection for a second URL).
    const two = await client('curl', ['-sS', '-v', '--cacert', proxyCaFile, `${url}/v1/a`, `${url}/v1/b`], env);
    ok(two, 'curl two URLs');
    assert.match(two.stderr, /Re-using existing connection|Reusing existing/i);
    assert.deepEqual(apiSeen.slice(-2).map((s) => [s.url, s.headers.authorization]), [['/v1/a', `Bearer ${API_TOKEN}`], ['/v1/b', `Bearer ${API_TOKEN}`]]);
  });

  test('npm publish and install with https-proxy and cafile: npm whoami through the proxy is the Secret\'s user', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const npm = tools.npm!;
    const userconfig = join(tools.dir, 'npmrc');
    // No registry login: the proxy, its CA and the registry's own URL. npm publish refuses to
    // start without a token of some kind: the client's own, which the proxy replaces.
    const nerf = `${npm.url.replace(/^https:/, '')}/`;
    writeFileSync(userconfig, `registry=${npm.url}/\nhttps-proxy=${proxyUrl('team/npm', TOKEN)}\ncafile=${proxyCaFile}\n${nerf}:_authToken=${TOKEN}\naudit=false\nfund=false\nupdate-notifier=false\n`);
    const env = { PATH: process.env.PATH, HOME: join(tools.dir, 'home'), npm_config_userconfig: userconfig, npm_config_globalconfig: '/dev/null', npm_config_cache: join(tools.dir, 'npm-cache') };
    const pkg = join(tools.dir, 'proxied-pkg');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'proxied-pkg', version: '1.0.0', main: 'index.js' }));
    writeFileSync(join(pkg, 'index.js'), 'module.exports = "published through https_proxy";\n');
    ok(await client('npm', ['publish'], env, pkg), 'npm publish');
    const project = join(tools.dir, 'npm-project');
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, 'package.json'), '{"name":"p","version":"0.0.0","private":true}');
    ok(await client('npm', ['install', 'proxied-pkg'], env, project), 'npm install');
    assert.equal(readFileSync(join(project, 'node_modules', 'proxied-pkg', 'index.js'), 'utf8'), 'module.exports = "published through https_proxy";\n');
    // Who Verdaccio says the caller is, asked through the proxy: the Secret's user. The
    // client's own token, sent straight to Verdaccio, makes nobody.
    assert.equal(ok(await client('npm', ['whoami'], env, project), 'npm whoami').trim(), npm.username);
    assert.doesNotMatch((await httpsGet(`${npm.url}/-/whoami`, tools.ca.cert, { authorization: `Bearer ${TOKEN}` })).text, new RegExp(npm.username));
  });

  test('pip install with https_proxy and --cert: pypiserver (login required) served the wheel', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const pypi = tools.pypi!;
    await writeWheel(pypi.dir, 'proxied-demo', '1.0.0', 'GREETING = "installed through https_proxy"\n');
    const target = join(tools.dir, 'pip-target');
    const env = proxyEnv('team/pypi', TOKEN, { PIP_CONFIG_FILE: '/dev/null', PIP_NO_CACHE_DIR: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' });
    ok(await client('python3', ['-m', 'pip', 'install', '--cert', proxyCaFile, '--index-url', `${pypi.url}/simple/`, '--target', target, 'proxied-demo'], env), 'pip install');
    assert.match(readFileSync(join(target, 'proxied_demo', '__init__.py'), 'utf8'), /installed through https_proxy/);
    // PIP_CERT works the same way.
    const target2 = join(tools.dir, 'pip-target-2');
    ok(await client('python3', ['-m', 'pip', 'install', '--index-url', `${pypi.url}/simple/`, '--target', target2, 'proxied-demo'], { ...env, PIP_CERT: proxyCaFile }), 'pip install (PIP_CERT)');
    // Without the proxy's credentials pypiserver refuses the same index.
    assert.equal((await httpsGet(`${pypi.url}/simple/`, tools.ca.cert)).status, 401);
  });

  test('crane push and copy, skopeo copy (Go clients: SSL_CERT_FILE, --cert-dir): the token service saw only the Secret\'s login', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const reg = tools.registry!;
    const host = `${TOOL_HOSTS.registry}:${reg.registry.port}`;
    const refusedBefore = reg.tokens.refused;
    const layerDir = join(tools.dir, 'layer');
    mkdirSync(layerDir, { recursive: true });
    writeFileSync(join(layerDir, 'hello.txt'), 'hello through https_proxy\n');
    const tar = join(tools.dir, 'layer.tar');
    ok(await run('tar', ['-cf', tar, '-C', layerDir, '.']), 'tar');
    // An empty docker config: the clients hold no registry login.
    const docker = join(tools.dir, 'docker');
    mkdirSync(docker, { recursive: true });
    writeFileSync(join(docker, 'config.json'), '{"auths":{}}');
    const env = proxyEnv('team/registry', TOKEN, { SSL_CERT_FILE: proxyCaFile, DOCKER_CONFIG: docker });
    ok(await client(CRANE, ['append', '--oci-empty-base', '-f', tar, '-t', `${host}/team/proxied:v1`], env), 'crane append (push)');
    ok(await client(CRANE, ['copy', `${host}/team/proxied:v1`, `${host}/team/proxied-copy:v1`], env), 'crane copy');
    const certDir = join(tools.dir, 'proxy-certs.d');
    mkdirSync(certDir, { recursive: true });
    copyFileSync(proxyCaFile, join(certDir, 'ca.crt'));
    ok(await client('skopeo', ['copy', '--src-cert-dir', certDir, '--dest-cert-dir', certDir, `docker://${host}/team/proxied:v1`, `docker://${host}/team/proxied-skopeo:v1`],
      { ...env, REGISTRY_AUTH_FILE: join(docker, 'config.json') }), 'skopeo copy');
    const out = ok(await client(CRANE, ['manifest', `${host}/team/proxied-skopeo:v1`], env), 'crane manifest');
    assert.equal((JSON.parse(out) as { layers: unknown[] }).layers.length, 1);
    assert.ok(reg.tokens.count('repository:team/proxied-copy:pull,push') + reg.tokens.count('repository:team/proxied-copy:push,pull') > 0
      || [...reg.tokens.counts.keys()].some((k) => k.includes('team/proxied-copy')), [...reg.tokens.counts.keys()].join(' | '));
    assert.ok([...reg.tokens.counts.keys()].some((k) => k.includes('team/proxied-skopeo')), 'skopeo\'s push ran the token flow');
    assert.equal(reg.tokens.refused, refusedBefore, 'every token request carried the Secret\'s login');
    assert.equal(reg.tokens.anonymousRequests, 0);
  });

  test('WebSocket (Upgrade) inside a tunnel: the server saw the Connector\'s token, frames pass both ways', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const authority = `${HOSTS.ws}:${wsTool.port}`;
    const tunnel = await openTunnel(authority, basicAuth('team/ws', TOKEN));
    assert.equal(tunnel.status, 200);
    const ws = new WebSocket(`wss://${authority}/echo`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      createConnection: () => tlsConnect({ socket: tunnel.socket, servername: HOSTS.ws, ca: proxyCaPem }),
    });
    const reply = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send('ping through the tunnel'));
      ws.once('message', (m) => resolve(m.toString()));
      ws.once('error', reject);
    });
    ws.close();
    assert.equal(reply, 'echo: ping through the tunnel');
    assert.equal(wsSeen.at(-1)!.authorization, `Bearer ${WS_TOKEN}`);
  });
});

describe('refusals on the wire', () => {
  test('407 without proxy credentials and 403 for another team\'s token, before any tunnel byte: the tool saw no connection', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const authority = `${HOSTS.api}:${api.port}`;
    const handshakes = api.handshakes;
    const none = await openTunnel(authority, undefined);
    assert.equal(none.status, 407);
    assert.match(none.head, /proxy-authenticate: Basic realm="connectors-proxy"/i);
    assert.match(none.refusal, /https_proxy=http:\/\/<namespace>%2F<connector>:<token>@<proxy>/);
    const bad = await openTunnel(authority, basicAuth('team/api', 'not-a-token-000'));
    assert.equal(bad.status, 407);
    const other = await openTunnel(authority, basicAuth('team/api', OTHER_TOKEN));
    assert.equal(other.status, 403);
    assert.match(other.refusal, /forbidden.*team\/api/);
    // Nothing after the answer: the proxy closed (no 200, no TLS).
    assert.doesNotMatch(other.refusal, /Connection Established/);
    // curl says the same.
    const r = await client('curl', ['-sS', '--cacert', proxyCaFile, `https://${authority}/v1/x`], proxyEnv('team/api', OTHER_TOKEN));
    assert.equal(r.code, 56, r.stderr);
    assert.match(r.stderr, /CONNECT tunnel failed, response 403/);
    assert.equal(api.handshakes, handshakes, 'the tool saw no TLS handshake');
    clientSide.push(none.refusal, bad.refusal, other.refusal);
  });

  test('only listed Connectors\' origins are intercepted: any other target is a plain tunnel, the client meets the real server\'s certificate', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const proxyCa = new X509Certificate(proxyCaPem);
    const toolsCa = new X509Certificate(tools.ca.cert);
    const presented = async (authority: string, connectors: string, host: string): Promise<X509Certificate> => {
      const tunnel = await openTunnel(authority, basicAuth(connectors, TOKEN));
      assert.equal(tunnel.status, 200, tunnel.refusal);
      const h = await handshake(tunnel.socket, host);
      assert.ok('tls' in h, 'error' in h ? h.error : '');
      h.tls.destroy();
      return new X509Certificate(h.peer.raw);
    };
    // A Connector origin: a leaf of the proxy CA.
    const leaf = await presented(`${HOSTS.api}:${api.port}`, 'team/api', HOSTS.api);
    assert.ok(leaf.checkIssued(proxyCa) && leaf.verify(proxyCa.publicKey), 'the proxy\'s leaf');
    assert.ok(leaf.checkHost(HOSTS.api));
    // No Connector's origin: the server's own certificate, from the tools CA.
    const real = await presented(`${HOSTS.elsewhere}:${elsewhere.port}`, 'team/api', HOSTS.elsewhere);
    assert.ok(real.checkIssued(toolsCa) && !real.checkIssued(proxyCa), 'the real server\'s certificate');
    // Another Connector's origin that this client did not list: tunnelled too.
    const unlisted = await presented(`${HOSTS.ws}:${wsTool.port}`, 'team/api', HOSTS.ws);
    assert.ok(unlisted.checkIssued(toolsCa), 'not intercepted for a Connector the client did not list');
    // curl: the tunnel works with the server's CA, not with the proxy's; no credentials added, the client's own pass.
    const env = proxyEnv('team/api');
    const url = `${origin(HOSTS.elsewhere, elsewhere.port)}/tunnelled`;
    const viaTools = await client('curl', ['-sS', '--cacert', tools.caFile, '-H', 'Authorization: Bearer clients-own-credential', url], env);
    assert.equal(ok(viaTools, 'curl through a plain tunnel'), `hello from ${HOSTS.elsewhere}:${elsewhere.port}/tunnelled\n`);
    assert.equal(elsewhereSeen.at(-1)!.headers.authorization, 'Bearer clients-own-credential');
    assert.equal(elsewhereSeen.at(-1)!.headers.via, undefined, 'bytes relayed untouched');
    const viaProxyCa = await client('curl', ['-sS', '--cacert', proxyCaFile, url], env);
    assert.equal(viaProxyCa.code, 60, 'the proxy CA does not vouch for a tunnelled server');
  });

  test('enable-connect-tunnels=false: other targets 403 naming the flag; Connector origins still intercepted', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const off = await openTunnel(`${HOSTS.elsewhere}:${elsewhere.port}`, basicAuth('team/api', TOKEN), strict);
    assert.equal(off.status, 403);
    assert.match(off.refusal, /enable-connect-tunnels=false/);
    clientSide.push(off.refusal);
    const r = await run('curl', ['-sS', '--cacert', proxyCaFile, `${origin(HOSTS.api, api.port)}/v1/strict`], { env: { ...proxyEnv('team/api'), https_proxy: proxyUrl('team/api', TOKEN, strict), HTTPS_PROXY: '' }, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(apiSeen.at(-1)!.headers.authorization, `Bearer ${API_TOKEN}`);
  });

  test('an SNI other than the CONNECT host fails the handshake; no SNI (the client asked for a name) gets the CONNECT host\'s leaf', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const seen = apiSeen.length;
    const tunnel = await openTunnel(`${HOSTS.api}:${api.port}`, basicAuth('team/api', TOKEN));
    assert.equal(tunnel.status, 200);
    const h = await handshake(tunnel.socket, HOSTS.elsewhere);
    assert.ok('error' in h, 'the handshake failed');
    const plain = await openTunnel(`${HOSTS.api}:${api.port}`, basicAuth('team/api', TOKEN));
    const h2 = await handshake(plain.socket, undefined);
    assert.ok('tls' in h2);
    assert.ok(new X509Certificate(h2.peer.raw).checkHost(HOSTS.api));
    h2.tls.destroy();
    assert.equal(apiSeen.length, seen);
  });

  test('a Host other than the CONNECT authority → 421, nothing sent to either host', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const seen = [apiSeen.length, elsewhereSeen.length];
    const tunnel = await openTunnel(`${HOSTS.api}:${api.port}`, basicAuth('team/api', TOKEN));
    const h = await handshake(tunnel.socket, HOSTS.api);
    assert.ok('tls' in h);
    const answer = await rawRequest(h.tls, `GET /v1/x HTTP/1.1\r\nhost: ${HOSTS.elsewhere}:${elsewhere.port}\r\nconnection: close\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 421/);
    assert.match(answer, new RegExp(`opened \\(CONNECT\\) for ${HOSTS.api.replace(/\./g, '\\.')}:${api.port}`));
    clientSide.push(answer);
    // curl with a Host header of its own: the same.
    const r = await client('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', proxyCaFile, '-H', `Host: ${HOSTS.elsewhere}`, `${origin(HOSTS.api, api.port)}/v1/x`], proxyEnv('team/api'));
    assert.equal(r.stdout.toString(), '421');
    assert.deepEqual([apiSeen.length, elsewhereSeen.length], seen);
  });

  test('a tool certificate the Connector does not trust → 502 naming caCertSecretRef, the label and the flag (never sent without verification)', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const r = await client('curl', ['-sS', '-i', '--cacert', proxyCaFile, `${origin(HOSTS.untrusted, untrusted.port)}/x`], proxyEnv('team/untrusted'));
    const out = ok(r, 'curl');
    assert.match(out, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 502 /);
    assert.match(out, /not trusted/);
    assert.match(out, /spec\.caCertSecretRef\.name/);
    assert.match(out, /connectors\.cpaas\.io\/ca-cert="true"/);
    assert.match(out, /enable-custom-ca-certs/);
    assert.equal(untrustedSeen.length, 0, 'no request reached the untrusted server');
  });
});

describe('the built-in configuration files', () => {
  test('set -a; . .env plus ca.crt is all git needs to clone an https Connector origin through the proxy', T, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const dir = join(tools.dir, 'cfg');
    // The CLI against this proxy; the proxy URL in .env is --public-url's origin: this proxy's address.
    const cli = await run(process.execPath, [MAIN, 'configurations', '--proxy', proxy.url(''), '--connectors', 'team/git', '--token', TOKEN, '--dir', dir], { timeoutMs: 60_000 });
    assert.equal(cli.code, 0, cli.stderr);
    const files = readdirSync(dir).sort();
    for (const f of ['.env', 'ca.crt', 'ca.cert', 'context.proxy.caCert', 'https.proxy']) assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
    for (const f of ['ca.crt', 'ca.cert', 'context.proxy.caCert']) assert.equal(readFileSync(join(dir, f), 'utf8'), proxyCaPem, f);
    const envText = readFileSync(join(dir, '.env'), 'utf8');
    assert.match(envText, /^https_proxy=http:\/\/team%2Fgit:good-token-123@/m);
    const g = tools.git!;
    const before = g.accessLog().length;
    // The proxy's public URL in .env is http://c-git.team.proxy.test: make it this proxy's address.
    const proxyHostEnv = envText.replace(/@[^\s/]+/g, `@127.0.0.1:${proxy.port}`);
    writeFileSync(join(dir, '.env'), proxyHostEnv, { mode: 0o600 });
    const dest = join(tools.dir, 'clone-via-env');
    const r = await client('sh', ['-c', `set -a; . "${dir}/.env"; set +a; GIT_SSL_CAINFO="${dir}/ca.crt" git clone -q "${g.url}/demo.git" "${dest}"`],
      { PATH: process.env.PATH, HOME: join(tools.dir, 'home'), GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' });
    ok(r, 'git clone with .env and ca.crt');
    assert.ok(readFileSync(join(dest, 'README.md'), 'utf8').startsWith('hello through https_proxy'));
    assert.ok(g.accessLog().slice(before).some((l) => /git-upload-pack 200 git-tool-user$/.test(l)));
  });
});

describe('secrets stay where they belong', () => {
  test('no tool credential reached a client; no client token, Secret value, registry token or CA key in the proxy logs', (t) => {
    if (skipReason) return t.skip(skipReason);
    const reg = tools.registry!;
    const toolSecrets = [
      tools.git!.password, tools.npm!.password, tools.pypi!.password, reg.tokens.password, API_TOKEN, WS_TOKEN, 'untrusted-tool-token',
      Buffer.from(`${tools.git!.username}:${tools.git!.password}`).toString('base64'),
      Buffer.from(`${tools.npm!.username}:${tools.npm!.password}`).toString('base64'),
      ...reg.tokens.issued.map((i) => i.token),
    ];
    const seenByClients = clientSide.join('\n');
    for (const s of toolSecrets) assert.ok(!seenByClients.includes(s), `a client saw a tool credential (${s.slice(0, 4)}…)`);
    // The CA key: every line of its base64 body.
    const bundle = readFileSync(join(proxyCaDir, readdirSync(proxyCaDir).find((f) => f !== 'ca.crt')!), 'utf8');
    const keyBody = /-----BEGIN [A-Z ]*PRIVATE KEY-----\n([^-]+)-----END/.exec(bundle)?.[1];
    assert.ok(keyBody, 'the CA bundle holds a key');
    const keyLines = keyBody.split('\n').filter((l) => l.length >= 16);
    for (const p of [proxy, strict]) {
      const logs = p.logs();
      for (const s of [TOKEN, OTHER_TOKEN, ...toolSecrets, basicAuth('team/git', TOKEN).slice(6)]) {
        assert.ok(!logs.includes(s), `the proxy log holds a secret (${s.slice(0, 4)}…)`);
      }
      for (const l of keyLines) assert.ok(!logs.includes(l), 'the proxy log holds a line of the CA key');
    }
    for (const l of keyLines) assert.ok(!seenByClients.includes(l), 'a client saw a line of the CA key');
  });
});

