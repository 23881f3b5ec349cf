// The object store's reference indexes and the route table fed by it (src/sources/store.ts,
// src/routes/route-table.ts): a change rebuilds exactly the routes it concerns.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ObjectStore } from '../src/sources/store';
import { RouteTable } from '../src/routes/route-table';
import { basicClass, basicConnector, connectorClass, connector, secret } from './support/objects';

const CA = `-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n`;

function world(trust = false) {
  const store = new ObjectStore();
  store.replaceAll([
    basicClass('git'), basicClass('other'),
    basicConnector('t', 'a', 'git', 'http://a.example', 's1'),
    basicConnector('t', 'b', 'git', 'http://b.example', 's1'),
    basicConnector('t', 'c', 'other', 'http://c.example', 's2'),
    secret('t', 's1', 'kubernetes.io/basic-auth', { username: 'u', password: 'p1' }),
    secret('t', 's2', 'kubernetes.io/basic-auth', { username: 'u', password: 'p2' }),
  ]);
  store.markSynced();
  const routes = new RouteTable(store, { maxBodyBytes: 1024, trust: { enabled: trust, namespace: 'proxy-ns' } });
  const all = () => ['a', 'b', 'c'].map((n) => routes.route('t', n)!);
  return { store, routes, all };
}

describe('store: reference indexes', () => {
  test('users of a Secret and Connectors of a class follow upserts, moves and deletes', () => {
    const { store } = world();
    assert.deepEqual([...store.usersOfSecret('t/s1')].sort(), ['t/a', 't/b']);
    assert.deepEqual([...store.connectorsOfClass('git')].sort(), ['t/a', 't/b']);
    store.upsert(basicConnector('t', 'b', 'other', 'http://b.example', 's2'));
    assert.deepEqual([...store.usersOfSecret('t/s1')], ['t/a']);
    assert.deepEqual([...store.usersOfSecret('t/s2')].sort(), ['t/b', 't/c']);
    assert.deepEqual([...store.connectorsOfClass('other')].sort(), ['t/b', 't/c']);
    store.remove('Connector', 't', 'a');
    assert.deepEqual([...store.usersOfSecret('t/s1')], []);
    const withCa = connector('t', 'd', { connectorClassName: 'git', address: 'https://d', caCertSecretRef: { name: 'ca' }, auth: { name: 'basic', secretRef: { name: 's1', namespace: 'x' } } });
    store.upsert(withCa);
    assert.deepEqual([...store.usersOfSecret('t/ca')], ['t/d']);
    assert.deepEqual([...store.usersOfSecret('x/s1')], ['t/d']);
  });
});

describe('route table: a change rebuilds only what it concerns', () => {
  test('a rotated Secret rebuilds the routes that use it and no other', () => {
    const { store, routes, all } = world();
    const [a, b, c] = all();
    assert.equal(routes.builds, 3);
    store.upsert(secret('t', 's1', 'kubernetes.io/basic-auth', { username: 'u', password: 'rotated' }));
    const [a2, b2, c2] = all();
    assert.notEqual(a2, a);
    assert.notEqual(b2, b);
    assert.equal(c2, c);
    assert.equal(routes.builds, 5);
  });
  test('the same Secret delivered again (a relist), or a Connector status write, rebuilds nothing', () => {
    const { store, routes, all } = world();
    all();
    store.upsert(secret('t', 's1', 'kubernetes.io/basic-auth', { username: 'u', password: 'p1' }));
    const withStatus = { ...basicConnector('t', 'a', 'git', 'http://a.example', 's1'), status: { conditions: [{ type: 'Ready', status: 'True' as const }] } };
    store.upsert(withStatus);
    all();
    assert.equal(routes.builds, 3);
  });
  test('a class change rebuilds its Connectors\' routes; a Connector change its own', () => {
    const { store, routes, all } = world();
    all();
    store.upsert(connectorClass('git', { auth: { types: [{ name: 'basic', secretType: 'kubernetes.io/basic-auth' }] } }, { 'connectors.cpaas.io/proxy-resolver': 'path' }));
    all();
    assert.equal(routes.builds, 5);
    assert.equal(routes.route('t', 'a')!.resolver, 'path');
    store.upsert(basicConnector('t', 'c', 'other', 'http://c2.example', 's2'));
    assert.equal(routes.route('t', 'c')!.upstream.origin, 'http://c2.example');
    assert.equal(routes.builds, 6);
  });
  test('a deleted Secret leaves a broken route naming it; its return repairs it', () => {
    const { store, routes } = world();
    assert.equal(routes.route('t', 'c')!.broken, undefined);
    store.remove('Secret', 't', 's2');
    assert.match(routes.route('t', 'c')!.broken!, /Secret t\/s2 not found/);
    store.upsert(secret('t', 's2', 'kubernetes.io/basic-auth', { username: 'u', password: 'p2' }));
    assert.equal(routes.route('t', 'c')!.broken, undefined);
  });
  test('with custom CAs on, a global CA Secret changes every route\'s trust', () => {
    const { store, routes, all } = world(true);
    const before = all();
    assert.ok(before.every((r) => r.trust.key === ''));
    store.upsert(secret('proxy-ns', 'corp-ca', 'Opaque', { 'ca.crt': CA }, { 'connectors.cpaas.io/ca-cert': 'true' }));
    const after = all();
    assert.ok(after.every((r, i) => r !== before[i] && r.trust.key !== ''));
    const built = routes.builds;
    // An unrelated Secret in the proxy's namespace is not a CA: nothing is rebuilt.
    store.upsert(secret('proxy-ns', 'unrelated', 'Opaque', { token: 'x' }));
    all();
    assert.equal(routes.builds, built);
    store.remove('Secret', 'proxy-ns', 'corp-ca');
    assert.ok(all().every((r) => r.trust.key === ''));
  });
});
