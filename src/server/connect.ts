// `CONNECT host:port` (https_proxy). The target is either the origin of a listed
// Connector's https address (or URL address extension): then the proxy answers 200,
// terminates the client's TLS with a leaf certificate of its own CA for that host, and
// serves the requests inside through the pipeline like forward-proxy requests (Connector
// credentials under the address prefix). Or it is anything else: then bytes are relayed
// untouched (no credentials), unless tunnels are turned off. Admission comes first either
// way: nothing is tunnelled or decrypted before the token is checked.
import { connect as netConnect, type Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { TLSSocket, type SecureContext } from 'node:tls';
import { settle, type MaybePromise } from '../util/maybe';
import type { Admissions, ConnectAdmission, Refusal, TunnelContext } from './admission';
import { classifyUpstreamError, sendSocketError } from './errors';
import { ProxyCaUnavailableError } from '../tls/leaf-certs';

/** Leaf certificates of the proxy CA (src/tls/leaf-certs.ts). */
export interface InterceptCertificates {
  /** The TLS context presenting a leaf for `host`: synchronous when cached, else minted once. */
  secureContextFor(host: string): MaybePromise<SecureContext>;
  /** An SNICallback that fails the handshake unless the client's SNI names `authorityHost`. */
  sniCallbackFor(authorityHost: string): (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
}

export interface ConnectOptions {
  readonly admissions: Admissions;
  readonly certificates: InterceptCertificates;
  /** Whether CONNECT to targets that are no Connector origin is relayed (read per request: a flag may flip). */
  readonly tunnels: () => boolean;
  /** The flag that turns tunnels off, named in the 403. */
  readonly tunnelsFlag: string;
  readonly connectTimeoutMs: number;
  /** Serves the decrypted requests of an intercepted tunnel (the proxy's internal HTTP server). */
  readonly serve: (tls: TLSSocket, tunnel: TunnelContext) => void;
  /** Records the CONNECT itself (access log, metrics): when refused or established, and a relay when it closes. */
  readonly record: (req: IncomingMessage, status: number, user: string | undefined, started: number, upstreamError?: { reason: string; text: string }) => void;
}

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';
const RETRY_SOON = Object.freeze({ 'retry-after': '1' });

export class ConnectHandler {
  /** Plain tunnels open now (drain, metrics). */
  private open = 0;

  constructor(private readonly o: ConnectOptions) {}

  get openTunnels(): number {
    return this.open;
  }

  /** The server's `connect` listener. */
  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const started = performance.now();
    socket.on('error', () => socket.destroy());
    settle(this.o.admissions.connect(req), (a) => {
      if (!a.admitted) return this.refuse(req, socket, a, started);
      if (a.intercept) this.intercept(req, socket, head, a, started);
      else this.relay(req, socket, head, a, started);
    }, () => this.refuse(req, socket, { admitted: false, status: 503, message: 'cannot check the token now; try again' }, started));
  };

  private refuse(req: IncomingMessage, socket: Duplex, r: Refusal, started: number): void {
    sendSocketError(socket, r.status, r.message, r.headers);
    this.o.record(req, r.status, r.user, started);
  }

  /** A Connector origin: answer 200, then speak TLS as that host with a leaf of the proxy CA. */
  private intercept(req: IncomingMessage, socket: Duplex, head: Buffer, a: ConnectAdmission, started: number): void {
    const { tunnel } = a;
    const host = unbracket(tunnel.host);
    settle(this.o.certificates.secureContextFor(host), (secureContext) => {
      if (socket.destroyed) return;
      socket.write(ESTABLISHED);
      if (head.length > 0) socket.unshift(head);
      const tls = new TLSSocket(socket as Socket, {
        isServer: true,
        secureContext,
        // A client that sends SNI must name the CONNECT host; one that sends none (an IP address) gets its leaf.
        SNICallback: this.o.certificates.sniCallbackFor(host),
        ALPNProtocols: ['http/1.1'],
      });
      tls.on('error', () => tls.destroy());
      this.o.record(req, 200, a.user, started);
      this.o.serve(tls, tunnel);
    }, (err) => {
      // No CA yet (Kubernetes mode, before the Secret is read or created): try again soon.
      const unavailable = err instanceof ProxyCaUnavailableError;
      this.refuse(req, socket, {
        admitted: false, status: unavailable ? 503 : 502, headers: unavailable ? RETRY_SOON : undefined,
        message: `cannot intercept TLS for ${tunnel.authority}: ${(err as Error).message}`,
      }, started);
    });
  }

  /** Anything else: bytes relayed untouched, for a token allowed on a listed Connector, unless turned off. */
  private relay(req: IncomingMessage, client: Duplex, head: Buffer, a: ConnectAdmission, started: number): void {
    const { tunnel } = a;
    if (!this.o.tunnels()) {
      return this.refuse(req, client, {
        admitted: false, status: 403, user: a.user,
        message: `CONNECT to ${tunnel.authority}, which is no listed Connector's https origin, is turned off (${this.o.tunnelsFlag}); only Connector origins are served`,
      }, started);
    }
    const upstream = netConnect({ host: unbracket(tunnel.host), port: tunnel.port });
    let connected = false;
    upstream.setTimeout(this.o.connectTimeoutMs, () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })));
    upstream.once('connect', () => {
      connected = true;
      this.open++;
      upstream.setTimeout(0);
      client.write(ESTABLISHED);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
      let closed = false;
      const close = (): void => {
        if (closed) return;
        closed = true;
        this.open--;
        upstream.destroy();
        client.destroy();
        this.o.record(req, 200, a.user, started);
      };
      upstream.once('close', close);
      client.once('close', close);
    });
    upstream.on('error', (err: Error & { code?: string }) => {
      if (connected) { client.destroy(); return; }
      const c = classifyUpstreamError(err);
      sendSocketError(client, c.status, `the CONNECT target ${tunnel.authority} ${c.text}`);
      this.o.record(req, c.status, a.user, started, { reason: c.reason, text: c.text });
    });
    client.once('close', () => { if (!connected) upstream.destroy(); });
  }
}

function unbracket(host: string): string {
  return host.startsWith('[') ? host.slice(1, -1) : host;
}
