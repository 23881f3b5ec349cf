// The request path, the same for every way in that proxies (reverse host and path form,
// forward proxy, and the ways to come: requests inside an intercepted CONNECT tunnel, the
// Connectors API gateway). Modeled on Go's httputil.ReverseProxy: the steps read top to
// bottom in `serve`, and a way in differs only in its hooks: how it admits (Admission),
// what it adds to the upstream request (Rewrite), how responses come back (the profile its
// admission chose: ModifyResponse), and how errors are written (ErrorHandler).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { AccessLog } from '../log';
import type { ProxyMetrics, RouteMetrics } from '../metrics/metrics';
import { CredentialError, type Injector } from '../inject';
import { upstreamRequestHeaders, type LocationRewrite } from '../http/headers';
import type { Route } from '../routes/route';
import { mapMaybe, settle, type MaybePromise } from '../util/maybe';
import type { Admission, Admitted } from './admission';
import { sendSocketError } from './errors';
import { hasRequestBody, type ExchangeEnd, type Timeouts, type UpstreamRequest } from './exchange';
import type { UpstreamPools } from './upstream-pools';
import { UpstreamHandler, type ResponseHandler } from './relay/handler';
import { CredentialRetry } from './relay/credential-retry';
import { ResponseRewrite, rewriteResponseHeaders } from './relay/response-rewrite';
import { ResponseWriter, type ErrorWriter } from './relay/response-writer';
import { relayUpgrade } from './relay/upgrade';

/** One way into the proxy that relays to a tool: its hooks. */
export interface Way {
  /** The way's name (logs, tests). */
  readonly name: string;
  /** Admission: which Connector, whose token, whether it may. */
  admit(req: IncomingMessage): MaybePromise<Admission>;
  /** Rewrite: what this way adds to the upstream request after the common rewrite. */
  readonly rewrite?: (out: UpstreamRequest, a: Admitted) => void;
  /** ErrorHandler: how a refusal, or a failure before the response started, is written. */
  readonly errorHandler: ErrorWriter;
}

/** Who the answer goes to: an HTTP response, or the raw socket of an Upgrade request. */
export type Client =
  | { readonly res: ServerResponse; readonly socket?: undefined }
  | { readonly socket: Duplex; readonly head: Buffer; readonly res?: undefined };

export interface PipelineDeps {
  readonly pools: UpstreamPools;
  readonly metrics: ProxyMetrics;
  readonly accessLog: AccessLog;
  readonly timeouts: Timeouts;
  /** The scheme clients use to reach the proxy (X-Forwarded-Proto, rewritten URLs). */
  readonly proto: 'http' | 'https';
}

/** Why credentials could not be placed: the client's status and message. */
interface PlacementFailure {
  readonly status: number;
  readonly message: string;
}

export class Pipeline {
  private inFlight = 0;

  constructor(private readonly deps: PipelineDeps) {}

  /** Exchanges in progress (graceful drain, the in-flight gauge). */
  get active(): number {
    return this.inFlight;
  }

  serve(way: Way, req: IncomingMessage, client: Client): void {
    const started = performance.now();
    this.inFlight++;
    // 1. Admission: which Connector, whose token, whether it may.
    settle(way.admit(req), (a) => {
      // 2. A refusal is answered in the way's format; nothing reaches the tool.
      if (!a.admitted) {
        this.answer(way, client, a.status, a.message, a.headers);
        return this.record(way, req, started, a.route, { status: a.status }, a.connector, a.user);
      }
      const end = (e: ExchangeEnd): void => this.record(way, req, started, a.route, e, a.route?.key, a.user);
      // 3. Only now may the client send its body: an unauthenticated upload never starts.
      if (client.res !== undefined && expectsContinue(req)) client.res.writeContinue();
      // 4. Rewrite: the upstream request, without hop-by-hop headers or the client's credentials.
      const out = this.rewrite(req, a, client.socket !== undefined);
      way.rewrite?.(out, a);
      // 5. Credentials: the Connector's injector places them (a token may be fetched first).
      settle(placeCredentials(a.route, out), (failure) => {
        if (failure !== undefined) {
          this.answer(way, client, failure.status, failure.message);
          return end({ status: failure.status });
        }
        // 6. Dispatch; the response comes back through the ModifyResponse stages.
        const dispatcher = this.deps.pools.get(out.origin, a.route?.trust ?? a.trust);
        if (client.res !== undefined) this.relay(dispatcher, way, req, client.res, a, out, end);
        else this.relayUpgrade(dispatcher, req, client.socket, client.head, a, out, end);
      }, () => undefined);
    }, () => {
      this.answer(way, client, 503, 'cannot check the token now; try again');
      this.record(way, req, started, undefined, { status: 503 }, undefined, undefined);
    });
  }

  /** Answers without an exchange (a check before admission: limits, a refused Upgrade), recorded like one. */
  refuse(way: Way, req: IncomingMessage, client: Client, status: number, message: string, headers?: Readonly<Record<string, string>>): void {
    this.inFlight++;
    this.answer(way, client, status, message, headers);
    this.record(way, req, performance.now(), undefined, { status }, undefined, undefined);
  }

  /** A request the proxy answers itself (the registry's `/v2/`): counted and recorded like an exchange. */
  local(way: Way, req: IncomingMessage, handle: (done: (status: number, user?: string) => void) => void): void {
    const started = performance.now();
    this.inFlight++;
    handle((status, user) => this.record(way, req, started, undefined, { status }, undefined, user));
  }

  /** The common Rewrite: target path, the Host the tool expects, forwarding headers, no client credentials. */
  private rewrite(req: IncomingMessage, a: Admitted, upgrade: boolean): UpstreamRequest {
    const { target } = a;
    return {
      origin: target.origin,
      host: target.host,
      method: req.method ?? 'GET',
      path: target.path,
      headers: upstreamRequestHeaders(req.rawHeaders, req.headers.connection, {
        upstreamHost: target.host,
        clientAddress: req.socket.remoteAddress,
        proto: protoOf(req, this.deps.proto),
        dropHeaders: a.dropHeaders,
        // A forward-proxy target no Connector matches is the client's business, its own
        // Authorization included (its token travelled in Proxy-Authorization).
        keepAuthorization: a.route === undefined,
      }),
      // An Upgrade request has no body to rewrite: its stream is the session that follows.
      readBody: upgrade
        ? () => Promise.reject(new CredentialError('credentials cannot go into the body of an Upgrade (WebSocket) request', 400))
        : (limit) => readBounded(req, limit),
    };
  }

  /** The response stages: [credential retry →] [rewrite →] writer. */
  private relay(dispatcher: Dispatcher, way: Way, req: IncomingMessage, res: ServerResponse, a: Admitted, out: UpstreamRequest, end: (e: ExchangeEnd) => void): void {
    let stage: ResponseHandler = new ResponseWriter(res, way.errorHandler, () => whatOf(a.route, out.origin), end);
    if (a.publicPrefix !== undefined) {
      stage = new ResponseRewrite(stage, a.profile, this.locationRewrite(req, a), a.profile.rewritesBodies && out.method !== 'HEAD');
    }
    // A request can be sent twice only when no client stream was consumed: no body, or a
    // body the injector rewrote into a buffer.
    const streamed = out.body === undefined && hasRequestBody(req);
    const { timeouts } = this.deps;
    const send = (): void => {
      dispatcher.dispatch({
        origin: out.origin,
        path: out.path,
        method: out.method as Dispatcher.HttpMethod,
        headers: out.headers,
        body: out.body ?? (streamed ? req : null),
        headersTimeout: timeouts.headersMs,
        bodyTimeout: timeouts.bodyIdleMs,
      }, new UpstreamHandler(first));
    };
    const renew = a.route?.injector?.onUnauthorized;
    const first: ResponseHandler = renew === undefined ? stage : new CredentialRetry(stage, !streamed, (challenge, resendable) => renew(out, challenge, resendable), send);
    send();
  }

  private relayUpgrade(dispatcher: Dispatcher, req: IncomingMessage, socket: Duplex, head: Buffer, a: Admitted, out: UpstreamRequest, end: (e: ExchangeEnd) => void): void {
    const rw = a.publicPrefix === undefined ? undefined : this.locationRewrite(req, a);
    dispatcher.dispatch({
      origin: out.origin,
      path: out.path,
      method: out.method as Dispatcher.HttpMethod,
      headers: out.headers,
      upgrade: req.headers.upgrade ?? 'websocket',
      headersTimeout: this.deps.timeouts.headersMs,
      bodyTimeout: 0,
    }, relayUpgrade(req, socket, head, {
      modifyHeaders: rw === undefined ? () => undefined : (h) => rewriteResponseHeaders(h, a.profile, rw),
      what: () => whatOf(a.route, out.origin),
      onEnd: end,
    }));
  }

  /** Where the client called the proxy and where the Connector points, built on first need. */
  private locationRewrite(req: IncomingMessage, a: Admitted): () => LocationRewrite {
    const publicPath = a.publicPrefix ?? '';
    const u = a.route!.upstream;
    // Read now: once a streamed request body is consumed, `req.socket` may already be gone.
    const publicBase = `${protoOf(req, this.deps.proto)}://${req.headers.host ?? ''}${publicPath}`;
    return () => ({ upstreamBase: u.origin + u.basePath, upstreamPath: u.basePath, publicBase, publicPath });
  }

  private answer(way: Way, client: Client, status: number, message: string, headers?: Readonly<Record<string, string>>): void {
    if (client.res !== undefined) way.errorHandler(client.res, status, message, headers);
    else sendSocketError(client.socket, status, message, headers);
  }

  /** Records a request answered outside an exchange (a CONNECT): metrics and the access line. */
  note(way: Way, req: IncomingMessage, started: number, end: ExchangeEnd, user: string | undefined): void {
    this.account(way, req, started, undefined, end, undefined, user);
  }

  /** The end of every exchange: in-flight count, metrics and the access line, by way in. */
  private record(way: Way, req: IncomingMessage, started: number, route: Route | undefined, end: ExchangeEnd, connector: string | undefined, user: string | undefined): void {
    this.inFlight--;
    this.account(way, req, started, route, end, connector, user);
  }

  private account(way: Way, req: IncomingMessage, started: number, route: Route | undefined, end: ExchangeEnd, connector: string | undefined, user: string | undefined): void {
    const ms = performance.now() - started;
    const m: RouteMetrics = route === undefined ? this.deps.metrics.unknownRoute(way.name) : this.deps.metrics.forRoute(route.key, route.className, way.name);
    m.done(end.status, ms / 1000);
    if (end.upstreamError !== undefined) m.upstreamError(end.upstreamError.reason);
    const url = req.url ?? '';
    const q = url.indexOf('?');
    this.deps.accessLog.write({
      way: way.name, connector, user, method: req.method, path: q < 0 ? url : url.slice(0, q), status: end.status,
      ms: Math.round(ms * 10) / 10, upstreamError: end.upstreamError?.text, clientAborted: end.clientAborted,
    });
  }
}

/**
 * Places the route's credentials on `out`; undefined when done (or none are needed), else
 * the failure to answer with (502 unless the injector said otherwise). Never rejects.
 */
function placeCredentials(route: Route | undefined, out: UpstreamRequest): MaybePromise<PlacementFailure | undefined> {
  const injector: Injector | undefined = route?.injector;
  if (injector === undefined) return undefined;
  const fail = (err: unknown): PlacementFailure => {
    const status = err instanceof CredentialError ? err.status : 502;
    const message = (err as Error).message;
    return { status, message: status === 502 ? `${route!.label}: credentials could not be built: ${message}` : `${route!.label}: ${message}` };
  };
  let r: MaybePromise<void>;
  try {
    r = injector.inject(out);
  } catch (err) {
    return fail(err);
  }
  return mapMaybe(r, () => undefined, fail);
}

/** The subject of upstream error messages. */
function whatOf(route: Route | undefined, origin: string): string {
  return route === undefined ? `the forward-proxy target ${origin}` : `the tool of connector ${route.key} (${origin})`;
}

const CONTINUE = /100-continue/i;

function expectsContinue(req: IncomingMessage): boolean {
  const e = req.headers.expect;
  return e !== undefined && CONTINUE.test(e);
}

/** Reads a request body into memory, refusing (413) more than `limit` bytes. */
function readBounded(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(new CredentialError(`the request body (${declared} bytes) is larger than the ${limit} bytes the proxy may rewrite`, 413));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        reject(new CredentialError(`the request body is larger than the ${limit} bytes the proxy may rewrite`, 413));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}

/** A request that came in on the HTTPS listener was made with https, whatever --proto says. */
function protoOf(req: IncomingMessage, configured: 'http' | 'https'): 'http' | 'https' {
  return (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : configured;
}
