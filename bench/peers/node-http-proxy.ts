// A bare proxy on Node's own http client (native llhttp, keep-alive http.Agent), for
// comparison with the undici peer: same job, same header handling, no routing/auth/logs.
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { HOP_BY_HOP, listenAndAnnounce, peerArgs } from './common';

const { upstream, authorization } = peerArgs();
const target = new URL(upstream);
const agent = new Agent({ keepAlive: true, maxSockets: 256, scheduling: 'lifo' });

function handle(req: IncomingMessage, res: ServerResponse): void {
  const headers: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || name === 'host' || name === 'authorization') continue;
    headers.push(name, raw[i + 1]!);
  }
  headers.push('host', target.host, 'authorization', authorization);
  const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent, setHost: false }, (ur) => {
    const out: string[] = [];
    const r = ur.rawHeaders;
    for (let i = 0; i < r.length; i += 2) if (!HOP_BY_HOP.has(r[i]!.toLowerCase())) out.push(r[i]!, r[i + 1]!);
    res.writeHead(ur.statusCode ?? 502, out);
    ur.pipe(res);
  });
  up.on('error', () => { if (!res.headersSent) res.writeHead(502).end(); else res.destroy(); });
  req.pipe(up);
}

listenAndAnnounce(createServer(handle));
