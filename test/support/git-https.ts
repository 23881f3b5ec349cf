// A real Git server over HTTPS for tests: nginx (TLS, Basic auth from an htpasswd file) in
// front of git's own `git http-backend` through fcgiwrap (Debian's nginx-light and fcgiwrap,
// installed by scripts/setup.sh --test). Clone and push work as against any smart-HTTP
// server; the access log shows which user each request authenticated as.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNginx, type NginxProcess } from './nginx';
import { freePort, htpasswd } from './package-registries';
import { run } from './run';
import type { ServeTls } from './test-ca';

const HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

export interface GitHttpsServer {
  /** `https://<host>:<port>`: repositories are `<url>/<name>.git`. */
  readonly url: string;
  /** `https://127.0.0.1:<port>` (also on the certificate). */
  readonly loopbackUrl: string;
  readonly port: number;
  readonly username: string;
  readonly password: string;
  /** Where the bare repositories live. */
  readonly root: string;
  /** A bare repository `<name>.git` with one commit holding `files`; push is allowed. */
  createRepo(name: string, files: Record<string, string>): Promise<void>;
  /** `git log --format=%s` of a branch in the bare repository (what pushes left there). */
  log(name: string, branch?: string): Promise<string[]>;
  /** `METHOD URI STATUS USER` per request (USER `-` when unauthenticated). */
  accessLog(): string[];
  logs(): string;
  stop(): Promise<void>;
}

async function git(args: readonly string[], cwd: string): Promise<string> {
  const r = await run('git', args, {
    cwd, timeoutMs: 60_000,
    env: { ...process.env, GIT_AUTHOR_NAME: 'test', GIT_AUTHOR_EMAIL: 't@example.test', GIT_COMMITTER_NAME: 'test', GIT_COMMITTER_EMAIL: 't@example.test', GIT_CONFIG_NOSYSTEM: '1', HOME: cwd },
  });
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout.toString();
}

/** Process groups still running, killed when the test process exits even if a test forgot. */
const groups = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of groups) try { process.kill(-c.pid!, 'SIGKILL'); } catch { /* gone */ }
});

/** SIGTERM to the whole group, SIGKILL after 5 s; resolves when the leader has exited. */
async function stopGroup(child: ChildProcess): Promise<void> {
  const signal = (sig: NodeJS.Signals): void => { try { process.kill(-child.pid!, sig); } catch { /* gone */ } };
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()));
  signal('SIGTERM');
  const t = setTimeout(() => signal('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
  signal('SIGKILL'); // workers that ignored SIGTERM
  groups.delete(child);
}

/** Starts fcgiwrap and nginx with TLS for `tls.host`; requests need `username:password`. */
export async function startGitHttps(tls: ServeTls, username = 'git-tool-user', password = 'git-tool-pw-G1t'): Promise<GitHttpsServer> {
  if (!existsSync(HTTP_BACKEND)) throw new Error(`${HTTP_BACKEND} is missing: install git`);
  const dir = mkdtempSync(join(tmpdir(), 'cproxy-git-https-'));
  const root = join(dir, 'repos');
  mkdirSync(root);
  writeFileSync(join(dir, 'htpasswd'), htpasswd(username, password));
  const socket = join(dir, 'fcgiwrap.sock');
  let fcgi: ChildProcess | undefined;
  let nginx: NginxProcess | undefined;
  let fcgiOut = '';
  const stop = async (): Promise<void> => {
    await nginx?.stop();
    if (fcgi) await stopGroup(fcgi);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Its own process group: fcgiwrap's forked workers outlive a SIGTERM to the parent and
    // would hold our output pipes (and this test process) open.
    fcgi = spawn('fcgiwrap', ['-c', '4', '-s', `unix:${socket}`], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    groups.add(fcgi);
    fcgi.stdout!.on('data', (d: Buffer) => { fcgiOut += d.toString(); });
    fcgi.stderr!.on('data', (d: Buffer) => { fcgiOut += d.toString(); });
    const deadline = Date.now() + 10_000;
    while (!existsSync(socket)) {
      if (fcgi.exitCode !== null) throw new Error(`fcgiwrap exited (${fcgi.exitCode}): ${fcgiOut}`);
      if (Date.now() > deadline) throw new Error(`fcgiwrap did not create ${socket}: ${fcgiOut}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const pair = await tls.ca.issueFiles([tls.host, '127.0.0.1']);
    const port = await freePort();
    nginx = await startNginx(join(dir, 'nginx'), port, `  server {
    listen 127.0.0.1:${port} ssl;
    server_name ${tls.host};
    ssl_certificate ${pair.certFile};
    ssl_certificate_key ${pair.keyFile};
    client_max_body_size 0;
    auth_basic "git";
    auth_basic_user_file ${join(dir, 'htpasswd')};
    location / {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME ${HTTP_BACKEND};
      fastcgi_param GIT_PROJECT_ROOT ${root};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_param REMOTE_USER $remote_user;
      fastcgi_pass unix:${socket};
    }
  }`);
    const n = nginx;
    return {
      url: `https://${tls.host}:${port}`,
      loopbackUrl: `https://127.0.0.1:${port}`,
      port, username, password, root,
      async createRepo(name, files) {
        const bare = join(root, `${name}.git`);
        await git(['init', '-q', '--bare', '-b', 'main', bare], dir);
        await git(['config', 'http.receivepack', 'true'], bare);
        const work = mkdtempSync(join(dir, `seed-${name}-`));
        await git(['init', '-q', '-b', 'main'], work);
        for (const [f, text] of Object.entries(files)) writeFileSync(join(work, f), text);
        await git(['add', '-A'], work);
        await git(['commit', '-q', '-m', `seed ${name}`], work);
        await git(['push', '-q', bare, 'main'], work);
        rmSync(work, { recursive: true, force: true });
      },
      async log(name, branch = 'main') {
        return (await git(['log', '--format=%s', branch], join(root, `${name}.git`))).trim().split('\n');
      },
      accessLog: () => n.accessLog(),
      logs: () => `${n.errors()}\n--- fcgiwrap:\n${fcgiOut}`,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
