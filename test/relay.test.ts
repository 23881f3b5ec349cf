// The response stages, each alone (src/server/relay/): the undici adapter, the credential
// retry, the rewrite (headers and streamed bodies with back-pressure) and the writer (a real
// HTTP server and client: back-pressure, truncation, 502 before the response, 499).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import type { ResponseHandler } from '../src/server/relay/handler';
import { UpstreamHandler } from '../src/server/relay/handler';
import { CredentialRetry } from '../src/server/relay/credential-retry';
import { ResponseRewrite } from '../src/server/relay/response-rewrite';
import { ResponseWriter } from '../src/server/relay/response-writer';
import { DEFAULT_PROFILE } from '../src/http/profile';
import { REGISTRY_PROFILE } from '../src/oci/profile';
import { WWW_AUTHENTICATE } from '../src/auth/client-token';
import type { ExchangeEnd } from '../src/server/exchange';
import { sendError } from '../src/server/errors';

/** The next stage, recording what reached it; `accept` says what onData answers. */
class Recorder implements ResponseHandler {
  readonly events: string[] = [];
  readonly chunks: Buffer[] = [];
  headers: string[] = [];
  status = 0;
  resume: (() => void) | undefined;
  accept = true;
  onConnect(): void { this.events.push('connect'); }
  onHeaders(status: number, headers: string[], _t: string, resume: () => void): boolean {
    this.events.push(`headers ${status}`);
    this.status = status;
    this.headers = headers;
    this.resume = resume;
    return true;
  }
  onData(chunk: Buffer): boolean { this.chunks.push(Buffer.from(chunk)); return this.accept; }
  onComplete(): void { this.events.push('complete'); }
  onError(err: Error): void { this.events.push(`error ${(err as Error & { code?: string }).code ?? err.message}`); }
  get body(): string { return Buffer.concat(this.chunks).toString(); }
}

const noop = (): void => undefined;

describe('UpstreamHandler', () => {
  test('1xx are skipped; hop-by-hop headers never reach the next stage', () => {
    const r = new Recorder();
    const u = new UpstreamHandler(r);
    assert.equal(u.onHeaders(100, [], noop, 'Continue'), true);
    u.onHeaders(200, ['Connection', 'x-hop', 'X-Hop', '1', 'Content-Type', 'text/plain'].map((s) => Buffer.from(s)), noop, 'OK');
    assert.deepEqual(r.events, ['headers 200']);
    assert.deepEqual(r.headers, ['Content-Type', 'text/plain']);
  });
});

describe('CredentialRetry', () => {
  const unauthorized = ['WWW-Authenticate', 'Bearer realm="x",scope="repository:a:pull"', 'Content-Type', 'application/json'];
  test('a resendable 401 is held; renewed credentials resend, and the client sees only the second answer', async () => {
    const r = new Recorder();
    let resent = 0;
    let seen: [string | undefined, boolean] | undefined;
    const retry = new CredentialRetry(r, true, async (challenge, resendable) => { seen = [challenge, resendable]; return true; }, () => { resent++; });
    retry.onHeaders(401, [...unauthorized], '', noop);
    retry.onData(Buffer.from('{"errors":[]}'));
    retry.onComplete();
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(seen, ['Bearer realm="x",scope="repository:a:pull"', true]);
    assert.equal(resent, 1);
    assert.deepEqual(r.events, []);
    // The second answer passes, even another 401 (one retry only).
    retry.onHeaders(401, [...unauthorized], '', noop);
    retry.onComplete();
    assert.deepEqual(r.events, ['headers 401', 'complete']);
  });
  test('when the credential cannot be renewed, the held 401 and its body go on as they were', async () => {
    const r = new Recorder();
    const retry = new CredentialRetry(r, true, async () => false, () => assert.fail('no resend'));
    retry.onHeaders(401, [...unauthorized], '', noop);
    retry.onData(Buffer.from('denied'));
    retry.onComplete();
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(r.events, ['headers 401', 'complete']);
    assert.equal(r.body, 'denied');
  });
  test('a streamed request is not resent: the 401 passes at once and the injector only forgets', () => {
    const r = new Recorder();
    const calls: boolean[] = [];
    const retry = new CredentialRetry(r, false, async (_c, resendable) => { calls.push(resendable); return true; }, () => assert.fail('no resend'));
    retry.onHeaders(401, [...unauthorized], '', noop);
    assert.deepEqual(calls, [false]);
    assert.deepEqual(r.events, ['headers 401']);
  });
  test('a 401 body over 64 KiB is relayed as it comes', () => {
    const r = new Recorder();
    const retry = new CredentialRetry(r, true, async () => true, () => assert.fail('no resend'));
    retry.onHeaders(401, [...unauthorized], '', noop);
    retry.onData(Buffer.alloc(40 * 1024, 97));
    assert.deepEqual(r.events, []);
    retry.onData(Buffer.alloc(40 * 1024, 98));
    assert.deepEqual(r.events, ['headers 401']);
    assert.equal(r.body.length, 80 * 1024);
  });
  test('other answers pass straight through', () => {
    const r = new Recorder();
    const retry = new CredentialRetry(r, true, async () => assert.fail('not called'), () => assert.fail('no resend'));
    retry.onHeaders(200, [], '', noop);
    retry.onData(Buffer.from('ok'));
    retry.onComplete();
    assert.deepEqual(r.events, ['headers 200', 'complete']);
  });
});

describe('ResponseRewrite', () => {
  const rw = () => ({ upstreamBase: 'http://tool:1', upstreamPath: '', publicBase: 'http://proxy/namespaces/a/connectors/b', publicPath: '/namespaces/a/connectors/b' });
  test('headers: Location through the profile; the registry profile hides the tool\'s challenge', () => {
    const r = new Recorder();
    new ResponseRewrite(r, REGISTRY_PROFILE, rw, false).onHeaders(401, ['Location', 'http://tool:1/v2/x', 'WWW-Authenticate', 'Bearer realm="http://tool:1/token"'], '', noop);
    assert.deepEqual(r.headers, ['Location', 'http://proxy/namespaces/a/connectors/b/v2/x', 'WWW-Authenticate', WWW_AUTHENTICATE]);
  });
  test('a JSON body: the tool\'s URLs become the client\'s, length dropped, ETag weakened', () => {
    const r = new Recorder();
    const s = new ResponseRewrite(r, DEFAULT_PROFILE, rw, true);
    s.onHeaders(200, ['Content-Type', 'application/json', 'Content-Length', '40', 'ETag', '"v1"'], '', noop);
    assert.deepEqual(r.headers, ['Content-Type', 'application/json', 'ETag', 'W/"v1"']);
    s.onData(Buffer.from('{"tarball":"http://tool:1/pkg/-/'));
    s.onData(Buffer.from('pkg.tgz","x":"http://tool:12/no"}'));
    s.onComplete();
    assert.equal(r.body, '{"tarball":"http://proxy/namespaces/a/connectors/b/pkg/-/pkg.tgz","x":"http://tool:12/no"}');
    assert.deepEqual(r.events, ['headers 200', 'complete']);
  });
  test('a gzip body is decoded and rewritten; a full client backlog pauses decoding until it drains', async () => {
    const r = new Recorder();
    r.accept = false;
    let upstreamResumed = 0;
    const s = new ResponseRewrite(r, DEFAULT_PROFILE, rw, true);
    const big = `{"a":"http://tool:1/x","pad":"${'p'.repeat(200_000)}","b":"http://tool:1/y"}`;
    s.onHeaders(200, ['Content-Type', 'application/json', 'Content-Encoding', 'gzip'], '', () => { upstreamResumed++; });
    assert.deepEqual(r.headers, ['Content-Type', 'application/json']);
    s.onData(gzipSync(big));
    const done = new Promise<void>((res) => { const orig = r.onComplete.bind(r); r.onComplete = () => { orig(); res(); }; });
    s.onComplete();
    // Decoding stops at the first refused chunk and stays stopped until the client drains.
    while (r.chunks.length === 0) await new Promise((res) => setTimeout(res, 10));
    const before = r.chunks.length;
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(r.chunks.length, before, 'nothing more was decoded while the client\'s backlog was full');
    r.accept = true;
    r.resume!();
    await done;
    assert.ok(r.chunks.length > before);
    assert.equal(r.body, big.replaceAll('http://tool:1/', 'http://proxy/namespaces/a/connectors/b/'));
  });
  test('a body that does not decode is an error after the headers, never a silent cut', async () => {
    const r = new Recorder();
    const s = new ResponseRewrite(r, DEFAULT_PROFILE, rw, true);
    s.onHeaders(200, ['Content-Type', 'application/json', 'Content-Encoding', 'gzip'], '', noop);
    s.onData(Buffer.from('not gzip at all'));
    await new Promise((res) => setTimeout(res, 20));
    s.onComplete();
    await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual(r.events, ['headers 200', 'error BAD_CONTENT_ENCODING']);
  });
});

describe('ResponseWriter (real server and client)', () => {
  /** Runs `handle` as the server's request handler and returns what a client saw. */
  async function exchange(handle: (req: IncomingMessage, res: ServerResponse) => void, client: (port: number) => Promise<unknown>): Promise<unknown> {
    const server = createServer(handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      return await client((server.address() as AddressInfo).port);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }
  const get = (port: number, readSlowly = false): Promise<{ status: number; body: Buffer; error?: string }> => new Promise((resolve) => {
    const chunks: Buffer[] = [];
    httpRequest({ port, host: '127.0.0.1', path: '/' }, (res) => {
      if (readSlowly) { res.pause(); setTimeout(() => res.resume(), 300); }
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
      res.on('error', (e) => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), error: e.message }));
    }).on('error', (e) => resolve({ status: 0, body: Buffer.concat(chunks), error: e.message })).end();
  });

  test('back-pressure: past the backlog the tool is paused and resumed on drain; every byte arrives', async () => {
    let paused = 0;
    let resumed = 0;
    const ends: ExchangeEnd[] = [];
    const total = 4 * 1024 * 1024;
    const seen = await exchange((_req, res) => {
      const w = new ResponseWriter(res, sendError, () => 'the tool', (e) => ends.push(e));
      const chunk = Buffer.alloc(64 * 1024, 120);
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!w.onData(chunk)) { paused++; return; }
        }
        w.onComplete();
      };
      w.onHeaders(200, ['content-length', String(total)], 'OK', () => { resumed++; pump(); });
      pump();
    }, (port) => get(port, true)) as { status: number; body: Buffer };
    assert.equal(seen.status, 200);
    assert.equal(seen.body.length, total);
    assert.ok(paused >= 1 && resumed === paused, `paused ${paused}, resumed ${resumed}`);
    assert.deepEqual(ends, [{ status: 200 }]);
  });

  test('a failure before the response is the way\'s error answer naming the tool; after it, the connection is cut', async () => {
    const ends: ExchangeEnd[] = [];
    const before = await exchange((_req, res) => {
      const w = new ResponseWriter(res, sendError, () => 'the tool of connector a/b (http://t)', (e) => ends.push(e));
      w.onError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
    }, (port) => get(port)) as { status: number; body: Buffer };
    assert.equal(before.status, 502);
    assert.match(before.body.toString(), /the tool of connector a\/b \(http:\/\/t\) refused the connection/);
    const after = await exchange((_req, res) => {
      const w = new ResponseWriter(res, sendError, () => 'the tool', (e) => ends.push(e));
      w.onHeaders(200, ['content-length', '100'], 'OK', noop);
      w.onData(Buffer.from('partial'));
      setTimeout(() => w.onError(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), 50);
    }, (port) => get(port)) as { status: number; error?: string };
    assert.equal(after.status, 200);
    assert.ok(after.error !== undefined, 'the client saw the truncation');
    assert.deepEqual(ends.map((e) => [e.status, e.upstreamError?.reason]), [[502, 'connect_refused'], [200, 'reset']]);
  });

  test('a client that hangs up ends the exchange as 499 and aborts the tool', async () => {
    const ends: ExchangeEnd[] = [];
    let aborted: Error | undefined;
    await exchange((_req, res) => {
      const w = new ResponseWriter(res, sendError, () => 'the tool', (e) => ends.push(e));
      w.onConnect((err) => { aborted = err; });
      w.onHeaders(200, [], 'OK', noop);
      w.onData(Buffer.from('first'));
    }, (port) => new Promise<void>((resolve) => {
      const r = httpRequest({ port, host: '127.0.0.1', path: '/' }, (res) => { res.once('data', () => { r.destroy(); setTimeout(resolve, 100); }); });
      r.on('error', () => undefined).end();
    }));
    assert.deepEqual(ends, [{ status: 499, clientAborted: true }]);
    assert.ok(aborted !== undefined);
  });
});
