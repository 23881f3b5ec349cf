// Credential sources (src/credentials/, src/oci/token-source.ts) with a fake clock: expiry,
// early renewal, single flight, invalidation and the per-Secret-version registry, against
// real HTTP token endpoints in this process; and the header placement that uses them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { TokenCache, renewalTime } from '../src/credentials/expiring';
import { CredentialSources } from '../src/credentials/sources';
import { ClientCredentialsSource, clientCredentialsConfig } from '../src/credentials/oauth2';
import { RegistryTokenSource } from '../src/oci/token-source';
import { requestScopes, scopesAfterChallenge } from '../src/oci/scopes';
import { SourceHeaderInjector } from '../src/inject/header';
import type { OutgoingRequest } from '../src/inject';
import { CredentialError } from '../src/credentials/source';
import { FakeClock, connector, connectorClass } from './support/objects';

const agent = new Agent();
after(() => agent.close());

describe('TokenCache and renewal time', () => {
  test('renewal: a tenth of the lifetime early, at most 30 s; default for a missing or bad expires_in', () => {
    assert.equal(renewalTime(0, 100, 60), 90_000);
    assert.equal(renewalTime(0, 3600, 60), 3_570_000);
    assert.equal(renewalTime(0, undefined, 60), 54_000);
    assert.equal(renewalTime(0, 'x', 300), 270_000);
    assert.equal(renewalTime(0, -5, 300), 270_000);
  });
  test('cached until the refresh time, then fetched again; concurrent waiters share one fetch', async () => {
    const clock = new FakeClock();
    const cache = new TokenCache<string>(10, clock);
    let n = 0;
    const fetch = async () => ({ value: `t${++n}`, refreshAt: clock.now() + 1000 });
    const all = await Promise.all(Array.from({ length: 20 }, () => cache.get('k', fetch)));
    assert.deepEqual(new Set(all), new Set(['t1']));
    assert.equal(cache.get('k', fetch), 't1', 'a fresh value is answered synchronously');
    clock.advance(999);
    assert.equal(cache.get('k', fetch), 't1');
    clock.advance(1);
    assert.equal(await cache.get('k', fetch), 't2');
    assert.equal(cache.fetches, 2);
  });
  test('forget drops a refused value; the bound evicts the oldest key; a failed fetch is not cached', async () => {
    const clock = new FakeClock();
    const cache = new TokenCache<string>(2, clock);
    await cache.get('a', async () => ({ value: 'A', refreshAt: clock.now() + 1e6 }));
    cache.forget('A');
    assert.equal(await cache.get('a', async () => ({ value: 'A2', refreshAt: clock.now() + 1e6 })), 'A2');
    await cache.get('b', async () => ({ value: 'B', refreshAt: clock.now() + 1e6 }));
    await cache.get('c', async () => ({ value: 'C', refreshAt: clock.now() + 1e6 }));
    assert.equal(cache.size, 2);
    await assert.rejects(Promise.resolve(cache.get('d', async () => { throw new Error('boom'); })), /boom/);
    assert.equal(await cache.get('d', async () => ({ value: 'D', refreshAt: clock.now() + 1e6 })), 'D');
  });
});

describe('CredentialSources: one source per Secret version and grant', () => {
  test('the same version and grant share a source; a new Secret version replaces the old one\'s', () => {
    const s = new CredentialSources();
    let made = 0;
    const make = () => ({ id: ++made });
    const a = s.get('ns/sec', 'v1', 'grant', make);
    assert.equal(s.get('ns/sec', 'v1', 'grant', make), a);
    const other = s.get('ns/sec', 'v1', 'other-grant', make);
    assert.notEqual(other, a);
    const b = s.get('ns/sec', 'v2', 'grant', make);
    assert.notEqual(b, a);
    assert.equal(s.size, 1, 'both v1 sources were dropped');
    s.get('ns/other', 'v1', 'grant', make);
    assert.equal(s.size, 2);
  });
});

/** A token endpoint that counts requests and issues `tok-<n>` valid for `expiresIn` seconds. */
async function tokenEndpoint(expiresIn: number, status = 200): Promise<{ url: string; requests: () => number; server: Server }> {
  let n = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      n++;
      const ok = req.headers.authorization === 'Basic ' + Buffer.from('client:s3cret').toString('base64') && body.includes('grant_type=client_credentials');
      if (status !== 200 || !ok) {
        res.writeHead(status === 200 ? 401 : status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_client', error_description: 'bad s3cret' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: `tok-${n}`, token_type: 'Bearer', expires_in: expiresIn }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, requests: () => n, server };
}

describe('ClientCredentialsSource (OAuth2) against a real token endpoint', () => {
  const servers: Server[] = [];
  after(() => { for (const s of servers) s.close(); });
  const source = (url: string, clock: FakeClock, secret = 's3cret') => {
    const cfg = clientCredentialsConfig(new Map([['clientID', 'client'], ['clientSecret', secret], ['tokenURL', url]]),
      { connector: connector('ns', 'c', { connectorClassName: 'x', address: 'http://tool' }), connectorClass: connectorClass('x', {}) });
    return new ClientCredentialsSource(cfg, () => agent, clock);
  };
  test('one token for many requests until shortly before expiry, then one refresh', async () => {
    const ep = await tokenEndpoint(300);
    servers.push(ep.server);
    const clock = new FakeClock();
    const s = source(ep.url, clock);
    const first = await Promise.all(Array.from({ length: 30 }, () => s.get()));
    assert.deepEqual(new Set(first), new Set(['Bearer tok-1']));
    assert.equal(ep.requests(), 1);
    clock.advance(269_000);
    assert.equal(s.get(), 'Bearer tok-1');
    clock.advance(1_000);
    assert.equal(await s.get(), 'Bearer tok-2');
    assert.equal(ep.requests(), 2);
  });
  test('a token the tool refused is dropped; a newer one is not', async () => {
    const ep = await tokenEndpoint(300);
    servers.push(ep.server);
    const s = source(ep.url, new FakeClock());
    const t1 = await s.get();
    s.invalidate('Bearer some-older-token');
    assert.equal(s.get(), t1);
    s.invalidate(t1);
    assert.equal(await s.get(), 'Bearer tok-2');
  });
  test('a refusal names the endpoint and the OAuth2 error, never the client secret', async () => {
    const ep = await tokenEndpoint(300, 400);
    servers.push(ep.server);
    const s = source(ep.url, new FakeClock());
    await assert.rejects(Promise.resolve(s.get()), (err: Error) => {
      assert.ok(err instanceof CredentialError);
      assert.match(err.message, /refused the client credentials grant \(HTTP 400, invalid_client: bad \[hidden\]\)/);
      assert.ok(!err.message.includes('s3cret'));
      return true;
    });
  });
});

describe('RegistryTokenSource against a real registry and token service', () => {
  let server: Server;
  let base: string;
  let tokenRequests: string[] = [];
  before(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/v2/') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${base}/token",service="reg"` }).end();
      } else if (url.pathname === '/token') {
        tokenRequests.push(url.searchParams.getAll('scope').join(' '));
        const ok = req.headers.authorization === 'Basic ' + Buffer.from('user:pw').toString('base64');
        if (!ok) { res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad pw"}'); return; }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `reg-${tokenRequests.length}`, expires_in: 60 }));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  test('discovers the token service, caches per scope, renews at 54 s of 60', async () => {
    tokenRequests = [];
    const clock = new FakeClock();
    const s = new RegistryTokenSource('user', 'pw', { origin: base, basePath: '', dispatcherFor: () => agent }, clock);
    const pull = ['repository:app:pull'];
    const got = await Promise.all(Array.from({ length: 10 }, () => s.get(pull)));
    assert.deepEqual(new Set(got), new Set(['Bearer reg-1']));
    assert.equal(await s.get(['repository:app:pull,push']), 'Bearer reg-2');
    assert.equal(s.get(pull), 'Bearer reg-1');
    clock.advance(54_000);
    assert.equal(await s.get(pull), 'Bearer reg-3');
    assert.deepEqual(tokenRequests, ['repository:app:pull', 'repository:app:pull,push', 'repository:app:pull']);
  });
  test('the placement: scopes from the request, a refused token renewed once for the challenge\'s scope', async () => {
    tokenRequests = [];
    const s = new RegistryTokenSource('user', 'pw', { origin: base, basePath: '', dispatcherFor: () => agent }, new FakeClock());
    const inj = new SourceHeaderInjector<readonly string[]>(s, 'authorization', { scopeOf: (r) => requestScopes(r.method, r.path, ''), retryScope: scopesAfterChallenge });
    const out: OutgoingRequest = { method: 'POST', path: '/v2/app/blobs/uploads/?mount=sha256:1&from=base', host: 'x', headers: [], readBody: () => Promise.reject(new Error('no')) };
    await inj.inject(out);
    assert.deepEqual(out.headers, ['authorization', 'Bearer reg-1']);
    assert.deepEqual(tokenRequests, ['repository:app:pull,push repository:base:pull']);
    const again = await inj.onUnauthorized(out, `Bearer realm="${base}/token",service="reg",scope="repository:other:pull"`, true);
    assert.equal(again, true);
    assert.deepEqual(out.headers, ['authorization', 'Bearer reg-2']);
    assert.equal(tokenRequests[1], 'repository:app:pull,push repository:base:pull repository:other:pull');
    assert.equal(await inj.onUnauthorized(out, undefined, false), false, 'a streamed request is not resent');
  });
  test('wrong Secret: the refusal says so, without the password', async () => {
    const s = new RegistryTokenSource('user', 'wrong-pw', { origin: base, basePath: '', dispatcherFor: () => agent }, new FakeClock());
    await assert.rejects(Promise.resolve(s.get(['repository:app:pull'])), (err: Error) => {
      assert.match(err.message, /refused a token for repository:app:pull with the Secret's username and password \(HTTP 401: bad pw\)/);
      assert.ok(!err.message.includes('wrong-pw'));
      return true;
    });
  });
});
