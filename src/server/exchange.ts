// What every stage of an exchange shares: the upstream request, how it ended, the timeouts.
import type { IncomingMessage } from 'node:http';
import type { OutgoingRequest } from '../inject';

/** Where and what to send: the tool's origin and the request after Rewrite and credentials. */
export interface UpstreamRequest extends OutgoingRequest {
  readonly origin: string;
}

export interface Timeouts {
  /** Time to the response headers; undici's `headersTimeout`. */
  readonly headersMs: number;
  /** Longest pause between body chunks; undici's `bodyTimeout`. */
  readonly bodyIdleMs: number;
}

export interface ExchangeEnd {
  readonly status: number;
  /** Set when the upstream failed: metric reason and readable text. */
  readonly upstreamError?: { readonly reason: string; readonly text: string };
  /** The client went away before the response ended (status 499). */
  readonly clientAborted?: boolean;
}

/** True when the client announced a request body. */
export function hasRequestBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}
