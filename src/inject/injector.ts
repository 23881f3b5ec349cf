// Placing credentials on the outgoing request. Where they come from is src/credentials/'s
// business (Secret values, OAuth2 tokens, registry tokens); an injector is built once per
// Secret version (when the route is built) and the request path only applies it.
import type { MaybePromise } from '../util/maybe';
export { CredentialError } from '../credentials/source';

/** The request as it will be sent upstream; injectors may add headers, change the path or the body. */
export interface OutgoingRequest {
  readonly method: string;
  /** Path and query as sent upstream. */
  path: string;
  /** The tool's host (`host[:port]`). */
  readonly host: string;
  /** Flat `[name, value, name, value, ...]`, names lower-case. */
  headers: string[];
  /** Reads the client's body, at most `limit` bytes (else a CredentialError 413). Once. */
  readBody(limit: number): Promise<Buffer>;
  /** A replacement body; when unset the client's body streams through untouched. */
  body?: Buffer;
}

export interface Injector {
  /** `basic`, `bearer`, `rego`, `oauth2`, `registry-token`: shown in logs and errors, never the credential. */
  readonly kind: string;
  /** Places the credentials; throws or rejects with a CredentialError when it cannot. */
  inject(req: OutgoingRequest): MaybePromise<void>;
  /**
   * The tool answered 401 to a request this injector prepared. `challenge` is the response's
   * WWW-Authenticate. The injector drops the refused credential; when `resendable` (no client
   * body was streamed) it may place a fresh one and resolve true: the proxy then sends the
   * request once more and relays that answer. Otherwise, or on false, the first 401 is
   * relayed. Rejections count as false. Absent: credentials that cannot be renewed.
   */
  readonly onUnauthorized?: (req: OutgoingRequest, challenge: string | undefined, resendable: boolean) => Promise<boolean>;
}

/** Replaces every header called `name` (lower-case) with one `value`. */
export function setHeader(headers: string[], name: string, value: string): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i] === name) headers.splice(i, 2);
  headers.push(name, value);
}

export function getHeader(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}
