// Credential builders turn a Connector's Secret into what the tool expects. A builder runs
// once per Secret version (when the route is built); the request path only applies it.

/** The request as it will be sent upstream; injectors may add headers, change the path or the body. */
export interface OutgoingRequest {
  readonly method: string;
  /** Path and query as sent upstream. */
  path: string;
  /** The tool's host (`host[:port]`). */
  readonly host: string;
  /** Flat `[name, value, name, value, ...]`, names lower-case. */
  headers: string[];
  /** Reads the client's body, at most `limit` bytes (else an InjectError 413). Once. */
  readBody(limit: number): Promise<Buffer>;
  /** A replacement body; when unset the client's body streams through untouched. */
  body?: Buffer;
}

export interface Injector {
  /** `basic`, `bearer`, `rego`...: shown in logs and errors, never the credential. */
  readonly kind: string;
  inject(req: OutgoingRequest): void | Promise<void>;
  /**
   * The tool answered 401 to a request this injector prepared. `challenge` is the response's
   * WWW-Authenticate. When `resendable` (no client body was streamed), the injector may refresh
   * its credentials, rewrite `req` (e.g. setHeader(req.headers, 'authorization', ...)) and
   * resolve true: the proxy then sends the request once more and relays that answer.
   * Otherwise, or on false, the first 401 is relayed. Rejections count as false.
   */
  onUnauthorized?(req: OutgoingRequest, challenge: string | undefined, resendable: boolean): Promise<boolean>;
}

/** Why credentials could not be added; `status` is what the client gets (502 unless said). */
export class InjectError extends Error {
  override readonly name = 'InjectError';
  constructor(message: string, readonly status: number = 502) {
    super(message);
  }
}

/** Sets a header computed once from the Secret. */
export class StaticHeaderInjector implements Injector {
  constructor(readonly kind: string, private readonly name: string, private readonly value: string) {}
  inject(req: OutgoingRequest): void {
    req.headers.push(this.name, this.value);
  }
}

/** Rejects values that could split a header: a Secret is input too. */
export function assertHeaderSafe(value: string, what: string): void {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x0d || c === 0x0a || c === 0x00) throw new InjectError(`${what} contains a CR, LF or NUL character`);
  }
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
