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
