// The demo tool behind the embedded default: a Git server and a small API, both requiring
// credentials that only the proxy holds (examples/embedded/demo.yaml), and the API service of
// the demo's `http-api` ConnectorClass (what the Connectors API gateway's `x-provider-type:
// api` paths reach).
//   /git/demo.git     git smart HTTP, Basic demo:demo-password
//   /api/whoami       JSON, Bearer demo-api-token
//   /class-api/...    a ConnectorClass API (connectorclass_api_spec.mdx): the Connector comes
//                     in the X-Plugin-Meta, X-Plugin-Auth and X-Plugin-Secret headers
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { gitHttpHandler } from './git-http';

export const DEMO_BASIC = { username: 'demo', password: 'demo-password' };
export const DEMO_BEARER = 'demo-api-token';

/** Creates `<root>/demo.git` with one commit, once. */
export function ensureDemoRepo(root: string): void {
  const bare = join(root, 'demo.git');
  if (existsSync(bare)) return;
  mkdirSync(root, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'demo-repo-'));
  const git = (...args: string[]): void => { execFileSync('git', args, { cwd: work, stdio: 'ignore' }); };
  git('init', '-q', '-b', 'main');
  writeFileSync(join(work, 'README.md'), '# demo\n\nCloned through connectors-proxy: the proxy added the credentials.\n');
  git('add', '.');
  git('-c', 'user.name=demo', '-c', 'user.email=demo@example.com', 'commit', '-q', '-m', 'demo commit');
  execFileSync('git', ['clone', '-q', '--bare', work, bare], { stdio: 'ignore' });
  execFileSync('git', ['config', 'http.receivepack', 'true'], { cwd: bare });
}

/**
 * `GET /http-api/whoami`: who the Connector is, from the X-Plugin headers alone, in the
 * docs' list format; errors as a Kubernetes Status. Never echoes a Secret value.
 */
function classApi(path: string, headers: IncomingHttpHeaders, res: ServerResponse): void {
  const status = (code: number, reason: string, message: string): void => {
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code }) + '\n');
  };
  const decode = (name: string): string | undefined => {
    const v = headers[name];
    return typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : undefined;
  };
  if (!path.startsWith('/http-api/whoami')) return status(404, 'NotFound', `no API at ${path}`);
  const meta = decode('x-plugin-meta');
  const type = decode('x-plugin-auth');
  const secret = decode('x-plugin-secret');
  if (meta === undefined || type === undefined || secret === undefined) return status(400, 'BadRequest', 'X-Plugin-Meta, X-Plugin-Auth and X-Plugin-Secret are required');
  const data = JSON.parse(secret) as Record<string, string>;
  const token = Buffer.from(data.token ?? '', 'base64').toString('utf8');
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
    listMeta: { totalItems: 1 },
    items: [{ baseURL: (JSON.parse(meta) as { baseURL: string }).baseURL, secretType: type, secretKeys: Object.keys(data), tokenAccepted: token === DEMO_BEARER }],
  }) + '\n');
}

export function startDemoUpstream(port: number, host: string, repoRoot: string): Promise<void> {
  ensureDemoRepo(repoRoot);
  const git = gitHttpHandler({ projectRoot: repoRoot, credentials: DEMO_BASIC, prefix: '/git' });
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/git/')) return git(req, res);
    if (req.url?.startsWith('/api/')) {
      if (req.headers.authorization !== `Bearer ${DEMO_BEARER}`) {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end('{"error":"unauthorized"}\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ authenticated: true, path: req.url, note: 'the proxy sent the Bearer token' }) + '\n');
      return;
    }
    if (req.url?.startsWith('/class-api/')) return classApi(req.url.slice('/class-api'.length), req.headers, res);
    // A landing page, as a real git server has: the Git class's liveness probe asks for `/`.
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('demo tool: git at /git/demo.git, API at /api/\n');
      return;
    }
    res.writeHead(404).end('not found\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}

if (require.main === module) {
  const port = Number(process.env.DEMO_UPSTREAM_PORT ?? 8081);
  const root = process.env.DEMO_REPO_ROOT ?? '.cache/demo-repos';
  startDemoUpstream(port, '127.0.0.1', root).then(() => {
    process.stdout.write(`demo upstream on http://127.0.0.1:${port} (git at /git/demo.git, API at /api/whoami)\n`);
  }, (err: Error) => { process.stderr.write(`demo upstream: ${err.message}\n`); process.exit(1); });
}
