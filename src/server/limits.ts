// Checks made before anything else (SPEC section 7, issue 9): a request target longer than
// the configured bound (414), more header fields than MAX_HEADER_FIELDS (431), and more
// than one Host header (400, RFC 9112 section 3.2: which one names the Connector?).
// Node's parser already bounds the header block's bytes (--max-header-size → 431) but drops
// fields past `server.maxHeadersCount` silently; the proxy refuses instead of forwarding a
// request it did not see whole.
import type { IncomingMessage } from 'node:http';

/** Most header fields a request may carry. */
export const MAX_HEADER_FIELDS = 1000;
/** What `server.maxHeadersCount` is set to: one more, so "too many" is detectable. */
export const PARSED_HEADER_FIELDS = MAX_HEADER_FIELDS + 1;

export interface RequestLimits {
  readonly maxUrlLength: number;
}

/** A status and message when `req` is over a limit or ambiguous; undefined otherwise. */
export function overLimit(req: IncomingMessage, limits: RequestLimits): { status: 400 | 414 | 431; message: string } | undefined {
  const url = req.url;
  if (url !== undefined && url.length > limits.maxUrlLength) {
    return { status: 414, message: `the request target is ${url.length} characters; at most ${limits.maxUrlLength} are accepted (--max-url-length)` };
  }
  if (req.rawHeaders.length > 2 * MAX_HEADER_FIELDS) {
    return { status: 431, message: `the request has more than ${MAX_HEADER_FIELDS} header fields` };
  }
  if (hostCount(req.rawHeaders) > 1) return { status: 400, message: 'the request has more than one Host header' };
  return undefined;
}

function hostCount(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') n++;
  }
  return n;
}

/**
 * `Upgrade: h2c` would turn the connection into raw HTTP/2 to the tool: every later stream
 * would skip the proxy's path confinement and credentials (h2c smuggling). WebSocket and
 * SPDY sessions carry one exchange with the tool, checked and credentialed once.
 */
export function refusedUpgrade(req: IncomingMessage): { status: 400; message: string } | undefined {
  const upgrade = req.headers.upgrade;
  if (upgrade === undefined || !H2C.test(upgrade)) return undefined;
  return { status: 400, message: 'Upgrade: h2c (HTTP/2 over cleartext) is not relayed: send HTTP/1.1 requests, or WebSocket/SPDY upgrades' };
}

const H2C = /(^|[\s,])h2c([\s,]|$)/i;
