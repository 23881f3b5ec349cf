// Tables for the pure parts of the request path: resolvers, dot-segment check, client
// token parsing, hop-by-hop handling and Location rewriting.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver, hasDotSegment } from '../src/server/resolve';
import { tokenFromAuthorization } from '../src/auth/client-token';
import { rewriteLocation, upstreamRequestHeaders } from '../src/server/headers';
import { parseTokenFile, StaticTokenAuthenticator } from '../src/auth/static-tokens';

describe('resolver', () => {
  const r = new Resolver('svc.cluster.local');
  test('host form', () => {
    assert.deepEqual(r.resolve('c-github.default.svc.cluster.local', '/a?b=1'), { form: 'host', namespace: 'default', name: 'github', rest: '/a?b=1', publicPrefix: '' });
    assert.deepEqual(r.resolve('C-GitHub.Default.SVC.cluster.local:8080', '/'), { form: 'host', namespace: 'default', name: 'github', rest: '/', publicPrefix: '' });
    assert.deepEqual(r.resolve('c-my.dotted.name.ns.svc.cluster.local.', '/'), { form: 'host', namespace: 'ns', name: 'my.dotted.name', rest: '/', publicPrefix: '' });
    for (const h of ['github.default.svc.cluster.local', 'c-.ns.svc.cluster.local', 'c-x.svc.cluster.local', 'c-x.ns.svc.cluster.local.evil.com', 'c-x_y.ns.svc.cluster.local']) {
      assert.equal(r.connectorHost(h), undefined, h);
    }
  });
  test('path form, with and without rest, and the OCI form', () => {
    assert.deepEqual(r.resolve('proxy', '/namespaces/ns/connectors/git/org/repo.git/info/refs?service=x'),
      { form: 'path', namespace: 'ns', name: 'git', rest: '/org/repo.git/info/refs?service=x', publicPrefix: '/namespaces/ns/connectors/git' });
    assert.deepEqual(r.resolve('proxy', '/namespaces/ns/connectors/git'), { form: 'path', namespace: 'ns', name: 'git', rest: '/', publicPrefix: '/namespaces/ns/connectors/git' });
    assert.deepEqual(r.resolve('proxy', '/namespaces/ns/connectors/git?x=1'), { form: 'path', namespace: 'ns', name: 'git', rest: '/?x=1', publicPrefix: '/namespaces/ns/connectors/git' });
    assert.deepEqual(r.resolve('proxy', '/v2/namespaces/ns/connectors/oci/library/alpine/manifests/3'),
      { form: 'path', namespace: 'ns', name: 'oci', rest: '/v2/library/alpine/manifests/3', publicPrefix: '/v2/namespaces/ns/connectors/oci' });
  });
  test('refusals', () => {
    const status = (host: string | undefined, url: string) => { const x = r.resolve(host, url); return 'status' in x ? x.status : 200; };
    assert.equal(status('proxy', 'http://evil/x'), 400);
    assert.equal(status('proxy', '/namespaces/ns/connectors/a/../../b/connectors/c'), 400);
    assert.equal(status('proxy', '/namespaces/ns/connectors/a/%2E%2e/x'), 400);
    assert.equal(status('proxy', '/namespaces/ns/connectors/a%2Fb/x'), 404);
    assert.equal(status('proxy', '/namespaces/NS/connectors/a/x'), 404);
    assert.equal(status('proxy', '/namespaces//connectors/a/x'), 404);
    assert.equal(status('proxy', '/namespaces/ns/widgets/a/x'), 404);
    assert.equal(status(undefined, '/x'), 404);
  });
  test('dot segments in the query are allowed', () => {
    assert.equal(hasDotSegment('/a/b?path=../x'), false);
    assert.equal(hasDotSegment('/a/.well-known/x'), false);
    assert.equal(hasDotSegment('/a/..'), true);
    assert.equal(hasDotSegment('/a/.'), true);
  });
});

describe('client token', () => {
  test('Basic password, Bearer, and refusals', () => {
    const b = (s: string) => 'Basic ' + Buffer.from(s).toString('base64');
    assert.equal(tokenFromAuthorization(b('any:tok:with:colons')), 'tok:with:colons');
    assert.equal(tokenFromAuthorization(b(':tok')), 'tok');
    assert.equal(tokenFromAuthorization('bearer abc.def'), 'abc.def');
    assert.equal(tokenFromAuthorization('Bearer  '), undefined);
    assert.equal(tokenFromAuthorization(b('user-only')), undefined);
    assert.equal(tokenFromAuthorization(b('user:')), undefined);
    assert.equal(tokenFromAuthorization('Digest abc'), undefined);
    assert.equal(tokenFromAuthorization(undefined), undefined);
  });
  test('static token patterns', () => {
    const file = '/tmp/none';
    const a = new StaticTokenAuthenticator(file);
    (a as unknown as { tokens: ReturnType<typeof parseTokenFile> }).tokens = parseTokenFile(
      'tokens:\n  - {token: aaaaaaaa1, user: u1, connectors: ["ns/one"]}\n  - {token: aaaaaaaa2, user: u2, connectors: ["ns/*"]}\n  - {token: aaaaaaaa3, user: u3, connectors: ["*"]}\n', file);
    assert.equal(a.check('aaaaaaaa1', { namespace: 'ns', name: 'one' }).allowed, true);
    assert.deepEqual(a.check('aaaaaaaa1', { namespace: 'ns', name: 'two' }), { allowed: false, status: 403, reason: 'user "u1" may not use this connector', user: 'u1' });
    assert.equal(a.check('aaaaaaaa2', { namespace: 'ns', name: 'two' }).allowed, true);
    assert.equal(a.check('aaaaaaaa2', { namespace: 'other', name: 'two' }).allowed, false);
    assert.equal(a.check('aaaaaaaa3', { namespace: 'x', name: 'y' }).allowed, true);
    const unknown = a.check('nope-nope', { namespace: 'ns', name: 'one' });
    assert.equal(unknown.allowed === false && unknown.status, 401);
  });
});

describe('headers', () => {
  test('upstream request headers: hop-by-hop and client credentials dropped, forwarding headers set', () => {
    const out = upstreamRequestHeaders(
      ['Host', 'proxy:1', 'Authorization', 'Bearer client', 'Connection', 'keep-alive, X-Hop', 'X-Hop', '1', 'Keep-Alive', '5',
        'Transfer-Encoding', 'chunked', 'X-Forwarded-For', '10.0.0.1', 'Content-Length', '3', 'Accept', '*/*', 'Proxy-Authorization', 'Basic x'],
      'keep-alive, X-Hop', { upstreamHost: 'tool:443', clientAddress: '127.0.0.2', proto: 'http' });
    assert.deepEqual(out, ['host', 'tool:443', 'accept', '*/*', 'content-length', '3', 'x-forwarded-for', '10.0.0.1, 127.0.0.2',
      'x-forwarded-host', 'proxy:1', 'x-forwarded-proto', 'http', 'via', '1.1 connectors-proxy']);
  });
  test('Location rewriting', () => {
    const rw = { upstreamBase: 'http://tool:81/gitlab', upstreamPath: '/gitlab', publicBase: 'http://proxy/namespaces/n/connectors/c', publicPath: '/namespaces/n/connectors/c' };
    assert.equal(rewriteLocation('http://tool:81/gitlab/a?b', rw), 'http://proxy/namespaces/n/connectors/c/a?b');
    assert.equal(rewriteLocation('HTTP://TOOL:81/gitlab', rw), 'http://proxy/namespaces/n/connectors/c');
    assert.equal(rewriteLocation('http://tool:81/gitlabber', rw), 'http://tool:81/gitlabber');
    assert.equal(rewriteLocation('http://tool:81/other', rw), 'http://tool:81/other');
    assert.equal(rewriteLocation('/gitlab/x', rw), '/namespaces/n/connectors/c/x');
    assert.equal(rewriteLocation('/other', rw), '/other');
    assert.equal(rewriteLocation('//cdn.example/x', rw), '//cdn.example/x');
    assert.equal(rewriteLocation('https://s3.example/blob?sig=1', rw), 'https://s3.example/blob?sig=1');
    const host = { upstreamBase: 'http://tool', upstreamPath: '', publicBase: 'http://c-x.n.svc', publicPath: '' };
    assert.equal(rewriteLocation('/a', host), '/a');
    assert.equal(rewriteLocation('http://tool/a', host), 'http://c-x.n.svc/a');
  });
});
