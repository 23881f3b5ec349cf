// One upstream exchange: dispatch the request on undici's pool and relay the response with
// back-pressure in both directions. Modeled on httputil.ReverseProxy: the proxy never
// follows redirects, never buffers a body, and answers 502/504 when the tool fails before
// the response started (after that, the client's connection is cut so it sees truncation).
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { classifyUpstreamError, sendError, sendSocketError } from './errors';
import { clientResponseHeaders, rewriteLocation, type LocationRewrite } from './headers';
import type { OutgoingRequest } from '../inject';
import { decodableEncoding, isRewritableType, rewritingSink, substitutionsFor, type BodySink } from './body-rewrite';

/** Where and what to send: the Connector's origin and the request after injection. */
export interface UpstreamRequest extends OutgoingRequest {
  readonly origin: string;
}

export interface Timeouts {
  /** Time to the response headers; undici's `headersTimeout`. */
  readonly headersMs: number;
  /** Longest pause between body chunks; undici's `bodyTimeout`. */
  readonly bodyIdleMs: number;
}

export interface ExchangeEnd {
  readonly status: number;
  /** Set when the upstream failed: metric reason and readable text. */
  readonly upstreamError?: { readonly reason: string; readonly text: string };
  /** The client went away before the response ended. */
  readonly clientAborted?: boolean;
}

/** Response bytes buffered toward a slow client before the upstream is paused. */
const RELAY_BACKLOG_BYTES = 256 * 1024;

/** Makes a LocationRewrite on first use: most responses carry no Location. */
export type RewriteSource = () => LocationRewrite;

/** True when the client announced a request body. */
export function hasRequestBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}

// undici's raw handler API (onConnect/onHeaders/onData/onComplete/onError) is its native
// one in v7; the newer controller API wraps it and parses every header block into an object.
class ResponseRelay implements Dispatcher.DispatchHandler {
  private abortUpstream: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private status = 0;
  private ended = false;
  private rewrite: LocationRewrite | undefined;

  /** A 401 kept back while the injector decides whether to resend (see Exchange.onUnauthorized). */
  private held: HeldResponse | undefined;
  /** Set once the one retry an exchange may have was used or given up. */
  private retried: boolean;

  constructor(
    private readonly res: ServerResponse,
    private readonly what: string,
    private readonly rewriteSource: RewriteSource,
    private readonly onEnd: (end: ExchangeEnd) => void,
    private readonly unauthorized: UnauthorizedHook | undefined,
    private readonly resend: () => void,
    private readonly rewriteBodies: boolean,
  ) {
    this.retried = unauthorized === undefined;
    res.on('close', this.onClientClose);
  }

  private draining = false;
  private readonly onDrain = (): void => {
    if (!this.draining) return;
    this.draining = false;
    this.resumeUpstream?.();
  };

  private readonly onClientClose = (): void => {
    if (this.ended) return;
    this.abortUpstream?.(new Error('client closed the connection'));
    this.finish({ status: this.status || 499, clientAborted: true });
  };

  onConnect(abort: (err?: Error) => void): void {
    if (this.ended) abort(new Error('client closed the connection'));
    else this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: we never send Expect upstream; nothing to relay
    if (this.ended) return false;
    this.resumeUpstream = resume;
    if (statusCode === 401 && !this.retried) {
      const challenge = headerValue(rawHeaders, 'www-authenticate');
      if (this.unauthorized!.resendable) {
        this.held = { statusCode, rawHeaders, statusText, challenge, chunks: [], size: 0 };
        return true;
      }
      this.retried = true;
      // The body was streamed and cannot be sent again; the injector may still renew its credentials.
      this.unauthorized!.hook(challenge, false).catch(() => undefined);
    }
    this.writeHead(statusCode, rawHeaders, statusText);
    return true;
  }

  private writeHead(statusCode: number, rawHeaders: Buffer[], statusText: string): void {
    this.status = statusCode;
    let headers = clientResponseHeaders(rawHeaders, this);
    if (this.rewriteBodies && statusCode !== 204 && statusCode !== 304) headers = this.startBodyRewrite(headers);
    this.res.writeHead(statusCode, statusText || STATUS_CODES[statusCode] || '', headers);
  }

  /** A rewritten body (set by startBodyRewrite) goes through here instead of straight to `res`. */
  private sink: BodySink | undefined;

  /**
   * Starts rewriting the tool's absolute URLs in a textual body (see body-rewrite.ts) and
   * returns the headers that still hold: the length changes, a decoded encoding is gone,
   * and a strong ETag becomes weak (the bytes differ, the meaning does not).
   */
  private startBodyRewrite(headers: string[]): string[] {
    let type: string | undefined;
    let encodingHeader: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const n = headers[i]!.toLowerCase();
      if (n === 'content-type') type = headers[i + 1];
      else if (n === 'content-encoding') encodingHeader = headers[i + 1];
    }
    if (!isRewritableType(type)) return headers;
    const encoding = decodableEncoding(encodingHeader);
    if (encoding === undefined) return headers;
    this.rewrite ??= this.rewriteSource();
    const subs = substitutionsFor(this.rewrite, type!.toLowerCase().includes('html'));
    if (subs.length === 0) return headers;
    this.sink = rewritingSink(this.res, encoding, subs, this.onDrain);
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const n = headers[i]!.toLowerCase();
      if (n === 'content-length' || (n === 'content-encoding' && encoding !== 'identity')) continue;
      const v = headers[i + 1]!;
      out.push(headers[i]!, n === 'etag' && !v.startsWith('W/') ? 'W/' + v : v);
    }
    return out;
  }

  /** Relays the kept-back 401 as the answer. */
  private releaseHeld(): boolean {
    const h = this.held!;
    this.held = undefined;
    this.retried = true;
    this.writeHead(h.statusCode, h.rawHeaders, h.statusText);
    for (const c of h.chunks) {
      if (this.sink !== undefined) this.sink.write(c);
      else this.res.write(c);
    }
    return true;
  }

  /** Called by clientResponseHeaders for Location and Content-Location. */
  rewriteValue(value: string): string {
    this.rewrite ??= this.rewriteSource();
    return rewriteLocation(value, this.rewrite);
  }

  /** Called by clientResponseHeaders for WWW-Authenticate. */
  rewriteChallenge(value: string): string {
    this.rewrite ??= this.rewriteSource();
    return this.rewrite.challenge ?? value;
  }

  onData(chunk: Buffer): boolean {
    if (this.ended) return false;
    if (this.held !== undefined) {
      // 401 bodies are small; a large one is not worth holding: relay it as it is.
      if (this.held.size + chunk.length <= HELD_BODY_BYTES) {
        this.held.chunks.push(Buffer.from(chunk));
        this.held.size += chunk.length;
        return true;
      }
      this.releaseHeld();
    }
    if (this.sink !== undefined) {
      if (this.sink.write(chunk)) return true;
      this.draining = true;
      return false;
    }
    // The socket's 16 KiB high-water mark is below one undici chunk (up to 64 KiB), so
    // honouring write()'s false would pause the upstream after every chunk. Pause only when
    // a real backlog builds up; 'drain' still follows any write that returned false.
    this.res.write(chunk);
    if (this.res.writableLength < RELAY_BACKLOG_BYTES) return true;
    if (!this.draining) {
      this.draining = true;
      this.res.once('drain', this.onDrain);
    }
    return false;
  }

  onComplete(): void {
    if (this.ended) return;
    if (this.held !== undefined) {
      const challenge = this.held.challenge;
      this.retried = true;
      this.abortUpstream = undefined;
      this.unauthorized!.hook(challenge, true).then((again) => again, () => false).then((again) => {
        if (this.ended) return;
        if (again) {
          this.held = undefined;
          this.resend();
        } else {
          this.releaseHeld();
          this.endResponse();
        }
      });
      return;
    }
    this.endResponse();
  }

  private endResponse(): void {
    const sink = this.sink;
    if (sink === undefined) {
      this.res.end();
      this.finish({ status: this.status });
      return;
    }
    sink.end(() => {
      if (this.ended) return;
      this.res.end();
      this.finish({ status: this.status });
    }, () => {
      if (this.ended) return;
      this.res.destroy();
      this.finish({ status: this.status, upstreamError: { reason: 'bad_response', text: 'sent a body that does not decode as its Content-Encoding says' } });
    });
  }

  onError(err: Error): void {
    if (this.ended) return;
    this.held = undefined;
    const c = classifyUpstreamError(err as Error & { code?: string });
    if (this.res.headersSent) this.res.destroy();
    else sendError(this.res, c.status, `${this.what} ${c.text}`);
    this.finish({ status: this.res.headersSent && this.status ? this.status : c.status, upstreamError: { reason: c.reason, text: c.text } });
  }

  private finish(end: ExchangeEnd): void {
    if (this.ended) return;
    this.ended = true;
    if (this.draining) this.res.off('drain', this.onDrain);
    this.onEnd(end);
  }
}

/** One request's upstream side: what to send, and how to report and rewrite. */
export interface Exchange {
  readonly up: UpstreamRequest;
  readonly timeouts: Timeouts;
  /** The subject of error messages: `the tool of connector ns/name (origin)`. */
  readonly what: string;
  readonly rewrite: RewriteSource;
  readonly onEnd: (end: ExchangeEnd) => void;
  /** Rewrite the tool's absolute URLs in textual bodies to the client's address (reverse mode). */
  readonly rewriteBodies?: boolean;
  /** The injector's Injector.onUnauthorized, when it has one: called on the tool's first 401. */
  readonly onUnauthorized?: (challenge: string | undefined, resendable: boolean) => Promise<boolean>;
}

/** A 401 response held back until the injector has decided. */
interface HeldResponse {
  readonly statusCode: number;
  readonly rawHeaders: Buffer[];
  readonly statusText: string;
  readonly challenge: string | undefined;
  readonly chunks: Buffer[];
  size: number;
}

interface UnauthorizedHook {
  readonly resendable: boolean;
  readonly hook: (challenge: string | undefined, resendable: boolean) => Promise<boolean>;
}

/** Largest 401 body kept back while credentials are renewed. */
const HELD_BODY_BYTES = 64 * 1024;

export function forward(dispatcher: Dispatcher, req: IncomingMessage, res: ServerResponse, ex: Exchange): void {
  const { up, timeouts } = ex;
  // A request can be sent twice only when no client stream was consumed: no body, or a
  // body the injector rewrote into a buffer.
  const streamed = up.body === undefined && hasRequestBody(req);
  const send = (): void => {
    dispatcher.dispatch({
      origin: up.origin,
      path: up.path,
      method: up.method as Dispatcher.HttpMethod,
      headers: up.headers,
      body: up.body ?? (streamed ? req : null),
      headersTimeout: timeouts.headersMs,
      bodyTimeout: timeouts.bodyIdleMs,
    }, relay);
  };
  const hook = ex.onUnauthorized === undefined ? undefined : { resendable: !streamed, hook: ex.onUnauthorized };
  const relay = new ResponseRelay(res, ex.what, ex.rewrite, ex.onEnd, hook, send, ex.rewriteBodies === true && up.method !== 'HEAD');
  send();
}

/** The values of header `name` (lower-case) in undici's raw list, joined as one field. */
function headerValue(raw: readonly Buffer[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length !== name.length || n.toString('latin1').toLowerCase() !== name) continue;
    const v = raw[i + 1]!.toString('latin1');
    value = value === undefined ? v : `${value}, ${v}`;
  }
  return value;
}

/**
 * An `Upgrade` exchange (WebSocket, SPDY): after the tool answers 101, the two sockets are
 * joined and bytes flow both ways untouched until either side closes.
 */
export function forwardUpgrade(dispatcher: Dispatcher, req: IncomingMessage, client: Duplex, head: Buffer, ex: Exchange): void {
  const { up, timeouts, what, rewrite, onEnd } = ex;
  let done = false;
  const finish = (end: ExchangeEnd): void => { if (!done) { done = true; onEnd(end); } };
  let abortUpstream: ((err?: Error) => void) | undefined;
  let upgraded = false;
  client.on('error', () => client.destroy());
  // Before the 101 a closed client aborts the exchange; after it, closing is how a session ends.
  client.once('close', () => {
    if (!done && !upgraded) { abortUpstream?.(new Error('client closed')); finish({ status: 499, clientAborted: true }); }
  });
  const handler: Dispatcher.DispatchHandler & { rewriteValue(v: string): string } = {
    rewriteValue: (v: string) => rewriteLocation(v, rewrite()),
    onConnect(abort) { abortUpstream = abort; },
    onHeaders(statusCode, rawHeaders) {
      // The tool refused the upgrade (401, 404, ...): relay its answer and close.
      client.write(responseHead(statusCode, clientResponseHeaders(rawHeaders as Buffer[], handler), 'connection: close\r\n'));
      finish({ status: statusCode });
      return true;
    },
    onData(chunk) { client.write(chunk); return true; },
    onComplete() { client.end(); },
    onUpgrade(statusCode, rawHeaders, upstream) {
      upgraded = true;
      // undici consumed Connection and Upgrade as hop-by-hop; a 101 must carry them.
      const upgrade = `connection: Upgrade\r\nupgrade: ${req.headers.upgrade ?? ''}\r\n`;
      client.write(responseHead(statusCode, clientResponseHeaders(rawHeaders as Buffer[], handler), upgrade));
      if (head.length > 0) upstream.write(head);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.once('close', () => { client.destroy(); finish({ status: statusCode }); });
      client.once('close', () => upstream.destroy());
      upstream.pipe(client);
      client.pipe(upstream);
    },
    onError(err) {
      const c = classifyUpstreamError(err as Error & { code?: string });
      if (done) { client.destroy(); return; }
      sendSocketError(client, c.status, `${what} ${c.text}`);
      finish({ status: c.status, upstreamError: { reason: c.reason, text: c.text } });
    },
  };
  dispatcher.dispatch({
    origin: up.origin,
    path: up.path,
    method: up.method as Dispatcher.HttpMethod,
    headers: up.headers,
    upgrade: req.headers.upgrade ?? 'websocket',
    headersTimeout: timeouts.headersMs,
    bodyTimeout: 0,
  }, handler);
}

/** A raw HTTP/1.1 response head for a socket that has no ServerResponse. */
function responseHead(status: number, headers: readonly string[], extra: string): string {
  let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${extra}`;
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return text + '\r\n';
}
