#!/usr/bin/env node
// connectors-proxy: the command line. See `connectors-proxy --help`.
import { parseConfig } from './config';
import { createLogger, flushLogger } from './log';
import { startProxy } from './app';
import { runSubcommand } from './cli/subcommands';
import { ConfigError } from './sources/validate';

async function main(): Promise<void> {
  if (await runSubcommand(process.argv.slice(2))) return;
  const cfg = parseConfig(process.argv.slice(2));
  const log = createLogger(cfg.logLevel);
  let proxy;
  try {
    proxy = await startProxy(cfg, log);
  } catch (err) {
    // A configuration error is the user's to fix: print it plainly, without a stack.
    const e = err as NodeJS.ErrnoException;
    const message = err instanceof ConfigError ? e.message : e.code === 'EADDRINUSE' ? `address in use: ${e.message}` : e.message;
    log.fatal({ err: message }, 'connectors-proxy could not start');
    flushLogger(log);
    process.stderr.write(`connectors-proxy: ${message}\n`);
    process.exit(2);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, inFlightGraceMs: cfg.shutdownGraceMs }, 'draining');
    proxy.shutdown().then(() => {
      log.info('stopped');
      flushLogger(log);
      process.exit(0);
    }, (err: Error) => {
      log.error({ err: err.message }, 'shutdown failed');
      flushLogger(log);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
