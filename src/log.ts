// Structured logs (pino). Log lines carry connector, user, method, status and the path
// without its query. Nothing logs header objects or Secrets, so there is no redact list:
// pino's wildcard redaction cost more per request than the rest of the log line
// (bench/README.md); test/*.test.ts scan the whole log output for credentials instead.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination: NodeJS.WritableStream | number = 1): Logger {
  const stream = typeof destination === 'number'
    // Asynchronous writes: lines written while one write is pending go out together.
    ? pino.destination({ dest: destination, sync: false })
    : destination;
  return pino({
    level,
    base: { service: 'connectors-proxy' },
  }, stream);
}

/** Flushes buffered log lines; call before exit. */
export function flushLogger(log: Logger): void {
  try { log.flush(); } catch { /* the destination is already closed */ }
}

/** One finished request, as the access line records it. */
export interface AccessRecord {
  readonly connector: string | undefined;
  readonly user: string | undefined;
  readonly method: string | undefined;
  /** The request target without its query (tools put tokens there: private_token=, X-Amz-Signature=). */
  readonly path: string;
  readonly status: number;
  readonly ms: number;
  readonly upstreamError?: string;
  readonly clientAborted?: boolean;
}

/**
 * The access log: one line per request, the record of who used which Connector. Written to
 * the logger's own destination in pino's format (`{"level":30,"time":...,<bindings>,...,
 * "msg":"request"}`), but serialized here: pino's object walk cost about an eighth of a small
 * request's CPU (bench/README.md).
 */
export class AccessLog {
  private readonly stream: { write(s: string): unknown };
  private readonly bindings: string;
  /** Lines of this event-loop turn, written together at its end: one write, not one per request. */
  private pending = '';

  constructor(private readonly log: Logger) {
    const l = log as unknown as Record<symbol, unknown>;
    this.stream = l[pino.symbols.streamSym] as { write(s: string): unknown };
    this.bindings = (l[pino.symbols.chindingsSym] as string | undefined) ?? '';
  }

  write(r: AccessRecord): void {
    if (!this.log.isLevelEnabled('info')) return;
    let line = `{"level":30,"time":${Date.now()}${this.bindings}`;
    if (r.connector !== undefined) line += `,"connector":${JSON.stringify(r.connector)}`;
    if (r.user !== undefined) line += `,"user":${JSON.stringify(r.user)}`;
    if (r.method !== undefined) line += `,"method":${JSON.stringify(r.method)}`;
    line += `,"path":${JSON.stringify(r.path)},"status":${r.status},"ms":${r.ms}`;
    if (r.upstreamError !== undefined) line += `,"upstreamError":${JSON.stringify(r.upstreamError)}`;
    if (r.clientAborted === true) line += ',"clientAborted":true';
    if (this.pending === '') setImmediate(this.flush);
    this.pending += line + ',"msg":"request"}\n';
  }

  /** Writes the lines held for this turn (also before the process exits). */
  readonly flush = (): void => {
    if (this.pending === '') return;
    const lines = this.pending;
    this.pending = '';
    this.stream.write(lines);
  };
}
