// The Connectors API gateway end to end: the proxy binary in Kubernetes mode, as its own
// ServiceAccount (deploy/rbac.yaml), against a real API server with real RBAC for every verb,
// both feature flags off and on; real `git` through the gateway (clone = GET + POST, push = a
// large chunked POST) to git http-backend behind `x-provider-type: proxy`; a tool API that
// requires the Connector's credentials; a ConnectorClass API service behind
// `x-provider-type: api` that checks the three X-Plugin headers; refusals as Status bodies.
// Three proxies, one per flag setting:
//   off    no flags (writes status.api.path; a test then flips them in the connectors-config ConfigMap)
//   write  --enable-connector-apis-write-passthrough
//   on     both flags, by environment variable
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gitHttpHandler } from '../tools/git-http';
import { startKube, type KubeCluster } from './support/kube';
import { freePort } from './support/package-registries';
import { REPO_ROOT, startProxy, type ProxyProcess } from './support/proxy';
import { run, type RunResult } from './support/run';
import { startUpstream, type Upstream } from './support/upstream';

const NS = 'team';
const API = '/apis/connectors.alauda.io/v1alpha1';
const MiB = 1024 * 1024;
const BIG = 24 * MiB;
const T = { timeout: 180_000 };
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const docs = (...d: string[]): string => d.join('\n---\n');
const deploy = (f: string): string => readFileSync(join(REPO_ROOT, 'deploy', f), 'utf8');

const GL = { username: 'gl-tool-user', password: `gl-pw-${randomBytes(6).toString('hex')}` };
const GIT = { username: 'git-tool-user', password: `git-pw-${randomBytes(6).toString('hex')}` };
/** Every client token and Secret value: none may reach a tool, a log line or an error body. */
const sensitive: string[] = [
  GL.password, GIT.password, b64(`${GL.username}:${GL.password}`), b64(`${GIT.username}:${GIT.password}`),
  // The Secret as the class API service gets it: its values base64, and the X-Plugin-Secret header.
  b64(GL.password), b64(JSON.stringify({ password: b64(GL.password), username: b64(GL.username) })),
];

let kube: KubeCluster;
let tool: Upstream;
let ext: Upstream;
let classApi: Upstream;
let gitServer: Upstream;
let deadPort: number;
let tmp: string;
let gitEnv: NodeJS.ProcessEnv;
const proxies: Record<'off' | 'write' | 'on', ProxyProcess> = {} as Record<'off' | 'write' | 'on', ProxyProcess>;
const tokens: Record<string, string> = {};
/** What the class API service saw, decoded. */
const pluginSeen: Array<{ url: string; meta: unknown; auth: string; secret: Record<string, string>; authorization?: string }> = [];

// ---- the tools ---------------------------------------------------------------------------

/**
 * A tool's HTTP API: every request must carry the Connector's Basic credentials. It hashes
 * the request body as it streams in, answers `GET .../big?bytes=N` with N bytes, anything
 * else with what it saw (method, path, body size and hash), POST with 201.
 */
function toolHandler(name: string, creds: { username: string; password: string }) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.headers.authorization !== `Basic ${b64(`${creds.username}:${creds.password}`)}`) {
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="tool"' }).end('{"message":"401 Unauthorized"}\n');
      return;
    }
    const big = /\/big\?bytes=(\d+)$/.exec(req.url ?? '');
    if (req.method === 'GET' && big) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': big[1] });
      let left = Number(big[1]);
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    const h = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => { h.update(c); bytes += c.length; });
    req.on('end', () => {
      const body = JSON.stringify({ tool: name, method: req.method, path: req.url, bytes, sha256: h.digest('hex'), contentType: req.headers['content-type'] ?? null });
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json', 'x-tool': name });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  };
}

/** The GitLab class's API service: answers only with the three X-Plugin headers, as the docs define them. */
function classApiHandler(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  const status = (code: number, reason: string, message: string): void => {
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code }));
  };
  const h = (n: string): string | undefined => req.headers[n] as string | undefined;
  const [meta, auth, secret] = [h('x-plugin-meta'), h('x-plugin-auth'), h('x-plugin-secret')];
  if (meta === undefined || auth === undefined || secret === undefined) return status(400, 'BadRequest', 'X-Plugin-Meta, X-Plugin-Auth and X-Plugin-Secret are required');
  const dec = (v: string): string => Buffer.from(v, 'base64').toString('utf8');
  const data = JSON.parse(dec(secret)) as Record<string, string>;
  pluginSeen.push({ url: req.url ?? '', meta: JSON.parse(dec(meta)), auth: dec(auth), secret: data, authorization: req.headers.authorization });
  if (!(req.url ?? '').startsWith('/prefix/gitlab/custom-api')) return status(404, 'NotFound', `no such API: ${req.url}`);
  // A custom API that uses the credentials it was handed: the Secret values, decoded.
  const username = Buffer.from(data.username ?? '', 'base64').toString('utf8');
  const passwordOk = Buffer.from(data.password ?? '', 'base64').toString('utf8') === GL.password;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ listMeta: { totalItems: 1 }, items: [{ baseURL: (JSON.parse(dec(meta)) as { baseURL: string }).baseURL, type: dec(auth), username, passwordOk }] }));
}

// ---- objects -------------------------------------------------------------------------------

function gitlabClass(): string {
  // The paths start /apis/v4 so that the docs' ClusterRole example
  // (connectors/apis/gitlab/apis/v4/projects/{projectId}/repository/branches) applies verbatim.
  return `
apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: gitlab}
spec:
  proxy: {}
  address: {type: string}
  addressExtensions: [{name: api, type: string}]
  auth:
    types: [{name: basicAuth, secretType: kubernetes.io/basic-auth}]
  api:
    uri: ${classApi.origin}/prefix
    openapi:
      openapi: "3.0.1"
      info: {title: GitLab API, version: "1.0.0"}
      paths:
        /apis/v4/projects/{projectId}/repository/branches:
          get: {x-provider-type: proxy}
          post: {x-provider-type: proxy}
        /apis/v4/projects/{projectId}/repository/tags:
          get: {summary: tags}
        /gitlab/custom-api:
          get: {x-provider-type: api, summary: Request custom API}
        /gitlab/other-api:
          get: {x-provider-type: api}
        /apis/v4/users:
          get: {x-provider-type: proxy, x-openapi-address: api}
        /apis/v4/search:
          get: {x-provider-type: proxy, x-openapi-address: "${ext.origin}/direct"}
        /apis/v4/nope:
          get: {x-openapi-address: nope}
        /apis/v4/dead:
          get: {x-openapi-address: "http://127.0.0.1:${deadPort}"}
`;
}

const OBJECTS = (): string => docs(
  gitlabClass(),
  `
apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: git, annotations: {connectors.cpaas.io/proxy-resolver: path}}
spec:
  proxy: {}
  address: {type: string}
  auth:
    types: [{name: basicAuth, secretType: kubernetes.io/basic-auth}]
  api:
    openapi:
      openapi: "3.0.1"
      paths:
        /{repository}/info/refs: {get: {summary: refs}}`,
  `
apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: plain}
spec:
  proxy: {}
  address: {type: string}
  auth:
    types: [{name: basicAuth, secretType: kubernetes.io/basic-auth}]`,
  `
apiVersion: v1
kind: Secret
metadata: {name: gl-cred, namespace: ${NS}}
type: kubernetes.io/basic-auth
stringData: {username: ${GL.username}, password: ${GL.password}}`,
  `
apiVersion: v1
kind: Secret
metadata: {name: git-cred, namespace: ${NS}}
type: kubernetes.io/basic-auth
stringData: {username: ${GIT.username}, password: ${GIT.password}}`,
  `
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: gl, namespace: ${NS}}
spec:
  connectorClassName: gitlab
  address: ${tool.origin}/gitlab
  addressExtensions: [{name: api, value: "${ext.origin}/extbase"}]
  auth: {name: basicAuth, secretRef: {name: gl-cred}}`,
  `
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: repo, namespace: ${NS}}
spec:
  connectorClassName: git
  address: ${gitServer.origin}/git
  auth: {name: basicAuth, secretRef: {name: git-cred}}`,
  `
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: pl, namespace: ${NS}}
spec:
  connectorClassName: plain
  address: ${tool.origin}/plain
  auth: {name: basicAuth, secretRef: {name: gl-cred}}`,
);

const VERBS = ['get', 'create', 'update', 'delete', 'patch'] as const;
const SAS = ['viewer', 'outsider', 'reader', 'class-writer', 'branch-writer', 'git-user', ...VERBS.map((v) => `verb-${v}`)];

function role(name: string, rules: string): string {
  return `apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: ${name}, namespace: ${NS}}\nrules:\n${rules}`;
}
function binding(sa: string, kind: 'Role' | 'ClusterRole', name: string): string {
  return `apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: ${sa}-${name}, namespace: ${NS}}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ${kind}, name: ${name}}\nsubjects: [{kind: ServiceAccount, name: ${sa}, namespace: ${NS}}]`;
}
const apisRule = (resource: string, verbs: readonly string[]): string =>
  `  - {apiGroups: [connectors.alauda.io], resources: ["${resource}"], verbs: [${verbs.join(', ')}]}\n`;

const RBAC = docs(
  role('see-connectors', '  - {apiGroups: [connectors.alauda.io], resources: [connectors], verbs: [get]}\n'),
  role('gitlab-reader', apisRule('connectors/apis/gitlab', ['get'])),
  role('git-user', apisRule('connectors/apis/git', ['get', 'create'])),
  ...VERBS.map((v) => role(`gitlab-${v}`, apisRule('connectors/apis/gitlab', [v]))),
  // connector_api.mdx, "Write methods (passthrough)": the ClusterRole example as written, and
  // its commented alternative scoped to one path pattern of the class's OpenAPI.
  `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: gitlab-connector-branch-writer
rules:
  - apiGroups: ["connectors.alauda.io"]
    resources: ["connectors"]
    verbs: ["get"]
  - apiGroups: ["connectors.alauda.io"]
    resources:
      - "connectors/apis/gitlab"          # subresource level — covers any GitLab path
    verbs: ["create"]`,
  `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: gitlab-connector-branch-path-writer
rules:
  - apiGroups: ["connectors.alauda.io"]
    resources: ["connectors"]
    verbs: ["get"]
  - apiGroups: ["connectors.alauda.io"]
    resources:
      - "connectors/apis/gitlab/apis/v4/projects/{projectId}/repository/branches"
    verbs: ["create"]`,
  ...['viewer', 'reader', 'git-user', ...VERBS.map((v) => `verb-${v}`)].map((sa) => binding(sa, 'Role', 'see-connectors')),
  binding('reader', 'Role', 'gitlab-reader'),
  binding('git-user', 'Role', 'git-user'),
  ...VERBS.map((v) => binding(`verb-${v}`, 'Role', `gitlab-${v}`)),
  binding('class-writer', 'ClusterRole', 'gitlab-connector-branch-writer'),
  binding('branch-writer', 'ClusterRole', 'gitlab-connector-branch-path-writer'),
);

// ---- requests ------------------------------------------------------------------------------

interface Reply { status: number; headers: IncomingHttpHeaders; body: Buffer; text: string; json?: Record<string, unknown> }

function send(p: ProxyProcess, method: string, path: string, o: { token?: string; authorization?: string; body?: Buffer | string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
  if (o.authorization !== undefined) headers.authorization = o.authorization;
  // Node sends DELETE and OPTIONS bodies without framing unless told the length.
  if (o.body !== undefined) headers['content-length'] = String(Buffer.byteLength(o.body));
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: p.port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const text = body.toString('utf8');
        let json: Record<string, unknown> | undefined;
        if (/json/.test(String(res.headers['content-type']))) try { json = JSON.parse(text) as Record<string, unknown>; } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

const gw = (name: string, apiPath: string): string => `/connectors/v1alpha1/${NS}/${name}/path${apiPath}`;
const show = (r: Reply): string => `${r.status} ${r.text.slice(0, 300)}`;

/** A refusal: the status and a Kubernetes Status body saying it. */
function assertStatus(r: Reply, code: number, reason: string, message?: RegExp): void {
  assert.equal(r.status, code, show(r));
  assert.match(String(r.headers['content-type']), /^application\/json/);
  assert.equal(r.json?.kind, 'Status', show(r));
  assert.equal(r.json?.apiVersion, 'v1');
  assert.equal(r.json?.status, 'Failure');
  assert.equal(r.json?.code, code);
  assert.equal(r.json?.reason, reason);
  if (message) assert.match(String(r.json?.message), message);
}

/** A request the tool answered: what it saw. */
function toolSaw(r: Reply, tool: string): { method: string; path: string; bytes: number; sha256: string } {
  assert.ok(r.status === 200 || r.status === 201, show(r));
  assert.equal(r.headers['x-tool'], tool, `answered by ${tool}: ${show(r)}`);
  return r.json as unknown as { method: string; path: string; bytes: number; sha256: string };
}

async function waitForAccess(sa: string, verb: string, subresource: string | undefined, name = 'gl'): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await kube.api('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${NS}:${sa}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
        resourceAttributes: { namespace: NS, verb, group: 'connectors.alauda.io', resource: 'connectors', name, subresource },
      },
    });
    if ((r.json as { status?: { allowed?: boolean } }).status?.allowed === true) return;
    await sleep(50);
  }
  throw new Error(`RBAC never allowed ${sa} to ${verb} ${subresource ?? 'connectors'}`);
}

function writeKubeconfig(file: string, token: string): string {
  writeFileSync(file, [
    'apiVersion: v1', 'kind: Config', 'current-context: proxy',
    'clusters:', '- name: test', '  cluster:', `    server: ${kube.url}`, `    certificate-authority: ${kube.caFile}`,
    'users:', '- name: connectors-proxy', '  user:', `    token: ${token}`,
    'contexts:', '- name: proxy', '  context:', '    cluster: test', '    user: connectors-proxy', '',
  ].join('\n'), { mode: 0o600 });
  return file;
}

async function startKubeProxy(kubeconfig: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<ProxyProcess> {
  const p = await startProxy({ manifests: {}, args: ['--source', 'kubernetes', '--kubeconfig', kubeconfig, '--no-probes', ...args], env });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await new Promise<number>((resolve) => {
      httpRequest({ host: '127.0.0.1', port: p.opsPort, path: '/readyz', agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); })
        .on('error', () => resolve(0)).end();
    });
    if (r === 200) return p;
    if (Date.now() > deadline) throw new Error(`proxy not ready:\n${p.logs()}`);
    await sleep(50);
  }
}

async function connectorApiPath(name: string): Promise<string | undefined> {
  const r = await kube.api('GET', `${API}/namespaces/${NS}/connectors/${name}`);
  assert.equal(r.status, 200, r.text);
  return (r.json as { status?: { api?: { path?: string } } }).status?.api?.path;
}

async function eventuallyApiPath(name: string, want: string | undefined): Promise<void> {
  let have: string | undefined;
  for (let i = 0; i < 100; i++) {
    have = await connectorApiPath(name);
    if (have === want) return;
    await sleep(100);
  }
  assert.equal(have, want, `status.api.path of ${name}${'\n'}${proxies.off.logs().split('\n').slice(-20).join('\n')}`);
}

function gitRaw(cwd: string, args: readonly string[], token: string): Promise<RunResult> {
  return run('git', ['-c', 'credential.helper=', '-c', `http.extraHeader=Authorization: Bearer ${token}`, ...args], { cwd, env: gitEnv, timeoutMs: 120_000 });
}
async function git(cwd: string, token: string, ...args: string[]): Promise<string> {
  const r = await gitRaw(cwd, args, token);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed (${r.code ?? r.signal}):\n${r.stderr}`);
  return r.stdout.toString().trim();
}

// ---- setup -----------------------------------------------------------------------------------

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'gateway-kube-'));
  const home = join(tmp, 'home');
  mkdirSync(home);
  gitEnv = { PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', LANG: 'C', LC_ALL: 'C' };
  writeFileSync(join(home, '.gitconfig'), '[user]\n\tname = T\n\temail = t@example.com\n[init]\n\tdefaultBranch = main\n[core]\n\tcompression = 0\n\tbigFileThreshold = 1m\n');
  // A bare repository with one commit, served by git http-backend behind Basic auth.
  const repos = join(tmp, 'repos');
  mkdirSync(repos);
  const work = join(tmp, 'seed');
  mkdirSync(work);
  const plain = (cwd: string, ...a: string[]) => run('git', a, { cwd, env: gitEnv });
  await plain(work, 'init', '-q');
  writeFileSync(join(work, 'README.md'), 'seed\n');
  await plain(work, 'add', '.');
  await plain(work, 'commit', '-q', '-m', 'seed');
  await plain(tmp, 'clone', '-q', '--bare', work, join(repos, 'demo.git'));
  await plain(join(repos, 'demo.git'), 'config', 'http.receivepack', 'true');

  tool = await startUpstream(toolHandler('tool', GL));
  ext = await startUpstream(toolHandler('ext', GL));
  classApi = await startUpstream(classApiHandler);
  gitServer = await startUpstream(gitHttpHandler({ projectRoot: repos, credentials: GIT, prefix: '/git' }));
  deadPort = await freePort();

  kube = await startKube();
  await kube.applyYaml(docs(deploy('namespace.yaml'), deploy('rbac.yaml'), deploy('crds/connectorclasses.yaml'), deploy('crds/connectors.yaml')));
  await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
  await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
  await kube.applyYaml(docs(`apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}`,
    ...SAS.map((sa) => `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ${sa}, namespace: ${NS}}`)));
  await kube.applyYaml(RBAC);
  await kube.applyYaml(OBJECTS());
  await Promise.all([
    waitForAccess('viewer', 'get', undefined), waitForAccess('reader', 'get', 'apis/gitlab'), waitForAccess('git-user', 'create', 'apis/git', 'repo'),
    waitForAccess('class-writer', 'create', 'apis/gitlab'), waitForAccess('branch-writer', 'create', 'apis/gitlab/apis/v4/projects/{projectId}/repository/branches'),
    ...VERBS.map((v) => waitForAccess(`verb-${v}`, v, 'apis/gitlab')),
  ]);
  for (const sa of SAS) {
    const t = await kube.createServiceAccountToken(NS, sa);
    tokens[sa] = t;
    sensitive.push(t, t.split('.')[2]!);
  }
  const proxyToken = await kube.createServiceAccountToken('connectors-system', 'connectors-proxy');
  sensitive.push(proxyToken, proxyToken.split('.')[2]!);
  const kubeconfig = writeKubeconfig(join(tmp, 'proxy.kubeconfig'), proxyToken);
  [proxies.off, proxies.write, proxies.on] = await Promise.all([
    startKubeProxy(kubeconfig, []),
    startKubeProxy(kubeconfig, ['--no-write-status', '--enable-connector-apis-write-passthrough']),
    // The same flags by environment variable.
    startKubeProxy(kubeconfig, ['--no-write-status'], { PROXY_ENABLE_CONNECTOR_APIS_PERMISSIONS: 'true', PROXY_ENABLE_CONNECTOR_APIS_WRITE_PASSTHROUGH: 'true' }),
  ]);
});

after(async () => {
  await Promise.all(Object.values(proxies).map((p) => p?.stop()));
  await Promise.all([tool, ext, classApi, gitServer].map((u) => u?.close()));
  await kube?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---- tests -----------------------------------------------------------------------------------

describe('Connectors API gateway: the proxy binary against a real API server', () => {
  test('status.api.path: written for Connectors whose class has spec.api, added and cleared as the class changes', async () => {
    await eventuallyApiPath('gl', `/connectors/v1alpha1/${NS}/gl/path`);
    await eventuallyApiPath('repo', `/connectors/v1alpha1/${NS}/repo/path`);
    assert.equal(await connectorApiPath('pl'), undefined, 'class plain has no spec.api');
    const kubectlPatch = (body: string) => kube.kubectl(['patch', 'connectorclass', 'plain', '--type', 'merge', '-p', body]);
    assert.equal((await kubectlPatch('{"spec":{"api":{"uri":"http://api.example"}}}')).code, 0);
    await eventuallyApiPath('pl', `/connectors/v1alpha1/${NS}/pl/path`);
    assert.equal((await kubectlPatch('{"spec":{"api":null}}')).code, 0);
    await eventuallyApiPath('pl', undefined);
    // The same writer keeps the proxy address of a class with spec.proxy beside it.
    const gl = await kube.api('GET', `${API}/namespaces/${NS}/connectors/gl`);
    assert.deepEqual((gl.json as { status?: { proxy?: unknown } }).status?.proxy, { httpAddress: { url: `http://c-gl.${NS}.proxy.test` } });
  });

  test('refusals are Kubernetes Status bodies: 401, 403, 404, 405, 400; nothing reaches the tool', async () => {
    const p = proxies.off;
    const n = tool.seen.length;
    for (const r of [
      await send(p, 'GET', gw('gl', '/apis/v4/projects')),
      await send(p, 'GET', gw('gl', '/apis/v4/projects'), { authorization: `Basic ${b64(`any:${tokens.viewer}`)}` }),
      await send(p, 'GET', gw('gl', '/apis/v4/projects'), { token: 'garbage-not-a-token' }),
    ]) {
      assertStatus(r, 401, 'Unauthorized');
      assert.match(String(r.headers['www-authenticate']), /^Bearer /);
    }
    assertStatus(await send(p, 'GET', gw('gl', '/apis/v4/projects'), { token: tokens.outsider }), 403, 'Forbidden', /may not get connectors "gl" in namespace "team"/);
    assertStatus(await send(p, 'GET', gw('ghost', '/x'), { token: tokens.outsider }), 403, 'Forbidden', /ghost/);
    assertStatus(await send(p, 'GET', gw('ghost', '/x'), { token: tokens.viewer }), 404, 'NotFound', /connector team\/ghost not found/);
    assertStatus(await send(p, 'GET', `/connectors/v1alpha1/${NS}/gl/nopath`, { token: tokens.viewer }), 404, 'NotFound', /\/path\/<api-path>/);
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const r = await send(p, m, gw('gl', '/apis/v4/projects/1/repository/branches'), { token: tokens.viewer, body: '{"branch":"x"}' });
      assertStatus(r, 405, 'MethodNotAllowed', /enable-connector-apis-write-passthrough/);
      assert.equal(r.headers.allow, 'GET, HEAD, OPTIONS');
    }
    assertStatus(await send(p, 'TRACE', gw('gl', '/x'), { token: tokens.viewer }), 405, 'MethodNotAllowed');
    assertStatus(await send(p, 'GET', gw('gl', '/apis/v4/nope'), { token: tokens.viewer }), 400, 'BadRequest', /has no address extension "nope"/);
    assertStatus(await send(p, 'GET', gw('gl', '/apis/v4/%2e%2e/x'), { token: tokens.viewer }), 400, 'BadRequest');
    assert.equal(tool.seen.length, n, 'the tool saw none of them');
    // HEAD gets the status without a body.
    const head = await send(p, 'HEAD', gw('gl', '/x'));
    assert.equal(head.status, 401);
    assert.equal(head.body.length, 0);
  });

  test('flags off: get on the Connector reads the tool (GET, HEAD, OPTIONS) with the Connector\'s credentials', async () => {
    const p = proxies.off;
    const saw = toolSaw(await send(p, 'GET', gw('gl', '/apis/v4/projects/devops%2Fapp/repository/branches?search=ma'), { token: tokens.viewer }), 'tool');
    assert.deepEqual([saw.method, saw.path], ['GET', '/gitlab/apis/v4/projects/devops%2Fapp/repository/branches?search=ma']);
    const head = await send(p, 'HEAD', gw('gl', '/apis/v4/projects'), { token: tokens.viewer });
    assert.equal(head.status, 200);
    assert.equal(tool.seen.at(-1)?.method, 'HEAD');
    assert.equal(toolSaw(await send(p, 'OPTIONS', gw('gl', '/apis/v4/projects'), { token: tokens.viewer }), 'tool').method, 'OPTIONS');
    // A class without spec.api: every path is the tool's (the docs' default).
    assert.equal(toolSaw(await send(p, 'GET', gw('pl', '/anything'), { token: tokens.viewer }), 'tool').path, '/plain/anything');
  });

  test('write passthrough on, apis permissions off: get on the Connector is enough for every method; body and headers pass', async () => {
    const p = proxies.write;
    const body = JSON.stringify({ branch: 'feature-foo', ref: 'main' });
    const r = await send(p, 'POST', gw('gl', '/apis/v4/projects/123/repository/branches'), { token: tokens.viewer, body, headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 201);
    const saw = toolSaw(r, 'tool') as ReturnType<typeof toolSaw> & { contentType: string };
    assert.deepEqual([saw.method, saw.path, saw.sha256, saw.contentType], ['POST', '/gitlab/apis/v4/projects/123/repository/branches', sha256(body), 'application/json']);
    for (const m of ['PUT', 'PATCH', 'DELETE']) assert.equal(toolSaw(await send(p, m, gw('gl', '/apis/v4/x'), { token: tokens.viewer, body: 'b' }), 'tool').method, m);
    assertStatus(await send(p, 'POST', gw('gl', '/apis/v4/x'), { token: tokens.outsider }), 403, 'Forbidden');
  });

  test('apis permissions on: each HTTP method needs its own verb on connectors/apis/<class>', T, async () => {
    const p = proxies.on;
    const verbOf: Record<string, string> = { GET: 'get', HEAD: 'get', OPTIONS: 'get', POST: 'create', PUT: 'update', DELETE: 'delete', PATCH: 'patch' };
    for (const verb of VERBS) {
      for (const [method, needs] of Object.entries(verbOf)) {
        const n = tool.seen.length;
        const r = await send(p, method, gw('gl', '/apis/v4/anything'), { token: tokens[`verb-${verb}`], body: method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? undefined : 'x' });
        if (needs === verb) {
          assert.ok(r.status === 200 || r.status === 201, `verb-${verb} ${method}: ${show(r)}`);
          assert.equal(tool.seen.length, n + 1);
        } else if (method === 'HEAD') {
          assert.equal(r.status, 403, `verb-${verb} HEAD: ${show(r)}`);
          assert.equal(r.body.length, 0, 'HEAD: no body');
        } else {
          assertStatus(r, 403, 'Forbidden', new RegExp(`may not ${needs} connectors/apis/gitlab`));
          assert.equal(tool.seen.length, n, `verb-${verb} ${method} must not reach the tool`);
        }
      }
    }
    // get on the Connector alone is no longer enough; nor is the apis grant of another class.
    assertStatus(await send(p, 'GET', gw('gl', '/apis/v4/projects'), { token: tokens.viewer }), 403, 'Forbidden', /may not get connectors\/apis\/gitlab/);
    assertStatus(await send(p, 'GET', gw('gl', '/apis/v4/projects'), { token: tokens['git-user'] }), 403, 'Forbidden');
    assertStatus(await send(p, 'GET', gw('gl', '/apis/v4/projects'), { token: tokens.outsider }), 403, 'Forbidden', /may not get connectors "gl"/);
  });

  test("the docs' ClusterRoles: connectors/apis/gitlab covers any path, the path-pattern form only its template", async () => {
    const p = proxies.on;
    const branches = gw('gl', '/apis/v4/projects/123/repository/branches');
    const body = '{"branch":"feature-foo","ref":"main"}';
    // Class level (the example as written): any GitLab path.
    assert.equal((await send(p, 'POST', branches, { token: tokens['class-writer'], body })).status, 201);
    assert.equal((await send(p, 'POST', gw('gl', '/apis/v4/projects/123/repository/tags'), { token: tokens['class-writer'], body })).status, 201);
    assertStatus(await send(p, 'GET', branches, { token: tokens['class-writer'] }), 403, 'Forbidden', /get/);
    // Path level (its commented alternative): the branches template, create only.
    assert.equal((await send(p, 'POST', branches, { token: tokens['branch-writer'], body })).status, 201);
    assert.equal((await send(p, 'POST', gw('gl', '/apis/v4/projects/devops%2Fapp/repository/branches'), { token: tokens['branch-writer'], body })).status, 201);
    assertStatus(await send(p, 'POST', gw('gl', '/apis/v4/projects/123/repository/tags'), { token: tokens['branch-writer'], body }), 403, 'Forbidden',
      /may not create connectors\/apis\/gitlab nor connectors\/apis\/gitlab\/apis\/v4\/projects\/\{projectId\}\/repository\/tags/);
    // A path under no template: only the class level is asked.
    assertStatus(await send(p, 'POST', gw('gl', '/apis/v4/projects/123/repository/branches/x'), { token: tokens['branch-writer'], body }), 403, 'Forbidden',
      /may not create connectors\/apis\/gitlab "gl"/);
    assertStatus(await send(p, 'GET', branches, { token: tokens['branch-writer'] }), 403, 'Forbidden');
  });

  test('x-provider-type api: the class API service gets the three X-Plugin headers, never a client token', async () => {
    const before = pluginSeen.length;
    for (const p of [proxies.off, proxies.on]) {
      const token = p === proxies.on ? tokens.reader : tokens.viewer;
      const r = await send(p, 'GET', gw('gl', '/gitlab/custom-api?page=1&itemsPerPage=10'), { token });
      assert.equal(r.status, 200, show(r));
      assert.deepEqual(r.json, { listMeta: { totalItems: 1 }, items: [{ baseURL: `${tool.origin}/gitlab`, type: 'kubernetes.io/basic-auth', username: GL.username, passwordOk: true }] });
    }
    const seen = pluginSeen.slice(before);
    assert.equal(seen.length, 2);
    for (const s of seen) {
      assert.equal(s.url, '/prefix/gitlab/custom-api?page=1&itemsPerPage=10', 'status.api.address.url + the API path, query kept');
      assert.deepEqual(s.meta, { baseURL: `${tool.origin}/gitlab` });
      assert.equal(s.auth, 'kubernetes.io/basic-auth');
      assert.deepEqual(s.secret, { password: b64(GL.password), username: b64(GL.username) }, 'the Secret data, values base64 as stored');
      assert.equal(s.authorization, undefined, 'no Authorization: neither the client token nor tool credentials');
    }
    // A client's own X-Plugin headers are replaced, not passed.
    const forged = await send(proxies.off, 'GET', gw('gl', '/gitlab/custom-api'), { token: tokens.viewer, headers: { 'x-plugin-secret': b64('{"password":"Zm9yZ2Vk"}'), 'x-plugin-meta': b64('{"baseURL":"http://evil"}') } });
    assert.equal(forged.status, 200);
    assert.deepEqual(pluginSeen.at(-1)?.meta, { baseURL: `${tool.origin}/gitlab` });
    // The service's own non-200 Status comes back unchanged.
    const missing = await send(proxies.off, 'GET', gw('gl', '/gitlab/other-api'), { token: tokens.viewer });
    assertStatus(missing, 404, 'NotFound', /no such API: \/prefix\/gitlab\/other-api/);
  });

  test('x-openapi-address: the extension named, a direct URL; an address that refuses → 502 as a Status', async () => {
    const p = proxies.off;
    const users = toolSaw(await send(p, 'GET', gw('gl', '/apis/v4/users?per_page=5'), { token: tokens.viewer }), 'ext');
    assert.equal(users.path, '/extbase/apis/v4/users?per_page=5');
    const search = toolSaw(await send(p, 'GET', gw('gl', '/apis/v4/search?q=x'), { token: tokens.viewer }), 'ext');
    assert.equal(search.path, '/direct/apis/v4/search?q=x');
    assertStatus(await send(p, 'GET', gw('gl', '/apis/v4/dead'), { token: tokens.viewer }), 502, 'InternalError', /refused the connection/);
  });

  test('streaming both ways through the gateway: 24 MiB up (PUT) and down (GET), hashed at each end', T, async () => {
    const p = proxies.on;
    const up = randomBytes(BIG);
    const put = toolSaw(await send(p, 'PUT', gw('gl', '/apis/v4/uploads/blob'), { token: tokens['verb-update'], body: up }), 'tool');
    assert.deepEqual([put.bytes, put.sha256], [BIG, sha256(up)]);
    const down = await send(p, 'GET', gw('gl', `/apis/v4/big?bytes=${BIG}`), { token: tokens['verb-get'] });
    assert.equal(down.status, 200);
    assert.equal(down.body.length, BIG);
    assert.equal(sha256(down.body), sha256(Buffer.alloc(BIG, 7)));
  });

  test('real git through the gateway: clone (GET + POST) needs write passthrough; with apis permissions, get and create on connectors/apis/git; a large push and clone back', T, async () => {
    const url = (p: ProxyProcess) => `http://127.0.0.1:${p.port}${gw('repo', '/demo.git')}`;
    // Write passthrough off: git-upload-pack is a POST → 405.
    const refused = await gitRaw(tmp, ['clone', '-q', url(proxies.off), join(tmp, 'c-off')], tokens.viewer!);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /405/);
    // Write passthrough on, permissions off: get on the Connector clones.
    await git(tmp, tokens.viewer!, 'clone', '-q', url(proxies.write), join(tmp, 'c-write'));
    assert.equal(readFileSync(join(tmp, 'c-write', 'README.md'), 'utf8'), 'seed\n');
    // Both on: a gitlab grant is not a git grant.
    const other = await gitRaw(tmp, ['clone', '-q', url(proxies.on), join(tmp, 'c-denied')], tokens.reader!);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /403/);
    const work = join(tmp, 'c-on');
    await git(tmp, tokens['git-user']!, 'clone', '-q', url(proxies.on), work);
    const blob = randomBytes(BIG);
    writeFileSync(join(work, 'big.bin'), blob);
    await git(work, tokens['git-user']!, 'add', 'big.bin');
    await git(work, tokens['git-user']!, 'commit', '-q', '-m', 'big');
    await git(work, tokens['git-user']!, 'push', '-q', 'origin', 'HEAD:main');
    const back = join(tmp, 'c-back');
    await git(tmp, tokens['git-user']!, 'clone', '-q', url(proxies.on), back);
    assert.equal(sha256(readFileSync(join(back, 'big.bin'))), sha256(blob));
  });

  test('the flags from the connectors-config ConfigMap: an edit applies to the next gateway request', async () => {
    const p = proxies.off;
    const post = () => send(p, 'POST', gw('gl', '/apis/v4/projects/5/repository/branches'), { token: tokens.viewer, body: '{}' });
    assertStatus(await post(), 405, 'MethodNotAllowed');
    const cm = (flags: Record<string, string>) => kube.applyYaml(`apiVersion: v1
kind: ConfigMap
metadata: {name: connectors-config, namespace: connectors-system}
data: ${JSON.stringify(flags)}
`);
    await cm({ 'enable-connector-apis-write-passthrough': 'true' });
    let r = await post();
    for (let i = 0; i < 100 && r.status === 405; i++) { await sleep(100); r = await post(); }
    assert.equal(toolSaw(r, 'tool').method, 'POST');
    await cm({ 'enable-connector-apis-write-passthrough': 'true', 'enable-connector-apis-permissions': 'true' });
    for (let i = 0; i < 100 && r.status !== 403; i++) { await sleep(100); r = await post(); }
    assertStatus(r, 403, 'Forbidden', /may not create connectors\/apis\/gitlab/);
    assert.equal((await send(p, 'POST', gw('gl', '/apis/v4/projects/5/repository/branches'), { token: tokens['class-writer'], body: '{}' })).status, 201);
    await cm({ 'enable-connector-apis-write-passthrough': 'false', 'enable-connector-apis-permissions': 'false' });
    for (let i = 0; i < 100 && r.status !== 405; i++) { await sleep(100); r = await post(); }
    assertStatus(r, 405, 'MethodNotAllowed');
  });

  test('metrics and the access log tell gateway traffic apart; no token or Secret value in any log line, error body or tool request', async () => {
    const m = await new Promise<string>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port: proxies.off.opsPort, path: '/metrics', agent: false }, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => { t += c.toString(); });
        res.on('end', () => resolve(t));
      }).on('error', reject).end();
    });
    assert.match(m, /connectors_proxy_requests_total\{connector="team\/gl",class="gitlab",way="gateway",code="200"\} \d+/);
    assert.match(m, /connectors_proxy_requests_total\{connector="unknown",class="unknown",way="gateway",code="401"\} \d+/);
    assert.match(m, /connectors_proxy_upstream_errors_total\{connector="team\/gl",class="gitlab",way="gateway",reason="connect_refused"\} 1/);
    const logs = proxies.off.logs();
    assert.match(logs, /"way":"gateway","connector":"team\/gl","user":"system:serviceaccount:team:viewer","method":"GET","path":"\/connectors\/v1alpha1\/team\/gl\/path\/apis\/v4\/users","status":200/);
    const all = Object.values(proxies).map((p) => p.logs()).join('\n');
    for (const s of sensitive) assert.ok(!all.includes(s), `a credential or token appears in the logs: ${s.slice(0, 6)}…`);
    for (const u of [tool, ext, classApi, gitServer]) {
      for (const s of u.seen) {
        const text = s.url + '\n' + s.rawHeaders.join('\n');
        for (const t of Object.values(tokens)) assert.ok(!text.includes(t) && !text.includes(t.split('.')[2]!), `a client token reached ${u.origin}${s.url}`);
      }
    }
  });
});
