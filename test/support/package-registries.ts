// Real package registries that require authentication, for tests: Verdaccio (npm) and
// pypiserver (PyPI), both installed by scripts/install-package-registries.sh (pinned, cached),
// each on a free loopback port with an htpasswd user, storage in a temporary folder.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './proxy';
import { startNginx, type NginxProcess } from './nginx';
import { run, terminate } from './run';
import { httpsGet, type ServeTls } from './test-ca';

export interface PackageRegistry {
  /** `http://127.0.0.1:<port>`, or with TLS `https://<host>:<port>` (the name on its certificate). */
  readonly url: string;
  /** The same registry by address: `http(s)://127.0.0.1:<port>` (also on the certificate). */
  readonly loopbackUrl: string;
  readonly username: string;
  readonly password: string;
  /** Where packages live (pypiserver serves this folder). */
  readonly dir: string;
  logs(): string;
  stop(): Promise<void>;
}

/** An htpasswd line with the `{SHA}` scheme, which Verdaccio, passlib and nginx read. */
export function htpasswd(user: string, password: string): string {
  return `${user}:{SHA}${createHash('sha1').update(password).digest('base64')}\n`;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForHttp(url: string, child: ChildProcess, logs: () => string, ca?: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: the server exited (${child.exitCode}):\n${logs()}`);
    try {
      if (ca !== undefined) {
        await httpsGet(url, ca);
      } else {
        const r = await fetch(url);
        await r.arrayBuffer();
      }
      return; // any answer (401 included) means it listens
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`${url} did not start:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Served {
  readonly url: string;
  readonly loopbackUrl: string;
  /** The CA to trust when the URL is https. */
  readonly ca?: string;
  /** Stopped after the registry (a TLS front). */
  readonly front?: NginxProcess;
}

function supervise(cmd: string, args: string[], dir: string, served: Served, username: string, password: string, packages: string): Promise<PackageRegistry> {
  const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const reg: PackageRegistry = {
    url: served.url, loopbackUrl: served.loopbackUrl, username, password, dir: packages,
    logs: () => out + (served.front ? `\n--- nginx TLS front:\n${served.front.errors()}` : ''),
    async stop() {
      await terminate(child);
      await served.front?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return waitForHttp(served.url + '/', child, reg.logs, served.ca).then(() => reg, async (err) => { await reg.stop(); throw err; });
}

/**
 * Verdaccio requiring login for every read and publish; no uplinks (nothing from the internet).
 * `web`: its web UI on. `tls`: Verdaccio itself serves HTTPS with a certificate for `tls.host` from `tls.ca`.
 */
export async function startVerdaccio(username = 'npm-tool-user', password = 'npm-tool-pw-V3rd', opts: { web?: boolean; tls?: ServeTls } = {}): Promise<PackageRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'cproxy-verdaccio-'));
  const pair = opts.tls ? await opts.tls.ca.issueFiles([opts.tls.host, '127.0.0.1']) : undefined;
  writeFileSync(join(dir, 'htpasswd'), htpasswd(username, password));
  writeFileSync(join(dir, 'config.yaml'), [
    `storage: ${join(dir, 'storage')}`,
    'auth:', '  htpasswd:', `    file: ${join(dir, 'htpasswd')}`, '    max_users: -1',
    'uplinks: {}',
    'packages:', "  '**':", '    access: $authenticated', '    publish: $authenticated', '    unpublish: $authenticated',
    `web: {enable: ${opts.web === true}}`,
    'log: {type: stdout, format: json, level: warn}',
    ...(pair ? ['https:', `  key: ${pair.keyFile}`, `  cert: ${pair.certFile}`] : []),
  ].join('\n') + '\n');
  const port = await freePort();
  const scheme = pair ? 'https' : 'http';
  const served: Served = {
    url: `${scheme}://${opts.tls?.host ?? '127.0.0.1'}:${port}`, loopbackUrl: `${scheme}://127.0.0.1:${port}`, ca: opts.tls?.ca.cert,
  };
  return supervise(join(REPO_ROOT, '.cache', 'verdaccio'), ['--config', join(dir, 'config.yaml'), '--listen', `${scheme}://127.0.0.1:${port}`], dir, served, username, password, join(dir, 'storage'));
}

/**
 * pypiserver requiring login for download, list and upload. `tls`: behind nginx serving HTTPS
 * with a certificate for `tls.host` from `tls.ca` (pypiserver has no TLS of its own); only the
 * HTTPS port is handed out.
 */
export async function startPypiserver(username = 'pypi-tool-user', password = 'pypi-tool-pw-P1p', opts: { tls?: ServeTls } = {}): Promise<PackageRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'cproxy-pypiserver-'));
  const packages = join(dir, 'packages');
  mkdirSync(packages);
  writeFileSync(join(dir, 'htpasswd'), htpasswd(username, password));
  const port = await freePort();
  let served: Served = { url: `http://127.0.0.1:${port}`, loopbackUrl: `http://127.0.0.1:${port}` };
  if (opts.tls) {
    const pair = await opts.tls.ca.issueFiles([opts.tls.host, '127.0.0.1']);
    const tlsPort = await freePort();
    const front = await startNginx(join(dir, 'nginx'), tlsPort, `  server {
    listen 127.0.0.1:${tlsPort} ssl;
    ssl_certificate ${pair.certFile};
    ssl_certificate_key ${pair.keyFile};
    client_max_body_size 0;
    location / {
      proxy_pass http://127.0.0.1:${port};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto https;
      proxy_buffering off;
    }
  }`);
    served = { url: `https://${opts.tls.host}:${tlsPort}`, loopbackUrl: `https://127.0.0.1:${tlsPort}`, ca: opts.tls.ca.cert, front };
  }
  return supervise(join(REPO_ROOT, '.cache', 'pypi-server'),
    ['run', '-i', '127.0.0.1', '-p', String(port), '-a', 'download,list,update', '-P', join(dir, 'htpasswd'), packages],
    dir, served, username, password, packages);
}

/** Writes a minimal pure-Python wheel `<name>-<version>-py3-none-any.whl` into `dir` (python3's zipfile). */
export async function writeWheel(dir: string, name: string, version: string, source: string): Promise<string> {
  const script = `
import zipfile, hashlib, base64, sys
d, name, ver, src = sys.argv[1:5]
mod = name.replace('-', '_')
info = f'{mod}-{ver}.dist-info'
files = {f'{mod}/__init__.py': src.encode(),
         f'{info}/METADATA': f'Metadata-Version: 2.1\\nName: {name}\\nVersion: {ver}\\n'.encode(),
         f'{info}/WHEEL': b'Wheel-Version: 1.0\\nGenerator: connectors-proxy-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}
h = lambda b: base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()
record = ''.join(f'{k},sha256={h(v)},{len(v)}\\n' for k, v in files.items()) + f'{info}/RECORD,,\\n'
path = f'{d}/{mod}-{ver}-py3-none-any.whl'
with zipfile.ZipFile(path, 'w') as z:
    for k, v in files.items(): z.writestr(k, v)
    z.writestr(f'{info}/RECORD', record)
print(path)
`;
  const r = await run('python3', ['-c', script, dir, name, version, source]);
  if (r.code !== 0) throw new Error(`writing the wheel failed: ${r.stderr}`);
  return r.stdout.toString().trim();
}
