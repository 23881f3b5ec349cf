// A response on its way from the tool to the client, stage by stage, in the shape of
// undici's raw dispatch handlers (decorators wrap the next stage, as undici's own
// RetryHandler and RedirectHandler do), but with the header block decoded once, at the
// entry (UpstreamHandler), instead of by every stage.
import type { Dispatcher } from 'undici';
import { clientResponseHeaders } from '../../http/headers';

export interface ResponseHandler {
  /** The exchange started; `abort` cancels it (the client went away). May come again after a resend. */
  onConnect(abort: (err?: Error) => void): void;
  /** `headers` flat `[name, value, ...]`, hop-by-hop ones removed. False pauses the tool until `resume`. */
  onHeaders(status: number, headers: string[], statusText: string, resume: () => void): boolean;
  /** False: the client's backlog is full; wait for the `resume` given with the headers. */
  onData(chunk: Buffer): boolean;
  onComplete(): void;
  onError(err: Error): void;
}

/** Adapts undici's raw handler to the stages: 1xx skipped, hop-by-hop headers removed. */
export class UpstreamHandler implements Dispatcher.DispatchHandler {
  constructor(private readonly next: ResponseHandler) {}

  onConnect(abort: (err?: Error) => void): void {
    this.next.onConnect(abort);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: we never send Expect upstream; nothing to relay
    return this.next.onHeaders(statusCode, clientResponseHeaders(rawHeaders), statusText, resume);
  }

  onData(chunk: Buffer): boolean {
    return this.next.onData(chunk);
  }

  onComplete(): void {
    this.next.onComplete();
  }

  onError(err: Error): void {
    this.next.onError(err);
  }
}

/** The value of header `name` (lower-case) in a flat list, several fields joined. */
export function headerValue(headers: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i]!;
    if (n.length !== name.length || n.toLowerCase() !== name) continue;
    value = value === undefined ? headers[i + 1]! : `${value}, ${headers[i + 1]!}`;
  }
  return value;
}
