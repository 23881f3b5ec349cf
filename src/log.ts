// Structured logs (pino). Log lines carry connector, user, method, status and the path
// without its query; the redact list is a second fence in case a header object is logged.
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
    redact: {
      paths: ['authorization', 'token', 'password', 'headers.authorization', 'headers["proxy-authorization"]', '*.authorization', '*.token', '*.password'],
      censor: '[redacted]',
    },
  }, stream);
}

/** Flushes buffered log lines; call before exit. */
export function flushLogger(log: Logger): void {
  try { log.flush(); } catch { /* the destination is already closed */ }
}
