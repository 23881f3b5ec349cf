// A small Kubernetes API client: where the API server is and how to trust and authenticate
// to it (a kubeconfig file or the in-cluster ServiceAccount), and JSON requests over an
// undici keep-alive pool. Only what the proxy needs (reviews, later lists and watches), so
// no generated client and its megabytes.
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Pool, type Dispatcher } from 'undici';
import { parse } from 'yaml';

/** Where the API server is and how to talk to it; PEM texts, not paths. */
export interface KubeClientConfig {
  /** `https://host:port`, possibly with a path prefix. */
  readonly server: string;
  /** PEM of the CA(s) that sign the API server's certificate; undefined: the system's. */
  readonly ca?: string;
  /** Client certificate and key (PEM) for certificate authentication. */
  readonly cert?: string;
  readonly key?: string;
  readonly insecureSkipTlsVerify: boolean;
  /** SNI and the name checked in the server certificate, when not the server's host. */
  readonly tlsServerName?: string;
  /** Bearer token, if any; read per request so a rotated token file is picked up. */
  readonly token?: TokenSource;
}

export interface TokenSource {
  /** The current token ('' when none). */
  current(): string;
}

/** A kubeconfig or in-cluster setting that cannot be used; names the file and the field. */
export class KubeConfigError extends Error {
  override readonly name = 'KubeConfigError';
}

/** The API server answered with a non-2xx status. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly status: number,
    /** The Status object's `reason` (e.g. `Forbidden`, `NotFound`), or the HTTP status text. */
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** The API server could not be reached or did not answer in time. */
export class KubeUnavailableError extends Error {
  override readonly name = 'KubeUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** What the authenticator (and tests wrapping it) need from a client. */
export interface KubeApi {
  request<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T>;
}

/** One event of a watch stream (`?watch=1`), as the API server sends it. */
export interface WatchEvent<T> {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  /** The object; a Status object for ERROR. */
  readonly object: T;
}

/** What the watcher needs: requests plus a streaming watch. */
export interface KubeWatchApi extends KubeApi {
  /**
   * Opens a watch and calls `onEvent` per event until the server ends the stream (resolves)
   * or it fails (rejects: KubeApiError for a non-2xx answer, KubeUnavailableError otherwise).
   * `idleTimeoutMs` bounds the silence between bytes, so a vanished server is noticed.
   */
  watch<T>(path: string, onEvent: (e: WatchEvent<T>) => void, opts: { signal: AbortSignal; idleTimeoutMs: number }): Promise<void>;
}

export class StaticToken implements TokenSource {
  constructor(private readonly token: string) {}
  current(): string { return this.token; }
}

/**
 * A token file re-read when it changes: bound ServiceAccount tokens are rotated by the
 * kubelet (an atomic swap of the projected volume's `..data` link), so a token read once
 * expires within the hour. One stat per request; requests happen only on cache misses.
 */
export class FileToken implements TokenSource {
  private token = '';
  private stamp = '';

  constructor(readonly file: string) {
    this.current();
  }

  current(): string {
    let st;
    try {
      st = statSync(this.file);
    } catch (e) {
      // Keep the last token: a projected volume is briefly missing during its swap.
      if (this.stamp !== '') return this.token;
      throw new KubeConfigError(`${this.file}: cannot read the token file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    if (stamp !== this.stamp) {
      this.token = readFileSync(this.file, 'utf8').trim();
      this.stamp = stamp;
    }
    return this.token;
  }
}

export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The in-cluster config, or undefined when KUBERNETES_SERVICE_HOST/PORT are not set. */
export function inClusterConfig(env: NodeJS.ProcessEnv = process.env, dir = IN_CLUSTER_DIR): KubeClientConfig | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return undefined;
  const caFile = join(dir, 'ca.crt');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readText(caFile, `${caFile}`),
    insecureSkipTlsVerify: false,
    token: new FileToken(join(dir, 'token')),
  };
}

interface NamedEntry { name?: unknown; cluster?: unknown; user?: unknown; context?: unknown }

/** Reads the current context (or `context`) of a kubeconfig file; relative paths are relative to the file. */
export function loadKubeconfig(file: string, context?: string): KubeClientConfig {
  const text = readText(file, file);
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new KubeConfigError(`${file}: not valid YAML: ${(e as Error).message}`);
  }
  if (doc === null || typeof doc !== 'object') throw new KubeConfigError(`${file}: not a kubeconfig (expected a mapping)`);
  const cfg = doc as Record<string, unknown>;
  const ctxName = context ?? cfg['current-context'];
  if (typeof ctxName !== 'string' || ctxName === '') throw new KubeConfigError(`${file}: current-context: not set`);
  const find = (list: string, name: string): Record<string, unknown> => {
    const entries = cfg[list];
    const found = Array.isArray(entries) ? (entries as NamedEntry[]).find((e) => e?.name === name) : undefined;
    if (found === undefined) throw new KubeConfigError(`${file}: ${list}: no entry named "${name}"`);
    const key = list.slice(0, -1); // clusters → cluster
    const body = (found as Record<string, unknown>)[key];
    if (body === null || typeof body !== 'object') throw new KubeConfigError(`${file}: ${list}[${name}].${key}: must be a mapping`);
    return body as Record<string, unknown>;
  };
  const ctx = find('contexts', ctxName);
  if (typeof ctx.cluster !== 'string') throw new KubeConfigError(`${file}: contexts[${ctxName}].context.cluster: must be a string`);
  const cluster = find('clusters', ctx.cluster);
  // A context without a user is valid (anonymous, or TLS only).
  const user = typeof ctx.user === 'string' && ctx.user !== '' ? find('users', ctx.user) : {};
  const where = (list: string, name: string, field: string): string => `${file}: ${list}[${name}].${field}`;
  const base = dirname(resolve(file));

  const server = cluster.server;
  if (typeof server !== 'string' || !/^https?:\/\//.test(server)) {
    throw new KubeConfigError(`${where('clusters', ctx.cluster, 'server')}: must be an http or https URL`);
  }
  const pem = (body: Record<string, unknown>, list: string, name: string, field: string): string | undefined => {
    const data = body[`${field}-data`];
    if (data !== undefined && data !== '') {
      if (typeof data !== 'string') throw new KubeConfigError(`${where(list, name, `${field}-data`)}: must be base64 text`);
      return Buffer.from(data, 'base64').toString('utf8');
    }
    const path = body[field];
    if (path === undefined || path === '') return undefined;
    if (typeof path !== 'string') throw new KubeConfigError(`${where(list, name, field)}: must be a file path`);
    const abs = isAbsolute(path) ? path : join(base, path);
    return readText(abs, where(list, name, field));
  };
  const userName = typeof ctx.user === 'string' ? ctx.user : '';
  // Silently sending no credentials would turn into confusing 401/403s later.
  for (const unsupported of ['exec', 'auth-provider']) {
    if (user[unsupported] !== undefined) throw new KubeConfigError(`${where('users', userName, unsupported)}: not supported; use a token, token-file or client certificate`);
  }
  const ca = pem(cluster, 'clusters', ctx.cluster, 'certificate-authority');
  const cert = pem(user, 'users', userName, 'client-certificate');
  const key = pem(user, 'users', userName, 'client-key');
  if ((cert === undefined) !== (key === undefined)) {
    throw new KubeConfigError(`${where('users', userName, 'client-key')}: client-certificate and client-key go together`);
  }
  let token: TokenSource | undefined;
  if (typeof user.token === 'string' && user.token !== '') token = new StaticToken(user.token);
  else if (typeof user['token-file'] === 'string' && user['token-file'] !== '') {
    const tf = user['token-file'];
    token = new FileToken(isAbsolute(tf) ? tf : join(base, tf));
  }
  const tlsServerName = cluster['tls-server-name'];
  return {
    server,
    ca,
    cert,
    key,
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: typeof tlsServerName === 'string' && tlsServerName !== '' ? tlsServerName : undefined,
    token,
  };
}

/**
 * `kubeconfig` when given; else in-cluster when running in a Pod; else `$KUBECONFIG` (its
 * first entry) or `~/.kube/config`.
 */
export function loadKubeClientConfig(kubeconfig?: string, env: NodeJS.ProcessEnv = process.env): KubeClientConfig {
  if (kubeconfig) return loadKubeconfig(kubeconfig);
  const inCluster = inClusterConfig(env);
  if (inCluster) return inCluster;
  const first = env.KUBECONFIG?.split(':').find((p) => p !== '');
  return loadKubeconfig(first ?? join(homedir(), '.kube', 'config'));
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new KubeConfigError(`${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export interface KubeClientOptions {
  /** Connect, response-headers and body-idle timeout each (default 10 s). */
  readonly timeoutMs?: number;
  /** Keep-alive connections to the API server (default 8). */
  readonly connections?: number;
}

interface StatusBody { kind?: unknown; reason?: unknown; message?: unknown }

export class KubeClient implements KubeWatchApi {
  /** Requests sent (for metrics and tests). */
  requests = 0;
  private readonly pool: Pool;
  private readonly prefix: string;

  constructor(readonly config: KubeClientConfig, opts: KubeClientOptions = {}) {
    const url = new URL(config.server);
    this.prefix = url.pathname.replace(/\/+$/, '');
    const timeout = opts.timeoutMs ?? 10_000;
    this.pool = new Pool(url.origin, {
      connections: opts.connections ?? 8,
      connectTimeout: timeout,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: {
        ca: config.ca,
        cert: config.cert,
        key: config.key,
        rejectUnauthorized: !config.insecureSkipTlsVerify,
        servername: config.tlsServerName,
      },
    });
  }

  /**
   * A JSON request; the parsed 2xx body. Non-2xx → KubeApiError with the Status object's
   * reason and message; no connection, a TLS failure or a timeout → KubeUnavailableError.
   */
  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const headers = this.headers();
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = contentType;
    }
    this.requests++;
    let statusCode: number;
    let text: string;
    try {
      const res = await this.pool.request({ method: method as Dispatcher.HttpMethod, path: this.prefix + path, headers, body: payload });
      statusCode = res.statusCode;
      text = await res.body.text();
    } catch (e) {
      throw unavailable(method, path, this.config.server, e);
    }
    if (statusCode >= 200 && statusCode < 300) {
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new KubeApiError(statusCode, 'InvalidResponse', `${method} ${path}: the Kubernetes API server answered ${statusCode} with a body that is not JSON`);
      }
    }
    throw apiError(method, path, statusCode, text);
  }

  async watch<T>(path: string, onEvent: (e: WatchEvent<T>) => void, opts: { signal: AbortSignal; idleTimeoutMs: number }): Promise<void> {
    this.requests++;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        method: 'GET', path: this.prefix + path, headers: this.headers(), signal: opts.signal,
        headersTimeout: opts.idleTimeoutMs, bodyTimeout: opts.idleTimeoutMs,
      });
    } catch (e) {
      throw unavailable('GET', path, this.config.server, e);
    }
    if (res.statusCode < 200 || res.statusCode >= 300) throw apiError('GET', path, res.statusCode, await res.body.text().catch(() => ''));
    // Events are newline-delimited JSON objects; a chunk may end mid-line. Errors thrown by
    // `onEvent` end the watch and reach the caller unchanged.
    const chunks = res.body[Symbol.asyncIterator]();
    let partial = '';
    try {
      for (;;) {
        let next: IteratorResult<unknown>;
        try {
          next = await chunks.next();
        } catch (e) {
          throw unavailable('GET', path, this.config.server, e);
        }
        if (next.done) return;
        const text = partial + (next.value as Buffer).toString('utf8');
        let start = 0;
        for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
          const line = text.slice(start, nl);
          start = nl + 1;
          if (line.trim() === '') continue;
          let event: WatchEvent<T>;
          try {
            event = JSON.parse(line) as WatchEvent<T>;
          } catch {
            throw new KubeApiError(res.statusCode, 'InvalidResponse', `GET ${path}: a watch event is not JSON`);
          }
          onEvent(event);
        }
        partial = text.slice(start);
      }
    } finally {
      res.body.destroy();
    }
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = this.config.token?.current();
    if (token) headers.authorization = `Bearer ${token}`;
    return headers;
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  /** Closes at once, failing requests in flight (tests, shutdown after the grace period). */
  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}

function unavailable(method: string, path: string, server: string, e: unknown): KubeUnavailableError {
  // Messages of undici errors carry no request data (never the token).
  const err = e as { code?: string; message?: string };
  return new KubeUnavailableError(`${method} ${path}: the Kubernetes API server at ${server} is unreachable: ${err.code ?? err.message ?? String(e)}`, { cause: e });
}

function apiError(method: string, path: string, statusCode: number, text: string): KubeApiError {
  let status: StatusBody = {};
  try { status = JSON.parse(text) as StatusBody; } catch { /* not a Status object */ }
  const reason = typeof status.reason === 'string' && status.reason !== '' ? status.reason : `HTTP ${statusCode}`;
  const detail = typeof status.message === 'string' && status.message !== '' ? `: ${status.message}` : '';
  return new KubeApiError(statusCode, reason, `${method} ${path}: the Kubernetes API server answered ${statusCode} ${reason}${detail}`);
}
