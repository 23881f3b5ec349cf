// Embedded source: manifests are checked on load with errors that name the file, object
// and field; the folder and the token file are watched; a bad edit keeps the last good state.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN, basic, connectorManifests, startProxy, type ProxyProcess } from './support/proxy';
import { startUpstream, type Upstream } from './support/upstream';
import { request } from './support/http';
import { validateResource } from '../src/sources/validate';
import { loadManifests } from '../src/sources/files';

const CLIENT = basic('x', 'good-token-123');

function runProxyWith(manifest: string, tokens = 'tokens: []\n'): { status: number | null; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'cproxy-bad-'));
  try {
    writeFileSync(join(dir, 'bad.yaml'), manifest);
    const tokensFile = join(dir, 'tokens.yml.txt');
    writeFileSync(tokensFile, tokens);
    const r = spawnSync(process.execPath, [MAIN, '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0', '--manifests', dir, '--tokens', tokensFile, '--no-watch'], { encoding: 'utf8', timeout: 10_000 });
    return { status: r.status, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('manifest validation', () => {
  test('a bad field stops start-up with file, object and field named, and no stack trace', () => {
    const bad = connectorManifests({ address: 'ftp://tool.example', name: 'tool' });
    const r = runProxyWith(bad);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /bad\.yaml \(document 2\): Connector team\/tool: spec\.address: must be an http or https URL/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  test('each kind of mistake is reported with its field path', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ apiVersion: 'v1', kind: 'Connector', metadata: { name: 'a' }, spec: {} }, /apiVersion: must be "connectors.alauda.io\/v1alpha1".*spec\.connectorClassName: is required.*spec\.address: is required/],
      [{ apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'Widget' }, /kind: must be ConnectorClass, Connector or Secret/],
      [{ apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'ConnectorClass', metadata: { name: 'c' }, spec: { auth: { types: [{ name: 'a', secretType: 'Opaque' }, { name: 'a', secretType: 'kubernetes.io/basic-auth' }] } } },
        /spec\.auth\.types\[0\]\.params: secretType "Opaque" has no fixed keys.*spec\.auth\.types\[1\]\.name: duplicate auth type name "a"/],
      [{ apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'ConnectorClass', metadata: { name: 'c', annotations: { 'connectors.cpaas.io/proxy-resolver': 'dns' } }, spec: {} },
        /connectors\.cpaas\.io\/proxy-resolver"\]: must be "host" or "path"/],
      [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'n' }, data: { password: 'not base64!' } }, /Secret n\/s: data\.password: must be base64/],
      [{ apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'Connector', metadata: { name: 'Bad_Name', namespace: 'n' }, spec: { connectorClassName: 'c', address: 'https://u:p@h/' } },
        /metadata\.name: "Bad_Name" is not a valid Kubernetes name.*spec\.address: must not carry credentials/],
    ];
    for (const [doc, re] of cases) {
      assert.throws(() => validateResource(doc, 'f.yaml (document 1)'), (e: Error) => {
        assert.match(e.message, /^f\.yaml \(document 1\): /);
        assert.match(e.message, re);
        return true;
      });
    }
  });

  test('the same object twice and broken YAML are reported', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cproxy-dup-'));
    try {
      const m = connectorManifests({ address: 'http://127.0.0.1:1', name: 'tool' });
      writeFileSync(join(dir, 'a.yaml'), m);
      writeFileSync(join(dir, 'b.yaml'), m);
      writeFileSync(join(dir, 'c.yml'), 'kind: [unclosed\n');
      assert.throws(() => loadManifests(dir), (e: Error) => {
        assert.match(e.message, /b\.yaml \(document 1\): ConnectorClass \/cls-tool is also defined in .*a\.yaml \(document 1\)/);
        assert.match(e.message, /c\.yml \(document 1\): not valid YAML/);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a bad token file stops start-up naming the entry, without echoing the token', () => {
    const r = runProxyWith(connectorManifests({ address: 'http://127.0.0.1:1' }), 'tokens:\n  - token: "short"\n    user: u\n    connectors: ["*"]\n');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /tokens\[0\]\.token: must be a string of at least 8 characters/);
    assert.doesNotMatch(r.stderr, /short/);
  });
});

describe('reload on change', () => {
  let up: Upstream;
  let proxy: ProxyProcess;
  before(async () => {
    up = await startUpstream((req, res) => res.end(req.headers.authorization ?? 'none'));
    proxy = await startProxy({ manifests: { 'tool.yaml': connectorManifests({ address: up.origin, name: 'tool', resolver: 'path' }) } });
  });
  after(async () => {
    await proxy?.stop();
    await up?.close();
  });

  const call = (token = CLIENT) => request(proxy.url('/namespaces/team/connectors/tool/x'), { headers: { authorization: token } });

  test('a rotated Secret is used by the next request', async () => {
    assert.equal((await call()).text, basic('tool-user', 'tool-secret-pw'));
    const since = proxy.logs().length;
    proxy.writeManifest('tool.yaml', connectorManifests({ address: up.origin, name: 'tool', resolver: 'path', secretData: { username: 'tool-user', password: 'rotated-pw' } }));
    await proxy.waitForLog(/manifests loaded/, 5000, since);
    assert.equal((await call()).text, basic('tool-user', 'rotated-pw'));
  });

  test('a bad edit is logged with file and field, and the last good state keeps serving', async () => {
    const since = proxy.logs().length;
    proxy.writeManifest('tool.yaml', connectorManifests({ address: 'not a url', name: 'tool', resolver: 'path' }));
    const line = await proxy.waitForLog(/[^\n]*manifests not reloaded[^\n]*/, 5000, since);
    assert.match(line, /tool\.yaml \(document 2\): Connector team\/tool: spec\.address: must be an absolute URL/);
    const r = await call();
    assert.equal(r.status, 200);
    assert.equal(r.text, basic('tool-user', 'rotated-pw'));
  });

  test('a deleted Connector answers 404 after reload', async () => {
    const since = proxy.logs().length;
    proxy.writeManifest('tool.yaml', '# emptied\n');
    await proxy.waitForLog(/"connectors":0[^\n]*manifests loaded/, 5000, since);
    assert.equal((await call()).status, 404);
  });

  test('the token file is reloaded: a new token works, a removed one stops', async () => {
    proxy.writeManifest('tool.yaml', connectorManifests({ address: up.origin, name: 'tool', resolver: 'path' }));
    let since = proxy.logs().length;
    proxy.writeTokens('tokens:\n  - token: brand-new-token-789\n    user: new\n    connectors: ["team/tool"]\n');
    await proxy.waitForLog(/token file reloaded/, 5000, since);
    await proxy.waitForLog(/"connectors":1[^\n]*manifests loaded/, 5000, since);
    assert.equal((await call(basic('x', 'brand-new-token-789'))).status, 200);
    assert.equal((await call()).status, 401);
    since = proxy.logs().length;
    proxy.writeTokens('tokens: nope\n');
    await proxy.waitForLog(/tokens: must be a list[^\n]*token file not reloaded/, 5000, since);
    assert.equal((await call(basic('x', 'brand-new-token-789'))).status, 200, 'last good tokens kept');
  });
});
