// The first stage for credentials that can be renewed (OAuth2 and registry tokens): the
// tool's first 401 is held back while the injector renews the credential; when it could and
// the request can be sent again (no client body was streamed), it is sent once more and the
// client sees only the second answer. Otherwise the 401 goes on as it is.
import { headerValue, type ResponseHandler } from './handler';

/** Largest 401 body kept back while credentials are renewed; a larger one is relayed at once. */
const HELD_BODY_BYTES = 64 * 1024;

interface Held {
  readonly status: number;
  readonly headers: string[];
  readonly statusText: string;
  readonly resume: () => void;
  readonly challenge: string | undefined;
  readonly chunks: Buffer[];
  size: number;
}

export class CredentialRetry implements ResponseHandler {
  private held: Held | undefined;
  /** The one retry an exchange may have was used or given up. */
  private retried = false;

  constructor(
    private readonly next: ResponseHandler,
    /** True when the request can be sent again (no client body streamed). */
    private readonly resendable: boolean,
    /** The injector's onUnauthorized: drops the refused credential, places a new one when it can. */
    private readonly renew: (challenge: string | undefined, resendable: boolean) => Promise<boolean>,
    /** Sends the (re-credentialed) request again, with this stage as its handler. */
    private readonly resend: () => void,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    this.next.onConnect(abort);
  }

  onHeaders(status: number, headers: string[], statusText: string, resume: () => void): boolean {
    if (status === 401 && !this.retried) {
      this.retried = true;
      const challenge = headerValue(headers, 'www-authenticate');
      if (this.resendable) {
        this.held = { status, headers, statusText, resume, challenge, chunks: [], size: 0 };
        return true;
      }
      // The body was streamed and cannot be sent again; the injector may still renew for next time.
      this.renew(challenge, false).catch(() => undefined);
    }
    return this.next.onHeaders(status, headers, statusText, resume);
  }

  onData(chunk: Buffer): boolean {
    const h = this.held;
    if (h === undefined) return this.next.onData(chunk);
    // 401 bodies are small; a large one is not worth holding: relay it as it is.
    if (h.size + chunk.length <= HELD_BODY_BYTES) {
      h.chunks.push(Buffer.from(chunk));
      h.size += chunk.length;
      return true;
    }
    this.release();
    return this.next.onData(chunk);
  }

  onComplete(): void {
    const h = this.held;
    if (h === undefined) return this.next.onComplete();
    this.renew(h.challenge, true).catch(() => false).then((again) => {
      if (this.held !== h) return;
      this.held = undefined;
      if (again) return this.resend();
      this.held = h;
      this.release();
      this.next.onComplete();
    });
  }

  onError(err: Error): void {
    this.held = undefined;
    this.next.onError(err);
  }

  /** Passes the held 401 on as the answer. */
  private release(): void {
    const h = this.held!;
    this.held = undefined;
    this.next.onHeaders(h.status, h.headers, h.statusText, h.resume);
    for (const c of h.chunks) this.next.onData(c);
  }
}
