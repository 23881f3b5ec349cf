// Client tokens: where the proxy reads them (src/auth/client-token.ts) and the static token
// file of embedded mode (src/auth/static-tokens.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tokenFromAuthorization } from '../src/auth/client-token';
import { parseTokenFile, StaticTokenAuthenticator } from '../src/auth/static-tokens';

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
