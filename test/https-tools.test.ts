// The HTTPS tools harness (test/support/https-tools.ts) with real clients straight to the
// tools, no proxy: each piece works over TLS with a private CA and its login, reached by its
// test name through the private /etc/hosts, trusted the way each client is told to trust a
// CA (GIT_SSL_CAINFO, SSL_CERT_FILE for crane, --cert-dir for skopeo, npm cafile, pip
// --cert), and refused without that trust. The interception tests build on this harness.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOOL_HOSTS } from './support/hosts';
import { startHttpsTools, type HttpsTools } from './support/https-tools';
import { writeWheel } from './support/package-registries';
import { REPO_ROOT } from './support/proxy';
import type { RunResult } from './support/run';
import { httpsGet } from './support/test-ca';

const CRANE = join(REPO_ROOT, '.cache', 'crane');
let tools: HttpsTools;

before(async () => {
  tools = await startHttpsTools();
}, { timeout: 180_000 });

after(async () => {
  await tools?.stop();
});

function ok(r: RunResult, what: string): string {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stderr}\n${r.stdout.toString()}`);
  return r.stdout.toString();
}

/** A client with the tool names resolved to loopback, HOME in the test folder, nothing else from the machine's config. */
function client(t: { skip(reason: string): void }, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<RunResult> | undefined {
  if (!tools.hosts) {
    t.skip(tools.hostsUnavailable ?? 'no private /etc/hosts');
    return undefined;
  }
  const home = join(tools.dir, 'home');
  mkdirSync(home, { recursive: true });
  return tools.hosts.run(cmd, args, { cwd, env: { PATH: process.env.PATH, HOME: home, ...env }, timeoutMs: 120_000 });
}

test('every tool answers over TLS by its name with the CA\'s certificate (and by 127.0.0.1)', async () => {
  const ca = tools.ca.cert;
  assert.equal((await httpsGet(`${tools.git!.url}/demo.git/info/refs`, ca)).status, 401, 'git wants a login');
  assert.equal((await httpsGet(`${tools.registry!.registry.url}/v2/`, ca)).status, 401);
  assert.equal((await httpsGet(`${tools.registry!.registry.loopbackUrl}/v2/`, ca)).status, 401);
  assert.match(tools.registry!.tokens.realm, /^https:\/\/auth\.tools\.test:\d+\/token$/);
  assert.equal((await httpsGet(`${tools.npm!.url}/-/ping`, ca)).status, 200);
  assert.equal((await httpsGet(`${tools.pypi!.url}/simple/`, ca)).status, 401, 'pypiserver wants a login');
  assert.equal(tools.git!.url, `https://${TOOL_HOSTS.git}:${tools.git!.port}`);
});

describe('git over HTTPS (nginx + git http-backend)', () => {
  before(async () => {
    await tools.git!.createRepo('demo', { 'README.md': 'hello over https\n' });
  });

  test('clone and push with GIT_SSL_CAINFO and the tool\'s login; the server saw the user', async (t) => {
    const g = tools.git!;
    const url = `https://${g.username}:${g.password}@${TOOL_HOSTS.git}:${g.port}/demo.git`;
    const dest = join(tools.dir, 'clone');
    const env = { GIT_SSL_CAINFO: tools.caFile, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' };
    const cloned = client(t, 'git', ['clone', '-q', url, dest], env);
    if (!cloned) return;
    ok(await cloned, 'git clone');
    assert.equal(readFileSync(join(dest, 'README.md'), 'utf8'), 'hello over https\n');
    writeFileSync(join(dest, 'pushed.txt'), 'pushed\n');
    const gitEnv = { ...env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x.test', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x.test' };
    ok(await client(t, 'git', ['-C', dest, 'add', '-A'], gitEnv)!, 'git add');
    ok(await client(t, 'git', ['-C', dest, 'commit', '-q', '-m', 'pushed over https'], gitEnv)!, 'git commit');
    ok(await client(t, 'git', ['-C', dest, 'push', '-q', 'origin', 'main'], gitEnv)!, 'git push');
    assert.deepEqual(await g.log('demo'), ['pushed over https', 'seed demo']);
    assert.ok(g.accessLog().some((l) => /^POST \/demo\.git\/git-receive-pack 200 git-tool-user$/.test(l)), g.accessLog().join('\n'));
  });

  test('refused without the CA, and with a wrong password', async (t) => {
    const g = tools.git!;
    const noTrust = client(t, 'git', ['ls-remote', `https://${g.username}:${g.password}@${TOOL_HOSTS.git}:${g.port}/demo.git`], { GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' });
    if (!noTrust) return;
    const r = await noTrust;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /certificate|SSL/i);
    const bad = await client(t, 'git', ['ls-remote', `https://${g.username}:wrong@${TOOL_HOSTS.git}:${g.port}/demo.git`], { GIT_SSL_CAINFO: tools.caFile, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' })!;
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Authentication failed|401/);
  });
});

describe('OCI registry over HTTPS with token auth (realm on HTTPS too)', () => {
  test('crane push with SSL_CERT_FILE, skopeo inspect with --cert-dir; refused without the CA', async (t) => {
    const reg = tools.registry!;
    const host = `${TOOL_HOSTS.registry}:${reg.registry.port}`;
    const docker = join(tools.dir, 'docker');
    mkdirSync(docker, { recursive: true });
    writeFileSync(join(docker, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${reg.tokens.username}:${reg.tokens.password}`).toString('base64') } } }));
    const layerDir = join(tools.dir, 'layer');
    mkdirSync(layerDir, { recursive: true });
    writeFileSync(join(layerDir, 'hello.txt'), 'hello registry\n');
    const tar = join(tools.dir, 'layer.tar');
    const tarred = client(t, 'tar', ['-cf', tar, '-C', layerDir, '.']);
    if (!tarred) return;
    ok(await tarred, 'tar');
    ok(await client(t, CRANE, ['append', '--oci-empty-base', '-f', tar, '-t', `${host}/team/hello:v1`], { SSL_CERT_FILE: tools.caFile, DOCKER_CONFIG: docker })!, 'crane append (push)');
    const scopes = [...reg.tokens.counts.keys()];
    assert.ok(scopes.some((k) => /repository:team\/hello:(?:pull,push|push,pull)/.test(k)), `crane ran the token flow at the HTTPS realm: ${scopes.join(' | ')}`);

    // skopeo reads <cert-dir>/*.crt as CAs for that registry.
    const certDir = join(tools.dir, 'certs.d');
    mkdirSync(certDir, { recursive: true });
    copyFileSync(tools.caFile, join(certDir, 'ca.crt'));
    const out = ok(await client(t, 'skopeo', ['inspect', '--cert-dir', certDir, '--creds', `${reg.tokens.username}:${reg.tokens.password}`, `docker://${host}/team/hello:v1`])!, 'skopeo inspect');
    assert.equal((JSON.parse(out) as { Layers: string[] }).Layers.length, 1);

    const noTrust = await client(t, CRANE, ['manifest', `${host}/team/hello:v1`], { DOCKER_CONFIG: docker })!;
    assert.notEqual(noTrust.code, 0);
    assert.match(noTrust.stderr, /x509|certificate/i);
  });
});

describe('npm over HTTPS (Verdaccio\'s own TLS)', () => {
  test('npm publish and install with cafile and the registry login; refused without the CA', async (t) => {
    const npm = tools.npm!;
    const registry = `${npm.url}/`;
    const nerf = registry.replace(/^https:/, '');
    const userconfig = join(tools.dir, 'npmrc');
    const base = `registry=${registry}\n${nerf}:_auth=${Buffer.from(`${npm.username}:${npm.password}`).toString('base64')}\naudit=false\nfund=false\nupdate-notifier=false\n`;
    writeFileSync(userconfig, `${base}cafile=${tools.caFile}\n`);
    const env = { npm_config_userconfig: userconfig, npm_config_globalconfig: '/dev/null', npm_config_cache: join(tools.dir, 'npm-cache') };
    const pkg = join(tools.dir, 'tls-pkg');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'tls-pkg', version: '1.0.0', main: 'index.js' }));
    writeFileSync(join(pkg, 'index.js'), 'module.exports = "hello from verdaccio over https";\n');
    const published = client(t, 'npm', ['publish'], env, pkg);
    if (!published) return;
    ok(await published, 'npm publish');
    const project = join(tools.dir, 'npm-project');
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, 'package.json'), '{"name":"p","version":"0.0.0","private":true}');
    ok(await client(t, 'npm', ['install', 'tls-pkg'], env, project)!, 'npm install');
    assert.equal(readFileSync(join(project, 'node_modules', 'tls-pkg', 'index.js'), 'utf8'), 'module.exports = "hello from verdaccio over https";\n');

    writeFileSync(userconfig, base); // no cafile
    const project2 = join(tools.dir, 'npm-project-2');
    mkdirSync(project2, { recursive: true });
    writeFileSync(join(project2, 'package.json'), '{"name":"p2","version":"0.0.0","private":true}');
    const refused = await client(t, 'npm', ['install', 'tls-pkg', '--fetch-retries=0'], { ...env, npm_config_cache: join(tools.dir, 'npm-cache-2') }, project2)!;
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify|self[- ]signed|certificate/i);
  });
});

describe('pip over HTTPS (pypiserver behind an nginx TLS front)', () => {
  test('pip install with --cert and the index login; refused without the CA', async (t) => {
    const pypi = tools.pypi!;
    await writeWheel(pypi.dir, 'tls-demo', '1.0.0', 'GREETING = "hello from pypiserver over https"\n');
    const index = `https://${pypi.username}:${pypi.password}@${TOOL_HOSTS.pypi}:${new URL(pypi.url).port}/simple/`;
    const env = { PIP_CONFIG_FILE: '/dev/null', PIP_NO_CACHE_DIR: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' };
    const target = join(tools.dir, 'pip-target');
    const installed = client(t, 'python3', ['-m', 'pip', 'install', '--cert', tools.caFile, '--index-url', index, '--target', target, 'tls-demo'], env);
    if (!installed) return;
    ok(await installed, 'pip install');
    assert.match(readFileSync(join(target, 'tls_demo', '__init__.py'), 'utf8'), /hello from pypiserver over https/);
    const refused = await client(t, 'python3', ['-m', 'pip', 'install', '--retries', '0', '--index-url', index, '--target', join(tools.dir, 'pip-refused'), 'tls-demo'], env)!;
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout.toString() + refused.stderr, /CERTIFICATE_VERIFY_FAILED|certificate verify failed/i);
  });
});
