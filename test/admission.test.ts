// Admission (src/server/admission.ts): from a request to Admitted or a Refusal, for the
// reverse and forward ways, with the real static-token authenticator, object store and
// route table; and refusalFor, the one place an auth decision becomes a status.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StaticTokenAuthenticator } from '../src/auth/static-tokens';
import type { AuthDecision, ClientAuthenticator, ConnectorRef } from '../src/auth/authenticator';
import { WWW_AUTHENTICATE } from '../src/auth/client-token';
import { FORWARD_PROFILE, DEFAULT_PROFILE } from '../src/http/profile';
import { REGISTRY_PROFILE } from '../src/oci/profile';
import { RouteTable } from '../src/routes/route-table';
import { Admissions, refusalFor, type Admission } from '../src/server/admission';
import { Resolver } from '../src/server/resolve';
import { ObjectStore } from '../src/sources/store';
import { basicClass, basicConnector, connectorClass, connector, secret } from './support/objects';

const dir = mkdtempSync(join(tmpdir(), 'cproxy-admission-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const tokensFile = join(dir, 'tokens.yaml');
writeFileSync(tokensFile, 'tokens:\n  - {token: team-token-1, user: builder, connectors: ["team/*"]}\n  - {token: other-token-1, user: other, connectors: ["other/*"]}\n');
const tokens = new StaticTokenAuthenticator(tokensFile);
tokens.load();

function world(): { store: ObjectStore; admissions: Admissions } {
  const store = new ObjectStore();
  store.replaceAll([
    basicClass('git', true), basicClass('api'),
    connectorClass('oci', { auth: { types: [{ name: 'tokenAuth', secretType: 'cpaas.io/distribution-registry-token', optional: true }] } }, { 'connectors.cpaas.io/proxy-resolver': 'path' }),
    basicConnector('team', 'git', 'git', 'http://git.example:8080/gitlab', 'git-cred'),
    basicConnector('team', 'api', 'api', 'http://api.example', 'git-cred'),
    basicConnector('team', 'broken', 'git', 'http://git.example', 'missing'),
    connector('team', 'reg', { connectorClassName: 'oci', address: 'http://reg.example:5000', auth: { name: 'tokenAuth' } }),
    secret('team', 'git-cred', 'kubernetes.io/basic-auth', { username: 'u', password: 'p' }),
  ]);
  store.markSynced();
  return { store, admissions: new Admissions(new Resolver('svc.cluster.local'), new RouteTable(store), tokens) };
}

const req = (url: string, headers: Record<string, string>): IncomingMessage =>
  ({ method: 'GET', url, headers, rawHeaders: Object.entries(headers).flat() }) as unknown as IncomingMessage;
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const proxyAuth = (user: string, token: string) => ({ 'proxy-authorization': 'Basic ' + Buffer.from(`${user}:${token}`).toString('base64') });

async function admit(a: Admission | Promise<Admission>): Promise<Admission> {
  return a;
}

describe('admission: reverse', () => {
  const { admissions } = world();
  test('admitted: target under the address prefix, the route, the public prefix and profile', async () => {
    const a = await admit(admissions.reverse(req('/namespaces/team/connectors/git/org/r.git/info/refs?service=x', { host: 'proxy', ...bearer('team-token-1') })));
    assert.ok(a.admitted);
    assert.equal(a.route?.key, 'team/git');
    assert.deepEqual(a.target, { origin: 'http://git.example:8080', host: 'git.example:8080', path: '/gitlab/org/r.git/info/refs?service=x' });
    assert.equal(a.publicPrefix, '/namespaces/team/connectors/git');
    assert.equal(a.profile, DEFAULT_PROFILE);
    assert.equal(a.user, 'builder');
  });
  test('host form: the path passes unchanged, no public prefix', async () => {
    const a = await admit(admissions.reverse(req('/x?y=1', { host: 'c-api.team.svc.cluster.local', ...bearer('team-token-1') })));
    assert.ok(a.admitted);
    assert.deepEqual(a.target, { origin: 'http://api.example', host: 'api.example', path: '/x?y=1' });
    assert.equal(a.publicPrefix, '');
  });
  test('the OCI path form brings the registry profile; a registry-token route has it too', async () => {
    const a = await admit(admissions.reverse(req('/v2/namespaces/team/connectors/reg/app/manifests/1', { host: 'proxy', ...bearer('team-token-1') })));
    assert.ok(a.admitted);
    assert.equal(a.target.path, '/v2/app/manifests/1');
    assert.equal(a.profile, REGISTRY_PROFILE);
  });
  test('refusals, each with its status', async () => {
    const cases: Array<[string, Record<string, string>, number, RegExp]> = [
      ['/namespaces/team/connectors/git/x', { host: 'proxy' }, 401, /authentication required/],
      ['/namespaces/team/connectors/git/x', { host: 'proxy', ...bearer('wrong-token') }, 401, /token rejected/],
      ['/namespaces/team/connectors/git/x', { host: 'proxy', ...bearer('other-token-1') }, 403, /forbidden: .*\(connector team\/git\)/],
      ['/namespaces/team/connectors/nope/x', { host: 'proxy', ...bearer('team-token-1') }, 404, /connector team\/nope not found/],
      ['/namespaces/team/connectors/api/x', { host: 'proxy', ...bearer('team-token-1') }, 404, /uses the host resolver .* call it at http:\/\/c-api\.team\.svc\.cluster\.local\//],
      ['/namespaces/team/connectors/broken/x', { host: 'proxy', ...bearer('team-token-1') }, 502, /class "git", auth type "basic"\) cannot be used: Secret team\/missing not found/],
      ['/namespaces/team/connectors/git/../x', { host: 'proxy', ...bearer('team-token-1') }, 400, /segments/],
      ['/elsewhere', { host: 'proxy', ...bearer('team-token-1') }, 404, /no connector in this request/],
    ];
    for (const [url, headers, status, message] of cases) {
      const a = await admit(admissions.reverse(req(url, headers)));
      assert.ok(!a.admitted, url);
      assert.equal(a.status, status, url);
      assert.match(a.message, message, url);
      if (status === 401) assert.equal(a.headers?.['www-authenticate'], WWW_AUTHENTICATE);
    }
  });
  test('before the first sync an unknown Connector is 503 with Retry-After, not 404', async () => {
    const store = new ObjectStore();
    const a = await admit(new Admissions(new Resolver('d'), new RouteTable(store), tokens).reverse(req('/namespaces/team/connectors/git/x', { host: 'proxy', ...bearer('team-token-1') })));
    assert.ok(!a.admitted);
    assert.equal(a.status, 503);
    assert.equal(a.headers?.['retry-after'], '1');
  });
  test('a cached decision is answered synchronously; a pending one through a promise; a failed check is 503, never admitted', async () => {
    const { store } = world();
    const sync = new Admissions(new Resolver('d'), new RouteTable(store), tokens).reverse(req('/namespaces/team/connectors/git/x', { host: 'p', ...bearer('team-token-1') }));
    assert.ok(!(sync instanceof Promise));
    const later: ClientAuthenticator = {
      check: (t: string, ref: ConnectorRef): Promise<AuthDecision> => Promise.resolve(tokens.check(t, ref)),
      authenticate: (t: string) => Promise.resolve(tokens.authenticate(t)),
      checkApi: (t, ref, p) => Promise.resolve(tokens.checkApi(t, ref, p)),
    };
    const pending = new Admissions(new Resolver('d'), new RouteTable(store), later).reverse(req('/namespaces/team/connectors/git/x', { host: 'p', ...bearer('team-token-1') }));
    assert.ok(pending instanceof Promise);
    assert.ok((await pending).admitted);
    const failing: ClientAuthenticator = { check: () => Promise.reject(new Error('down')), authenticate: () => Promise.reject(new Error('down')), checkApi: () => Promise.reject(new Error('down')) };
    const f = await admit(new Admissions(new Resolver('d'), new RouteTable(store), failing).reverse(req('/namespaces/team/connectors/git/x', { host: 'p', ...bearer('team-token-1') })));
    assert.ok(!f.admitted);
    assert.equal(f.status, 503);
  });
});

describe('admission: forward', () => {
  const { admissions } = world();
  test('a target under a listed Connector gets its route; another target goes without one', async () => {
    const a = await admit(admissions.forward(req('http://git.example:8080/gitlab/org/r.git/info/refs', { host: 'git.example:8080', ...proxyAuth('team/git', 'team-token-1') })));
    assert.ok(a.admitted);
    assert.equal(a.route?.key, 'team/git');
    assert.equal(a.publicPrefix, undefined);
    assert.equal(a.profile, FORWARD_PROFILE);
    const b = await admit(admissions.forward(req('http://git.example:8080/gitlab-evil/x', { host: 'git.example:8080', ...proxyAuth('team/git', 'team-token-1') })));
    assert.ok(b.admitted);
    assert.equal(b.route, undefined);
    assert.deepEqual(b.target, { origin: 'http://git.example:8080', host: 'git.example:8080', path: '/gitlab-evil/x' });
  });
  test('407 without or with bad proxy credentials, 403 for a token no listed Connector allows, 400 for bad targets', async () => {
    const r1 = await admit(admissions.forward(req('http://git.example:8080/gitlab/x', {})));
    assert.ok(!r1.admitted && r1.status === 407 && r1.headers?.['proxy-authenticate'] !== undefined);
    const r2 = await admit(admissions.forward(req('http://git.example:8080/gitlab/x', proxyAuth('team/git', 'wrong-token'))));
    assert.ok(!r2.admitted && r2.status === 407);
    const r3 = await admit(admissions.forward(req('http://git.example:8080/gitlab/x', proxyAuth('team/git', 'other-token-1'))));
    assert.ok(!r3.admitted && r3.status === 403);
    const r4 = await admit(admissions.forward(req('http://elsewhere/x', proxyAuth('team/git,team/api', 'other-token-1'))));
    assert.ok(!r4.admitted && r4.status === 403);
    const r5 = await admit(admissions.forward(req('http://git.example:8080/gitlab/a/../../x', proxyAuth('team/git', 'team-token-1'))));
    assert.ok(!r5.admitted && r5.status === 400);
    const r6 = await admit(admissions.forward(req('ftp://x/y', proxyAuth('team/git', 'team-token-1'))));
    assert.ok(!r6.admitted && r6.status === 400);
  });
});

describe('refusalFor: one place from decision to status', () => {
  test('401 → 401 or 407 with the matching challenge, 403, 503 with Retry-After', () => {
    const d401 = { allowed: false as const, status: 401 as const, reason: 'missing or invalid token' };
    assert.deepEqual([refusalFor(d401, 'www').status, refusalFor(d401, 'www').headers], [401, { 'www-authenticate': WWW_AUTHENTICATE }]);
    assert.equal(refusalFor(d401, 'proxy').status, 407);
    assert.ok(refusalFor(d401, 'proxy').headers?.['proxy-authenticate']);
    const d403 = { allowed: false as const, status: 403 as const, reason: 'no', user: 'u' };
    assert.deepEqual([refusalFor(d403, 'www', 'a/b').status, refusalFor(d403, 'www', 'a/b').message, refusalFor(d403, 'www', 'a/b').user], [403, 'forbidden: no (connector a/b)', 'u']);
    const d503 = { allowed: false as const, status: 503 as const, reason: 'api down' };
    assert.deepEqual([refusalFor(d503, 'proxy').status, refusalFor(d503, 'proxy').headers?.['retry-after']], [503, '1']);
  });
});
