// A small Kubernetes API client: JSON requests and watch streams over an undici keep-alive
// pool (or an http(s) proxy from the kubeconfig), authenticated as the kubeconfig or the
// in-cluster ServiceAccount says (kubeconfig.ts). Only what the proxy needs (reviews, lists,
// watches, status and Service writes, a Lease), so no generated client and its megabytes.
import { randomUUID } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { newPool, newProxyAgent } from '../http/undici';
import { KubeApiError, KubeUnavailableError } from './errors';
import { ExecCredentialSource, type ExecCredential } from './exec-credentials';
import type { KubeClientConfig } from './kubeconfig';

export { KubeApiError, KubeConfigError, KubeCredentialError, KubeUnavailableError } from './errors';
export {
  FileToken, IN_CLUSTER_DIR, StaticToken, inClusterConfig, loadKubeClientConfig, loadKubeconfig, loadKubeconfigFiles,
  type KubeClientConfig, type TokenSource,
} from './kubeconfig';

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

export interface KubeClientOptions {
  /** Connect, response-headers and body-idle timeout each (default 10 s). */
  readonly timeoutMs?: number;
  /** Keep-alive connections to the API server (default 8). */
  readonly connections?: number;
  /** The User-Agent header (default `connectors-proxy`); replicas add their identity (audit logs). */
  readonly userAgent?: string;
}

interface StatusBody { kind?: unknown; reason?: unknown; message?: unknown }

/** Headers for one request, and the plugin credential they carry (dropped on a 401). */
interface Prepared { headers: Record<string, string>; cred?: ExecCredential }

export class KubeClient implements KubeWatchApi {
  /** Requests sent (for metrics and tests). */
  requests = 0;
  /** Runs of the exec credential plugin, if any (tests, metrics). */
  get credentialPluginRuns(): number { return this.exec?.runs ?? 0; }
  private dispatcher: Dispatcher;
  /** The client certificate the dispatcher's connections present (a plugin may renew it). */
  private dispatcherCert: string | undefined;
  private readonly retired: Dispatcher[] = [];
  private readonly origin: string;
  private readonly prefix: string;
  private readonly exec: ExecCredentialSource | undefined;
  private readonly basic: string | undefined;
  private readonly timeout: number;

  constructor(readonly config: KubeClientConfig, private readonly opts: KubeClientOptions = {}) {
    const url = new URL(config.server);
    this.origin = url.origin;
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.timeout = opts.timeoutMs ?? 10_000;
    this.exec = config.exec && new ExecCredentialSource(config.exec);
    this.basic = config.basicAuth && `Basic ${Buffer.from(`${config.basicAuth.username}:${config.basicAuth.password}`).toString('base64')}`;
    this.dispatcher = this.makeDispatcher(config.cert, config.key);
    this.dispatcherCert = config.cert;
  }

  private makeDispatcher(cert: string | undefined, key: string | undefined): Dispatcher {
    const c = this.config;
    const tls = { ca: c.ca, cert, key, rejectUnauthorized: !c.insecureSkipTlsVerify, servername: c.tlsServerName, timeout: this.timeout };
    const common = { connections: this.opts.connections ?? 8, headersTimeout: this.timeout, bodyTimeout: this.timeout };
    // proxy-url: an HTTP CONNECT tunnel per connection; TLS to the API server inside it.
    if (c.proxyUrl !== undefined) return newProxyAgent({ uri: c.proxyUrl, requestTls: tls, proxyTls: { timeout: this.timeout }, ...common });
    return newPool(this.origin, { ...common, connectTimeout: this.timeout, connect: tls });
  }

  private async prepare(): Promise<Prepared> {
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.opts.userAgent ?? 'connectors-proxy' };
    if (this.exec !== undefined) {
      const cred = await this.exec.get();
      if (cred.token !== undefined) headers.authorization = `Bearer ${cred.token}`;
      if (cred.cert !== undefined && cred.cert !== this.dispatcherCert) {
        // New connections present the renewed certificate; open ones (watches) finish on the old pool.
        this.retired.push(this.dispatcher);
        const old = this.dispatcher;
        this.dispatcher = this.makeDispatcher(cred.cert, cred.key);
        this.dispatcherCert = cred.cert;
        old.close().catch(() => {}).finally(() => this.retired.splice(this.retired.indexOf(old), 1));
      }
      return { headers, cred };
    }
    const token = this.config.token?.current();
    if (token) headers.authorization = `Bearer ${token}`;
    else if (this.basic !== undefined) headers.authorization = this.basic;
    return { headers };
  }

  /**
   * A JSON request; the parsed 2xx body. Non-2xx → KubeApiError with the Status object's
   * reason and message; no connection, a TLS failure or a timeout → KubeUnavailableError
   * (KubeCredentialError when the credential plugin failed). A 401 to a plugin's credential
   * runs the plugin again and retries once (the credential was revoked before its expiry).
   */
  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const { headers, cred } = await this.prepare();
      let payload: string | undefined;
      if (body !== undefined) {
        payload = JSON.stringify(body);
        headers['content-type'] = contentType;
      }
      this.requests++;
      let statusCode: number;
      let text: string;
      try {
        const res = await this.dispatcher.request({ origin: this.origin, method: method as Dispatcher.HttpMethod, path: this.prefix + path, headers, body: payload });
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
      if (statusCode === 401 && cred !== undefined) {
        this.exec!.invalidate(cred);
        if (attempt === 0) continue;
      }
      throw apiError(method, path, statusCode, text);
    }
  }

  async watch<T>(path: string, onEvent: (e: WatchEvent<T>) => void, opts: { signal: AbortSignal; idleTimeoutMs: number }): Promise<void> {
    const { headers, cred } = await this.prepare();
    this.requests++;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.dispatcher.request({
        origin: this.origin, method: 'GET', path: this.prefix + path, headers, signal: opts.signal,
        headersTimeout: opts.idleTimeoutMs, bodyTimeout: opts.idleTimeoutMs,
      });
    } catch (e) {
      throw unavailable('GET', path, this.config.server, e);
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      // The caller's retry runs the plugin again.
      if (res.statusCode === 401 && cred !== undefined) this.exec!.invalidate(cred);
      throw apiError('GET', path, res.statusCode, await res.body.text().catch(() => ''));
    }
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

  close(): Promise<void> {
    return Promise.all([this.dispatcher, ...this.retired].map((d) => d.close())).then(() => {});
  }

  /** Closes at once, failing requests in flight (tests, shutdown after the grace period). */
  destroy(): Promise<void> {
    return Promise.all([this.dispatcher, ...this.retired].map((d) => d.destroy())).then(() => {});
  }
}

/** A replica's identity: the host (the Pod's name in Kubernetes) plus a random suffix, as client-go's. */
export function replicaIdentity(host: string): string {
  return `${host}_${randomUUID()}`;
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
