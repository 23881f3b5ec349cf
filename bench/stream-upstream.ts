// The tool that receives uploads in the streams bench (bench/streams.ts): a Node server, over
// HTTP and HTTPS, that answers 401 unless Authorization is the injected value, reads each
// request body (at `?rate=` bytes per second per request when given: a slow tool, else as
// fast as it comes), and answers with the SHA-256 of what it received. Downloads come from
// nginx (bench/nginx.ts), which sends a file with less CPU than Node would.
// Usage: node stream-upstream.js <authorization> <cert file> <key file>; prints {"port","tlsPort"}.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

const [authorization, certFile, keyFile] = process.argv.slice(2);
if (authorization === undefined || certFile === undefined || keyFile === undefined) {
  process.stderr.write('usage: node stream-upstream.js <authorization> <cert file> <key file>\n');
  process.exit(2);
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.headers.authorization !== authorization) {
    res.writeHead(401).end('no credentials\n');
    req.resume();
    return;
  }
  const rate = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('rate') ?? 0);
  const hash = createHash('sha256');
  let got = 0;
  const t0 = performance.now();
  req.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    got += chunk.length;
    if (rate <= 0) return;
    // Ahead of the schedule: stop reading until the schedule catches up (back-pressure to the proxy).
    const ahead = got - (rate * (performance.now() - t0)) / 1000;
    if (ahead > 0) {
      req.pause();
      setTimeout(() => req.resume(), (ahead / rate) * 1000);
    }
  });
  req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${hash.digest('hex')} ${got}`));
  req.on('error', () => res.destroy());
}

const plain = createServer(handle);
const tls = createHttpsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, handle);
for (const s of [plain, tls]) {
  s.keepAliveTimeout = 60_000;
  s.requestTimeout = 0;
}
let listening = 0;
const announce = (): void => {
  if (++listening < 2) return;
  const port = (s: typeof plain): number => (s.address() as AddressInfo).port;
  process.stdout.write(`${JSON.stringify({ port: port(plain), tlsPort: port(tls) })}\n`);
};
// A deep accept queue: a thousand clients arrive within a second.
plain.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, announce);
tls.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, announce);
process.on('SIGTERM', () => process.exit(0));
