// The load client of the bench's https_proxy phase (bench/run.ts): wrk speaks no CONNECT, so
// this drives both sides of the comparison the same way. `reverse`: kept-alive plain HTTP
// connections to the proxy's reverse address. `connect`: each connection opens a CONNECT
// tunnel (Proxy-Authorization), a TLS session trusting only the proxy CA, then sends its
// requests inside, kept alive. `handshake`: new connection, CONNECT and full TLS handshake
// (no session resumption), closed, again. One request in flight per connection, as wrk does;
// a response is read by its Content-Length. Prints one line `CONNECT_LOAD_JSON {...}`.
// Usage: node dist/bench/connect-load.js '<options as JSON>'
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';

export interface LoadOptions {
  readonly mode: 'reverse' | 'connect' | 'handshake';
  readonly proxyPort: number;
  /** Request target: origin-form path (reverse: with the Connector prefix). */
  readonly path: string;
  /** `Host` of the requests (reverse: the proxy; connect: the tool's authority). */
  readonly host: string;
  /** Sent with every request (reverse: the client token). */
  readonly authorization?: string;
  /** connect/handshake: the CONNECT target and its Proxy-Authorization. */
  readonly authority?: string;
  readonly proxyAuthorization?: string;
  /** connect/handshake: PEM of the proxy CA. */
  readonly ca?: string;
  readonly connections: number;
  readonly seconds: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly durationUs: number;
  readonly p50us: number;
  readonly p99us: number;
  readonly non2xx: number;
  readonly errors: number;
}

/** CONNECT on a fresh socket; resolves with the socket once the proxy answered 200. */
function tunnel(o: LoadOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(o.proxyPort, '127.0.0.1');
    s.setNoDelay(true);
    s.write(`CONNECT ${o.authority} HTTP/1.1\r\nHost: ${o.authority}\r\nProxy-Authorization: ${o.proxyAuthorization}\r\n\r\n`);
    let head = '';
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      if (!head.startsWith('HTTP/1.1 200')) { s.destroy(); reject(new Error(`CONNECT answered ${head.split('\r\n')[0]}`)); return; }
      resolve(s);
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

function secure(s: Socket, context: SecureContext, host: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    // The certificate is checked against `host`; an IP address sends no SNI, a name does.
    const t = tlsConnect({ socket: s, host, secureContext: context, ALPNProtocols: ['http/1.1'] });
    t.once('secureConnect', () => resolve(t));
    t.once('error', reject);
  });
}

async function run(o: LoadOptions): Promise<LoadResult> {
  const context = o.ca === undefined ? undefined : createSecureContext({ ca: o.ca });
  const request = Buffer.from(`GET ${o.path} HTTP/1.1\r\nHost: ${o.host}\r\n${o.authorization ? `Authorization: ${o.authorization}\r\n` : ''}\r\n`);
  const tunnelHost = (o.authority ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  const began = process.hrtime.bigint();
  const until = Date.now() + o.seconds * 1000;

  const handshakes = async (): Promise<void> => {
    while (Date.now() < until) {
      const t0 = process.hrtime.bigint();
      try {
        const t = await secure(await tunnel(o), context!, tunnelHost);
        t.destroy();
        latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
      } catch {
        errors++;
      }
    }
  };

  const requests = async (): Promise<void> => {
    let sock: Socket | TLSSocket;
    try {
      sock = o.mode === 'connect' ? await secure(await tunnel(o), context!, tunnelHost) : netConnect(o.proxyPort, '127.0.0.1');
    } catch {
      errors++;
      return;
    }
    sock.setNoDelay(true);
    await new Promise<void>((done) => {
      let buf: Buffer = Buffer.alloc(0);
      let sentAt = 0n;
      const send = (): void => {
        if (Date.now() >= until) { sock.destroy(); done(); return; }
        sentAt = process.hrtime.bigint();
        sock.write(request);
      };
      sock.on('data', (c: Buffer) => {
        buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          if (buf.length < end + 4 + length) return;
          buf = buf.subarray(end + 4 + length);
          if (head.charCodeAt(9) !== 50 /* 2xx */) non2xx++;
          latencies.push(Number(process.hrtime.bigint() - sentAt) / 1000);
          send();
        }
      });
      sock.once('error', () => { errors++; done(); });
      sock.once('close', () => done());
      if (o.mode === 'reverse') sock.once('connect', send);
      else send();
    });
  };

  await Promise.all(Array.from({ length: o.connections }, () => (o.mode === 'handshake' ? handshakes() : requests())));
  const durationUs = Number(process.hrtime.bigint() - began) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  return { requests: latencies.length, durationUs, p50us: pct(0.5), p99us: pct(0.99), non2xx, errors };
}

if (require.main === module) {
  const o = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
  run(o).then((r) => {
    process.stdout.write(`CONNECT_LOAD_JSON ${JSON.stringify(r)}\n`);
  }, (err: Error) => {
    process.stderr.write(`connect-load failed: ${err.message}\n`);
    process.exit(1);
  });
}
