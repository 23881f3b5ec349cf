// The bare undici peer: what a competent minimal reverse proxy on Node looks like. One
// keep-alive undici Pool to the upstream, driven through undici's raw dispatch handler (its
// fastest API: no Readable per response, no header object), both bodies streamed with
// back-pressure, hop-by-hop headers dropped, the client's Authorization replaced by a fixed
// one. No routing, auth, metrics or logs: the floor this project's proxy is measured against.
// (Pool#stream() was tried too: 10-20% fewer requests per second than this.)
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { HOP_BY_HOP, listenAndAnnounce, peerArgs } from './common';

const { upstream, authorization } = peerArgs();
const pool = new Pool(upstream, { keepAliveTimeout: 30_000, keepAliveMaxTimeout: 30_000 });

function upstreamHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || name === 'host' || name === 'authorization') continue;
    out.push(name, raw[i + 1]!);
  }
  out.push('authorization', authorization);
  return out;
}

class Relay implements Dispatcher.DispatchHandler {
  private resume: (() => void) | undefined;
  private abort: ((err?: Error) => void) | undefined;
  private done = false;

  constructor(private readonly res: ServerResponse) {
    res.on('drain', () => this.resume?.());
    res.once('close', () => { if (!this.done) this.abort?.(new Error('client went away')); });
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    this.resume = resume;
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1');
      if (!HOP_BY_HOP.has(name.toLowerCase())) headers.push(name, raw[i + 1]!.toString('latin1'));
    }
    this.res.writeHead(statusCode, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  onComplete(): void {
    this.done = true;
    this.res.end();
  }

  onError(err: Error): void {
    this.done = true;
    if (this.res.headersSent) this.res.destroy();
    else this.res.writeHead(502, { 'content-type': 'text/plain' }).end(`upstream failed: ${err.message}\n`);
  }
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  pool.dispatch({
    origin: upstream,
    path: req.url ?? '/',
    method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
    headers: upstreamHeaders(req.rawHeaders),
    body: hasBody ? req : null,
  }, new Relay(res));
}

listenAndAnnounce(createServer(handle));
