// The resolvers (host, path and OCI path form) and the dot-segment check (src/server/resolve.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver, hasDotSegment } from '../src/server/resolve';
import { REGISTRY_PROFILE } from '../src/oci/profile';

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
      { form: 'path', namespace: 'ns', name: 'oci', rest: '/v2/library/alpine/manifests/3', publicPrefix: '/v2/namespaces/ns/connectors/oci', profile: REGISTRY_PROFILE });
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

describe('dot segments encoded twice', () => {
  // A tool that decodes twice turns %252e%252e into `..` and climbs out of the address prefix.
  test('%252e and %252f/%255c around them are refused like the single-encoded forms', () => {
    for (const p of ['/a/%252e%252e/b', '/a/%252E%252E', '/a%252f..%252fb', '/a%255c%252e%252e%255cb', '/a/.%252e/b', '/a/%252e./b', '/a/%252e%252e;x/b', '/a%252f%252e%252e']) {
      assert.equal(hasDotSegment(p), true, p);
    }
    for (const p of ['/a/%252e%252ex/b', '/a/b%252e%252e', '/a/%25/b', '/a?x=%252e%252e']) assert.equal(hasDotSegment(p), false, p);
  });
  test('the resolver refuses them with 400 in path and host form', () => {
    const r = new Resolver('svc.cluster.local');
    const status = (host: string | undefined, url: string) => { const x = r.resolve(host, url); return 'status' in x ? x.status : 200; };
    assert.equal(status('proxy', '/namespaces/ns/connectors/a/%252e%252e/%252e%252e/b'), 400);
    assert.equal(status('c-a.ns.svc.cluster.local', '/x/%252e%252e/y'), 400);
  });
});
