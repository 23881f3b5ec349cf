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
  /** The way in (`reverse`, `forward`, `gateway`): Connectors API traffic apart from proxy traffic. */
  readonly way: string;
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
    // One clock reading per event-loop turn: the lines of a turn are written together anyway.
    if (this.pending === '') {
      this.now = Date.now();
      setImmediate(this.flush);
    }
    let line = `{"level":30,"time":${this.now}${this.bindings},"way":${this.quoted(r.way)}`;
    if (r.connector !== undefined) line += `,"connector":${this.quoted(r.connector)}`;
    if (r.user !== undefined) line += `,"user":${this.quoted(r.user)}`;
    if (r.method !== undefined) line += `,"method":${this.quoted(r.method)}`;
    line += `,"path":${jsonString(r.path)},"status":${r.status},"ms":${r.ms}`;
    if (r.upstreamError !== undefined) line += `,"upstreamError":${JSON.stringify(r.upstreamError)}`;
    if (r.clientAborted === true) line += ',"clientAborted":true';
    this.pending += line + ',"msg":"request"}\n';
  }

  private now = 0;
  /** JSON of the few values that repeat on every line (ways, Connectors, users, methods). */
  private readonly memo = new Map<string, string>();

  private quoted(s: string): string {
    let q = this.memo.get(s);
    if (q === undefined) {
      q = jsonString(s);
      // Bounded: these are names, but a client chooses its method and a token file its users.
      if (this.memo.size >= 4096) this.memo.clear();
      this.memo.set(s, q);
    }
    return q;
  }

  /** Writes the lines held for this turn (also before the process exits). */
  readonly flush = (): void => {
    if (this.pending === '') return;
    const lines = this.pending;
    this.pending = '';
    this.stream.write(lines);
  };
}

/** A JSON string literal: JSON.stringify only when something must be escaped (rare in paths). */
function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s);
  }
  return `"${s}"`;
}
