// Starts the real proxy binary (dist/src/main.js) as a child process on free loopback
// ports, with manifests and tokens written to a temporary folder, and captures its logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '..', '..', '..');
export const MAIN = join(REPO_ROOT, 'dist', 'src', 'main.js');

export interface ProxyOptions {
  /** Manifest files by name: `{ 'demo.yaml': '...' }`. */
  readonly manifests: Record<string, string>;
  /** Token file YAML; defaults to TOKENS below. */
  readonly tokens?: string;
  readonly domain?: string;
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Runs the binary through this (e.g. `hosts.wrap`: a private /etc/hosts for test names). */
  readonly wrap?: (cmd: string, args: readonly string[]) => { cmd: string; args: string[] };
}

export const TOKENS = `
tokens:
  - token: good-token-123
    user: system:serviceaccount:team:builder
    connectors: ["team/*"]
  - token: other-token-456
    user: system:serviceaccount:other:builder
    connectors: ["other/*"]
`;

export interface ProxyProcess {
  readonly port: number;
  readonly opsPort: number;
  readonly dir: string;
  readonly manifestsDir: string;
  readonly tokensFile: string;
  readonly child: ChildProcess;
  /** `http://127.0.0.1:<port><path>` */
  url(path?: string): string;
  /** Everything the proxy wrote to stdout and stderr so far. */
  logs(): string;
  /** Waits until a log line matching `re` appears (after `since` characters). */
  waitForLog(re: RegExp, timeoutMs?: number, since?: number): Promise<string>;
  writeManifest(name: string, text: string): void;
  writeTokens(text: string): void;
  /** SIGTERM, wait for exit; returns the exit code. Removes the temporary folder. */
  stop(): Promise<number | null>;
}

export async function startProxy(opts: ProxyOptions): Promise<ProxyProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'cproxy-test-'));
  const manifestsDir = join(dir, 'manifests');
  mkdirSync(manifestsDir);
  for (const [name, text] of Object.entries(opts.manifests)) writeFileSync(join(manifestsDir, name), text);
  const tokensFile = join(dir, 'tokens', 'tokens.yaml');
  mkdirSync(join(dir, 'tokens'));
  writeFileSync(tokensFile, opts.tokens ?? TOKENS);
  const argv = [
    MAIN, '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0',
    '--manifests', manifestsDir, '--tokens', tokensFile, '--domain', opts.domain ?? 'proxy.test',
    '--shutdown-grace-ms', '3000',
    ...(opts.args ?? []),
  ];
  const cmd = opts.wrap ? opts.wrap(process.execPath, argv) : { cmd: process.execPath, args: argv };
  const child = spawn(cmd.cmd, cmd.args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));

  const waitForLog = async (re: RegExp, timeoutMs = 10_000, since = 0): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(out.slice(since));
      if (m) return m[0];
      if (child.exitCode !== null) throw new Error(`proxy exited (${child.exitCode}) before logging ${re}:\n${out}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re} in proxy logs:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const line = await waitForLog(/\{[^\n]*"msg":"connectors-proxy listening"[^\n]*\}/);
  const info = JSON.parse(line) as { proxy: string; ops: string };
  const port = Number(info.proxy.split(':').pop());
  const opsPort = Number(info.ops.split(':').pop());
  return {
    port, opsPort, dir, manifestsDir, tokensFile, child,
    url: (path = '/') => `http://127.0.0.1:${port}${path}`,
    logs: () => out,
    waitForLog,
    writeManifest: (name, text) => writeFileSync(join(manifestsDir, name), text),
    writeTokens: (text) => writeFileSync(tokensFile, text),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
      const code = await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Manifests for one ConnectorClass + Connector + Secret pointing at `address`. */
export function connectorManifests(o: {
  address: string;
  namespace?: string;
  name?: string;
  className?: string;
  resolver?: 'host' | 'path';
  secretType?: 'kubernetes.io/basic-auth' | 'connectors.cpaas.io/bearer-token';
  secretData?: Record<string, string>;
  optional?: boolean;
  noSecret?: boolean;
}): string {
  const ns = o.namespace ?? 'team';
  const name = o.name ?? 'tool';
  const cls = o.className ?? `cls-${name}`;
  const secretType = o.secretType ?? 'kubernetes.io/basic-auth';
  const data = o.secretData ?? (secretType === 'kubernetes.io/basic-auth' ? { username: 'tool-user', password: 'tool-secret-pw' } : { token: 'tool-bearer-secret' });
  const resolver = o.resolver ? `\n  annotations:\n    connectors.cpaas.io/proxy-resolver: ${o.resolver}` : '';
  const secretRef = o.noSecret ? '' : `\n    secretRef:\n      name: ${name}-secret`;
  const secret = o.noSecret ? '' : `---
apiVersion: v1
kind: Secret
metadata:
  name: ${name}-secret
  namespace: ${ns}
type: ${secretType}
stringData:
${Object.entries(data).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join('\n')}
`;
  return `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: ${cls}${resolver}
spec:
  proxy: {}
  address:
    type: string
  auth:
    types:
      - name: auth
        secretType: ${secretType}${o.optional ? '\n        optional: true' : ''}
---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  connectorClassName: ${cls}
  address: ${o.address}
  auth:
    name: auth${secretRef}
${secret}`;
}

export function basic(user: string, password: string): string {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
}

/** A Secret holding a CA bundle under `ca.crt` (what a Connector's caCertSecretRef names), as a manifest document. */
export function caSecretManifest(namespace: string, name: string, caPem: string): string {
  return `---
apiVersion: v1
kind: Secret
metadata: {name: ${name}, namespace: ${namespace}}
type: Opaque
stringData:
  ca.crt: |
${caPem.trim().split('\n').map((l) => `    ${l}`).join('\n')}
`;
}
