// One HTTP probe (liveness, auth, API or proxy reachability) as the docs define it: a GET or
// POST with the rendered headers, redirects followed unless disabled, success on 2xx. A
// redirect to another origin is followed without the probe's headers: credentials never go
// to a host the Connector does not name. Bodies are discarded unread.
import type { Dispatcher } from 'undici';
import { request } from '../http/undici';

export interface ProbeRequest {
  readonly url: string;
  readonly method?: 'GET' | 'POST';
  readonly headers?: Readonly<Record<string, string>>;
  readonly disableRedirect?: boolean;
  readonly timeoutMs: number;
  /** Reaches the probed origin (the Connector's CA trust); redirects elsewhere use the default. */
  readonly dispatcher?: Dispatcher;
  /** Keep the final answer's headers and body (up to MAX_BODY bytes) for a response.cel check. */
  readonly keepBody?: boolean;
}

export type ProbeOutcome =
  | { readonly kind: 'response'; readonly status: number; readonly url: string; readonly headers?: Readonly<Record<string, string | string[] | undefined>>; readonly body?: string }
  | { readonly kind: 'error'; readonly message: string; readonly url: string };

const MAX_REDIRECTS = 5;
/** A health or token-check answer is small; a larger one is cut here (the CEL check sees the start). */
const MAX_BODY = 1024 * 1024;

export async function probe(p: ProbeRequest): Promise<ProbeOutcome> {
  let url = p.url;
  let method: Dispatcher.HttpMethod = p.method ?? 'GET';
  const origin = new URL(url).origin;
  for (let hop = 0; ; hop++) {
    let res: Dispatcher.ResponseData;
    const sameOrigin = new URL(url).origin === origin;
    try {
      res = await request(url, {
        method,
        headers: { 'user-agent': 'connectors-proxy-probe', ...(sameOrigin ? p.headers : {}) },
        headersTimeout: p.timeoutMs,
        bodyTimeout: p.timeoutMs,
        signal: AbortSignal.timeout(p.timeoutMs),
        ...(sameOrigin && p.dispatcher ? { dispatcher: p.dispatcher } : {}),
      });
    } catch (e) {
      const err = e as { code?: string; name?: string; message?: string };
      const why = err.name === 'TimeoutError' || err.code === 'UND_ERR_HEADERS_TIMEOUT' ? `no answer within ${p.timeoutMs} ms`
        : err.code === 'ECONNREFUSED' ? 'connection refused'
          : err.code === 'ENOTFOUND' ? 'host not found'
            : err.code ?? err.message ?? String(e);
      return { kind: 'error', message: why, url };
    }
    const location = res.headers.location;
    if (!p.disableRedirect && res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string' && hop < MAX_REDIRECTS) {
      res.body.resume();
      res.body.on('error', () => {});
      url = new URL(location, url).href;
      // As browsers and curl: 303 (and 301/302 after POST) turn into GET.
      if (res.statusCode === 303 || (method === 'POST' && res.statusCode !== 307 && res.statusCode !== 308)) method = 'GET';
      continue;
    }
    if (!p.keepBody) {
      res.body.resume();
      res.body.on('error', () => {});
      return { kind: 'response', status: res.statusCode, url };
    }
    let body: string;
    try {
      body = await readBounded(res.body);
    } catch (e) {
      return { kind: 'error', message: `the answer's body could not be read: ${(e as { code?: string }).code ?? (e as Error).message}`, url };
    }
    return { kind: 'response', status: res.statusCode, url, headers: res.headers, body };
  }
}

async function readBounded(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= MAX_BODY) { body.destroy(); break; }
  }
  return Buffer.concat(chunks).subarray(0, MAX_BODY).toString('utf8');
}

/** `GET http://host/path` with the query, for messages (query strings may hold tokens: dropped). */
export function describeUrl(method: string, url: string): string {
  const u = new URL(url);
  return `${method} ${u.origin}${u.pathname}`;
}
