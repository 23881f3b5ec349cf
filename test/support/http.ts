// A plain node:http client for tests: no redirects followed, any Host header allowed.
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

export function request(url: string, opts: { method?: string; headers?: OutgoingHttpHeaders; body?: Buffer | string; agent?: false } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // Split by hand: WHATWG URL parsing would normalize `..` segments the tests must send.
    const m = /^http:\/\/([^/:]+):(\d+)(.*)$/.exec(url);
    if (!m) throw new Error(`test request needs http://host:port/path, got ${url}`);
    const target = { host: m[1], port: Number(m[2]), path: m[3] || '/' };
    const req = httpRequest({ ...target, method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Repeats `fn` until `check` accepts its answer (watch- and reload-driven changes); throws with the last one. */
export async function eventually(what: string, fn: () => Promise<Reply>, check: (r: Reply) => boolean, timeoutMs = 10_000, everyMs = 100): Promise<Reply> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await fn();
    if (check(r)) return r;
    if (Date.now() > deadline) throw new Error(`${what}: last answer ${r.status} ${r.text}`);
    await new Promise((res) => setTimeout(res, everyMs));
  }
}
