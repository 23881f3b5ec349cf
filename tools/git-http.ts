// A real Git smart-HTTP server for the demo and the tests: git's own CGI program
// (`git http-backend`) behind a small Node front that requires Basic auth. Not part of the
// proxy; it stands in for GitLab or Gitea.
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';

export interface GitServerOptions {
  /** Folder holding bare repositories (`<name>.git`). */
  readonly projectRoot: string;
  /** Required Basic credentials; undefined allows anonymous access. */
  readonly credentials?: { readonly username: string; readonly password: string };
  /** URL prefix the repositories live under, e.g. `/git` (as GitLab behind `/gitlab`). */
  readonly prefix?: string;
  /** Called with every request's method, URL and Authorization header (for tests). */
  readonly onRequest?: (req: IncomingMessage) => void;
}

const GIT_HTTP_BACKEND = process.env.GIT_HTTP_BACKEND ?? '/usr/lib/git-core/git-http-backend';

function authorized(req: IncomingMessage, creds: GitServerOptions['credentials']): boolean {
  if (creds === undefined) return true;
  const expected = Buffer.from('Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64'));
  const got = Buffer.from(req.headers.authorization ?? '');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

export function gitHttpHandler(opts: GitServerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const prefix = opts.prefix ?? '';
  return (req, res) => {
    opts.onRequest?.(req);
    const url = new URL(req.url ?? '/', 'http://x');
    if (!url.pathname.startsWith(prefix + '/')) {
      res.writeHead(404).end('not found\n');
      return;
    }
    if (!authorized(req, opts.credentials)) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end('authentication required\n');
      return;
    }
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: opts.projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      REMOTE_USER: opts.credentials?.username ?? 'anonymous',
      REQUEST_METHOD: req.method,
      PATH_INFO: decodeURIComponent(url.pathname.slice(prefix.length)),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      GIT_PROTOCOL: req.headers['git-protocol'] as string | undefined,
      HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
      REMOTE_ADDR: req.socket.remoteAddress ?? '',
    };
    // With no CONTENT_LENGTH git reads the body to EOF, which is how chunked uploads arrive.
    if (req.headers['content-length'] !== undefined) env.CONTENT_LENGTH = req.headers['content-length'];
    const cgi = spawn(GIT_HTTP_BACKEND, [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    req.pipe(cgi.stdin);
    cgi.stdin.on('error', () => { /* the CGI answered without reading the whole body */ });
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        if (!res.write(chunk)) { cgi.stdout.pause(); res.once('drain', () => cgi.stdout.resume()); }
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const i = line.indexOf(':');
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        if (name.toLowerCase() === 'status') status = parseInt(value, 10);
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      const rest = head.subarray(end + 4);
      if (rest.length > 0) res.write(rest);
    });
    cgi.stdout.on('end', () => res.end());
    cgi.on('error', (err) => { if (!res.headersSent) res.writeHead(500).end(`git http-backend failed: ${err.message}\n`); else res.destroy(); });
    res.on('close', () => { if (cgi.exitCode === null) cgi.kill(); });
  };
}

export function createGitServer(opts: GitServerOptions): Server {
  return createServer(gitHttpHandler(opts));
}
