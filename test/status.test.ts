// Connector and ConnectorClass status (SPEC §2, §8) against real upstreams: the seed's complete
// Git ConnectorClass, verbatim, probing a real `git http-backend` that requires Basic auth, and
// small HTTP tools for the probe options (httpHeaders as a map and a list, POST,
// disableRedirect, redirects to another origin). Every condition transition is observed
// through the ops port's /status (embedded mode), the `status` CLI prints them, and in
// Kubernetes mode the same conditions and status.api.address.url reach a real API server,
// written by the proxy as its deploy/rbac.yaml ServiceAccount.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { gitHttpHandler } from '../tools/git-http';
import { request } from './support/http';
import { startKube, type KubeCluster } from './support/kube';
import { MAIN, REPO_ROOT, basic, startProxy, type ProxyProcess } from './support/proxy';
import { run } from './support/run';
import { startUpstream, type Upstream } from './support/upstream';

const NS = 'team';
const API_VERSION = 'connectors.alauda.io/v1alpha1';
const CLIENT_TOKEN = 'good-token-123';
const OTHER_TOKEN = 'other-token-456';
const PROBE_UA = 'connectors-proxy-probe';
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// The seed's "完整的 Git 连接器配置示例" (001 docs, end of the ConnectorClass page), verbatim.
const SEED_GIT_CLASS = `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: git
spec:
  address:
    name: address
    type: string
  auth:
    types:
      - name: basicAuth
        secretType: kubernetes.io/basic-auth
        optional: true
  livenessProbe:
    http:
      path: /
  authProbes:
    - authName: basicAuth
      params:
        - name: repository
          type: string
      probe:
        http:
          path: /{{- range .Connector.Spec.Auth.Params }}{{- if eq .Name "repository" }}{{ .Value.StringVal }}{{ end }}{{- end }}/info/refs?service=git-upload-pack
          httpHeaders:
          - name: Authorization
            value: >-
              {{- if .Secret }}Basic {{ printf "%s:%s" .Secret.StringData.username .Secret.StringData.password | b64enc }} {{- end }}
`;

const GIT = { username: 'git-probe-user', password: `git-pw-${randomBytes(6).toString('hex')}` };
const WRONG = { username: GIT.username, password: `wrong-pw-${randomBytes(6).toString('hex')}` };
/** Bearer tokens of the probe-option Connectors' Secrets, by Connector name. */
const TOOL_TOKENS = new Map<string, string>();
function toolToken(name: string): string {
  let t = TOOL_TOKENS.get(name);
  if (t === undefined) TOOL_TOKENS.set(name, t = `tool-token-${name}-${randomBytes(6).toString('hex')}`);
  return t;
}

/** Every value that must never appear in /status, a log line or a probe to the wrong place. */
function sensitive(): string[] {
  const out = [CLIENT_TOKEN, OTHER_TOKEN, b64(`any:${CLIENT_TOKEN}`), b64(`:${CLIENT_TOKEN}`)];
  for (const c of [GIT, WRONG]) out.push(c.password, b64(`${c.username}:${c.password}`));
  for (const t of TOOL_TOKENS.values()) out.push(t, b64(t));
  return out;
}

// ---- real tools ------------------------------------------------------------------------

/** One request as a tool saw it. */
interface Seen { readonly server: string; readonly method: string; readonly url: string; readonly headers: IncomingMessage['headers']; readonly raw: string }
const seen: Seen[] = [];
const probesTo = (server: string): Seen[] => seen.filter((s) => s.server === server && s.headers['user-agent'] === PROBE_UA);

interface GitFront { server: Server; port: number; origin: string; close(): Promise<void> }

/**
 * A git server as GitLab or Gitea is one: a landing page at `/` (what the seed's liveness
 * probe asks for) and smart HTTP behind Basic auth (`credentials`) or anonymous.
 */
async function gitFront(name: string, projectRoot: string, credentials: typeof GIT | undefined, port = 0): Promise<GitFront> {
  const git = gitHttpHandler({ projectRoot, credentials });
  const server = createServer((req, res) => {
    seen.push({ server: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw: req.rawHeaders.join('\n') });
    if (req.url === '/') res.writeHead(200, { 'content-type': 'text/plain' }).end(`${name}: a git server\n`);
    else git(req, res);
  });
  await new Promise<void>((r, j) => { server.once('error', j); server.listen(port, '127.0.0.1', () => r()); });
  const p = (server.address() as AddressInfo).port;
  return {
    server, port: p, origin: `http://127.0.0.1:${p}`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

let root: string;
let gitServer: GitFront;
let anonServer: GitFront;
let downServer: GitFront | undefined;
let downPort: number;
let tool: Upstream;
let elsewhere: Upstream;
let deadPort: number;
let proxy: ProxyProcess;

/** The probe-option tool: each path family answers 200 only for the probe it expects. */
function toolHandler(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const family = url.pathname.split('/')[1] ?? '';
  const authorized = req.headers.authorization === `Bearer ${TOOL_TOKENS.get(family) ?? '-'}`;
  const answer = (status: number, headers: Record<string, string> = {}): void => { req.resume(); res.writeHead(status, headers).end(`${status}\n`); };
  switch (url.pathname) {
    case '/live': return answer(200);
    case '/hang': req.resume(); return; // never answers: the probe's timeout decides
    case '/api': return answer(503); // reachability only: any answer makes APIReady True
    case '/proxy-svc': return answer(404);
    case '/post/check': return answer(req.method !== 'POST' ? 405 : authorized ? 200 : 401);
    case '/redir/start': return answer(302, { location: '/redir/ok' });
    case '/redir/ok': return answer(authorized ? 200 : 401);
    case '/noredir/start': return answer(302, { location: '/noredir/ok' });
    case '/noredir/ok': return answer(200);
    case '/xorigin/start': return answer(authorized ? 302 : 401, { location: `${elsewhere.origin}/landing?from=xorigin` });
  }
  const hdr = /^\/hdr\/([a-z-]+)$/.exec(url.pathname);
  if (hdr) {
    const name = hdr[1]!;
    const ok = req.headers.authorization === `Bearer ${TOOL_TOKENS.get(name) ?? '-'}` && req.headers['x-connector'] === `${NS}/${name}`;
    return answer(ok ? 200 : 401);
  }
  answer(404);
}

// ---- manifests -------------------------------------------------------------------------

const docs = (...objs: Array<object | string>): string => objs.map((o) => (typeof o === 'string' ? o : stringify(o))).join('\n---\n');

function secret(name: string, type: string, stringData: Record<string, string>): object {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, type, stringData };
}

/**
 * A Connector of the seed's `git` class with its Secret; `creds` undefined: no Secret and no
 * secretRef (the auth type is optional) unless `o.secretRef` names one that does not exist.
 */
function gitConnector(name: string, address: string, creds: typeof GIT | undefined, o: { cls?: string; repository?: string; secretRef?: string } = {}): string {
  const ref = creds ? `${name}-secret` : o.secretRef;
  const connector = {
    apiVersion: API_VERSION, kind: 'Connector', metadata: { name, namespace: NS },
    spec: {
      connectorClassName: o.cls ?? 'git', address,
      auth: { name: 'basicAuth', ...(ref ? { secretRef: { name: ref } } : {}), params: [{ name: 'repository', value: o.repository ?? 'repo.git' }] },
    },
  };
  return creds ? docs(connector, secret(`${name}-secret`, 'kubernetes.io/basic-auth', creds)) : docs(connector);
}

/** A class with one bearer-token auth type whose auth probe is `http`, and its Connector (same name). */
function probeCase(name: string, http: Record<string, unknown>, more: Record<string, unknown> = {}): string {
  return docs(
    {
      apiVersion: API_VERSION, kind: 'ConnectorClass', metadata: { name },
      spec: {
        address: { type: 'string' },
        auth: { types: [{ name: 'token', secretType: 'connectors.cpaas.io/bearer-token' }] },
        authProbes: [{ authName: 'token', probe: { http } }],
        ...more,
      },
    },
    {
      apiVersion: API_VERSION, kind: 'Connector', metadata: { name, namespace: NS },
      spec: { connectorClassName: name, address: `${tool.origin}/prefix/ignored`, auth: { name: 'token', secretRef: { name: `${name}-secret` } } },
    },
    secret(`${name}-secret`, 'connectors.cpaas.io/bearer-token', { token: toolToken(name) }),
  );
}

const bearerHeader = [{ name: 'Authorization', value: 'Bearer {{ .Secret.StringData.token }}' }];

function apiClass(name: string, spec: Record<string, unknown>): object {
  return { apiVersion: API_VERSION, kind: 'ConnectorClass', metadata: { name }, spec: { address: { type: 'string' }, ...spec } };
}

// ---- /status ---------------------------------------------------------------------------

interface Cond { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }
interface Item { kind: string; namespace?: string; name: string; conditions: Cond[]; apiUrl?: string }
/** Every /status body the tests read (scanned for secrets at the end). */
const statusBodies: string[] = [];

async function statusItems(p: ProxyProcess = proxy): Promise<Item[]> {
  const r = await request(`http://127.0.0.1:${p.opsPort}/status`);
  assert.equal(r.status, 200, r.text);
  assert.match(String(r.headers['content-type']), /application\/json/);
  statusBodies.push(r.text);
  return (JSON.parse(r.text) as { items: Item[] }).items;
}

/** Expected conditions: a status, or [status, reason]. */
type Want = Record<string, string | [string, string]>;
const byType = (conds: readonly Cond[]): Record<string, Cond> => Object.fromEntries(conds.map((c) => [c.type, c]));

function matches(conds: Record<string, Cond>, want: Want): boolean {
  return Object.entries(want).every(([type, w]) => {
    const c = conds[type];
    if (c === undefined) return false;
    const [status, reason] = Array.isArray(w) ? w : [w, undefined];
    return c.status === status && (reason === undefined || (c.reason ?? '') === reason);
  });
}

const show = (conds: Record<string, Cond> | undefined): string =>
  conds === undefined ? '(no status yet)' : Object.values(conds).map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ''}: ${c.message ?? ''}`).join('\n  ');

/** Polls /status until the object's conditions match `want`; returns them by type. */
async function waitFor(kind: 'Connector' | 'ConnectorClass', key: string, want: Want, ms = 15_000): Promise<{ conds: Record<string, Cond>; item: Item }> {
  const deadline = Date.now() + ms;
  let last: Item | undefined;
  for (;;) {
    last = (await statusItems()).find((i) => i.kind === kind && (i.namespace ? `${i.namespace}/${i.name}` : i.name) === key);
    if (last !== undefined && matches(byType(last.conditions), want)) return { conds: byType(last.conditions), item: last };
    if (Date.now() > deadline) {
      assert.fail(`${kind} ${key}: wanted ${JSON.stringify(want)} within ${ms} ms; last:\n  ${show(last && byType(last.conditions))}\n--- proxy log, last lines:\n${proxy.logs().trimEnd().split('\n').slice(-15).join('\n')}`);
    }
    await sleep(100);
  }
}

// ---- setup -----------------------------------------------------------------------------

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'cproxy-status-'));
  const env = { PATH: process.env.PATH, HOME: root, GIT_CONFIG_NOSYSTEM: '1', LANG: 'C' };
  const r = await run('git', ['init', '-q', '--bare', join(root, 'repos', 'repo.git')], { env });
  assert.equal(r.code, 0, r.stderr);

  gitServer = await gitFront('git', join(root, 'repos'), GIT);
  anonServer = await gitFront('anon', join(root, 'repos'), undefined);
  downServer = await gitFront('down', join(root, 'repos'), GIT);
  downPort = downServer.port;
  elsewhere = await startUpstream((req, res) => {
    seen.push({ server: 'elsewhere', method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw: req.rawHeaders.join('\n') });
    req.resume();
    res.writeHead(200).end('landed\n');
  });
  tool = await startUpstream((req, res) => {
    seen.push({ server: 'tool', method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw: req.rawHeaders.join('\n') });
    toolHandler(req, res);
  });
  deadPort = await closedPort();

  proxy = await startProxy({
    manifests: {
      'git-class.yaml': SEED_GIT_CLASS,
      'repo.yaml': gitConnector('repo', gitServer.origin, GIT),
      'down.yaml': gitConnector('down', downServer.origin, GIT),
      'anon.yaml': docs(gitConnector('anon', anonServer.origin, undefined), gitConnector('anon-denied', gitServer.origin, undefined, { repository: 'denied.git' })),
      'orphan.yaml': gitConnector('orphan', gitServer.origin, GIT, { cls: 'late-class' }),
      'headers.yaml': docs(
        probeCase('hdr-map', {
          path: '/hdr/{{ .Connector.Name }}',
          httpHeaders: { Authorization: 'Bearer {{ .Secret.StringData.token }}', 'X-Connector': '{{ .Connector.Namespace }}/{{ .Connector.Name }}' },
        }, { livenessProbe: { http: { path: '/live' } } }),
        probeCase('hdr-list', {
          path: '/hdr/{{ .Connector.Name }}',
          httpHeaders: [
            { name: 'Authorization', value: 'Bearer {{ .Secret.StringData.token }}' },
            { name: 'X-Connector', value: '{{ .Connector.Namespace }}/{{ .Connector.Name }}' },
          ],
        }),
      ),
      'methods.yaml': docs(
        probeCase('post', { path: '/post/check', method: 'POST', httpHeaders: bearerHeader }),
        probeCase('redir', { path: '/redir/start', httpHeaders: bearerHeader }),
        probeCase('noredir', { path: '/noredir/start', disableRedirect: true, httpHeaders: bearerHeader }),
        probeCase('xorigin', { path: '/xorigin/start', httpHeaders: { Authorization: 'Bearer {{ .Secret.StringData.token }}', 'X-Probe-Extra': 'extra-{{ .Connector.Name }}' } }),
      ),
      'templates.yaml': docs(
        // A parse error on line 2 of a header value.
        probeCase('broken', { path: '/x', httpHeaders: { Authorization: 'Bearer {{ .Secret.StringData.token }}', 'X-Broken': '{{ if .Secret }}\n{{ .Secret.StringData.token | nosuchfunc }}{{ end }}' } }),
        // An execution error whose text is a Secret value (sprig's fail).
        probeCase('failing', { path: '/x', httpHeaders: { Authorization: '{{ fail .Secret.StringData.token }}' } }),
        // A Secret value in the probe's path, answered 404.
        probeCase('leaky', { path: '/leak/{{ .Secret.StringData.token }}/x' }),
      ),
      'missing.yaml': docs(
        gitConnector('no-secret', gitServer.origin, undefined, { secretRef: 'does-not-exist' }),
        apiClass('slow', { livenessProbe: { http: { path: '/hang' } } }),
        { apiVersion: API_VERSION, kind: 'Connector', metadata: { name: 'slow', namespace: NS }, spec: { connectorClassName: 'slow', address: tool.origin } },
      ),
      'api.yaml': docs(
        apiClass('api-ok', { api: { uri: `${tool.origin}/api` }, proxy: { uri: `${tool.origin}/proxy-svc` } }),
        apiClass('api-down', { api: { uri: `http://127.0.0.1:${deadPort}/api` }, proxy: { uri: `http://127.0.0.1:${deadPort}` } }),
        apiClass('api-svc', { api: { ref: { kind: 'Service', name: 'git', namespace: 'default' }, uri: '/api' } }),
        { apiVersion: API_VERSION, kind: 'Connector', metadata: { name: 'served', namespace: NS }, spec: { connectorClassName: 'api-ok', address: tool.origin } },
      ),
    },
    args: ['--probe-interval-ms', '500', '--probe-timeout-ms', '2000'],
  });
}, { timeout: 30_000 });

after(async () => {
  await proxy?.stop();
  await Promise.all([gitServer?.close(), anonServer?.close(), downServer?.close(), tool?.close(), elsewhere?.close()]);
  if (root) rmSync(root, { recursive: true, force: true });
});

// ---- embedded mode ---------------------------------------------------------------------

describe('Connector conditions from real probes (embedded mode, ops /status)', () => {
  test('the seed Git class with the right password: every condition True; the probes used the repository param and the Secret', async () => {
    const { conds } = await waitFor('Connector', `${NS}/repo`, { Ready: 'True' });
    assert.ok(matches(conds, {
      ConnectorClassReady: 'True', SecretReady: 'True', LivenessReady: 'True', AuthReady: 'True',
      ProxyServiceReady: ['True', 'NonProxy'], Ready: 'True',
    }), show(conds));
    assert.match(conds.AuthReady!.message!, /GET http:\/\/127\.0\.0\.1:\d+\/repo\.git\/info\/refs answered 200/);
    assert.ok(!Number.isNaN(Date.parse(conds.Ready!.lastTransitionTime ?? '')), 'lastTransitionTime is a time');

    const probes = probesTo('git');
    const live = probes.find((s) => s.url === '/');
    assert.ok(live, 'the liveness probe asked for /');
    assert.equal(live.headers.authorization, undefined, 'the liveness probe carries no credentials');
    const auth = probes.find((s) => s.url === '/repo.git/info/refs?service=git-upload-pack');
    assert.ok(auth, `the auth probe used the repository param: ${probes.map((s) => s.url).join(', ')}`);
    assert.equal(auth.headers.authorization, basic(GIT.username, GIT.password), 'the auth probe sent the Secret\'s credentials');

    const cls = await waitFor('ConnectorClass', 'git', { Ready: 'True' });
    assert.ok(matches(cls.conds, { APIReady: ['True', 'NonAPI'], ProxyReady: ['True', 'NonProxy'] }), show(cls.conds));
    assert.equal(cls.item.apiUrl, undefined);

    // The seed's class declares no spec.proxy: no proxy capability, its Connector is not served.
    const refused = await request(proxy.url('/repo.git/info/refs?service=git-upload-pack'), {
      headers: { host: `c-repo.${NS}.proxy.test:${proxy.port}`, authorization: basic('any', CLIENT_TOKEN) },
    });
    assert.equal(refused.status, 502, refused.text);
    // A client request through the proxy to a served Connector (its token is now known to the
    // proxy process): later probes must still never carry it.
    const r = await request(proxy.url('/live'), {
      headers: { host: `c-served.${NS}.proxy.test:${proxy.port}`, authorization: basic('any', CLIENT_TOKEN) },
    });
    assert.equal(r.status, 200, r.text);
  });

  test('wrong password → AuthReady=False Unauthorized (readable), Ready=False; the status CLI shows it; fixed Secret → True again', async () => {
    proxy.writeManifest('repo.yaml', gitConnector('repo', gitServer.origin, WRONG));
    const bad = await waitFor('Connector', `${NS}/repo`, { AuthReady: ['False', 'Unauthorized'] });
    assert.ok(matches(bad.conds, { ConnectorClassReady: 'True', SecretReady: 'True', LivenessReady: 'True', Ready: 'False' }), show(bad.conds));
    assert.match(bad.conds.AuthReady!.message!, /^GET http:\/\/127\.0\.0\.1:\d+\/repo\.git\/info\/refs answered 401: the tool rejected the Connector's credentials$/);
    assert.match(bad.conds.Ready!.message!, /AuthReady/);
    assert.ok(probesTo('git').some((s) => s.headers.authorization === basic(WRONG.username, WRONG.password)), 'the probe used the changed Secret');

    const cli = await run(process.execPath, [MAIN, 'status', '--ops', `http://127.0.0.1:${proxy.opsPort}`], { timeoutMs: 15_000 });
    assert.equal(cli.code, 0, cli.stderr);
    const out = cli.stdout.toString();
    assert.match(out, new RegExp(`^Connector ${NS}/repo: Ready=False$`, 'm'), out);
    assert.match(out, /^ {2}AuthReady=False \(Unauthorized\): GET http:\/\/127\.0\.0\.1:\d+\/repo\.git\/info\/refs answered 401/m, out);
    assert.match(out, /^ {2}LivenessReady=True/m, out);
    assert.match(out, /^ConnectorClass git: Ready=True$/m, out);
    assert.match(out, /^ {2}APIReady=True \(NonAPI\)/m, out);
    assert.match(out, /^ {2}ProxyReady=True \(NonProxy\)/m, out);
    for (const s of sensitive()) assert.ok(!out.includes(s), `the status CLI printed a secret: ${s}`);
    const json = await run(process.execPath, [MAIN, 'status', '--ops', `http://127.0.0.1:${proxy.opsPort}`, '--json'], { timeoutMs: 15_000 });
    assert.equal(json.code, 0, json.stderr);
    const items = (JSON.parse(json.stdout.toString()) as { items: Item[] }).items;
    assert.ok(items.some((i) => i.kind === 'Connector' && i.name === 'repo' && byType(i.conditions).AuthReady?.status === 'False'));

    proxy.writeManifest('repo.yaml', gitConnector('repo', gitServer.origin, GIT));
    const good = await waitFor('Connector', `${NS}/repo`, { AuthReady: 'True', Ready: 'True' });
    assert.ok(Date.parse(good.conds.AuthReady!.lastTransitionTime!) >= Date.parse(bad.conds.AuthReady!.lastTransitionTime!));
  });

  test('tool unreachable → LivenessReady=False (and Ready=False); reachable again → True', async () => {
    await waitFor('Connector', `${NS}/down`, { LivenessReady: 'True', AuthReady: 'True', Ready: 'True' });
    await downServer!.close();
    downServer = undefined;
    const down = await waitFor('Connector', `${NS}/down`, { LivenessReady: ['False', 'ProbeFailed'] });
    assert.match(down.conds.LivenessReady!.message!, new RegExp(`^GET http://127\\.0\\.0\\.1:${downPort}/: connection refused$`));
    assert.equal(down.conds.Ready!.status, 'False');
    downServer = await gitFront('down', join(root, 'repos'), GIT, downPort);
    await waitFor('Connector', `${NS}/down`, { LivenessReady: 'True', AuthReady: 'True', Ready: 'True' });
  });

  test('no Secret and an optional auth type → SecretReady=True SecretOptional; the auth probe runs without credentials', async () => {
    const anon = await waitFor('Connector', `${NS}/anon`, { Ready: 'True' });
    assert.ok(matches(anon.conds, { SecretReady: ['True', 'SecretOptional'], AuthReady: 'True', LivenessReady: 'True' }), show(anon.conds));
    const probes = probesTo('anon');
    assert.ok(probes.some((s) => s.url === '/repo.git/info/refs?service=git-upload-pack'));
    for (const s of probes) assert.equal(s.headers.authorization, undefined, `${s.url} carried credentials`);
    // The same Connector against a server that wants credentials: the tool says no.
    const denied = await waitFor('Connector', `${NS}/anon-denied`, { AuthReady: ['False', 'Unauthorized'] });
    assert.ok(matches(denied.conds, { SecretReady: ['True', 'SecretOptional'], Ready: 'False' }), show(denied.conds));
    const deniedProbes = probesTo('git').filter((s) => s.url.startsWith('/denied.git/'));
    assert.ok(deniedProbes.length > 0 && deniedProbes.every((s) => s.headers.authorization === undefined));
  });

  test('a Secret that does not exist → SecretReady=False SecretNotFound, AuthReady=False without probing', async () => {
    const { conds } = await waitFor('Connector', `${NS}/no-secret`, { SecretReady: ['False', 'SecretNotFound'] });
    assert.ok(matches(conds, { AuthReady: ['False', 'SecretNotReady'], LivenessReady: 'True', Ready: 'False' }), show(conds));
    assert.match(conds.SecretReady!.message!, new RegExp(`^Secret ${NS}/does-not-exist not found$`));
  });

  test('a tool that does not answer → LivenessReady=False after --probe-timeout-ms', async () => {
    const { conds } = await waitFor('Connector', `${NS}/slow`, { LivenessReady: ['False', 'ProbeFailed'], Ready: 'False' });
    assert.match(conds.LivenessReady!.message!, /\/hang: no answer within 2000 ms$/);
  });

  test('missing ConnectorClass → ConnectorClassReady=False, Ready=False; the class appears → True', async () => {
    const orphan = await waitFor('Connector', `${NS}/orphan`, { ConnectorClassReady: ['False', 'ConnectorClassNotFound'], Ready: 'False' });
    assert.match(orphan.conds.ConnectorClassReady!.message!, /late-class/);
    proxy.writeManifest('late-class.yaml', SEED_GIT_CLASS.replace('name: git\n', 'name: late-class\n'));
    await waitFor('Connector', `${NS}/orphan`, { ConnectorClassReady: 'True', AuthReady: 'True', Ready: 'True' });
  });

  test('httpHeaders as a map and as a list: rendered with .Connector and .Secret and sent', async () => {
    for (const name of ['hdr-map', 'hdr-list']) {
      const { conds } = await waitFor('Connector', `${NS}/${name}`, { AuthReady: 'True' });
      assert.ok(matches(conds, { SecretReady: 'True', Ready: 'True' }), show(conds));
      // The probe path is the address's origin plus the rendered path (the address's /prefix is not used).
      const probe = probesTo('tool').find((s) => s.url === `/hdr/${name}`);
      assert.ok(probe, `${name}: no probe at /hdr/${name}`);
      assert.equal(probe.headers.authorization, `Bearer ${toolToken(name)}`);
      assert.equal(probe.headers['x-connector'], `${NS}/${name}`);
    }
    const map = await waitFor('Connector', `${NS}/hdr-map`, { LivenessReady: 'True' });
    assert.match(map.conds.LivenessReady!.message!, /\/live answered 200/);
    const list = await waitFor('Connector', `${NS}/hdr-list`, { LivenessReady: ['True', 'NonLivenessProbe'] });
    assert.ok(list);
  });

  test('method POST is honoured', async () => {
    const { conds } = await waitFor('Connector', `${NS}/post`, { AuthReady: 'True' });
    assert.match(conds.AuthReady!.message!, /^POST http:\/\/127\.0\.0\.1:\d+\/post\/check answered 200$/);
    const probes = probesTo('tool').filter((s) => s.url === '/post/check');
    assert.ok(probes.length > 0 && probes.every((s) => s.method === 'POST'), probes.map((s) => s.method).join(','));
  });

  test('redirects are followed by default (same origin: headers kept) and not with disableRedirect', async () => {
    const redir = await waitFor('Connector', `${NS}/redir`, { AuthReady: 'True' });
    assert.match(redir.conds.AuthReady!.message!, /\/redir\/ok answered 200/);
    const ok = probesTo('tool').find((s) => s.url === '/redir/ok');
    assert.equal(ok?.headers.authorization, `Bearer ${toolToken('redir')}`, 'a same-origin redirect keeps the probe headers');

    const noredir = await waitFor('Connector', `${NS}/noredir`, { AuthReady: ['False', 'ProbeFailed'] });
    assert.match(noredir.conds.AuthReady!.message!, /\/noredir\/start answered 302$/);
    assert.ok(probesTo('tool').some((s) => s.url === '/noredir/start'));
    assert.ok(!seen.some((s) => s.url === '/noredir/ok'), 'disableRedirect: the Location was not followed');
  });

  test('a redirect to another origin is followed WITHOUT the probe headers', async () => {
    const { conds } = await waitFor('Connector', `${NS}/xorigin`, { AuthReady: 'True' });
    assert.match(conds.AuthReady!.message!, new RegExp(`^GET ${elsewhere.origin.replace(/\./g, '\\.')}/landing answered 200$`));
    const first = probesTo('tool').find((s) => s.url === '/xorigin/start');
    assert.equal(first?.headers.authorization, `Bearer ${toolToken('xorigin')}`, 'the first hop had the credentials');
    assert.equal(first?.headers['x-probe-extra'], 'extra-xorigin');
    const landed = seen.filter((s) => s.server === 'elsewhere');
    assert.ok(landed.length > 0, 'the redirect was followed');
    for (const s of landed) {
      assert.equal(s.headers.authorization, undefined, `the other origin got Authorization: ${s.raw}`);
      assert.equal(s.headers['x-probe-extra'], undefined, 'no probe header reaches another origin');
      assert.ok(!s.raw.includes(toolToken('xorigin')), s.raw);
    }
  });

  test('a template error → AuthReady=False InvalidProbe naming class, field and line:col', async () => {
    const { conds } = await waitFor('Connector', `${NS}/broken`, { AuthReady: ['False', 'InvalidProbe'] });
    assert.match(conds.AuthReady!.message!, /^template: ConnectorClass broken, spec\.authProbes\[0\]\.probe\.http\.httpHeaders\[X-Broken\]:2:\d+: function "nosuchfunc" not defined$/);
    assert.equal(conds.Ready!.status, 'False');
    assert.ok(!seen.some((s) => s.url === '/x'), 'no probe is sent when its template fails');
  });

  test('an execution error that would print a Secret value (sprig fail) → InvalidProbe without the value', async () => {
    const { conds } = await waitFor('Connector', `${NS}/failing`, { AuthReady: ['False', 'InvalidProbe'] });
    const msg = conds.AuthReady!.message!;
    assert.match(msg, /ConnectorClass failing, spec\.authProbes\[0\]\.probe\.http\.httpHeaders\[Authorization\]:1:\d+/);
    assert.ok(!msg.includes(toolToken('failing')), `the Secret value is in the condition: ${msg}`);
  });

  test('a Secret value in the rendered probe path never reaches /status', async () => {
    const { conds } = await waitFor('Connector', `${NS}/leaky`, { AuthReady: ['False', 'ProbeFailed'] });
    const msg = conds.AuthReady!.message!;
    assert.ok(probesTo('tool').some((s) => s.url === `/leak/${toolToken('leaky')}/x`), 'the tool got the rendered path');
    assert.ok(!msg.includes(toolToken('leaky')), msg);
    assert.match(msg, /\/leak\/\*\*\*\/x answered 404$/);
  });

  test('ConnectorClass APIReady/ProxyReady: reachable (any answer) → True, unreachable → False, none → NonAPI/NonProxy; status.api.address.url', async () => {
    const ok = await waitFor('ConnectorClass', 'api-ok', { Ready: 'True' });
    assert.ok(matches(ok.conds, { APIReady: ['True', ''], ProxyReady: ['True', ''] }), show(ok.conds));
    assert.match(ok.conds.APIReady!.message!, /\/api answered 503$/, 'only reachability counts');
    assert.equal(ok.item.apiUrl, `${tool.origin}/api`);
    assert.ok(probesTo('tool').some((s) => s.url === '/api') && probesTo('tool').some((s) => s.url === '/proxy-svc'));

    const down = await waitFor('ConnectorClass', 'api-down', { APIReady: 'False', ProxyReady: 'False', Ready: 'False' });
    assert.match(down.conds.APIReady!.message!, /connection refused/);
    assert.equal(down.item.apiUrl, `http://127.0.0.1:${deadPort}/api`);

    // A Service reference resolves to https://<name>.<namespace>.svc plus the uri prefix.
    const svc = await waitFor('ConnectorClass', 'api-svc', { APIReady: 'False', ProxyReady: ['True', 'NonProxy'], Ready: 'False' });
    assert.equal(svc.item.apiUrl, 'https://git.default.svc/api');

    // A Connector of a class with spec.proxy: ProxyServiceReady names where it is served.
    const served = await waitFor('Connector', `${NS}/served`, { Ready: 'True' });
    assert.ok(matches(served.conds, {
      SecretReady: ['True', 'NonAuth'], LivenessReady: ['True', 'NonLivenessProbe'], AuthReady: ['True', 'NonAuthProbe'], ProxyServiceReady: ['True', ''],
    }), show(served.conds));
    assert.match(served.conds.ProxyServiceReady!.message!, new RegExp(`c-served\\.${NS}\\.proxy\\.test`));

    // The unreachable API comes up: True.
    const text = readFileSync(join(proxy.manifestsDir, 'api.yaml'), 'utf8').split(`127.0.0.1:${deadPort}`).join(`127.0.0.1:${tool.port}`);
    proxy.writeManifest('api.yaml', text);
    await waitFor('ConnectorClass', 'api-down', { APIReady: 'True', ProxyReady: 'True', Ready: 'True' });
  });

  test('probes never carry a client token; no Secret value or token in /status, the CLI or the logs', async () => {
    await statusItems();
    const probes = seen.filter((s) => s.headers['user-agent'] === PROBE_UA);
    assert.ok(probes.length > 20, `probes ran: ${probes.length}`);
    for (const s of probes) {
      const all = `${s.url}\n${s.raw}`;
      for (const t of [CLIENT_TOKEN, OTHER_TOKEN, b64(`any:${CLIENT_TOKEN}`)]) assert.ok(!all.includes(t), `a probe carried a client token: ${all}`);
    }
    const logs = proxy.logs();
    assert.match(logs, /"msg":"request"/, 'the access log is on');
    for (const s of sensitive()) {
      assert.ok(!logs.includes(s), `the log contains ${s}`);
      for (const body of statusBodies) assert.ok(!body.includes(s), `/status contains ${s}`);
    }
  });
});

// ---- Kubernetes mode -------------------------------------------------------------------

describe('Kubernetes mode: conditions and status.api.address.url written to a real API server', () => {
  const KNS = 'team';
  const API = `/apis/${API_VERSION}`;
  let kube: KubeCluster;
  let kproxy: ProxyProcess | undefined;
  let kdir: string;
  const deploy = (f: string): string => readFileSync(join(REPO_ROOT, 'deploy', f), 'utf8');

  before(async () => {
    kube = await startKube();
    kdir = mkdtempSync(join(tmpdir(), 'cproxy-status-kube-'));
    await kube.applyYaml(docs(deploy('namespace.yaml'), deploy('rbac.yaml'), deploy('crds/connectorclasses.yaml'), deploy('crds/connectors.yaml')));
    await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
    await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
    await kube.applyYaml(docs(`apiVersion: v1\nkind: Namespace\nmetadata: {name: ${KNS}}`));
    await kube.applyYaml(docs(
      SEED_GIT_CLASS,
      gitConnector('repo', gitServer.origin, GIT),
      apiClass('api-ok', { api: { uri: `${tool.origin}/api` } }),
      apiClass('api-svc', { api: { ref: { kind: 'Service', name: 'git', namespace: 'default' }, uri: '/api' } }),
    ));
    // The proxy's own identity: the ServiceAccount of deploy/rbac.yaml, nothing more.
    const saToken = await kube.createServiceAccountToken('connectors-system', 'connectors-proxy');
    const kubeconfig = join(kdir, 'proxy.kubeconfig');
    writeFileSync(kubeconfig, [
      'apiVersion: v1', 'kind: Config', 'current-context: proxy',
      'clusters:', '- name: test', '  cluster:', `    server: ${kube.url}`, `    certificate-authority: ${kube.caFile}`,
      'users:', '- name: connectors-proxy', '  user:', `    token: ${saToken}`,
      'contexts:', '- name: proxy', '  context:', '    cluster: test', '    user: connectors-proxy', '',
    ].join('\n'), { mode: 0o600 });
    kproxy = await startProxy({
      manifests: {}, domain: 'kube.test',
      args: ['--source', 'kubernetes', '--kubeconfig', kubeconfig, '--probe-interval-ms', '500', '--probe-timeout-ms', '2000'],
    });
  }, { timeout: 90_000 });

  after(async () => {
    await kproxy?.stop();
    await kube?.stop();
    if (kdir) rmSync(kdir, { recursive: true, force: true });
  }, { timeout: 30_000 });

  async function apiConds(path: string, want: Want, ms = 20_000): Promise<{ conds: Record<string, Cond>; obj: { status?: { conditions?: Cond[]; api?: { address?: { url?: string } } } } }> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = await kube.api('GET', path);
      assert.equal(r.status, 200, r.text);
      const obj = r.json as { status?: { conditions?: Cond[]; api?: { address?: { url?: string } } } };
      const conds = byType(obj.status?.conditions ?? []);
      if (matches(conds, want)) return { conds, obj };
      if (Date.now() > deadline) {
        assert.fail(`${path}: wanted ${JSON.stringify(want)}; API server has:\n  ${show(conds)}\n--- proxy log:\n${kproxy?.logs().trimEnd().split('\n').slice(-15).join('\n')}`);
      }
      await sleep(200);
    }
  }

  test('Connector conditions and ConnectorClass conditions + status.api.address.url reach the API server', async () => {
    const repo = await apiConds(`${API}/namespaces/${KNS}/connectors/repo`, { Ready: 'True' });
    assert.ok(matches(repo.conds, {
      ConnectorClassReady: 'True', SecretReady: 'True', LivenessReady: 'True', AuthReady: 'True', ProxyServiceReady: ['True', 'NonProxy'],
    }), show(repo.conds));
    for (const c of Object.values(repo.conds)) assert.ok(!Number.isNaN(Date.parse(c.lastTransitionTime ?? '')), `${c.type} has a lastTransitionTime`);

    const git = await apiConds(`${API}/connectorclasses/git`, { APIReady: ['True', 'NonAPI'], ProxyReady: ['True', 'NonProxy'], Ready: 'True' });
    assert.equal(git.obj.status?.api, undefined);
    const ok = await apiConds(`${API}/connectorclasses/api-ok`, { APIReady: 'True', Ready: 'True' });
    assert.equal(ok.obj.status?.api?.address?.url, `${tool.origin}/api`);
    const svc = await apiConds(`${API}/connectorclasses/api-svc`, { APIReady: 'False', Ready: 'False' });
    assert.equal(svc.obj.status?.api?.address?.url, 'https://git.default.svc/api');
    assert.doesNotMatch(kproxy!.logs(), /status not written/, 'every status patch was allowed (deploy/rbac.yaml)');
  });

  test('a wrong password in the Secret → AuthReady=False Unauthorized in the API server; fixed → True', async () => {
    await kube.applyYaml(stringify(secret('repo-secret', 'kubernetes.io/basic-auth', WRONG)));
    const bad = await apiConds(`${API}/namespaces/${KNS}/connectors/repo`, { AuthReady: ['False', 'Unauthorized'], Ready: 'False' });
    assert.match(bad.conds.AuthReady!.message!, /answered 401/);
    await kube.applyYaml(stringify(secret('repo-secret', 'kubernetes.io/basic-auth', GIT)));
    await apiConds(`${API}/namespaces/${KNS}/connectors/repo`, { AuthReady: 'True', Ready: 'True' });
    const logs = kproxy!.logs();
    assert.doesNotMatch(logs, /status not written/);
    for (const s of sensitive()) assert.ok(!logs.includes(s), `the log contains ${s}`);
  });
});
