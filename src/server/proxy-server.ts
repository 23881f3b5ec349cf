// The request path, start to end: resolve the Connector, check the client's token, build
// the upstream request with the Connector's credentials, and relay the exchange.
// Everything a request needs is prebuilt (routes, injectors, per-connector metric records);
// the only await is the authenticator's, and only when its answer is not cached.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { AuthDecision, ClientAuthenticator } from '../auth/authenticator';
import { WWW_AUTHENTICATE, tokenFromAuthorization } from '../auth/client-token';
import type { Extracted } from '../auth/extractor';
import type { ConnectorIndex, Route } from '../sources/connector-index';
import type { ProxyMetrics, RouteMetrics } from '../metrics/metrics';
import { InjectError } from '../inject';
import { REGISTRY_TOKEN_KIND } from '../inject/oci';
import { sendError, sendSocketError } from './errors';
import { forward, forwardUpgrade, type Exchange, type ExchangeEnd, type Timeouts, type UpstreamRequest } from './forward';
import { upstreamRequestHeaders, type LocationRewrite } from './headers';
import type { Resolved, Resolver } from './resolve';
import type { UpstreamPools } from './upstream-pools';
import { CONFIGURATIONS_PREFIX, serveConfigurations } from './configurations';
import type { ProxyAddressOptions } from '../status/proxy-address';
import { PROXY_AUTHENTICATE, parseProxyAuthorization, parseTarget, targetMatches, type ForwardTarget } from './forward-proxy';
import { hasDotSegment } from './resolve';
import { isRegistryBase, serveRegistryBase } from './registry-base';
import { overLimit, refusedUpgrade, type RequestLimits } from './limits';

export interface ProxyDeps {
  readonly index: ConnectorIndex;
  readonly resolver: Resolver;
  readonly auth: ClientAuthenticator;
  readonly pools: UpstreamPools;
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
  readonly timeouts: Timeouts;
  readonly proto: 'http' | 'https';
  /** Where this proxy is reached (rendered configurations). */
  readonly address: ProxyAddressOptions;
  readonly limits: RequestLimits;
}

type Refusal = { readonly status: number; readonly message: string; readonly headers?: Record<string, string> };
type Admitted = {
  /** Whose credentials go upstream; undefined for a forward-proxy target no listed Connector matches. */
  readonly route: Route | undefined;
  /** Where the request goes: the Connector address (reverse) or the client's target (forward). */
  readonly target: ForwardTarget;
  /** Reverse mode: the path prefix the client used, for Location rewriting. Forward mode: undefined. */
  readonly publicPrefix: string | undefined;
  readonly user: string;
  /** Headers that carried the client's token (found by the class's auth extractor). */
  readonly dropHeaders: ReadonlySet<string> | undefined;
};
/** Who asked for what, for the access log of a refused request. */
type Who = { readonly connector?: string; readonly user?: string };

const CHALLENGE = { 'www-authenticate': WWW_AUTHENTICATE };
const PROXY_CHALLENGE = { 'proxy-authenticate': PROXY_AUTHENTICATE };

/** Answers a request either with a response or by starting the upstream exchange. */
interface Responder {
  refuse(r: Refusal, metrics: RouteMetrics, who?: Who): void;
  proceed(a: Admitted, metrics: RouteMetrics): void;
}

export class ProxyServer {
  private inFlight = 0;

  constructor(private readonly deps: ProxyDeps) {}

  get activeRequests(): number {
    return this.inFlight;
  }

  /** The `request` and `checkContinue` listener. */
  readonly handleRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url;
    const over = overLimit(req, this.deps.limits);
    if (over !== undefined) {
      this.inFlight++;
      sendError(res, over.status, over.message, { connection: 'close' });
      this.finished(req, performance.now(), this.deps.metrics.unknownRoute, { status: over.status }, undefined, undefined);
      return;
    }
    if (url !== undefined && url.startsWith(CONFIGURATIONS_PREFIX) && (req.headers.host === undefined || this.deps.resolver.connectorHost(req.headers.host) === undefined)) {
      serveConfigurations(req, res, this.deps);
      return;
    }
    const started = performance.now();
    this.inFlight++;
    if (url !== undefined && isRegistryBase(url) && (req.headers.host === undefined || this.deps.resolver.connectorHost(req.headers.host) === undefined)) {
      serveRegistryBase(req, res, this.deps.auth, (status, user) => this.finished(req, started, this.deps.metrics.unknownRoute, { status }, undefined, user));
      return;
    }
    const self = this;
    const admit = url !== undefined && url.charCodeAt(0) !== 47 /* / */ && req.method !== 'CONNECT' ? this.admitForward : this.admit;
    admit.call(this, req, {
      refuse(r, metrics, who) {
        sendError(res, r.status, r.message, r.headers);
        self.finished(req, started, metrics, { status: r.status }, who?.connector, who?.user);
      },
      proceed(a, metrics) {
        // Only now may the client send its body: an unauthenticated upload never starts.
        if (req.headers.expect !== undefined && /100-continue/i.test(req.headers.expect)) res.writeContinue();
        self.exchange(req, res, a, metrics, started);
      },
    });
  };

  /** The `upgrade` listener (WebSocket, SPDY): same checks, then the sockets are joined. */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // The HTTP server stops watching a socket it hands over; an unhandled reset would end the process.
    socket.on('error', () => socket.destroy());
    const started = performance.now();
    this.inFlight++;
    const over = overLimit(req, this.deps.limits) ?? refusedUpgrade(req);
    if (over !== undefined) {
      sendSocketError(socket, over.status, over.message);
      this.finished(req, started, this.deps.metrics.unknownRoute, { status: over.status }, undefined, undefined);
      return;
    }
    const self = this;
    this.admit(req, {
      refuse(r, metrics, who) {
        sendSocketError(socket, r.status, r.message, r.headers);
        self.finished(req, started, metrics, { status: r.status }, who?.connector, who?.user);
      },
      proceed(a, metrics) {
        const end = (e: ExchangeEnd): void => self.finished(req, started, metrics, e, a.route?.key, a.user);
        self.withUpstreamRequest(req, a,
          (up) => forwardUpgrade(self.deps.pools.get(up.origin, a.route?.trust), req, socket, head, self.exchangeOf(req, a, up, end)),
          (status, message) => { sendSocketError(socket, status, message); end({ status }); }, true);
      },
    });
  };

  private admit(req: IncomingMessage, out: Responder): void {
    const { index, resolver, metrics } = this.deps;
    if (req.method === 'CONNECT') {
      out.refuse({ status: 405, message: 'CONNECT (TLS tunnelling) is not supported: send plain HTTP requests to the proxy', headers: { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' } }, metrics.unknownRoute);
      return;
    }
    const resolved = resolver.resolve(req.headers.host, req.url ?? '/');
    if ('error' in resolved) {
      out.refuse({ status: resolved.status, message: resolved.error }, metrics.unknownRoute);
      return;
    }
    const route = index.route(resolved.namespace, resolved.name);
    const extractor = route?.extractor;
    if (extractor === undefined) {
      this.authenticate(tokenFromAuthorization(req.headers.authorization), undefined, resolved, route, out);
      return;
    }
    const found = extractor.extract(req);
    const then = (e: Extracted): void => {
      if ('error' in e) {
        out.refuse({ status: 502, message: `connector ${route!.key} (class "${route!.className}"): ${e.error}` }, metrics.forRoute(route!.key, route!.className));
        return;
      }
      this.authenticate(e.token ?? tokenFromAuthorization(req.headers.authorization), e.dropHeaders, resolved, route, out);
    };
    if (found instanceof Promise) found.then(then, () => out.refuse({ status: 503, message: 'cannot read the token now; try again' }, metrics.unknownRoute));
    else then(found);
  }

  private authenticate(token: string | undefined, dropHeaders: ReadonlySet<string> | undefined, resolved: Resolved, route: Route | undefined, out: Responder): void {
    const metrics = this.deps.metrics;
    if (token === undefined) {
      out.refuse({ status: 401, message: 'authentication required: send your ServiceAccount token as the Basic password or a Bearer token', headers: CHALLENGE }, metrics.unknownRoute);
      return;
    }
    const decision = this.deps.auth.check(token, resolved);
    if (decision instanceof Promise) {
      decision.then(
        (d) => this.decide(d, resolved, route, dropHeaders, out),
        () => out.refuse({ status: 503, message: 'cannot check the token now; try again' }, metrics.unknownRoute),
      );
    } else {
      this.decide(decision, resolved, route, dropHeaders, out);
    }
  }

  private decide(d: AuthDecision, resolved: Resolved, route: Route | undefined, dropHeaders: ReadonlySet<string> | undefined, out: Responder): void {
    const unknown = this.deps.metrics.unknownRoute;
    const id = `${resolved.namespace}/${resolved.name}`;
    const who: Who = { connector: id, user: d.user };
    if (!d.allowed) {
      if (d.status === 401) out.refuse({ status: 401, message: `token rejected: ${d.reason}`, headers: CHALLENGE }, unknown, who);
      else if (d.status === 403) out.refuse({ status: 403, message: `forbidden: ${d.reason} (connector ${id})` }, unknown, who);
      else out.refuse({ status: 503, message: `cannot check the token now: ${d.reason}` }, unknown, who);
      return;
    }
    if (route === undefined) {
      // Before the first sync "not found" may be false: the client should retry, not give up.
      if (!this.deps.index.ready) out.refuse({ status: 503, message: 'connectors are not loaded yet; try again', headers: { 'retry-after': '1' } }, unknown, who);
      else out.refuse({ status: 404, message: `connector ${id} not found` }, unknown, who);
      return;
    }
    const metrics = this.deps.metrics.forRoute(route.key, route.className);
    if (route.resolver !== resolved.form) {
      const where = route.resolver === 'host' ? `http://${this.deps.resolver.hostFor(route.namespace, route.name)}/` : `/namespaces/${route.namespace}/connectors/${route.name}/`;
      out.refuse({ status: 404, message: `connector ${id} uses the ${route.resolver} resolver of its ConnectorClass: call it at ${where}` }, metrics, who);
      return;
    }
    if (route.broken !== undefined) {
      out.refuse({ status: 502, message: `${routeLabel(route)} cannot be used: ${route.broken}` }, metrics, who);
      return;
    }
    const u = route.upstream;
    out.proceed({
      route, user: d.user, dropHeaders,
      target: { origin: u.origin, host: u.host, path: u.basePath + resolved.rest },
      publicPrefix: resolved.publicPrefix,
    }, metrics);
  }

  /**
   * Forward proxy mode: an absolute-form request. The token comes from Proxy-Authorization
   * and must be allowed on the listed Connector whose address the target matches (then its
   * credentials are added), or, for a target none matches, on one of the listed Connectors
   * (then the request goes without credentials): never an open relay.
   */
  private admitForward(req: IncomingMessage, out: Responder): void {
    const unknown = this.deps.metrics.unknownRoute;
    const url = req.url!;
    const target = parseTarget(url);
    if ('error' in target) return out.refuse({ status: 400, message: target.error }, unknown);
    if (hasDotSegment(target.path)) return out.refuse({ status: 400, message: 'the request path contains "." or ".." segments; send a normalized path' }, unknown);
    const creds = parseProxyAuthorization(req.headers['proxy-authorization']);
    if ('error' in creds) return out.refuse({ status: 407, message: creds.error, headers: PROXY_CHALLENGE }, unknown);
    const { index, auth } = this.deps;
    let matched: Route | undefined;
    for (const ref of creds.connectors) {
      const r = index.route(ref.namespace, ref.name);
      if (r !== undefined && r.forwardTargets.some((p) => targetMatches(p, target))) { matched = r; break; }
    }
    const refs = matched === undefined ? creds.connectors : [matched];
    const admitted = (d: AuthDecision & { allowed: true }): void => {
      if (matched === undefined) {
        out.proceed({ route: undefined, target, publicPrefix: undefined, user: d.user, dropHeaders: undefined }, unknown);
        return;
      }
      const metrics = this.deps.metrics.forRoute(matched.key, matched.className);
      if (matched.broken !== undefined) {
        out.refuse({ status: 502, message: `${routeLabel(matched)} cannot be used: ${matched.broken}` }, metrics, { connector: matched.key, user: d.user });
        return;
      }
      out.proceed({ route: matched, target, publicPrefix: undefined, user: d.user, dropHeaders: undefined }, metrics);
    };
    // The first listed Connector that allows the token admits it; the last refusal is the answer.
    const tryRef = (i: number): void => {
      const ref = refs[i]!;
      const decided = (d: AuthDecision): void => {
        if (d.allowed) return admitted(d);
        if (i + 1 < refs.length && d.status !== 503) return tryRef(i + 1);
        const who: Who = { connector: `${ref.namespace}/${ref.name}`, user: d.user };
        if (d.status === 401) out.refuse({ status: 407, message: `token rejected: ${d.reason}`, headers: PROXY_CHALLENGE }, unknown, who);
        else if (d.status === 403) out.refuse({ status: 403, message: `forbidden: ${d.reason} (connector ${who.connector})` }, unknown, who);
        else out.refuse({ status: 503, message: `cannot check the token now: ${d.reason}` }, unknown, who);
      };
      const decision = auth.check(creds.token, ref);
      if (decision instanceof Promise) decision.then(decided, () => out.refuse({ status: 503, message: 'cannot check the token now; try again' }, unknown));
      else decided(decision);
    };
    tryRef(0);
  }

  /**
   * Builds the upstream request (path, headers, credentials) and hands it to `ready`; an
   * injector that fails gives `failed` its status (502 unless it said otherwise) and a
   * message, and nothing is sent.
   */
  private withUpstreamRequest(req: IncomingMessage, a: Admitted, ready: (up: UpstreamRequest) => void, failed: (status: number, message: string) => void, upgrade = false): void {
    const { target, route } = a;
    const injector = route?.injector;
    const up: UpstreamRequest = {
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
        keepAuthorization: route === undefined,
      }),
      // An Upgrade request has no body to rewrite: its stream is the session that follows.
      readBody: upgrade
        ? () => Promise.reject(new InjectError('credentials cannot go into the body of an Upgrade (WebSocket) request', 400))
        : (limit) => readBounded(req, limit),
    };
    if (injector === undefined) return ready(up);
    const fail = (err: Error): void => {
      const status = err instanceof InjectError ? err.status : 502;
      const prefix = routeLabel(route!);
      failed(status, status === 502 ? `${prefix}: credentials could not be built: ${err.message}` : `${prefix}: ${err.message}`);
    };
    let r: void | Promise<void>;
    try {
      r = injector.inject(up);
    } catch (err) {
      return fail(err as Error);
    }
    if (r instanceof Promise) r.then(() => ready(up), fail);
    else ready(up);
  }

  private exchange(req: IncomingMessage, res: ServerResponse, a: Admitted, metrics: RouteMetrics, started: number): void {
    const end = (e: ExchangeEnd): void => this.finished(req, started, metrics, e, a.route?.key, a.user);
    this.withUpstreamRequest(req, a,
      (up) => forward(this.deps.pools.get(up.origin, a.route?.trust), req, res, this.exchangeOf(req, a, up, end)),
      (status, message) => { sendError(res, status, message); end({ status }); });
  }

  private exchangeOf(req: IncomingMessage, a: Admitted, up: UpstreamRequest, onEnd: (e: ExchangeEnd) => void): Exchange {
    const injector = a.route?.injector;
    const onUnauthorized = injector?.onUnauthorized;
    return {
      up, onEnd,
      timeouts: this.deps.timeouts,
      what: a.route === undefined ? `the forward-proxy target ${up.origin}` : `the tool of connector ${a.route.key} (${up.origin})`,
      rewrite: this.rewriteFor(req, a),
      // Not the OCI API: manifests are content-addressed and registries put no URLs in bodies.
      rewriteBodies: a.publicPrefix !== undefined && !up.path.startsWith('/v2/'),
      onUnauthorized: onUnauthorized === undefined ? undefined : (challenge, resendable) => onUnauthorized.call(injector, up, challenge, resendable),
    };
  }

  private rewriteFor(req: IncomingMessage, a: Admitted): () => LocationRewrite {
    const publicPath = a.publicPrefix;
    // Forward mode: the client used the tool's own URLs; a Location stays as the tool wrote it.
    if (publicPath === undefined || a.route === undefined) return () => IDENTITY_REWRITE;
    const u = a.route.upstream;
    // A registry's Bearer challenge is for the proxy's token flow; the client meets the proxy's Basic one.
    const challenge = a.route.injector?.kind === REGISTRY_TOKEN_KIND ? WWW_AUTHENTICATE : undefined;
    // Read now: once a streamed request body is consumed, `req.socket` may already be gone.
    const proto = protoOf(req, this.deps.proto);
    return () => {
      return {
        upstreamBase: u.origin + u.basePath,
        upstreamPath: u.basePath,
        publicBase: `${proto}://${req.headers.host ?? ''}${publicPath}`,
        publicPath,
        challenge,
      };
    };
  }

  private finished(req: IncomingMessage, started: number, metrics: RouteMetrics, end: ExchangeEnd, connector: string | undefined, user: string | undefined): void {
    this.inFlight--;
    const seconds = (performance.now() - started) / 1000;
    metrics.done(end.status, seconds);
    if (end.upstreamError) metrics.upstreamError(end.upstreamError.reason);
    const log = this.deps.log;
    if (!log.isLevelEnabled('info')) return;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    // The query is left out: tools put tokens there (private_token=, X-Amz-Signature=).
    log.info({
      connector, user, method: req.method, path: q < 0 ? url : url.slice(0, q), status: end.status,
      ms: Math.round(seconds * 1e4) / 10,
      ...(end.upstreamError ? { upstreamError: end.upstreamError.text } : {}),
      ...(end.clientAborted ? { clientAborted: true } : {}),
    }, 'request');
  }
}

const IDENTITY_REWRITE: LocationRewrite = Object.freeze({ upstreamBase: '', upstreamPath: '', publicBase: '', publicPath: '' });

/** `connector ns/name (class "c", auth type "t")`: how error bodies name a Connector. */
function routeLabel(route: Route): string {
  return `connector ${route.key} (class "${route.className}"${route.authType ? `, auth type "${route.authType}"` : ''})`;
}

/** Reads a request body into memory, refusing (413) more than `limit` bytes. */
function readBounded(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(new InjectError(`the request body (${declared} bytes) is larger than the ${limit} bytes the proxy may rewrite`, 413));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        reject(new InjectError(`the request body is larger than the ${limit} bytes the proxy may rewrite`, 413));
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
