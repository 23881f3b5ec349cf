// nginx for tests (Debian's nginx-light, installed by scripts/setup.sh --test): one process
// in the foreground (`master_process off`: it runs as the test's user and reads the test's
// private folders), its own folder for config, pid, logs and temporary files, on a free port.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { terminate } from './run';

export interface NginxProcess {
  readonly child: ChildProcess;
  /** The error log (startup problems, upstream failures). */
  errors(): string;
  /** Lines of the access log written so far. */
  accessLog(): string[];
  stop(): Promise<void>;
}

/** Stopped when the test process exits, even if a test forgot. */
const running = new Set<ChildProcess>();
process.once('exit', () => { for (const c of running) c.kill('SIGKILL'); });

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Starts nginx with `servers` (the `server {}` blocks, inside `http {}`) and waits until
 * `port` accepts. The access log format is `$request_method $request_uri $status $remote_user`.
 */
export async function startNginx(dir: string, port: number, servers: string): Promise<NginxProcess> {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  const errorLog = join(dir, 'error.log');
  const accessLog = join(dir, 'access.log');
  const tmp = (name: string): string => `${name}_temp_path ${join(dir, 'tmp', name)};`;
  writeFileSync(conf, `daemon off;
master_process off;
pid ${join(dir, 'nginx.pid')};
error_log ${errorLog} info;
events { worker_connections 512; }
http {
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(tmp).join('\n  ')}
  default_type application/octet-stream;
  log_format tool '$request_method $request_uri $status $remote_user';
  access_log ${accessLog} tool;
${servers}
}
`);
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-e', errorLog], { stdio: 'ignore' });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const read = (file: string): string => { try { return readFileSync(file, 'utf8'); } catch { return ''; } };
  const proc: NginxProcess = {
    child,
    errors: () => read(errorLog),
    accessLog: () => read(accessLog).split('\n').filter((l) => l !== ''),
    stop: () => terminate(child),
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx (${conf}) exited at start:\n${proc.errors()}`);
    if (await accepts(port)) return proc;
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`nginx (${conf}) did not listen on ${port}:\n${proc.errors()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
