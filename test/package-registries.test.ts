// npm and pip through the reverse proxy against real registries that require login:
// Verdaccio and pypiserver. The clients hold only the client token; the proxy injects the
// Secret's Basic credentials. Verdaccio writes absolute tarball URLs from the Host header and
// pypiserver root-relative links, so the proxy rewrites them to the address the client used
// (streaming, gzip decoded); without that npm would leave the proxy and pip lose the prefix.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { UrlReplacer, substitutionsFor } from '../src/http/body-rewrite';
import { basic, startProxy, type ProxyProcess } from './support/proxy';
import { request } from './support/http';
import { startPypiserver, startVerdaccio, writeWheel, type PackageRegistry } from './support/package-registries';
import { run, type RunResult } from './support/run';
import { startUpstream, type Upstream } from './support/upstream';

const TOKEN = 'good-token-123';
const OTHER = 'other-token-456';
const DOMAIN = 'pkg.test';
const T = { timeout: 120_000 };

let root: string;
let verdaccio: PackageRegistry;
let pypi: PackageRegistry;
let gzipTool: Upstream;
let proxy: ProxyProcess;
/** A private /etc/hosts for the host-form clients, or why there cannot be one. */
let hostsFile: string | undefined;
let noHosts = '';

function classAndConnector(name: string, address: string, resolver: 'host' | 'path', secret: string): string {
  return `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: ${name}
  annotations: {connectors.cpaas.io/proxy-resolver: ${resolver}}
spec:
  proxy: {}
  address: {type: string}
  auth: {types: [{name: basicAuth, secretType: kubernetes.io/basic-auth}]}
---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: ${name}, namespace: team}
spec:
  connectorClassName: ${name}
  address: ${address}
  auth: {name: basicAuth, secretRef: {name: ${secret}}}
`;
}

function secretYaml(name: string, r: PackageRegistry): string {
  return `apiVersion: v1
kind: Secret
metadata: {name: ${name}, namespace: team}
type: kubernetes.io/basic-auth
stringData: {username: ${r.username}, password: ${r.password}}
`;
}

/** Runs a client, in a mount namespace with the private /etc/hosts when `hostForm`. */
function client(cmd: string, args: string[], env: NodeJS.ProcessEnv, hostForm = false): Promise<RunResult> {
  const base = { PATH: process.env.PATH, HOME: join(root, 'home'), LANG: 'C.UTF-8', ...env };
  if (!hostForm) return run(cmd, args, { env: base, cwd: root, timeoutMs: 90_000 });
  return run('unshare', ['-m', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hostsFile!, cmd, ...args], { env: base, cwd: root, timeoutMs: 90_000 });
}

interface Form {
  readonly form: 'path' | 'host';
  npmRegistry(): string;
  pypiIndex(token: string): string;
}

const FORMS: Form[] = [
  {
    form: 'path',
    npmRegistry: () => `http://127.0.0.1:${proxy.port}/namespaces/team/connectors/npm-path/`,
    pypiIndex: (token) => `http://any:${token}@127.0.0.1:${proxy.port}/namespaces/team/connectors/pypi-path/simple/`,
  },
  {
    form: 'host',
    npmRegistry: () => `http://c-npm-host.team.${DOMAIN}:${proxy.port}/`,
    pypiIndex: (token) => `http://any:${token}@c-pypi-host.team.${DOMAIN}:${proxy.port}/simple/`,
  },
];

/** An npm user config with the client token for `registry` and nothing from the machine. */
function npmrc(registry: string, token: string): string {
  const file = join(root, `npmrc-${Math.random().toString(36).slice(2)}`);
  const nerf = registry.replace(/^https?:/, '');
  writeFileSync(file, `registry=${registry}\n${nerf}:_authToken=${token}\naudit=false\nfund=false\nupdate-notifier=false\n`);
  return file;
}

function npmEnv(registry: string, token: string): NodeJS.ProcessEnv {
  return { npm_config_userconfig: npmrc(registry, token), npm_config_cache: join(root, 'npm-cache', Math.random().toString(36).slice(2)), npm_config_globalconfig: '/dev/null' };
}

const PIP_ENV = { PIP_CONFIG_FILE: '/dev/null', PIP_NO_CACHE_DIR: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' };

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'cproxy-pkgs-'));
  mkdirSync(join(root, 'home'));
  [verdaccio, pypi] = await Promise.all([startVerdaccio(), startPypiserver()]);
  await writeWheel(pypi.dir, 'demo-pkg', '1.0.0', 'GREETING = "hello from demo-pkg on pypiserver"\n');
  // A tool that gzips a JSON body naming its own address (as registries behind nginx do).
  gzipTool = await startUpstream((req, res) => {
    const self = `http://127.0.0.1:${gzipTool.port}`;
    const body = gzipSync(JSON.stringify({ tarball: `${self}/pkg/-/pkg-1.0.0.tgz`, other: `${self}0/not-mine`, mirror: 'http://elsewhere.example/x' }));
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length, etag: '"v1"' }).end(body);
  });
  proxy = await startProxy({
    domain: DOMAIN,
    manifests: {
      'npm.yaml': [classAndConnector('npm-path', verdaccio.url, 'path', 'npm-secret'), classAndConnector('npm-host', verdaccio.url, 'host', 'npm-secret'), secretYaml('npm-secret', verdaccio)].join('---\n'),
      'pypi.yaml': [classAndConnector('pypi-path', pypi.url, 'path', 'pypi-secret'), classAndConnector('pypi-host', pypi.url, 'host', 'pypi-secret'), secretYaml('pypi-secret', pypi)].join('---\n'),
      'gz.yaml': [classAndConnector('gz', `http://127.0.0.1:${gzipTool.port}`, 'path', 'gz-secret'), secretYaml('gz-secret', verdaccio).replace('gz-secret', 'gz-secret')].join('---\n').replace('name: npm-secret', 'name: gz-secret'),
    },
  });
  hostsFile = join(root, 'hosts');
  writeFileSync(hostsFile, `127.0.0.1 c-npm-host.team.${DOMAIN} c-pypi-host.team.${DOMAIN}\n${readFileSync('/etc/hosts', 'utf8')}`);
  const probe = await run('unshare', ['-m', 'sh', '-c', `mount --bind ${hostsFile} /etc/hosts && getent hosts c-npm-host.team.${DOMAIN}`]);
  if (probe.code !== 0) noHosts = `cannot give the clients a private /etc/hosts here (unshare -m: ${probe.stderr.trim()})`;
}, { timeout: 120_000 });

after(async () => {
  await proxy?.stop();
  await Promise.all([verdaccio?.stop(), pypi?.stop(), gzipTool?.close()]);
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('npm through the proxy (Verdaccio with login required)', () => {
  test('npm publish through the path form stores the package in Verdaccio', T, async () => {
    const pkg = join(root, 'demo-pkg');
    mkdirSync(pkg);
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'demo-pkg', version: '1.0.0', main: 'index.js' }));
    writeFileSync(join(pkg, 'index.js'), 'module.exports = "hello from demo-pkg on verdaccio";\n');
    const registry = FORMS[0]!.npmRegistry();
    const r = await run('npm', ['publish', '--registry', registry], { cwd: pkg, env: { PATH: process.env.PATH, HOME: join(root, 'home'), ...npmEnv(registry, TOKEN) }, timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    // Straight from Verdaccio, with its own credentials: the package is there.
    const direct = await request(`${verdaccio.url}/demo-pkg`, { headers: { authorization: basic(verdaccio.username, verdaccio.password) } });
    assert.equal(direct.status, 200);
    assert.equal(JSON.parse(direct.body.toString())['dist-tags'].latest, '1.0.0');
  });

  for (const f of FORMS) {
    test(`npm install in ${f.form} form: metadata and tarball through the proxy`, T, async (t) => {
      if (f.form === 'host' && noHosts) return t.skip(noHosts);
      const project = join(root, `npm-project-${f.form}`);
      mkdirSync(project);
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '0.0.0', private: true }));
      const registry = f.npmRegistry();
      const since = proxy.logs().length;
      const r = await client('sh', ['-c', `cd "${project}" && npm install demo-pkg --registry "${registry}"`], npmEnv(registry, TOKEN), f.form === 'host');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(join(project, 'node_modules', 'demo-pkg', 'index.js'), 'utf8'), 'module.exports = "hello from demo-pkg on verdaccio";\n');
      // The tarball came through the proxy (its URL in the metadata was rewritten), with 200.
      const log = proxy.logs().slice(since);
      assert.match(log, /"path":"[^"]*\/demo-pkg\/-\/demo-pkg-1\.0\.0\.tgz","status":200/);
      const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8'));
      assert.ok(String(lock.packages['node_modules/demo-pkg'].resolved).startsWith(registry), `resolved ${lock.packages['node_modules/demo-pkg'].resolved} is on the proxy`);
    });
  }

  test('the metadata names the proxy, in the path form with its prefix; the tool\'s address is gone', T, async () => {
    const r = await request(proxy.url('/namespaces/team/connectors/npm-path/demo-pkg'), { headers: { authorization: `Bearer ${TOKEN}`, accept: 'application/json', 'accept-encoding': 'gzip' } });
    assert.equal(r.status, 200);
    const text = r.headers['content-encoding'] === 'gzip' ? (await import('node:zlib')).gunzipSync(r.body).toString() : r.body.toString();
    const meta = JSON.parse(text);
    assert.equal(meta.versions['1.0.0'].dist.tarball, `http://127.0.0.1:${proxy.port}/namespaces/team/connectors/npm-path/demo-pkg/-/demo-pkg-1.0.0.tgz`);
    assert.ok(!text.includes(verdaccio.url), 'no URL of the tool is left');
    assert.equal(r.headers['content-length'], undefined, 'the length changed: no stale Content-Length');
  });

  test('npm with a wrong token or another team\'s token fails (401/403) and Verdaccio is never asked', T, async () => {
    const registry = FORMS[0]!.npmRegistry();
    for (const [token, code] of [['wrong-token-000', /E401|401/], [OTHER, /E403|403/]] as const) {
      const project = mkdtempSync(join(root, 'npm-denied-'));
      writeFileSync(join(project, 'package.json'), '{"name":"c","version":"0.0.0","private":true}');
      const r = await client('sh', ['-c', `cd "${project}" && npm install demo-pkg --registry "${registry}"`], npmEnv(registry, token));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, code);
      assert.ok(!existsSync(join(project, 'node_modules', 'demo-pkg')));
    }
  });
});

describe('pip through the proxy (pypiserver with login required)', () => {
  for (const f of FORMS) {
    test(`pip install in ${f.form} form: index and wheel through the proxy`, T, async (t) => {
      if (f.form === 'host' && noHosts) return t.skip(noHosts);
      const target = join(root, `pip-target-${f.form}`);
      const since = proxy.logs().length;
      // pip trusts plain http only for localhost addresses unless told otherwise.
      const trusted = f.form === 'host' ? ['--trusted-host', `c-pypi-host.team.${DOMAIN}`] : [];
      const r = await client('python3', ['-m', 'pip', 'install', ...trusted, '--index-url', f.pypiIndex(TOKEN), '--target', target, 'demo-pkg'], PIP_ENV, f.form === 'host');
      assert.equal(r.code, 0, r.stderr + r.stdout.toString());
      assert.equal(readFileSync(join(target, 'demo_pkg', '__init__.py'), 'utf8'), 'GREETING = "hello from demo-pkg on pypiserver"\n');
      assert.match(proxy.logs().slice(since), /"path":"[^"]*\/packages\/demo_pkg-1\.0\.0-py3-none-any\.whl","status":200/);
    });
  }

  test('the simple index links keep the path-form prefix', T, async () => {
    const r = await request(proxy.url('/namespaces/team/connectors/pypi-path/simple/demo-pkg/'), { headers: { authorization: basic('any', TOKEN) } });
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /href="\/namespaces\/team\/connectors\/pypi-path\/packages\/demo_pkg-1\.0\.0-py3-none-any\.whl#sha256=[0-9a-f]{64}"/);
  });

  test('pip with a wrong token fails with 401 and installs nothing', T, async () => {
    const target = join(root, 'pip-denied');
    const since = proxy.logs().length;
    const r = await client('python3', ['-m', 'pip', 'install', '--index-url', FORMS[0]!.pypiIndex('wrong-token-000'), '--target', target, 'demo-pkg'], PIP_ENV);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /No matching distribution found for demo-pkg/);
    // pip reports a refused index as "no versions"; the proxy's log says why.
    assert.match(proxy.logs().slice(since), /"path":"\/namespaces\/team\/connectors\/pypi-path\/simple\/demo-pkg\/","status":401/);
    assert.ok(!existsSync(join(target, 'demo_pkg')));
  });
});

describe('response body rewriting', () => {
  test('a gzip JSON body is decoded and rewritten; a longer port or another host is left alone; the ETag turns weak', async () => {
    const r = await request(proxy.url('/namespaces/team/connectors/gz/meta'), { headers: { authorization: basic('any', TOKEN) } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], undefined, 'the client gets the decoded body');
    assert.equal(r.headers.etag, 'W/"v1"');
    assert.deepEqual(JSON.parse(r.body.toString()), {
      tarball: `http://127.0.0.1:${proxy.port}/namespaces/team/connectors/gz/pkg/-/pkg-1.0.0.tgz`,
      other: `http://127.0.0.1:${gzipTool.port}0/not-mine`,
      mirror: 'http://elsewhere.example/x',
    });
  });

  test('a pattern split at every position across chunks is still replaced', () => {
    const subs = substitutionsFor({ upstreamBase: 'http://tool:1', upstreamPath: '', publicBase: 'http://proxy/namespaces/a/connectors/b', publicPath: '/namespaces/a/connectors/b' }, true);
    const input = Buffer.from('{"u":"http://tool:1/x","v":"http://tool:10/y","h":"<a href="/p/q">","w":"https://tool:1"}');
    const want = '{"u":"http://proxy/namespaces/a/connectors/b/x","v":"http://tool:10/y","h":"<a href="/namespaces/a/connectors/b/p/q">","w":"http://proxy/namespaces/a/connectors/b"}';
    for (let a = 0; a <= input.length; a++) {
      for (const b of [a, Math.min(input.length, a + 1), Math.min(input.length, a + 7)]) {
        const out: Buffer[] = [];
        const rw = new UrlReplacer(subs, (x) => out.push(Buffer.from(x)));
        rw.write(input.subarray(0, a));
        rw.write(input.subarray(a, b));
        rw.write(input.subarray(b));
        rw.end();
        assert.equal(Buffer.concat(out).toString(), want, `split at ${a}/${b}`);
      }
    }
  });

  test('a streamed chunk that cannot begin a pattern is passed on whole (watch events are not delayed)', () => {
    const subs = substitutionsFor({ upstreamBase: 'http://tool:1', upstreamPath: '', publicBase: 'http://proxy', publicPath: '' }, false);
    const out: string[] = [];
    const rw = new UrlReplacer(subs, (x) => out.push(x.toString()));
    rw.write(Buffer.from('{"type":"ADDED","object":{"kind":"ConfigMap"}}\n'));
    assert.equal(out.join(''), '{"type":"ADDED","object":{"kind":"ConfigMap"}}\n');
    rw.write(Buffer.from('{"u":"http://to'));
    assert.equal(out.join(''), '{"type":"ADDED","object":{"kind":"ConfigMap"}}\n{"u":"', 'only a possible pattern start is held');
    rw.write(Buffer.from('ol:1/x"}\n'));
    assert.equal(out.join(''), '{"type":"ADDED","object":{"kind":"ConfigMap"}}\n{"u":"http://proxy/x"}\n');
  });

  test('the log holds no client token and no registry password', () => {
    const logs = proxy.logs();
    for (const s of [TOKEN, OTHER, verdaccio.password, pypi.password, basic(verdaccio.username, verdaccio.password).slice(6)]) {
      assert.ok(!logs.includes(s), `log contains ${s.slice(0, 4)}…`);
    }
  });
});
