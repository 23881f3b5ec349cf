// nginx for the bench, twice: the upstream (a cheap tool that checks the injected
// credentials) and the nginx peer (a reverse proxy that injects them). Each instance gets
// its own folder for config, pid, logs and temp files, and runs one worker in the foreground.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { childPids, start, stop, waitUntil } from './procs';

export interface Nginx {
  readonly port: number;
  /** The single worker: the process that does the work, measured for RSS. */
  readonly workerPid: number;
  stop(): Promise<void>;
}

function config(dir: string, http: string): string {
  const tmp = (name: string): string => `${name}_temp_path ${join(dir, 'tmp', name)};`;
  return `daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(tmp).join('\n  ')}
  default_type application/octet-stream;
  # Node's server and undici's pool never close a connection after N requests; neither does this.
  keepalive_requests 1000000;
  keepalive_timeout 65s;
${http}
}
`;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Writes `<dir>/nginx.conf` around the given `http {}` body and starts nginx on `port`. */
export async function startNginx(dir: string, port: number, http: string, cpu: string | undefined): Promise<Nginx> {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  const errorLog = join(dir, 'error.log');
  writeFileSync(conf, config(dir, http));
  const child: ChildProcess = start('nginx', ['-p', dir, '-c', conf, '-e', errorLog], { cpu, stdio: 'ignore' });
  try {
    await waitUntil(`nginx on port ${port}`, async () => {
      if (child.exitCode !== null) throw new Error('nginx exited');
      return (await accepts(port)) && childPids(child.pid!).length > 0;
    });
  } catch (err) {
    await stop(child);
    let log = '';
    try { log = readFileSync(errorLog, 'utf8'); } catch { /* never written */ }
    throw new Error(`nginx (${conf}) did not start: ${(err as Error).message}\n${log}`);
  }
  return { port, workerPid: childPids(child.pid!)[0]!, stop: () => stop(child) };
}

/**
 * The upstream: 1 KiB at /small and a file at /big, both only with the expected Authorization;
 * with `tls`, the same site also over HTTPS on `tls.port` (certificate from a private CA).
 */
export function upstreamHttp(port: number, www: string, authorization: string, tls?: { port: number; cert: string; key: string }): string {
  const site = `    root ${www};
    if ($bench_authorized = 0) { return 401; }
    location = /small { return 200 "${'x'.repeat(1023)}\\n"; }
    location = /big { }`;
  return `  access_log off;
  sendfile on;
  map $http_authorization $bench_authorized { "${authorization}" 1; default 0; }
  server {
    listen 127.0.0.1:${port};
${site}
  }${tls ? `
  server {
    listen 127.0.0.1:${tls.port} ssl;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_session_cache shared:SSL:1m;
${site}
  }` : ''}`;
}

/** The nginx peer: proxy_pass to the upstream over kept-alive connections, Authorization replaced. */
export function proxyHttp(port: number, upstreamPort: number, authorization: string, accessLog: string): string {
  return `  # Buffered like pino's asynchronous writes in the proxy under test.
  access_log ${accessLog} combined buffer=64k flush=1s;
  upstream tool {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://tool;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "${authorization}";
      # Stream: never spool a large response to disk, wait for the client instead.
      proxy_max_temp_file_size 0;
    }
  }`;
}
