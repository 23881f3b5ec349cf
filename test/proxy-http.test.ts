// The request path against real upstream HTTP servers: each status path, header rule,
// redirect, streaming and failure mode of issue 3.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { basic, connectorManifests, startProxy, type ProxyProcess } from './support/proxy';
import { readBody, startUpstream, type Upstream } from './support/upstream';
import { request } from './support/http';

const CLIENT = basic('anyone', 'good-token-123');
const TOOL_BASIC = basic('tool-user', 'tool-secret-pw');

describe('reverse proxy over HTTP', () => {
  let up: Upstream;
  let proxy: ProxyProcess;
  const prefix = (name: string) => `/namespaces/team/connectors/${name}`;

  before(async () => {
    up = await startUpstream((req, res) => {
      const url = req.url ?? '';
      if (url.includes('/redirect-same')) {
        res.writeHead(302, { location: `${up.origin}/base/next?x=1` }).end();
      } else if (url.includes('/redirect-relative')) {
        res.writeHead(301, { location: '/base/rel' }).end();
      } else if (url.includes('/redirect-away')) {
        res.writeHead(302, { location: 'http://elsewhere.example/x' }).end();
      } else if (url.includes('/hop')) {
        res.writeHead(200, { connection: 'x-resp-hop', 'x-resp-hop': 'secret', 'keep-alive': 'timeout=5', 'x-kept': 'yes' }).end('hop');
      } else if (url.includes('/sha')) {
        const h = createHash('sha256');
        let n = 0;
        req.on('data', (c: Buffer) => { h.update(c); n += c.length; });
        req.on('end', () => res.end(JSON.stringify({ sha: h.digest('hex'), n, te: req.headers['transfer-encoding'] ?? null })));
      } else if (url.includes('/big')) {
        const size = 32 * 1024 * 1024;
        const chunk = Buffer.alloc(64 * 1024, 7);
        res.writeHead(200, { 'content-length': size });
        let sent = 0;
        const pump = (): void => {
          while (sent < size) { sent += chunk.length; if (!res.write(chunk)) { res.once('drain', pump); return; } }
          res.end();
        };
        pump();
      } else if (url.includes('/hang')) {
        // never answers
      } else if (url.includes('/reset')) {
        res.writeHead(200, { 'content-length': 1000 });
        res.write('partial');
        setTimeout(() => req.socket.destroy(), 20);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ url, headers: req.headers }));
      }
    });
    proxy = await startProxy({
      manifests: {
        'path.yaml': connectorManifests({ address: `${up.origin}/base`, name: 'tool', resolver: 'path' }),
        'host.yaml': connectorManifests({ address: up.origin, name: 'api', secretType: 'connectors.cpaas.io/bearer-token', secretData: { token: 'tool-bearer-secret' } }),
        'optional.yaml': connectorManifests({ address: up.origin, name: 'public', resolver: 'path', optional: true, noSecret: true }),
        'broken.yaml': connectorManifests({ address: up.origin, name: 'broken', resolver: 'path', noSecret: true }),
        'dead.yaml': connectorManifests({ address: 'http://127.0.0.1:9', name: 'dead', resolver: 'path' }),
      },
      args: ['--headers-timeout-ms', '500'],
    });
  });

  after(async () => {
    await proxy?.stop();
    await up?.close();
  });

  test('path form: injects Basic, strips the client token, appends rest to the address prefix', async () => {
    const r = await request(proxy.url(`${prefix('tool')}/a/b?q=1`), { headers: { authorization: CLIENT } });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.text) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/base/a/b?q=1');
    assert.equal(seen.headers.authorization, TOOL_BASIC);
    assert.equal(seen.headers.host, `127.0.0.1:${up.port}`);
    assert.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${proxy.port}`);
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.match(seen.headers.via ?? '', /1\.1 connectors-proxy/);
  });

  test('host form: injects Bearer from a bearer-token Secret', async () => {
    const r = await request(proxy.url('/v1/things'), { headers: { host: `c-api.team.proxy.test:${proxy.port}`, authorization: 'Bearer good-token-123' } });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.text) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/v1/things');
    assert.equal(seen.headers.authorization, 'Bearer tool-bearer-secret');
  });

  test('the prefix alone maps to the address root; query and percent-encoding pass unchanged', async () => {
    const r1 = await request(proxy.url(prefix('tool')), { headers: { authorization: CLIENT } });
    assert.equal((JSON.parse(r1.text) as { url: string }).url, '/base/');
    const r2 = await request(proxy.url(`${prefix('tool')}?a=%2F&b=c+d`), { headers: { authorization: CLIENT } });
    assert.equal((JSON.parse(r2.text) as { url: string }).url, '/base/?a=%2F&b=c+d');
    const r3 = await request(proxy.url(`${prefix('tool')}/group%2Fproject/file%20name.txt?ref=a%26b`), { headers: { authorization: CLIENT } });
    assert.equal((JSON.parse(r3.text) as { url: string }).url, '/base/group%2Fproject/file%20name.txt?ref=a%26b');
  });

  test('no token → 401 with a Basic challenge; wrong token → 401', async () => {
    const r = await request(proxy.url(`${prefix('tool')}/x`));
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /^Basic realm="connectors-proxy"/);
    assert.match(r.text, /authentication required/);
    const bad = await request(proxy.url(`${prefix('tool')}/x`), { headers: { authorization: 'Bearer not-a-token' } });
    assert.equal(bad.status, 401);
    assert.ok(bad.headers['www-authenticate']);
    const malformed = await request(proxy.url(`${prefix('tool')}/x`), { headers: { authorization: 'Basic !!!' } });
    assert.equal(malformed.status, 401);
  });

  test('valid token without permission → 403; unknown connector → 404; unknown address → 404', async () => {
    const r = await request(proxy.url(`${prefix('tool')}/x`), { headers: { authorization: 'Bearer other-token-456' } });
    assert.equal(r.status, 403);
    assert.match(r.text, /forbidden.*team\/tool/);
    const nf = await request(proxy.url('/namespaces/team/connectors/nope/x'), { headers: { authorization: CLIENT } });
    assert.equal(nf.status, 404);
    assert.match(nf.text, /connector team\/nope not found/);
    const none = await request(proxy.url('/something'), { headers: { authorization: CLIENT } });
    assert.equal(none.status, 404);
    assert.match(none.text, /namespaces\/<namespace>\/connectors/);
    assert.equal(upSeenWith('/x'), 0, 'refused requests never reach the tool');
  });

  function upSeenWith(path: string): number {
    return up.seen.filter((s) => s.url.endsWith(path)).length;
  }

  test('the form must match the class resolver: path class via host form → 404 with the right address', async () => {
    const r = await request(proxy.url('/x'), { headers: { host: `c-tool.team.proxy.test:${proxy.port}`, authorization: CLIENT } });
    assert.equal(r.status, 404);
    assert.match(r.text, /path resolver.*\/namespaces\/team\/connectors\/tool\//);
    const h = await request(proxy.url('/namespaces/team/connectors/api/x'), { headers: { authorization: CLIENT } });
    assert.equal(h.status, 404);
    assert.match(h.text, /host resolver.*c-api\.team\.proxy\.test/);
  });

  test('dot segments are refused, also percent-encoded', async () => {
    for (const p of ['/namespaces/team/connectors/tool/../../other/connectors/x', '/namespaces/team/connectors/tool/%2e%2e/y', '/namespaces/team/connectors/tool/a/%2E/b']) {
      const r = await request(proxy.url(p), { headers: { authorization: CLIENT } });
      assert.equal(r.status, 400, p);
      assert.match(r.text, /segments/);
    }
  });

  test('CONNECT without proxy credentials → 407 naming the https_proxy form; nothing is tunnelled', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const s = connect(proxy.port, '127.0.0.1', () => s.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'));
      let buf = '';
      s.on('data', (d) => { buf += d.toString(); });
      s.on('error', reject);
      s.on('close', () => resolve(buf));
    });
    assert.match(text, /^HTTP\/1\.1 407/);
    assert.match(text, /https_proxy=http:\/\/<namespace>%2F<connector>:<token>@<proxy>/);
    assert.match(text, /connection: close/i);
  });

  test('hop-by-hop headers are dropped both ways, including those named in Connection', async () => {
    const r = await request(proxy.url(`${prefix('tool')}/hop`), {
      headers: { authorization: CLIENT, connection: 'x-client-hop', 'x-client-hop': 'drop-me', te: 'trailers', 'proxy-authorization': 'Basic abc', 'x-client-keep': 'keep' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-resp-hop'], undefined);
    assert.equal(r.headers['x-kept'], 'yes');
    const seen = up.seen.filter((s) => s.url === '/base/hop').pop()!;
    assert.equal(seen.headers['x-client-hop'], undefined);
    assert.equal(seen.headers['proxy-authorization'], undefined);
    assert.equal(seen.headers.te, undefined);
    assert.equal(seen.headers['x-client-keep'], 'keep');
  });

  test('Location on the Connector address is rewritten to the proxy; redirects are not followed', async () => {
    const same = await request(proxy.url(`${prefix('tool')}/redirect-same`), { headers: { authorization: CLIENT } });
    assert.equal(same.status, 302);
    assert.equal(same.headers.location, `http://127.0.0.1:${proxy.port}${prefix('tool')}/next?x=1`);
    const rel = await request(proxy.url(`${prefix('tool')}/redirect-relative`), { headers: { authorization: CLIENT } });
    assert.equal(rel.status, 301);
    assert.equal(rel.headers.location, `${prefix('tool')}/rel`);
    const away = await request(proxy.url(`${prefix('tool')}/redirect-away`), { headers: { authorization: CLIENT } });
    assert.equal(away.status, 302);
    assert.equal(away.headers.location, 'http://elsewhere.example/x');
    assert.equal(up.seen.filter((s) => s.url.includes('/next')).length, 0, 'the proxy did not follow');
  });

  test('optional auth type without a Secret forwards without credentials', async () => {
    const r = await request(proxy.url('/namespaces/team/connectors/public/open'), { headers: { authorization: CLIENT } });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.text) as { headers: Record<string, string> };
    assert.equal(seen.headers.authorization, undefined, 'neither the client token nor a credential');
  });

  test('a required Secret that is not referenced → 502 naming class and auth type', async () => {
    const r = await request(proxy.url('/namespaces/team/connectors/broken/x'), { headers: { authorization: CLIENT } });
    assert.equal(r.status, 502);
    assert.match(r.text, /class "cls-broken", auth type "auth"/);
    assert.match(r.text, /requires a Secret/);
  });

  test('chunked request body streams through intact', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    const res = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(proxy.url(`${prefix('tool')}/sha`), { method: 'POST', headers: { authorization: CLIENT, 'transfer-encoding': 'chunked' } }, (r) => {
        readBodyOf(r).then(resolve, reject);
      });
      req.on('error', reject);
      for (let i = 0; i < data.length; i += 100_000) req.write(data.subarray(i, i + 100_000));
      req.end();
    });
    const got = JSON.parse(res) as { sha: string; n: number; te: string | null };
    assert.equal(got.n, data.length);
    assert.equal(got.sha, createHash('sha256').update(data).digest('hex'));
    assert.equal(got.te, 'chunked');
  });

  test('Expect: 100-continue: the proxy says continue only after the token is checked', async () => {
    const body = randomBytes(300_000);
    const ok = await new Promise<{ status: number; text: string; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = httpRequest(proxy.url(`${prefix('tool')}/sha`), {
        method: 'PUT', headers: { authorization: CLIENT, expect: '100-continue', 'content-length': body.length },
      }, (r) => readBodyOf(r).then((text) => resolve({ status: r.statusCode ?? 0, text, continued }), reject));
      req.on('continue', () => { continued = true; req.end(body); });
      req.on('error', reject);
    });
    assert.equal(ok.continued, true);
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.text) as { n: number }).n, body.length);

    const denied = await new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = httpRequest(proxy.url(`${prefix('tool')}/sha`), {
        method: 'PUT', headers: { expect: '100-continue', 'content-length': body.length },
      }, (r) => { r.resume(); resolve({ status: r.statusCode ?? 0, continued }); });
      req.on('continue', () => { continued = true; req.end(body); });
      req.on('error', reject);
    });
    assert.equal(denied.status, 401);
    assert.equal(denied.continued, false, 'no 100 Continue for an unauthenticated upload');
  });

  test('responses are streamed with back-pressure: a client that stops reading stalls the tool', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(proxy.url(`${prefix('tool')}/big`), { headers: { authorization: CLIENT } }, (r) => {
        r.pause();
        setTimeout(() => {
          // 32 MiB offered; with the client paused only socket buffers' worth may have passed.
          const delivered = r.socket.bytesRead;
          try {
            assert.ok(delivered < 16 * 1024 * 1024, `proxy delivered ${delivered} bytes to a paused client`);
          } catch (e) { reject(e); return; }
          let n = 0;
          r.on('data', (c: Buffer) => { n += c.length; });
          r.on('end', () => { try { assert.equal(n, 32 * 1024 * 1024); resolve(); } catch (e) { reject(e); } });
          r.resume();
        }, 800);
      });
      req.on('error', reject);
      req.end();
    });
  });

  test('upstream refusing the connection → 502 naming the connector', async () => {
    const r = await request(proxy.url('/namespaces/team/connectors/dead/x'), { headers: { authorization: CLIENT } });
    assert.equal(r.status, 502);
    assert.match(r.text, /connector team\/dead.*refused the connection/);
  });

  test('upstream not answering in time → 504', async () => {
    const r = await request(proxy.url(`${prefix('tool')}/hang`), { headers: { authorization: CLIENT } });
    assert.equal(r.status, 504);
    assert.match(r.text, /did not send response headers in time/);
  });

  test('upstream reset mid-body → the client sees a truncated response, not a fake success', async () => {
    await assert.rejects(request(proxy.url(`${prefix('tool')}/reset`), { headers: { authorization: CLIENT } }));
    const r = await request(proxy.url(`${prefix('tool')}/a`), { headers: { authorization: CLIENT } });
    assert.equal(r.status, 200, 'the proxy keeps serving');
  });

  test('ops port: healthz, readyz and metrics by connector, class and status', async () => {
    const ops = (p: string) => request(`http://127.0.0.1:${proxy.opsPort}${p}`);
    assert.equal((await ops('/healthz')).status, 200);
    assert.equal((await ops('/readyz')).status, 200);
    const m = (await ops('/metrics')).text;
    assert.match(m, /connectors_proxy_requests_total\{connector="team\/tool",class="cls-tool",way="reverse",code="200"\} \d+/);
    assert.match(m, /connectors_proxy_requests_total\{connector="unknown",class="unknown",way="reverse",code="401"\} \d+/);
    assert.match(m, /connectors_proxy_request_duration_seconds_bucket\{le="0.005",connector="team\/tool",class="cls-tool",way="reverse"\}/);
    assert.match(m, /connectors_proxy_upstream_errors_total\{connector="team\/dead",class="cls-dead",way="reverse",reason="connect_refused"\} 1/);
    assert.match(m, /connectors_proxy_requests_in_flight 0/);
    assert.equal((await request(proxy.url('/metrics'))).status, 404, 'metrics are not served on the proxy port');
  });

  test('no client token, Secret value or derived credential in any log line or error body', async () => {
    await proxy.waitForLog(/"status":504/);
    const logs = proxy.logs();
    assert.match(logs, /"msg":"request"/, 'the access log is on');
    for (const secret of ['good-token-123', 'other-token-456', 'tool-secret-pw', 'tool-bearer-secret', TOOL_BASIC.slice(6), CLIENT.slice(6), 'not-a-token']) {
      assert.ok(!logs.includes(secret), `log output contains ${secret}`);
    }
    assert.ok(!logs.includes('q=1'), 'query strings are not logged');
  });
});

function readBodyOf(r: NodeJS.ReadableStream): Promise<string> {
  return readBody(r as Parameters<typeof readBody>[0]).then((b) => b.toString('utf8'));
}
