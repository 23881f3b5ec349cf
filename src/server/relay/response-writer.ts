// The last stage: the response written to the client with back-pressure. A failure before
// the response started becomes the way in's error answer (502/504 naming the tool); after
// it, the client's connection is cut so it sees truncation. A client that goes away ends
// the exchange as 499 (the nginx convention): its hang-up is not the tool's failure.
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { ExchangeEnd } from '../exchange';
import { classifyUpstreamError } from '../errors';
import type { ResponseHandler } from './handler';

/**
 * Response bytes buffered toward a slow client before the tool is paused: one undici chunk,
 * so a fast client still does not pause the tool after every chunk, while a slow download
 * holds 64 KiB here instead of 256 (bench/README.md, "What holds the bytes": 431 → 204 KiB
 * per stream at 500 slow streams, CPU per GiB of a fast client the same within noise).
 */
const RELAY_BACKLOG_BYTES = 64 * 1024;

/** Writes an error answer before the response started (the way in's ErrorHandler). */
export type ErrorWriter = (res: ServerResponse, status: number, message: string, headers?: Readonly<Record<string, string>>) => void;

export class ResponseWriter implements ResponseHandler {
  private abortUpstream: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private status = 0;
  private ended = false;
  private draining = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly errorWriter: ErrorWriter,
    /** The subject of error messages: `the tool of connector ns/name (origin)`. */
    private readonly what: () => string,
    private readonly onEnd: (end: ExchangeEnd) => void,
  ) {
    res.on('close', this.onClientClose);
  }

  private readonly onDrain = (): void => {
    if (!this.draining) return;
    this.draining = false;
    this.resumeUpstream?.();
  };

  private readonly onClientClose = (): void => {
    if (this.ended) return;
    this.abortUpstream?.(new Error('client closed the connection'));
    this.finish({ status: 499, clientAborted: true });
  };

  onConnect(abort: (err?: Error) => void): void {
    if (this.ended) abort(new Error('client closed the connection'));
    else this.abortUpstream = abort;
  }

  onHeaders(status: number, headers: string[], statusText: string, resume: () => void): boolean {
    if (this.ended) return false;
    this.resumeUpstream = resume;
    this.status = status;
    this.res.writeHead(status, statusText || STATUS_CODES[status] || '', headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.ended) return false;
    // The socket's 16 KiB high-water mark is below one undici chunk (up to 64 KiB), so
    // honouring write()'s false would pause the tool after every chunk. Pause only when a
    // real backlog builds up; 'drain' still follows any write that returned false.
    this.res.write(chunk);
    if (this.res.writableLength < RELAY_BACKLOG_BYTES) return true;
    if (!this.draining) {
      this.draining = true;
      this.res.once('drain', this.onDrain);
    }
    return false;
  }

  onComplete(): void {
    if (this.ended) return;
    this.res.end();
    this.finish({ status: this.status });
  }

  onError(err: Error): void {
    if (this.ended) return;
    // The client's own hang-up reaches undici as an error of the request body it was reading.
    if (this.clientGone()) return this.finish({ status: 499, clientAborted: true });
    const c = classifyUpstreamError(err as Error & { code?: string });
    if (this.res.headersSent) this.res.destroy();
    else this.errorWriter(this.res, c.status, `${this.what()} ${c.text}`);
    this.finish({ status: this.res.headersSent && this.status ? this.status : c.status, upstreamError: { reason: c.reason, text: c.text } });
  }

  private clientGone(): boolean {
    const req = this.res.req;
    return this.res.destroyed || req.destroyed && !req.complete;
  }

  private finish(end: ExchangeEnd): void {
    if (this.ended) return;
    this.ended = true;
    if (this.draining) this.res.off('drain', this.onDrain);
    this.res.off('close', this.onClientClose);
    this.onEnd(end);
  }
}
