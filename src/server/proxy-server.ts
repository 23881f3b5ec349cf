// The proxy listener's handlers: limits first, then the router's way, then that way's
// handler. The proxying ways (reverse host and path form, forward) are pipeline hooks; the
// others answer on the proxy's own behalf (configurations, the registry's `/v2/`, CONNECT).
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ClientAuthenticator } from '../auth/authenticator';
import { ClassApis } from '../gateway/class-apis';
import type { GatewayFlags } from '../gateway/flags';
import { gatewayWay } from '../gateway/way';
import { tokenFromAuthorization, WWW_AUTHENTICATE } from '../auth/client-token';
import type { AccessLog } from '../log';
import type { ProxyMetrics } from '../metrics/metrics';
import { registryAnswer } from '../oci/registry-base';
import type { RouteTable } from '../routes/route-table';
import type { ObjectStore } from '../sources/store';
import type { ProxyAddressOptions } from '../status/proxy-address';
import { settle } from '../util/maybe';
import { Admissions, type TunnelContext } from './admission';
import { ConnectHandler, type InterceptCertificates } from './connect';
import { serveConfigurations } from './configurations';
import { sendError } from './errors';
import type { Timeouts } from './exchange';
import { overLimit, refusedUpgrade, type RequestLimits } from './limits';
import { LoadShedder, type Capacity, type ShedReason } from './load-shedding';
import { Pipeline, type Way } from './pipeline';
import type { Resolver } from './resolve';
import { Router } from './router';
import type { UpstreamPools } from './upstream-pools';

export interface ProxyDeps {
  readonly store: ObjectStore;
  readonly routes: RouteTable;
  readonly resolver: Resolver;
  readonly auth: ClientAuthenticator;
  readonly pools: UpstreamPools;
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
  readonly accessLog: AccessLog;
  readonly timeouts: Timeouts;
  readonly proto: 'http' | 'https';
  /** Where this proxy is reached (rendered configurations). */
  readonly address: ProxyAddressOptions;
  readonly limits: RequestLimits;
  /** Admission control: exchanges in flight and client connections (0: no cap). */
  readonly capacity?: Capacity;
  /** Called for every request shed by the caps (metrics). */
  readonly onShed?: (reason: ShedReason) => void;
  /** Feature flags (the Connectors API gateway's), read on every request. */
  readonly flags: GatewayFlags;
  /** The proxy CA's certificate (PEM, public), for `GET /ca.crt` and the configuration files. */
  readonly caCertPem?: () => string | undefined;
  /** HTTPS forward proxy: the proxy CA's leaf certificates; without them CONNECT gets 405. */
  readonly connect?: {
    readonly certificates: InterceptCertificates;
    /** CONNECT to targets that are no Connector origin: relayed (true) or refused (false). */
    readonly tunnels: () => boolean;
    readonly tunnelsFlag: string;
    readonly connectTimeoutMs: number;
    /** Options of the internal server that parses the requests inside intercepted tunnels. */
    readonly serverOptions: ServerOptions;
  };
}

const CLOSE = Object.freeze({ connection: 'close' });

/** A request refused before any way (limits, admission control). */
interface Gated {
  readonly status: number;
  readonly message: string;
  readonly headers: Readonly<Record<string, string>> | undefined;
}
const EMPTY = Buffer.alloc(0);
const CONNECT_REFUSED = 'CONNECT (TLS tunnelling) is not supported: send plain HTTP requests to the proxy';
const CONNECT_ALLOW = Object.freeze({ allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' });

export class ProxyServer {
  private readonly pipeline: Pipeline;
  private readonly router: Router;
  private readonly admissions: Admissions;
  /** Reverse proxy, host and path form. */
  private readonly reverse: Way;
  /** Forward proxy: absolute-form requests with Proxy-Authorization. */
  private readonly forward: Way;
  /** The Connectors API gateway: Bearer tokens, OpenAPI routing, Status errors. */
  private readonly gateway: Way;
  /** Requests inside an intercepted CONNECT tunnel. */
  private readonly intercepted: Way;
  private readonly connectHandler: ConnectHandler | undefined;
  /** Parses the decrypted requests of intercepted tunnels (never listens itself). */
  readonly interceptServer: Server | undefined;
  /** The tunnel each decrypted connection belongs to. */
  private readonly tunnels = new WeakMap<object, TunnelContext>();
  /** The caps of admission control; its `onConnection` goes on every client-facing server. */
  readonly shedder: LoadShedder;
  /**
   * Sockets the listeners handed over (Upgrade sessions, CONNECT tunnels): the HTTP server no
   * longer closes them, yet still waits for them in close(), so shutdown must cut them.
   */
  private readonly detached = new Set<Duplex>();

  constructor(private readonly deps: ProxyDeps) {
    this.pipeline = new Pipeline(deps);
    this.shedder = new LoadShedder(deps.capacity ?? { maxExchanges: 0, maxConnections: 0 }, () => this.pipeline.active + this.openTunnels, deps.onShed);
    this.router = new Router(deps.resolver);
    const admissions = this.admissions = new Admissions(deps.resolver, deps.routes, deps.auth);
    this.reverse = { name: 'reverse', admit: (req) => admissions.reverse(req), errorHandler: sendError };
    this.forward = { name: 'forward', admit: (req) => admissions.forward(req), errorHandler: sendError };
    this.gateway = gatewayWay({ store: deps.store, routes: deps.routes, auth: deps.auth, flags: deps.flags, classApis: new ClassApis(deps.store) });
    const tunnels = this.tunnels;
    this.intercepted = { name: 'connect', admit: (req) => admissions.intercepted(req, tunnels.get(req.socket)!), errorHandler: sendError };
    const c = deps.connect;
    if (c !== undefined) {
      const server = this.interceptServer = createServer(c.serverOptions);
      server.on('request', this.handleIntercepted);
      server.on('checkContinue', this.handleIntercepted);
      server.on('upgrade', this.handleInterceptedUpgrade);
      // A CONNECT inside a tunnel would be a tunnel in a tunnel: refused.
      server.on('connect', (req: IncomingMessage, socket: Duplex) => this.pipeline.refuse(this.intercepted, req, { socket, head: EMPTY }, 405, 'CONNECT inside a CONNECT tunnel is not supported'));
      this.connectHandler = new ConnectHandler({
        admissions, certificates: c.certificates, tunnels: c.tunnels, tunnelsFlag: c.tunnelsFlag, connectTimeoutMs: c.connectTimeoutMs,
        serve: (tls: TLSSocket, tunnel: TunnelContext) => {
          tunnels.set(tls, tunnel);
          server.emit('connection', tls);
        },
        record: (req, status, user, started, upstreamError) => this.pipeline.note(this.intercepted, req, started, { status, upstreamError }, user),
      });
    }
  }

  /** Plain CONNECT tunnels open now. */
  get openTunnels(): number {
    return this.connectHandler?.openTunnels ?? 0;
  }

  get activeRequests(): number {
    return this.pipeline.active;
  }

  /** Shutdown, once the grace period is over: cuts the Upgrade sessions and CONNECT tunnels still open. */
  closeDetached(): void {
    for (const s of this.detached) s.destroy();
  }

  private detach(socket: Duplex): void {
    this.detached.add(socket);
    socket.once('close', () => this.detached.delete(socket));
  }

  /** The `request` and `checkContinue` listener. */
  readonly handleRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const over = this.gate(req, false);
    if (over !== undefined) return this.pipeline.refuse(this.reverse, req, { res }, over.status, over.message, over.headers);
    switch (this.router.wayOf(req)) {
      case 'forward': return this.pipeline.serve(this.forward, req, { res });
      case 'host-form':
      case 'path-form': return this.pipeline.serve(this.reverse, req, { res });
      case 'gateway': return this.pipeline.serve(this.gateway, req, { res });
      case 'configurations': return serveConfigurations(req, res, { store: this.deps.store, admissions: this.admissions, address: this.deps.address, log: this.deps.log, proxyCaPem: this.deps.caCertPem });
      case 'ca-certificate': return this.caCertificate(req, res);
      case 'registry-base': return this.registryBase(req, res);
      case 'connect': return this.pipeline.refuse(this.reverse, req, { res }, 405, CONNECT_REFUSED, CONNECT_ALLOW);
    }
  };

  /** The `upgrade` listener (WebSocket, SPDY): same ways and checks, then the sockets are joined. */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // The HTTP server stops watching a socket it hands over; an unhandled reset would end the process.
    socket.on('error', () => socket.destroy());
    this.detach(socket);
    const over = this.gate(req, true);
    if (over !== undefined) return this.pipeline.refuse(this.reverse, req, { socket, head }, over.status, over.message, over.headers);
    const way = this.router.wayOf(req);
    if (way === 'connect') return this.pipeline.refuse(this.reverse, req, { socket, head }, 405, CONNECT_REFUSED, CONNECT_ALLOW);
    this.pipeline.serve(way === 'forward' ? this.forward : way === 'gateway' ? this.gateway : this.reverse, req, { socket, head });
  };

  /** The `connect` listener: the HTTPS forward proxy (src/server/connect.ts), or 405 without a proxy CA. */
  readonly handleConnect = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    this.detach(socket);
    const shed = this.shedder.check(req);
    if (shed === undefined && this.connectHandler !== undefined) return this.connectHandler.handle(req, socket, head);
    socket.on('error', () => socket.destroy());
    if (shed !== undefined) return this.pipeline.refuse(this.intercepted, req, { socket, head }, shed.status, shed.message, shed.headers);
    this.pipeline.refuse(this.reverse, req, { socket, head }, 405, CONNECT_REFUSED, CONNECT_ALLOW);
  };

  /** Requests inside an intercepted tunnel: the limits, then the pipeline as forward-proxy requests of the tunnel's origin. */
  private readonly handleIntercepted = (req: IncomingMessage, res: ServerResponse): void => {
    const over = this.gate(req, false);
    if (over !== undefined) return this.pipeline.refuse(this.intercepted, req, { res }, over.status, over.message, over.headers);
    this.pipeline.serve(this.intercepted, req, { res });
  };

  private readonly handleInterceptedUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    const over = this.gate(req, true);
    if (over !== undefined) return this.pipeline.refuse(this.intercepted, req, { socket, head }, over.status, over.message, over.headers);
    this.pipeline.serve(this.intercepted, req, { socket, head });
  };

  /**
   * What every way in checks first: the request limits (an Upgrade also its protocol), then
   * admission control. A refused request's connection is closed, except an Upgrade's (its
   * socket is ended by the refusal) and a shed one (its 503 carries Retry-After and close).
   */
  private gate(req: IncomingMessage, upgrade: boolean): Gated | undefined {
    const over = overLimit(req, this.deps.limits) ?? (upgrade ? refusedUpgrade(req) : undefined);
    if (over !== undefined) return { status: over.status, message: over.message, headers: upgrade ? undefined : CLOSE };
    return this.shedder.check(req);
  }

  /** `GET /ca.crt`: the proxy CA's certificate, which clients trust for https_proxy (public, no token). */
  private caCertificate(req: IncomingMessage, res: ServerResponse): void {
    this.pipeline.local(this.reverse, req, (done) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendError(res, 405, 'the proxy CA certificate is read with GET', { allow: 'GET, HEAD' });
        return done(405);
      }
      const pem = this.deps.caCertPem?.();
      if (pem === undefined) {
        sendError(res, 503, 'the proxy CA is not loaded yet; try again', { 'retry-after': '1' });
        return done(503);
      }
      res.writeHead(200, { 'content-type': 'application/x-pem-file', 'content-length': Buffer.byteLength(pem), 'cache-control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : pem);
      done(200);
    });
  }

  /** `GET|HEAD /v2/`: 401 with a Basic challenge until the token is valid, then 200. */
  private registryBase(req: IncomingMessage, res: ServerResponse): void {
    this.pipeline.local(this.reverse, req, (done) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        registryAnswer(res, req.method, 405, 'the registry version check is read with GET', { allow: 'GET, HEAD' });
        return done(405);
      }
      const token = tokenFromAuthorization(req.headers.authorization);
      if (token === undefined) {
        registryAnswer(res, req.method, 401, 'authentication required: log in with any user name and your ServiceAccount token as the password', { 'www-authenticate': WWW_AUTHENTICATE });
        return done(401);
      }
      settle(this.admissions.token(token), (a) => {
        if (a.admitted) {
          registryAnswer(res, req.method, 200, undefined, undefined);
          return done(200, a.user);
        }
        registryAnswer(res, req.method, a.status, a.message, a.headers);
        done(a.status, a.user);
      }, () => undefined);
    });
  }
}
