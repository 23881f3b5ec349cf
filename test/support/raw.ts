// Raw-socket tools for the security tests: send exact bytes (malformed requests a real
// client would never produce) and record exactly what bytes an upstream received.
import { connect, type Socket } from 'node:net';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import assert from 'node:assert/strict';

/** What came back on a raw connection: all bytes until the peer closed or `waitMs` passed. */
export interface RawReply {
  readonly text: string;
  /** The status codes of every response in `text`, in order. */
  readonly statuses: number[];
  /** The peer closed the connection (rather than the wait ending). */
  readonly closed: boolean;
}

/**
 * Writes `chunks` to 127.0.0.1:`port` (with `gapMs` between them) and collects the answer
 * until the peer closes or `waitMs` after the last write.
 */
export function rawExchange(port: number, chunks: string | Buffer | Array<string | Buffer>, waitMs = 1500, gapMs = 0): Promise<RawReply> {
  const list = Array.isArray(chunks) ? chunks : [chunks];
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(got).toString('latin1');
      resolve({ text, statuses: statusesOf(text), closed });
    };
    socket.on('data', (d: Buffer) => got.push(d));
    socket.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'ECONNRESET' || e.code === 'EPIPE') { closed = true; done(); } else reject(e); });
    socket.on('close', () => { closed = true; done(); });
    socket.on('connect', async () => {
      for (let i = 0; i < list.length; i++) {
        if (socket.destroyed) return;
        socket.write(list[i]!);
        if (gapMs > 0 && i + 1 < list.length) await new Promise((r) => setTimeout(r, gapMs));
      }
      timer = setTimeout(done, waitMs);
    });
  });
}

export function statusesOf(text: string): number[] {
  return [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

/** Opens a connection and keeps it (for slowloris, idle and many-connection tests). */
export function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves with how long the peer took to close `socket` (ms), or -1 after `limitMs`. */
export function closedWithin(socket: Socket, limitMs: number): Promise<number> {
  const start = Date.now();
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(0);
    const t = setTimeout(() => resolve(-1), limitMs);
    socket.on('error', () => undefined);
    socket.once('close', () => { clearTimeout(t); resolve(Date.now() - start); });
    socket.resume();
  });
}

/** An upstream tool that records every byte each connection brought, and the parsed requests. */
export interface RecordingUpstream {
  readonly server: Server;
  readonly port: number;
  readonly origin: string;
  /** Raw bytes per connection, in connection order. */
  readonly connections: Buffer[][];
  readonly requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; rawHeaders: string[]; body: Buffer }>;
  /** Everything every connection received, as latin1 text. */
  raw(): string;
  /** Every request line (`METHOD /path HTTP/1.1`) anywhere in the raw bytes, bodies included. */
  requestLines(): string[];
  reset(): void;
  close(): Promise<void>;
}

/**
 * `handler` answers after the request body was read whole (default: 200 with the method,
 * url and body length as JSON).
 */
export async function startRecordingUpstream(handler?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): Promise<RecordingUpstream> {
  const connections: Buffer[][] = [];
  const requests: RecordingUpstream['requests'] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      if (handler) handler(req, res, body);
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method, url: req.url, bodyLength: body.length }));
    });
  });
  server.on('connection', (s) => {
    const mine: Buffer[] = [];
    connections.push(mine);
    s.on('data', (d: Buffer) => mine.push(Buffer.from(d)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const raw = (): string => connections.map((c) => Buffer.concat(c).toString('latin1')).join('');
  return {
    server, port, origin: `http://127.0.0.1:${port}`, connections, requests, raw,
    requestLines: () => [...raw().matchAll(/[A-Z]+ \/\S* HTTP\/1\.[01]\r?\n/g)].map((m) => m[0].trimEnd()),
    // In place: kept-alive connections go on recording into their arrays.
    reset() { for (const c of connections) c.length = 0; requests.length = 0; },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** The process's open file descriptors, by kind (socket, pipe, file, anon). */
export function openFds(pid: number): { total: number; sockets: number } {
  let total = 0;
  let sockets = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    total++;
    try { if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets++; } catch { /* closed meanwhile */ }
  }
  return { total, sockets };
}

/** Resident set size of a process in bytes (from /proc/<pid>/statm). */
export function rssOf(pid: number): number {
  const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
  return pages * 4096;
}

/** Polls `check` until true; fails with `what` after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean> | boolean, what: string | (() => string), timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(typeof what === 'string' ? what : what());
    await new Promise((r) => setTimeout(r, 100));
  }
}
