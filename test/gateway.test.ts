// The Connectors API gateway in process (src/gateway/): OpenAPI path-template matching,
// compilation once per class version, the request path's shape, provider selection and
// x-openapi-address, the X-Plugin headers against the docs' own examples, Status bodies, and
// the admission with the real static-token authenticator, object store and route table, with
// the feature flags flipped between requests. End to end with RBAC: test/gateway-kube.test.ts.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StaticTokenAuthenticator, parseTokenFile } from '../src/auth/static-tokens';
import { GatewayAdmission, isServiceAdmission } from '../src/gateway/admission';
import { ClassApis } from '../src/gateway/class-apis';
import { APIS_PERMISSIONS, APIS_WRITE_PASSTHROUGH, type GatewayFlags } from '../src/gateway/flags';
import { FeatureFlags } from '../src/flags/feature-flags';
import { OpenApiMatcher, type Compiled } from '../src/gateway/openapi';
import { parseGatewayPath } from '../src/gateway/path';
import { pluginHeaders } from '../src/http/plugin-headers';
import { statusBody } from '../src/gateway/status';
import { RouteTable } from '../src/routes/route-table';
import type { Admission } from '../src/server/admission';
import { ObjectStore } from '../src/sources/store';
import { ConfigError } from '../src/sources/validate';
import { connectorClass, connector, secret } from './support/objects';
import type { OpenApiDocument } from '../src/types';

const doc = (paths: Record<string, unknown>): OpenApiDocument => ({ openapi: '3.0.1', paths });
function matcher(paths: Record<string, unknown>): OpenApiMatcher {
  const c: Compiled = OpenApiMatcher.compile(doc(paths));
  assert.ok('matcher' in c, 'problem' in c ? c.problem : '');
  return c.matcher;
}
const templateOf = (m: OpenApiMatcher, path: string): string | undefined => m.match(path)?.template;

describe('gateway: OpenAPI path templates', () => {
  test('concrete segments win over parameters; a dead end backtracks to the parameter', () => {
    const m = matcher({
      '/api/v4/projects/{id}': { get: {} },
      '/api/v4/projects/starred': { get: {} },
      '/api/v4/projects/{id}/repository/branches': { get: {} },
      '/a/b/d': { get: {} },
      '/a/{x}/c': { get: {} },
    });
    assert.equal(m.size, 5);
    assert.equal(templateOf(m, '/api/v4/projects/starred'), '/api/v4/projects/starred');
    assert.equal(templateOf(m, '/api/v4/projects/12'), '/api/v4/projects/{id}');
    assert.equal(templateOf(m, '/api/v4/projects/12/repository/branches'), '/api/v4/projects/{id}/repository/branches');
    assert.equal(templateOf(m, '/a/b/c'), '/a/{x}/c', 'literal b leads nowhere for c: the parameter takes it');
    assert.equal(templateOf(m, '/a/b/d'), '/a/b/d');
  });

  test('a parameter is one non-empty segment: an encoded slash stays inside it, an empty segment or a trailing slash does not match', () => {
    const m = matcher({ '/api/v4/projects/{id}/repository/branches': { get: {} } });
    assert.equal(templateOf(m, '/api/v4/projects/devops%2Fkatanomi/repository/branches'), '/api/v4/projects/{id}/repository/branches');
    assert.equal(templateOf(m, '/api/v4/projects//repository/branches'), undefined);
    assert.equal(templateOf(m, '/api/v4/projects/1/repository/branches/'), undefined);
    assert.equal(templateOf(m, '/api/v4/projects/1/repository'), undefined);
    assert.equal(templateOf(m, '/api/v4/projects/a/b/repository/branches'), undefined);
  });

  test('segments mixing text and parameters; concrete ones still win', () => {
    const m = matcher({ '/files/{name}.json': { get: {} }, '/files/index.json': { get: {} }, '/v/{major}.{minor}': { get: {} } });
    assert.equal(templateOf(m, '/files/a.json'), '/files/{name}.json');
    assert.equal(templateOf(m, '/files/index.json'), '/files/index.json');
    assert.equal(templateOf(m, '/files/a.xml'), undefined);
    assert.equal(templateOf(m, '/v/1.2'), '/v/{major}.{minor}');
    assert.equal(templateOf(m, '/v/12'), undefined);
  });

  test('percent-encoded unreserved characters are the characters a tool decodes them to; other escapes are not', () => {
    const m = matcher({ '/api/v4/projects': { get: {} }, '/a%2Fb': { get: {} } });
    assert.equal(templateOf(m, '/api/v4/%70rojects'), '/api/v4/projects');
    assert.equal(templateOf(m, '/api/v4/PROJECTS'), undefined, 'paths are case-sensitive');
    assert.equal(templateOf(m, '/a%2fb'), '/a%2Fb');
    assert.equal(templateOf(m, '/a/b'), undefined);
  });

  test('the root template and an empty document', () => {
    assert.equal(templateOf(matcher({ '/': { get: {} } }), '/'), '/');
    const none = OpenApiMatcher.compile(undefined);
    assert.ok('matcher' in none && none.matcher.match('/anything') === undefined);
  });

  test('operations: x-provider-type (default proxy) and x-openapi-address per method', () => {
    const m = matcher({
      '/git/api': { get: { 'x-provider-type': 'api', summary: 'custom' } },
      '/api/v4/projects': { get: { 'x-provider-type': 'proxy', 'x-openapi-address': 'api' }, post: {}, parameters: [] },
    });
    const custom = m.match('/git/api')!;
    assert.deepEqual(custom.operations.get('get'), { provider: 'api', address: undefined });
    const projects = m.match('/api/v4/projects')!;
    assert.deepEqual(projects.operations.get('get'), { provider: 'proxy', address: 'api' });
    assert.deepEqual(projects.operations.get('post'), { provider: 'proxy', address: undefined });
    assert.equal(projects.operations.get('delete'), undefined);
  });

  test('a malformed document is a problem naming the field', () => {
    const problem = (d: unknown): string => {
      const c = OpenApiMatcher.compile(d as OpenApiDocument);
      assert.ok('problem' in c, `expected a problem for ${JSON.stringify(d)}`);
      return c.problem;
    };
    assert.match(problem(doc({ '/a': { get: { 'x-provider-type': 'plugin' } } })), /spec\.api\.openapi\.paths\["\/a"\]\.get\.x-provider-type: must be "api" or "proxy", not "plugin"/);
    assert.match(problem(doc({ 'a/b': { get: {} } })), /paths\["a\/b"\]: a path template must start with "\/"/);
    assert.match(problem(doc({ '/a/{b': { get: {} } })), /paths\["\/a\/\{b"\]: unbalanced/);
    assert.match(problem(doc({ '/a/b}': { get: {} } })), /"}" without "{"/);
    assert.match(problem(doc({ '/p/{id}': { get: {} }, '/p/{other}': { get: {} } })), /paths\["\/p\/\{other\}"\]: the same path as "\/p\/\{id\}"/);
    assert.match(problem(doc({ '/a': { get: 'yes' } })), /paths\["\/a"\]\.get: must be an operation/);
    assert.match(problem(doc({ '/a': { get: { 'x-openapi-address': 5 } } })), /get\.x-openapi-address: must be a string/);
    assert.match(problem({ openapi: '3.0.1', paths: ['/a'] }), /spec\.api\.openapi\.paths: must be an object/);
    assert.match(problem('openapi: 3'), /spec\.api\.openapi: must be an OpenAPI document/);
  });
});

describe('gateway: per class, compiled once per version', () => {
  test('many requests and status-only updates reuse the compilation; a spec change recompiles', () => {
    const store = new ObjectStore();
    const cls = (title: string) => connectorClass('gitlab', { api: { uri: 'http://api.example/x', openapi: { openapi: '3.0.1', info: { title }, paths: { '/p/{id}': { get: {} } } } } });
    store.replaceAll([cls('one')]);
    const apis = new ClassApis(store);
    for (let i = 0; i < 1000; i++) assert.equal(apis.of(store.connectorClass('gitlab')!).matcher?.match(`/p/${i}`)?.template, '/p/{id}');
    assert.equal(apis.compilations, 1);
    store.upsert({ ...cls('one'), status: { conditions: [{ type: 'Ready', status: 'True' }] } });
    apis.of(store.connectorClass('gitlab')!);
    assert.equal(apis.compilations, 1, 'a status write is not a new class version');
    store.upsert(cls('two'));
    apis.of(store.connectorClass('gitlab')!);
    assert.equal(apis.compilations, 2);
  });

  test('the class API address: status.api.address.url, or the docs\' sentence', () => {
    const store = new ObjectStore();
    store.replaceAll([
      connectorClass('with', { api: { uri: 'http://api.example:9000/prefix/' } }),
      connectorClass('svc', { api: { ref: { kind: 'Service', name: 'git-api', namespace: 'connectors-system' }, uri: '/v1' } }),
      connectorClass('without', {}),
    ]);
    const apis = new ClassApis(store);
    assert.deepEqual(apis.of(store.connectorClass('with')!).service, { origin: 'http://api.example:9000', basePath: '/prefix', host: 'api.example:9000' });
    assert.deepEqual(apis.of(store.connectorClass('svc')!).service, { origin: 'https://git-api.connectors-system.svc', basePath: '/v1', host: 'git-api.connectors-system.svc' });
    assert.match(String(apis.of(store.connectorClass('without')!).service), /^api address of connectorclass 'without' is not resolved/);
  });
});

describe('gateway: request path and errors', () => {
  test('/connectors/v1alpha1/<ns>/<name>/path/<api-path>', () => {
    assert.deepEqual(parseGatewayPath('/connectors/v1alpha1/default/gitlab-connector/path/api/v4/projects?simple=true'),
      { namespace: 'default', name: 'gitlab-connector', apiPath: '/api/v4/projects', query: '?simple=true' });
    assert.deepEqual(parseGatewayPath('/connectors/v1alpha1/ns/c/path'), { namespace: 'ns', name: 'c', apiPath: '/', query: '' });
    assert.deepEqual(parseGatewayPath('/connectors/v1alpha1/ns/c/path?x=1'), { namespace: 'ns', name: 'c', apiPath: '/', query: '?x=1' });
    assert.deepEqual(parseGatewayPath('/connectors/v1alpha1/ns/c/path/'), { namespace: 'ns', name: 'c', apiPath: '/', query: '' });
    for (const bad of ['/connectors/v1alpha1/ns', '/connectors/v1alpha1/ns/c', '/connectors/v1alpha1/ns/c/paths/x', '/connectors/v1alpha1/NS/c/path/x', '/connectors/v1alpha1/ns//path/x', '/connectors/v1alpha1/ns/c/other/x']) {
      assert.ok('error' in parseGatewayPath(bad), bad);
    }
  });

  test('Status bodies with apimachinery\'s reasons', () => {
    const s = (code: number) => JSON.parse(statusBody(code, 'm')) as Record<string, unknown>;
    assert.deepEqual(s(400), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'm', reason: 'BadRequest', code: 400 });
    assert.deepEqual([401, 403, 404, 405, 413, 502, 503, 504].map((c) => s(c).reason),
      ['Unauthorized', 'Forbidden', 'NotFound', 'MethodNotAllowed', 'RequestEntityTooLarge', 'InternalError', 'ServiceUnavailable', 'Timeout']);
  });

  test('X-Plugin headers are exactly the docs\' request example (connectorclass_api_spec.mdx)', () => {
    const c = connector('default', 'gh', { connectorClassName: 'github', address: 'https://github.com' });
    const s = secret('default', 'gh', 'kubernetes.io/basic-auth', { username: 'admin', password: 'pass123' });
    const h = pluginHeaders(c, s);
    assert.deepEqual(h, [
      'x-plugin-meta', 'eyJiYXNlVVJMIjoiaHR0cHM6Ly9naXRodWIuY29tIn0=',
      'x-plugin-auth', 'a3ViZXJuZXRlcy5pby9iYXNpYy1hdXRo',
      'x-plugin-secret', 'eyJwYXNzd29yZCI6ImNHRnpjekV5TXc9PSIsInVzZXJuYW1lIjoiWVdSdGFXND0ifQ==',
    ]);
    assert.deepEqual(pluginHeaders(c, undefined), ['x-plugin-meta', 'eyJiYXNlVVJMIjoiaHR0cHM6Ly9naXRodWIuY29tIn0='], 'no Secret: no auth headers');
  });
});

// ---- admission ----------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'cproxy-gateway-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const tokensFile = join(dir, 'tokens.yaml');
writeFileSync(tokensFile, `tokens:
  - {token: viewer-token-1, user: viewer, connectors: ["team/*"]}
  - token: reader-token-1
    user: reader
    connectors: ["team/*"]
    apis: [{resources: ["connectors/apis/gitlab"], verbs: [get]}]
  - token: branch-token-1
    user: brancher
    connectors: ["team/*"]
    apis: [{resources: ["connectors/apis/gitlab/api/v4/projects/{projectId}/repository/branches"], verbs: [get, create]}]
  - token: admin-token-1
    user: admin
    connectors: ["*"]
    apis: [{resources: ["*"], verbs: ["*"]}]
  - {token: other-token-1, user: other, connectors: ["other/*"]}
`);
const tokens = new StaticTokenAuthenticator(tokensFile);
tokens.load();

const GITLAB_API = {
  uri: 'http://class-api.example:7000/gl',
  openapi: doc({
    '/api/v4/projects/{projectId}/repository/branches': { get: {}, post: {} },
    '/gitlab/custom-api': { get: { 'x-provider-type': 'api' } },
    '/api/v4/users': { get: { 'x-openapi-address': 'api' } },
    '/api/v4/uploads': { get: { 'x-openapi-address': 'upload' } },
    '/api/v4/search': { get: { 'x-openapi-address': 'https://search.example/base' } },
    '/api/v4/missing': { get: { 'x-openapi-address': 'nope' } },
    '/api/v4/bad-url': { get: { 'x-openapi-address': 'ftp://x.example' } },
    '/api/v4/not-url': { get: { 'x-openapi-address': 'web' } },
  }),
};

function world(flags: GatewayFlags): GatewayAdmission {
  const store = new ObjectStore();
  store.replaceAll([
    connectorClass('gitlab', {
      auth: { types: [{ name: 'basic', secretType: 'kubernetes.io/basic-auth' }] },
      // A class default that is no URL (the validator refuses such a value on a Connector).
      addressExtensions: [{ name: 'api', type: 'string' }, { name: 'upload', type: 'string', default: 'http://uploads.example' }, { name: 'web', type: 'string', default: 'not a url' }],
      api: GITLAB_API,
    }),
    connectorClass('noapi', { auth: { types: [{ name: 'basic', secretType: 'kubernetes.io/basic-auth' }] }, api: { openapi: doc({ '/custom': { get: { 'x-provider-type': 'api' } } }) } }),
    connectorClass('broken-openapi', { api: { uri: 'http://x.example', openapi: doc({ '/a': { get: { 'x-provider-type': 'other' } } }) } }),
    // No spec.proxy: no proxy to the tool, but the class's own API serves.
    connectorClass('apionly', { auth: { types: [{ name: 'basic', secretType: 'kubernetes.io/basic-auth' }] }, api: { uri: 'http://class-api.example:7000/ao', openapi: doc({ '/custom': { get: { 'x-provider-type': 'api' } } }) }, proxy: undefined }),
    connector('team', 'gl', {
      connectorClassName: 'gitlab', address: 'http://gitlab.example:8080/gitlab',
      addressExtensions: [{ name: 'api', value: 'http://api.gitlab.example/v4base/' }],
      auth: { name: 'basic', secretRef: { name: 'gl-cred' } },
    }),
    connector('team', 'na', { connectorClassName: 'noapi', address: 'http://tool.example', auth: { name: 'basic', secretRef: { name: 'gl-cred' } } }),
    connector('team', 'bo', { connectorClassName: 'broken-openapi', address: 'http://tool.example' }),
    connector('team', 'ao', { connectorClassName: 'apionly', address: 'http://tool.example', auth: { name: 'basic', secretRef: { name: 'gl-cred' } } }),
    connector('team', 'nosecret', { connectorClassName: 'gitlab', address: 'http://tool.example', addressExtensions: [{ name: 'api', value: 'http://api.tool.example' }], auth: { name: 'basic', secretRef: { name: 'missing' } } }),
    secret('team', 'gl-cred', 'kubernetes.io/basic-auth', { username: 'u', password: 'p' }),
  ]);
  store.markSynced();
  return new GatewayAdmission({ store, routes: new RouteTable(store), auth: tokens, flags, classApis: new ClassApis(store) });
}

const req = (method: string, url: string, token?: string, authorization?: string): IncomingMessage =>
  ({ method, url, headers: authorization !== undefined ? { authorization } : token === undefined ? {} : { authorization: `Bearer ${token}` } }) as unknown as IncomingMessage;
const P = '/connectors/v1alpha1/team';

async function admit(g: GatewayAdmission, method: string, url: string, token?: string, authorization?: string): Promise<Admission> {
  return g.admit(req(method, url, token, authorization));
}
async function refused(g: GatewayAdmission, method: string, url: string, token: string | undefined, status: number, message?: RegExp): Promise<Admission & { admitted: false }> {
  const a = await admit(g, method, url, token);
  assert.ok(!a.admitted, `${method} ${url}: expected ${status}, was admitted to ${a.admitted ? a.target.origin + a.target.path : ''}`);
  assert.equal(a.status, status, `${method} ${url}: ${a.message}`);
  if (message) assert.match(a.message, message);
  return a;
}
async function target(g: GatewayAdmission, method: string, url: string, token: string): Promise<string> {
  const a = await admit(g, method, url, token);
  assert.ok(a.admitted, `${method} ${url}: ${a.admitted ? '' : `${a.status} ${a.message}`}`);
  return a.target.origin + a.target.path;
}

describe('gateway: admission', () => {
  test('flags off: GET, HEAD and OPTIONS with get on the Connector go to the tool; writes are 405 before any token check', async () => {
    const g = world(new FeatureFlags());
    assert.equal(await target(g, 'GET', `${P}/gl/path/api/v4/projects?simple=true`, 'viewer-token-1'), 'http://gitlab.example:8080/gitlab/api/v4/projects?simple=true');
    assert.equal(await target(g, 'HEAD', `${P}/gl/path/api/v4/projects/1/repository/branches`, 'viewer-token-1'), 'http://gitlab.example:8080/gitlab/api/v4/projects/1/repository/branches');
    assert.equal(await target(g, 'OPTIONS', `${P}/gl/path`, 'viewer-token-1'), 'http://gitlab.example:8080/gitlab/');
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const r = await refused(g, m, `${P}/gl/path/api/v4/projects/1/repository/branches`, undefined, 405, /enable-connector-apis-write-passthrough/);
      assert.equal(r.headers?.allow, 'GET, HEAD, OPTIONS');
    }
    await refused(g, 'TRACE', `${P}/gl/path/x`, 'viewer-token-1', 405, /does not serve TRACE/);
  });

  test('Bearer only: none or Basic → 401 with a Bearer challenge; another team → 403; unknown Connector → 404 only after the token', async () => {
    const g = world(new FeatureFlags());
    const none = await refused(g, 'GET', `${P}/gl/path/x`, undefined, 401, /Bearer/);
    assert.match(String(none.headers?.['www-authenticate']), /^Bearer /);
    const basic = await admit(g, 'GET', `${P}/gl/path/x`, undefined, 'Basic ' + Buffer.from('any:viewer-token-1').toString('base64'));
    assert.ok(!basic.admitted && basic.status === 401);
    const bad = await refused(g, 'GET', `${P}/gl/path/x`, 'not-a-token', 401);
    assert.match(String(bad.headers?.['www-authenticate']), /^Bearer /);
    await refused(g, 'GET', `${P}/gl/path/x`, 'other-token-1', 403, /team\/gl/);
    await refused(g, 'GET', `${P}/ghost/path/x`, 'not-a-token', 401);
    await refused(g, 'GET', `${P}/ghost/path/x`, 'viewer-token-1', 404, /connector team\/ghost not found/);
    await refused(g, 'GET', '/connectors/v1alpha1/team/gl/x', 'viewer-token-1', 404, /\/connectors\/v1alpha1\/<namespace>\/<connector>\/path\/<api-path>/);
    await refused(g, 'GET', `${P}/gl/path/api/%2e%2e/admin`, 'viewer-token-1', 400, /"\." or "\.\." segments/);
  });

  test('flags are read on every request: the same admission follows the connectors-config ConfigMap as it changes', async () => {
    const flags = new FeatureFlags();
    const g = world(flags);
    const configMap = (data: Record<string, string>) => flags.applyConfigMap(data, 'ConfigMap connectors-system/connectors-config');
    await refused(g, 'POST', `${P}/gl/path/api/v4/projects/1/repository/branches`, 'viewer-token-1', 405);
    configMap({ [APIS_WRITE_PASSTHROUGH]: 'true' });
    assert.equal(await target(g, 'POST', `${P}/gl/path/api/v4/projects/1/repository/branches`, 'viewer-token-1'), 'http://gitlab.example:8080/gitlab/api/v4/projects/1/repository/branches',
      'write passthrough without apis permissions: get on the Connector is enough');
    configMap({ [APIS_WRITE_PASSTHROUGH]: 'true', [APIS_PERMISSIONS]: 'true' });
    await refused(g, 'POST', `${P}/gl/path/api/v4/projects/1/repository/branches`, 'viewer-token-1', 403, /may not create connectors\/apis\/gitlab nor connectors\/apis\/gitlab\/api\/v4\/projects\/\{projectId\}\/repository\/branches/);
    configMap({ [APIS_WRITE_PASSTHROUGH]: 'true', [APIS_PERMISSIONS]: 'false' });
    assert.ok((await admit(g, 'POST', `${P}/gl/path/api/v4/projects/1/repository/branches`, 'viewer-token-1')).admitted);
  });

  test('apis permissions: the class level covers every path, the path level only its template, each verb apart', async () => {
    const g = world(new FeatureFlags({ [APIS_PERMISSIONS]: { value: true, origin: 'cli' }, [APIS_WRITE_PASSTHROUGH]: { value: true, origin: 'env' } }));
    await refused(g, 'GET', `${P}/gl/path/api/v4/projects`, 'viewer-token-1', 403, /may not get connectors\/apis\/gitlab \(token file: apis\)/);
    assert.ok((await admit(g, 'GET', `${P}/gl/path/api/v4/anything/at/all`, 'reader-token-1')).admitted);
    assert.ok((await admit(g, 'HEAD', `${P}/gl/path/api/v4/anything`, 'reader-token-1')).admitted, 'HEAD is get');
    assert.ok((await admit(g, 'OPTIONS', `${P}/gl/path/api/v4/anything`, 'reader-token-1')).admitted, 'OPTIONS is get');
    await refused(g, 'POST', `${P}/gl/path/api/v4/projects/1/repository/branches`, 'reader-token-1', 403, /may not create/);
    await refused(g, 'PUT', `${P}/gl/path/api/v4/x`, 'reader-token-1', 403, /may not update/);
    await refused(g, 'PATCH', `${P}/gl/path/api/v4/x`, 'reader-token-1', 403, /may not patch/);
    await refused(g, 'DELETE', `${P}/gl/path/api/v4/x`, 'reader-token-1', 403, /may not delete/);
    // The path-level rule: its template, GET and POST, nothing else.
    assert.ok((await admit(g, 'GET', `${P}/gl/path/api/v4/projects/devops%2Fapp/repository/branches?search=x`, 'branch-token-1')).admitted);
    assert.ok((await admit(g, 'POST', `${P}/gl/path/api/v4/projects/7/repository/branches`, 'branch-token-1')).admitted);
    await refused(g, 'GET', `${P}/gl/path/api/v4/projects/7/repository/tags`, 'branch-token-1', 403);
    await refused(g, 'DELETE', `${P}/gl/path/api/v4/projects/7/repository/branches`, 'branch-token-1', 403);
    for (const m of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) assert.ok((await admit(g, m, `${P}/gl/path/any`, 'admin-token-1')).admitted, m);
  });

  test('x-provider-type api: the class API address plus the API path, with the X-Plugin headers; proxy: the route\'s credentials', async () => {
    const g = world(new FeatureFlags());
    const a = await admit(g, 'GET', `${P}/gl/path/gitlab/custom-api?page=2`, 'viewer-token-1');
    assert.ok(a.admitted && isServiceAdmission(a));
    assert.equal(a.target.origin + a.target.path, 'http://class-api.example:7000/gl/gitlab/custom-api?page=2');
    assert.equal(a.route?.injector, undefined, 'no credentials are placed for the API service');
    assert.equal(a.route?.key, 'team/gl', 'metrics stay the Connector\'s');
    const h = Object.fromEntries(a.pluginHeaders.reduce<[string, string][]>((acc, v, i, all) => (i % 2 === 0 ? [...acc, [v, all[i + 1]!]] : acc), []));
    assert.deepEqual(JSON.parse(Buffer.from(h['x-plugin-meta']!, 'base64').toString()), { baseURL: 'http://gitlab.example:8080/gitlab' });
    assert.equal(Buffer.from(h['x-plugin-auth']!, 'base64').toString(), 'kubernetes.io/basic-auth');
    assert.deepEqual(JSON.parse(Buffer.from(h['x-plugin-secret']!, 'base64').toString()), { password: 'cA==', username: 'dQ==' });
    const p = await admit(g, 'GET', `${P}/gl/path/api/v4/projects/1/repository/branches`, 'viewer-token-1');
    assert.ok(p.admitted && !isServiceAdmission(p));
    assert.equal(p.route?.injector?.kind, 'basic');
    // A class whose API address is not resolved: the docs' message, 400.
    await refused(g, 'GET', `${P}/na/path/custom`, 'viewer-token-1', 400, /^api address of connectorclass 'noapi' is not resolved/);
    // Undeclared paths of that class still go to the tool.
    assert.equal(await target(g, 'GET', `${P}/na/path/other`, 'viewer-token-1'), 'http://tool.example/other');
  });

  test('x-openapi-address: an extension (the Connector\'s, else the class default), a URL; missing or not a URL → 400', async () => {
    const g = world(new FeatureFlags());
    assert.equal(await target(g, 'GET', `${P}/gl/path/api/v4/users?page=1`, 'viewer-token-1'), 'http://api.gitlab.example/v4base/api/v4/users?page=1');
    assert.equal(await target(g, 'GET', `${P}/gl/path/api/v4/uploads`, 'viewer-token-1'), 'http://uploads.example/api/v4/uploads');
    assert.equal(await target(g, 'GET', `${P}/gl/path/api/v4/search`, 'viewer-token-1'), 'https://search.example/base/api/v4/search');
    await refused(g, 'GET', `${P}/gl/path/api/v4/missing`, 'viewer-token-1', 400, /connector team\/gl has no address extension "nope"/);
    await refused(g, 'GET', `${P}/gl/path/api/v4/bad-url`, 'viewer-token-1', 400, /x-openapi-address "ftp:\/\/x\.example" of ConnectorClass "gitlab" is not a valid http\(s\) URL/);
    await refused(g, 'GET', `${P}/gl/path/api/v4/not-url`, 'viewer-token-1', 400, /address extension "web" of connector team\/gl is not an http\(s\) URL/);
  });

  test('a class without spec.proxy: its API operations are served, nothing reaches the tool (502 naming spec.proxy)', async () => {
    const g = world(new FeatureFlags());
    const a = await admit(g, 'GET', `${P}/ao/path/custom`, 'viewer-token-1');
    assert.ok(a.admitted && isServiceAdmission(a));
    assert.equal(a.target.origin + a.target.path, 'http://class-api.example:7000/ao/custom');
    assert.equal(a.route?.injector, undefined);
    await refused(g, 'GET', `${P}/ao/path/elsewhere`, 'viewer-token-1', 502, /has no proxy capability \(spec\.proxy is not set\)/);
  });

  test('a class with a malformed openapi or a Connector without its Secret: 502 naming what is wrong', async () => {
    const g = world(new FeatureFlags());
    await refused(g, 'GET', `${P}/bo/path/a`, 'viewer-token-1', 502, /ConnectorClass "broken-openapi": spec\.api\.openapi\.paths\["\/a"\]\.get\.x-provider-type/);
    await refused(g, 'GET', `${P}/nosecret/path/gitlab/custom-api`, 'viewer-token-1', 502, /Secret team\/missing not found/);
  });
});

describe('gateway: token file apis rules', () => {
  test('errors name the file, the entry and the field', () => {
    const bad = (apis: string, re: RegExp): void => {
      assert.throws(() => parseTokenFile(`tokens:\n  - {token: abcdefgh1, user: u, connectors: ["*"], apis: ${apis}}\n`, 'tokens.yaml'),
        (e: Error) => e instanceof ConfigError && re.test(e.message));
    };
    bad('yes', /tokens\.yaml: tokens\[0\]\.apis: must be a list/);
    bad('[{verbs: [get]}]', /tokens\[0\]\.apis\[0\]\.resources: must be a non-empty list/);
    bad('[{resources: ["connectors/proxy"], verbs: [get]}]', /apis\[0\]\.resources\[0\]: "connectors\/proxy" is not/);
    bad('[{resources: ["connectors/apis/git"], verbs: [read]}]', /apis\[0\]\.verbs\[0\]: "read" is not get, create/);
  });
});
