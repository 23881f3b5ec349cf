// Rego generators and auth extractors with the real OPA compiler and in-process wasm:
// every seed example, each position, the extractor, each error path, edits without a
// restart and the compile cache (counted from the proxy's own metric).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { REPO_ROOT, basic, startProxy, type ProxyProcess } from './support/proxy';
import { readBody, startUpstream, type Upstream } from './support/upstream';
import { request } from './support/http';

const CLIENT = basic('any', 'good-token-123');
const seed = (name: string): string => readFileSync(join(REPO_ROOT, 'rego', 'seed', `${name}.rego`), 'utf8');
const example = (name: string): string => readFileSync(join(REPO_ROOT, 'rego', 'examples', `${name}.rego`), 'utf8');

/** A path-resolved class with one Opaque auth type whose generator is `rego`, and its Connector and Secret. */
function regoConnector(o: { name: string; rego: string; data: Record<string, string>; address: string; extractor?: string }): string {
  const indent = (text: string, n: number): string => text.split('\n').map((l) => (l ? ' '.repeat(n) + l : l)).join('\n');
  const params = Object.keys(o.data).map((k) => `          - name: ${k}\n            type: string`).join('\n');
  return `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: cls-${o.name}
  annotations:
    connectors.cpaas.io/proxy-resolver: path
spec:
  address:
    type: string
  auth:
    types:
      - name: ${o.name}-auth
        secretType: Opaque
        params:
${params}
        generator:
          rego: |
${indent(o.rego, 12)}
${o.extractor ? `  proxy:\n    authExtractor:\n      rego: |\n${indent(o.extractor, 8)}\n` : '  proxy: {}\n'}---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata:
  name: ${o.name}
  namespace: team
spec:
  connectorClassName: cls-${o.name}
  address: ${o.address}
  auth:
    name: ${o.name}-auth
    secretRef:
      name: ${o.name}-secret
---
apiVersion: v1
kind: Secret
metadata:
  name: ${o.name}-secret
  namespace: team
type: Opaque
stringData:
${Object.entries(o.data).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join('\n')}
`;
}

interface Seen { method: string; url: string; headers: Record<string, string>; body: string }

describe('Rego generators (real OPA, wasm in-process)', () => {
  let up: Upstream;
  let proxy: ProxyProcess;
  let cacheDir: string;
  const call = async (name: string, path = '/x', opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) => {
    const r = await request(proxy.url(`/namespaces/team/connectors/${name}${path}`), {
      method: opts.method, body: opts.body, headers: { authorization: CLIENT, ...opts.headers },
    });
    return { status: r.status, text: r.text, seen: r.status === 200 ? (JSON.parse(r.text) as Seen) : undefined };
  };
  const compilations = async (): Promise<number> => {
    const m = (await request(`http://127.0.0.1:${proxy.opsPort}/metrics`)).text;
    return Number(/^connectors_proxy_policy_compilations_total (\d+)$/m.exec(m)?.[1]);
  };

  before(async () => {
    up = await startUpstream((req, res) => {
      readBody(req).then((b) => res.writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: b.toString('utf8') })));
    });
    cacheDir = mkdtempSync(join(tmpdir(), 'cproxy-policies-'));
    const a = up.origin;
    proxy = await startProxy({
      manifests: {
        'bearer.yaml': regoConnector({ name: 'bearer', rego: seed('bearer-token'), data: { token: 'tool-token-xyz' }, address: a }),
        'basic.yaml': regoConnector({ name: 'basic', rego: seed('basic-auth'), data: { username: 'alice', password: 'tool-pw-1' }, address: a }),
        'apikey.yaml': regoConnector({ name: 'apikey', rego: seed('apikey-query'), data: { apikey: 'key&=/ 1' }, address: `${a}/api` }),
        'body.yaml': regoConnector({ name: 'body', rego: seed('json-body'), data: { username: 'bob', password: 'tool-pw-2', client_id: 'cid' }, address: a }),
        'cond-seed.yaml': regoConnector({ name: 'cond-seed', rego: seed('conditional-auth'), data: { apikey: 'k1', oauth_token: 'oauth-1' }, address: a }),
        // A second Connector of the seed class (its Connector and Secret documents only).
        'cond-seed-empty.yaml': regoConnector({ name: 'cond-seed-empty', rego: seed('conditional-auth'), data: { apikey: 'k1', oauth_token: '' }, address: a })
          .split('\n---\n').slice(1).join('\n---\n').replace(/cls-cond-seed-empty/g, 'cls-cond-seed').replace(/cond-seed-empty-auth/g, 'cond-seed-auth'),
        'cond-fixed.yaml': regoConnector({ name: 'cond-fixed', rego: example('conditional-auth'), data: { apikey: 'k2', oauth_token: 'oauth-2' }, address: a }),
        'cond-fixed-empty.yaml': regoConnector({ name: 'cond-fixed-empty', rego: example('conditional-auth'), data: { apikey: 'k3', oauth_token: '' }, address: a }),
        'time-seed.yaml': regoConnector({ name: 'time-seed', rego: seed('time-based-auth'), data: { api_secret: 's3' }, address: a }),
        'time-fixed.yaml': regoConnector({ name: 'time-fixed', rego: example('time-based-auth'), data: { api_secret: 's4' }, address: a }),
        'sign.yaml': regoConnector({ name: 'sign', rego: example('request-signature'), data: { key_id: 'kid', secret: 'sig-secret' }, address: `${a}/base` }),
        'gitlab.yaml': regoConnector({ name: 'gitlab', rego: example('private-token-generator'), extractor: example('private-token-extractor'), data: { token: 'glpat-tool' }, address: a }),
        'form.yaml': regoConnector({ name: 'form', rego: 'package proxy\nauth = {"position": "body", "contentType": "application/x-www-form-urlencoded", "auth": {"client_secret": input.secret}}\n', data: { secret: 'form-secret' }, address: a }),
        'undef.yaml': regoConnector({ name: 'undef', rego: 'package proxy\nauth = {"position": "header", "auth": {"X": input.token}} { input.token == "other" }\n', data: { token: 't' }, address: a }),
        'badpos.yaml': regoConnector({ name: 'badpos', rego: 'package proxy\nauth = {"position": "cookie", "auth": {"X": input.token}}\n', data: { token: 't' }, address: a }),
        'nonstring.yaml': regoConnector({ name: 'nonstring', rego: 'package proxy\nauth = {"position": "header", "auth": {"X-Count": 3}}\n', data: { token: 't' }, address: a }),
        'crlf.yaml': regoConnector({ name: 'crlf', rego: 'package proxy\nauth = {"position": "header", "auth": {"X-Token": input.token}}\n', data: { token: 'a\r\nInjected: yes' }, address: a }),
        'broken.yaml': regoConnector({ name: 'broken', rego: 'package proxy\nauth = {"position": "header", "auth": {"X": undefined_fn(input.token)}}\n', data: { token: 't' }, address: a }),
        'builtins.yaml': regoConnector({
          name: 'builtins', address: a, data: { k: 'a b&c', s: 'hello' },
          rego: 'package proxy\nimport rego.v1\nauth := {"position": "header", "auth": {"X-Sha": crypto.sha256(input.s), "X-B64": base64url.encode_no_pad(input.s), "X-Q": urlquery.encode(input.k), "X-Hmac512": crypto.hmac.sha512(input.s, input.k), "X-Jwt": io.jwt.encode_sign({"alg": "HS256", "typ": "JWT"}, {"sub": input.s}, {"kty": "oct", "k": "c2VjcmV0"})}}\n',
        }),
      },
      args: ['--policy-cache-dir', cacheDir, '--max-body-injection-bytes', '4096'],
    });
  });

  after(async () => {
    await proxy?.stop();
    await up?.close();
    if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  });

  test('the seed texts are verbatim copies of the ConnectorClass reference', { skip: !existsSync(join(REPO_ROOT, '..', 'shared', 'seeds')) }, () => {
    const ref = readFileSync(join(REPO_ROOT, '..', 'shared', 'seeds', '001_bbf16e5904dd59ec.txt'), 'utf8');
    const squash = (s: string): string => s.replace(/\s+/g, ' ').trim();
    for (const n of ['bearer-token', 'basic-auth', 'apikey-query', 'json-body', 'conditional-auth', 'time-based-auth']) {
      assert.ok(squash(ref).includes(squash(seed(n))), n);
    }
  });

  test('seed: Bearer header from input.token', async () => {
    const r = await call('bearer');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.seen!.headers.authorization, 'Bearer tool-token-xyz');
  });

  test('seed: Basic header built with base64.encode', async () => {
    const r = await call('basic');
    assert.equal(r.seen!.headers.authorization, basic('alice', 'tool-pw-1'));
  });

  test('seed: API key in the query, encoded, replacing one the client sent', async () => {
    const r = await call('apikey', '/items?page=2&api_key=client-supplied');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.seen!.url, `/api/items?page=2&api_key=${encodeURIComponent('key&=/ 1')}`);
    assert.equal(r.seen!.headers.authorization, undefined, 'the client token does not pass');
  });

  test('seed: JSON body merged, Content-Length fixed', async () => {
    const r = await call('body', '/login', { method: 'POST', body: '{"scope":"read"}', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(JSON.parse(r.seen!.body), { scope: 'read', username: 'bob', password: 'tool-pw-2', client_id: 'cid' });
    assert.equal(Number(r.seen!.headers['content-length']), Buffer.byteLength(r.seen!.body));
    const empty = await call('body', '/login', { method: 'POST' });
    assert.deepEqual(JSON.parse(empty.seen!.body), { username: 'bob', password: 'tool-pw-2', client_id: 'cid' });
    assert.equal(empty.seen!.headers['content-type'], 'application/json');
  });

  test('form body merged; body over the limit → 413; body that is not JSON → 400', async () => {
    const r = await call('form', '/token', { method: 'POST', body: 'grant_type=client_credentials', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.seen!.body, 'grant_type=client_credentials&client_secret=form-secret');
    const big = await call('body', '/login', { method: 'POST', body: JSON.stringify({ pad: 'x'.repeat(5000) }), headers: { 'content-type': 'application/json' } });
    assert.equal(big.status, 413);
    assert.match(big.text, /larger than the 4096 bytes/);
    const bad = await call('body', '/login', { method: 'POST', body: 'not json', headers: { 'content-type': 'application/json' } });
    assert.equal(bad.status, 400);
  });

  test('a body generator refuses an Upgrade request (400) instead of waiting for a body', async () => {
    const head = await new Promise<string>((resolve, reject) => {
      const sock = connect(proxy.port, '127.0.0.1', () => sock.write(
        'GET /namespaces/team/connectors/body/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: ${CLIENT}\r\n\r\n`));
      let buf = '';
      sock.setTimeout(5000, () => { sock.destroy(); reject(new Error(`no answer, got: ${buf}`)); });
      sock.on('data', (d) => { buf += d.toString(); });
      sock.on('close', () => resolve(buf));
      sock.on('error', reject);
    });
    assert.match(head, /^HTTP\/1\.1 400/);
    assert.match(head, /cannot go into the body of an Upgrade/);
  });

  test('seed conditional: API key when oauth_token is empty; the conflict is explained when both rules apply', async () => {
    const empty = await call('cond-seed-empty');
    assert.equal(empty.status, 200, empty.text);
    assert.equal(empty.seen!.headers['x-api-key'], 'k1');
    const both = await call('cond-seed');
    assert.equal(both.status, 502);
    assert.match(both.text, /class "cls-cond-seed", auth type "cond-seed-auth"/);
    assert.match(both.text, /conflict/);
    assert.match(both.text, /hint: .*else/);
    assert.ok(!both.text.includes('oauth-1') && !both.text.includes('k1'), 'no Secret value in the error');
  });

  test('corrected conditional (rego/examples): OAuth token when set, else API key', async () => {
    const withToken = await call('cond-fixed');
    assert.equal(withToken.seen!.headers.authorization, 'Bearer oauth-2');
    assert.equal(withToken.seen!.headers['x-api-key'], undefined);
    const without = await call('cond-fixed-empty');
    assert.equal(without.seen!.headers['x-api-key'], 'k3');
  });

  test('seed time-based: OPA rejects `import time` and the 502 says how to fix it', async () => {
    const r = await call('time-seed');
    assert.equal(r.status, 502);
    assert.match(r.text, /class "cls-time-seed", auth type "time-seed-auth"/);
    assert.match(r.text, /generator\.rego:3: rego_parse_error: unexpected import path/);
    assert.match(r.text, /hint: .*delete the line `import time`/);
  });

  test('corrected time-based: timestamp now, signature = HMAC-SHA256(api_secret, timestamp)', async () => {
    const r = await call('time-fixed');
    assert.equal(r.status, 200, r.text);
    const ts = r.seen!.headers['x-timestamp']!;
    assert.match(ts, /^\d{10}$/);
    assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 10);
    assert.equal(r.seen!.headers['x-signature'], createHmac('sha256', 's4').update(ts).digest('hex'));
  });

  test('input.request: a per-request signature over method and path', async () => {
    const a = await call('sign', '/v1/things?x=1', { method: 'DELETE' });
    const h = a.seen!.headers;
    assert.equal(h['x-key-id'], 'kid');
    assert.equal(h['x-signature'], createHmac('sha256', 'sig-secret').update(`DELETE\n/base/v1/things\n${h['x-timestamp']}`).digest('hex'));
    const b = await call('sign', '/v1/other');
    assert.equal(b.seen!.headers['x-signature'], createHmac('sha256', 'sig-secret').update(`GET\n/base/v1/other\n${b.seen!.headers['x-timestamp']}`).digest('hex'));
  });

  test('host builtins: sha256, base64url, urlquery, hmac.sha512, io.jwt.encode_sign', async () => {
    const r = await call('builtins');
    assert.equal(r.status, 200, r.text);
    const h = r.seen!.headers;
    assert.equal(h['x-sha'], '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    assert.equal(h['x-b64'], 'aGVsbG8');
    assert.equal(h['x-q'], 'a+b%26c');
    assert.equal(h['x-hmac512'], createHmac('sha512', 'a b&c').update('hello').digest('hex'));
    const [hd, pl, sig] = h['x-jwt']!.split('.');
    assert.deepEqual(JSON.parse(Buffer.from(pl!, 'base64url').toString()), { sub: 'hello' });
    assert.equal(sig, createHmac('sha256', 'secret').update(`${hd}.${pl}`).digest('base64url'));
  });

  test('authExtractor: the token comes from Private-Token, the header goes upstream with the tool token only', async () => {
    const r = await request(proxy.url('/namespaces/team/connectors/gitlab/api/v4/user'), { headers: { 'private-token': 'good-token-123' } });
    assert.equal(r.status, 200, r.text);
    const seen = JSON.parse(r.text) as Seen;
    assert.equal(seen.headers['private-token'], 'glpat-tool');
    assert.ok(!r.text.includes('good-token-123'), 'the client token never reaches the tool');
    const wrong = await request(proxy.url('/namespaces/team/connectors/gitlab/api/v4/user'), { headers: { 'private-token': 'not-a-valid-token' } });
    assert.equal(wrong.status, 401);
    const none = await request(proxy.url('/namespaces/team/connectors/gitlab/api/v4/user'));
    assert.equal(none.status, 401);
    const bearer = await request(proxy.url('/namespaces/team/connectors/gitlab/api/v4/user'), { headers: { authorization: 'Bearer good-token-123' } });
    assert.equal(bearer.status, 200, 'Basic/Bearer still work when the extractor finds nothing');
  });

  test('error paths: undefined auth, wrong position, non-string value, CR/LF, compile error → 502 naming class and auth type', async () => {
    const cases: Array<[string, RegExp]> = [
      ['undef', /left `auth` undefined/],
      ['badpos', /`auth.position` must be "header", "query" or "body", got a string/],
      ['nonstring', /`auth.auth\["X-Count"\]` must be a string, got a number/],
      ['crlf', /contains a CR, LF or NUL/],
      ['broken', /generator\.rego:2: rego_type_error: undefined function undefined_fn/],
    ];
    for (const [name, re] of cases) {
      const r = await call(name);
      assert.equal(r.status, 502, name);
      assert.match(r.text, new RegExp(`class "cls-${name}", auth type "${name}-auth"`), name);
      assert.match(r.text, re, name);
    }
    assert.equal(up.seen.filter((s) => /Injected/.test(JSON.stringify(s.headers))).length, 0, 'nothing half-sent');
  });

  test('compiled once per policy text: two connectors of one class share it; a restart reads the disk cache', async () => {
    const before = await compilations();
    await call('cond-seed-empty');
    await call('cond-seed');
    assert.equal(await compilations(), before, 'requests compile nothing');
    // 18 classes; cond-fixed and cond-fixed-empty share one text, gitlab adds an
    // extractor: 18 distinct policy texts, each compiled once.
    assert.equal(before, 18, 'one compile per distinct policy text');
    const second = await startProxy({ manifests: { 'basic.yaml': regoConnector({ name: 'basic', rego: seed('basic-auth'), data: { username: 'alice', password: 'tool-pw-1' }, address: up.origin }) }, args: ['--policy-cache-dir', cacheDir] });
    try {
      const r = await request(second.url('/namespaces/team/connectors/basic/x'), { headers: { authorization: CLIENT } });
      assert.equal(r.status, 200);
      const m = (await request(`http://127.0.0.1:${second.opsPort}/metrics`)).text;
      assert.match(m, /^connectors_proxy_policy_compilations_total 0$/m);
    } finally {
      await second.stop();
    }
  });

  test('a policy edit is picked up without a restart', async () => {
    const since = proxy.logs().length;
    const before = await compilations();
    proxy.writeManifest('bearer.yaml', regoConnector({ name: 'bearer', rego: seed('bearer-token').replace('"Bearer"', '"Token"'), data: { token: 'tool-token-xyz' }, address: up.origin }));
    await proxy.waitForLog(/"msg":"policy compiled"/, 15_000, since);
    const r = await call('bearer');
    assert.equal(r.seen!.headers.authorization, 'Token tool-token-xyz');
    assert.equal(await compilations(), before + 1);
  });

  test('no Secret value or client token in the logs', () => {
    const logs = proxy.logs();
    for (const s of ['good-token-123', 'tool-token-xyz', 'tool-pw-1', 'tool-pw-2', 'glpat-tool', 'oauth-1', 'sig-secret', 'form-secret']) {
      assert.ok(!logs.includes(s), `logs contain ${s}`);
    }
  });
});
