// Header rules written once for both directions (src/http/headers.ts): hop-by-hop handling,
// forwarding headers, Location and Link rewriting, and the response profiles that apply them.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { clientResponseHeaders, rewriteLinkTargets, rewriteLocation, upstreamRequestHeaders } from '../src/http/headers';
import { DEFAULT_PROFILE, FORWARD_PROFILE } from '../src/http/profile';
import { REGISTRY_PROFILE } from '../src/oci/profile';
import { rewriteResponseHeaders } from '../src/server/relay/response-rewrite';
import { WWW_AUTHENTICATE } from '../src/auth/client-token';

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
  test('client response headers: hop-by-hop and Connection-listed fields dropped, names as the tool spelled them', () => {
    const raw = ['Content-Type', 'text/plain', 'Connection', 'X-Secret-Hop', 'X-Secret-Hop', '1', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'ETag', '"a"', 'connection', 'close, X-Other'].map((s) => Buffer.from(s));
    assert.deepEqual(clientResponseHeaders(raw), ['Content-Type', 'text/plain', 'ETag', '"a"']);
  });
  test('Link targets go through the rewrite, the rest of the field is kept', () => {
    const out = rewriteLinkTargets('<http://tool/v2/x/tags/list?n=1&last=a>; rel="next", <https://other/y>; rel="alt"', (t) => t.replace('http://tool', 'http://proxy'));
    assert.equal(out, '<http://proxy/v2/x/tags/list?n=1&last=a>; rel="next", <https://other/y>; rel="alt"');
  });
});

describe('response profiles', () => {
  const rw = () => ({ upstreamBase: 'http://tool:81/gitlab', upstreamPath: '/gitlab', publicBase: 'http://proxy/namespaces/n/connectors/c', publicPath: '/namespaces/n/connectors/c' });
  const headers = () => ['Location', 'http://tool:81/gitlab/a', 'Link', '</gitlab/p?page=2>; rel="next"', 'WWW-Authenticate', 'Bearer realm="http://auth/token"', 'Content-Location', '/gitlab/c', 'X-Other', '/gitlab/x'];
  test('default: Location, Content-Location and Link targets point at the proxy; the tool\'s challenge passes', () => {
    const h = headers();
    rewriteResponseHeaders(h, DEFAULT_PROFILE, rw);
    assert.deepEqual(h, ['Location', 'http://proxy/namespaces/n/connectors/c/a', 'Link', '</namespaces/n/connectors/c/p?page=2>; rel="next"',
      'WWW-Authenticate', 'Bearer realm="http://auth/token"', 'Content-Location', '/namespaces/n/connectors/c/c', 'X-Other', '/gitlab/x']);
    assert.equal(DEFAULT_PROFILE.rewritesBodies, true);
  });
  test('registry: the client meets the proxy\'s Basic challenge, bodies are never rewritten', () => {
    const h = headers();
    rewriteResponseHeaders(h, REGISTRY_PROFILE, rw);
    assert.equal(h[5], WWW_AUTHENTICATE);
    assert.equal(h[1], 'http://proxy/namespaces/n/connectors/c/a');
    assert.equal(REGISTRY_PROFILE.rewritesBodies, false);
  });
  test('forward: nothing is rewritten', () => {
    const h = headers();
    rewriteResponseHeaders(h, FORWARD_PROFILE, rw);
    assert.deepEqual(h, headers());
    assert.equal(FORWARD_PROFILE.rewritesBodies, false);
  });
});
