// Credential builders turn a Connector's Secret into what the tool expects. A builder runs
// once per Secret version (when the route is built); the request path only applies it.

/** The request as it will be sent upstream; injectors may add headers or change the path. */
export interface OutgoingRequest {
  method: string;
  /** Path and query as sent upstream. */
  path: string;
  /** Flat `[name, value, name, value, ...]`, names lower-case. */
  headers: string[];
}

export interface Injector {
  /** `basic`, `bearer`, ...: shown in logs and errors, never the credential. */
  readonly kind: string;
  inject(req: OutgoingRequest): void | Promise<void>;
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
    if (c === 0x0d || c === 0x0a || c === 0x00) throw new Error(`${what} contains a CR, LF or NUL character`);
  }
}
