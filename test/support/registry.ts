// A real OCI registry with token authentication for the tests: Debian's docker-registry
// (CNCF distribution 2.8) started from a generated config, and a token server written here
// (node:http) that checks the Basic username and password, signs RS256 JWTs whose header
// carries the x5c chain distribution 2.8 verifies against `auth.token.rootcertbundle`
// (registry/auth/token/token.go: VerifySigningKey), grants only the scopes it was asked for
// (and only what the user may have), counts requests per scope, and can hand out tokens the
// registry will refuse (already expired), as a revoked token would be.
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, createSign, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { run, terminate } from './run';
import { httpsGet, type KeyPair, type KeyPairFiles, type TestCa } from './test-ca';

export const REGISTRY_SERVICE = 'test-registry';
const ISSUER = 'test-token-issuer';

export interface TokenGrant {
  readonly scopes: readonly string[];
  readonly token: string;
}

/** The token server: credentials it accepts, what it was asked, the tokens it issued. */
export class TokenServer {
  /** `scope scope ...` (sorted, '' for none) → requests with valid credentials. */
  readonly counts = new Map<string, number>();
  /** Requests refused for bad credentials. */
  refused = 0;
  readonly issued: TokenGrant[] = [];
  /** The next N tokens are already expired (the registry refuses them), `expires_in` still says 300. */
  staleNext = 0;
  /** `expires_in` of the tokens issued. */
  expiresIn = 300;
  /** Answer with `access_token` only (the OAuth2 field name), not `token`. */
  accessTokenOnly = false;
  /** Clients without credentials get pull-only tokens (public repositories); off: they are refused. */
  anonymousPull = false;
  /** Token requests without credentials that were answered. */
  anonymousRequests = 0;
  /** Repositories the user may not push to. */
  readonly readOnly = new Set<string>();
  private server: Server | HttpsServer | undefined;
  port = 0;

  /** `tls`: serve HTTPS with this certificate, the realm named by `tls.host`. */
  constructor(readonly username: string, readonly password: string, private readonly key: KeyObject, private readonly certDer: Buffer,
    private readonly tls?: KeyPair & { readonly host: string }) {}

  get realm(): string {
    return this.tls ? `https://${this.tls.host}:${this.port}/token` : `http://127.0.0.1:${this.port}/token`;
  }

  /** Token requests (with valid credentials) for exactly these scopes. */
  count(...scopes: string[]): number {
    return this.counts.get([...scopes].sort().join(' ')) ?? 0;
  }

  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  async start(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.handle(req, res);
    this.server = this.tls ? createHttpsServer({ cert: this.tls.cert, key: this.tls.key }, handler) : createServer(handler);
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, o: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(o));
    };
    if (url.pathname !== '/token' || req.method !== 'GET') return json(404, { details: 'not found' });
    const b = /^Basic (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const [user, pass] = b === undefined ? ['', ''] : Buffer.from(b, 'base64').toString().split(/:(.*)/s) as [string, string];
    const anonymous = req.headers.authorization === undefined && this.anonymousPull;
    if (anonymous) this.anonymousRequests++;
    else if (user !== this.username || pass !== this.password) {
      this.refused++;
      return json(401, { details: 'incorrect username or password' }, { 'www-authenticate': 'Basic realm="token"' });
    }
    if (url.searchParams.get('service') !== REGISTRY_SERVICE) return json(400, { details: 'unknown service' });
    const scopes = url.searchParams.getAll('scope');
    const key = [...scopes].sort().join(' ');
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    const access: { type: string; name: string; actions: string[] }[] = [];
    for (const s of scopes) {
      // repository:<name>:<actions> (names may not hold ':'; the last field is the action list).
      const first = s.indexOf(':');
      const last = s.lastIndexOf(':');
      if (first < 0 || last === first) continue;
      const type = s.slice(0, first);
      const name = s.slice(first + 1, last);
      let actions = s.slice(last + 1).split(',').filter((a) => a !== '');
      if (type === 'repository' && (anonymous || this.readOnly.has(name))) actions = actions.filter((a) => a === 'pull');
      access.push({ type, name, actions });
    }
    const now = Math.floor(Date.now() / 1000);
    const stale = this.staleNext > 0;
    if (stale) this.staleNext--;
    // distribution allows 60 s of clock skew on exp: a stale token lapsed well before that.
    const exp = stale ? now - 600 : now + this.expiresIn;
    const token = this.sign({ iss: ISSUER, sub: user, aud: REGISTRY_SERVICE, exp, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access });
    this.issued.push({ scopes, token });
    const body: Record<string, unknown> = { expires_in: this.expiresIn, issued_at: new Date(now * 1000).toISOString() };
    if (this.accessTokenOnly) body.access_token = token;
    else body.token = token;
    json(200, body);
  }

  private sign(claims: Record<string, unknown>): string {
    const header = { typ: 'JWT', alg: 'RS256', x5c: [this.certDer.toString('base64')] };
    const enc = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${enc(header)}.${enc(claims)}`;
    const sig = createSign('RSA-SHA256').update(input).sign(this.key).toString('base64url');
    return `${input}.${sig}`;
  }
}

/** A file server standing in for blob storage that registries redirect to (S3, a CDN). */
export interface BlobHost {
  readonly url: string;
  /** Every request it got: method, path and the Authorization header if any. */
  readonly requests: { method: string; path: string; authorization: string | undefined }[];
  stop(): Promise<void>;
}

export interface Registry {
  /** `http://127.0.0.1:<port>`, or with TLS `https://<host>:<port>` (the name on its certificate). */
  readonly url: string;
  /** The same registry by address: `http(s)://127.0.0.1:<port>` (also on the certificate). */
  readonly loopbackUrl: string;
  readonly port: number;
  readonly storage: string;
  readonly child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

export interface RegistryHarness {
  readonly tokens: TokenServer;
  readonly registry: Registry;
  /** A second registry on the same storage whose blob GETs redirect to `blobs` (distribution's redirect middleware). */
  readonly redirecting: Registry;
  readonly blobs: BlobHost;
  /** A token for `scopes` straight from the token server (for checks behind the proxy's back). */
  tokenFor(...scopes: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function startBlobHost(root: string): Promise<BlobHost> {
  const requests: BlobHost['requests'] = [];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization });
    const file = normalize(join(root, path));
    let size: number;
    try {
      if (!file.startsWith(root + '/')) throw new Error('outside');
      size = statSync(file).size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function startRegistry(dir: string, name: string, storage: string, tokens: TokenServer, cert: string, redirectTo?: string,
  tls?: KeyPairFiles & { readonly host: string; readonly ca: string }): Promise<Registry> {
  const port = await freePort();
  const middleware = redirectTo === undefined ? '' : `
middleware:
  storage:
    - name: redirect
      options:
        baseurl: ${redirectTo}
`;
  const config = join(dir, `${name}.yml`);
  writeFileSync(config, `version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: ${randomBytes(16).toString('hex')}${tls ? `
  tls:
    certificate: ${tls.certFile}
    key: ${tls.keyFile}` : ''}
auth:
  token:
    realm: ${tokens.realm}
    service: ${REGISTRY_SERVICE}
    issuer: ${ISSUER}
    rootcertbundle: ${cert}
${middleware}`);
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const loopbackUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const url = tls ? `https://${tls.host}:${port}` : loopbackUrl;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}):\n${out}`);
    try {
      if (tls) {
        if ((await httpsGet(`${url}/v2/`, tls.ca)).status === 401) break;
      } else {
        const res = await fetch(`${url}/v2/`);
        await res.arrayBuffer();
        if (res.status === 401) break;
      }
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`docker-registry did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url, loopbackUrl, port, storage, child,
    logs: () => out,
    stop: () => terminate(child),
  };
}

export interface RegistryHarnessOptions {
  /**
   * HTTPS for both registries and the token server, with certificates from `ca`: the
   * registries as `registryHost` (the redirecting twin too), the realm as `authHost`.
   * Clients must resolve both names (test/support/hosts.ts) and trust `ca`.
   */
  readonly tls?: { readonly ca: TestCa; readonly registryHost: string; readonly authHost: string };
}

/** Starts the token server, the registry and a redirecting twin with its blob host. */
export async function startRegistryHarness(username: string, password: string, opts: RegistryHarnessOptions = {}): Promise<RegistryHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'cproxy-registry-'));
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.crt');
  const r = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '2', '-subj', '/CN=test token issuer'], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  const key = createPrivateKey(readFileSync(keyFile));
  const certDer = new X509Certificate(readFileSync(certFile)).raw;
  const tls = opts.tls;
  const authPair = tls ? { ...await tls.ca.issue([tls.authHost, '127.0.0.1']), host: tls.authHost } : undefined;
  const registryTls = tls ? { ...await tls.ca.issueFiles([tls.registryHost, '127.0.0.1']), host: tls.registryHost, ca: tls.ca.cert } : undefined;
  const tokens = new TokenServer(username, password, key, certDer, authPair);
  await tokens.start();
  const storage = join(dir, 'storage');
  const started: { stop(): Promise<void> }[] = [tokens];
  try {
    const blobs = await startBlobHost(storage);
    started.push(blobs);
    const registry = await startRegistry(dir, 'registry', storage, tokens, certFile, undefined, registryTls);
    started.push(registry);
    const redirecting = await startRegistry(dir, 'redirecting', storage, tokens, certFile, blobs.url, registryTls);
    started.push(redirecting);
    return {
      tokens, registry, redirecting, blobs,
      async tokenFor(...scopes: string[]) {
        const u = new URL(tokens.realm);
        u.searchParams.set('service', REGISTRY_SERVICE);
        for (const s of scopes) u.searchParams.append('scope', s);
        const authorization = 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64');
        let text: string;
        if (tls) {
          text = (await httpsGet(u.toString(), tls.ca.cert, { authorization })).text;
        } else {
          const res = await fetch(u, { headers: { authorization } });
          text = await res.text();
        }
        const body = JSON.parse(text) as { token?: string; access_token?: string };
        return body.token ?? body.access_token ?? '';
      },
      async stop() {
        for (const s of started.reverse()) await s.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const s of started.reverse()) await s.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
