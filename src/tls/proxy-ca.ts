// The proxy CA: the certificate authority whose leaves the forward proxy presents when it
// intercepts a client's TLS (CONNECT to a Connector origin). Clients trust its certificate;
// its key signs leaves and nothing else, and never leaves this module's holders: it is
// not logged, not in an error message, not served (only the certificate is public).
//
// Kubernetes mode: a `kubernetes.io/tls` Secret in the proxy's namespace. When it is absent
// the first replica generates a CA and creates the Secret; the API server lets one create
// win (409 for the others), and the others read the winner's, so all replicas sign with
// one CA. The Secret is watched: an edit (rotation) is used for the next leaf without a
// restart; a deleted Secret is created again (a new CA) the same way.
// Embedded mode: a cert/key pair of files (flags), or one CA generated once into a folder
// and reused by every later start; the files are watched for edits too.
import { createHash, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, type FSWatcher } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { KubeApiError, type KubeWatchApi } from '../kube/client';
import { Reflector } from '../sources/reflector';
import { watchPath } from '../sources/files';
import type { Secret } from '../types';
import { CA_BUNDLE_FILE, CA_CERT_FILE } from './ca-names';
import { CaMaterialError, generateCa, loadSigningCa, type SigningCa } from './x509';

export type { SigningCa } from './x509';
export { CaMaterialError } from './x509';
export { CA_BUNDLE_FILE, CA_CERT_FILE, DEFAULT_CA_SECRET } from './ca-names';

export interface ProxyCa {
  /** Resolves when the first CA is in use. Embedded mode rejects when the given files are unusable. */
  readonly ready: Promise<void>;
  /** The CA in use; undefined until `ready` (Kubernetes mode: until the Secret is read or created). */
  current(): SigningCa | undefined;
  /** PEM of the CA certificate (public: served to clients and in configuration files). */
  caCertPem(): string | undefined;
  /** `fn` runs after every change of CA (first load and rotations); returns the unsubscribe. */
  onChange(fn: (ca: SigningCa) => void): () => void;
  /** Stops watching and retrying. */
  stop(): void;
}

/** Where the CA comes from; `onReload(ok)` counts loads for metrics. */
export interface ProxyCaOptions {
  readonly log: Logger;
  readonly onReload?: (ok: boolean) => void;
}


/** Holds the CA in use and tells listeners about changes. */
abstract class CaHolder implements ProxyCa {
  readonly ready: Promise<void>;
  protected resolveReady!: () => void;
  protected rejectReady!: (e: Error) => void;
  private ca: SigningCa | undefined;
  private readonly listeners = new Set<(ca: SigningCa) => void>();
  /** sha256 of the last cert+key text loaded: a repeated event of the same content is no change. */
  private loadedDigest = '';

  constructor(protected readonly opts: ProxyCaOptions) {
    this.ready = new Promise((resolve, reject) => { this.resolveReady = resolve; this.rejectReady = reject; });
    // A caller that never awaits `ready` must not crash the process on a rejection.
    this.ready.catch(() => undefined);
  }

  current(): SigningCa | undefined { return this.ca; }
  caCertPem(): string | undefined { return this.ca?.certPem; }

  onChange(fn: (ca: SigningCa) => void): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  abstract stop(): void;

  /**
   * Loads a PEM pair. Unchanged content: false. Unusable: logged, the previous CA kept, and the
   * CaMaterialError thrown (its message names where, never key bytes).
   */
  protected async use(certPem: string, keyPem: string, where: { cert: string; key: string }, origin: Record<string, string>): Promise<boolean> {
    const digest = createHash('sha256').update(certPem).update('\0').update(keyPem).digest('hex');
    if (digest === this.loadedDigest) return false;
    let ca: SigningCa;
    try {
      ca = await loadSigningCa(certPem, keyPem, where);
    } catch (e) {
      if (e instanceof CaMaterialError) this.failed(origin, e);
      throw e;
    }
    this.loadedDigest = digest;
    const rotated = this.ca !== undefined;
    this.ca = ca;
    this.opts.onReload?.(true);
    this.opts.log.info({ ...origin, subject: ca.cert.subject.replace(/\n/g, ', '), notAfter: ca.notAfter.toISOString(), fingerprint256: ca.id },
      rotated ? 'proxy CA rotated' : 'proxy CA loaded');
    this.resolveReady();
    for (const fn of this.listeners) fn(ca);
    return true;
  }

  protected failed(origin: Record<string, string>, e: CaMaterialError): void {
    this.opts.onReload?.(false);
    this.opts.log.error({ ...origin, err: e.message }, this.ca ? 'proxy CA not reloaded: keeping the previous one' : 'proxy CA unusable');
  }
}

/** The certificate block(s) and the private key block of a PEM text (a bundle holds both). */
function pemBlocks(text: string): { cert: string; key: string } {
  const blocks = text.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g) ?? [];
  return {
    cert: blocks.filter((b) => b.startsWith('-----BEGIN CERTIFICATE-----')).join('\n'),
    key: blocks.find((b) => /^-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/.test(b)) ?? '',
  };
}

/**
 * Embedded mode: `certFile` and `keyFile` (may be one file holding both), or, when neither
 * is given, `<dir>/proxy-ca.pem`, generated on the first start and reused after.
 */
export class FileProxyCa extends CaHolder {
  private readonly watchers: FSWatcher[] = [];
  readonly certFile: string;
  readonly keyFile: string;
  private stopped = false;

  constructor(files: { certFile?: string; keyFile?: string; dir: string; watch: boolean }, opts: ProxyCaOptions) {
    super(opts);
    if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
      throw new Error('--proxy-ca-cert and --proxy-ca-key go together (PROXY_CA_CERT, PROXY_CA_KEY)');
    }
    if (files.certFile !== undefined && files.keyFile !== undefined) {
      this.certFile = files.certFile;
      this.keyFile = files.keyFile;
    } else {
      this.certFile = this.keyFile = join(files.dir, CA_BUNDLE_FILE);
    }
    const generate = files.certFile === undefined ? files.dir : undefined;
    void this.start(generate, files.watch);
  }

  private async start(generateInto: string | undefined, watch: boolean): Promise<void> {
    try {
      if (generateInto !== undefined) await ensureGenerated(generateInto, this.opts.log);
      // Watching before the first read: an edit made right after `ready` is not missed.
      if (watch && !this.stopped) {
        for (const dir of new Set([dirname(this.certFile), dirname(this.keyFile)])) {
          this.watchers.push(watchPath(dir, false, () => { void this.reload().catch(() => undefined); }));
        }
      }
      await this.reload();
    } catch (e) {
      this.stop();
      this.rejectReady(e as Error);
    }
  }

  /** Reads the files again; throws CaMaterialError (already logged) when unusable. */
  async reload(): Promise<boolean> {
    const read = (file: string, what: string): string => {
      try {
        return readFileSync(file, 'utf8');
      } catch (e) {
        throw new CaMaterialError(`proxy CA ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    };
    const origin = { cert: this.certFile, key: this.keyFile };
    let cert: string;
    let key: string;
    try {
      cert = pemBlocks(read(this.certFile, 'certificate')).cert;
      key = pemBlocks(read(this.keyFile, 'key')).key;
    } catch (e) {
      this.failed(origin, e as CaMaterialError);
      throw e;
    }
    return this.use(cert, key, { cert: `proxy CA certificate ${this.certFile}`, key: `proxy CA key ${this.keyFile}` }, origin);
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
  }
}

/**
 * Makes `<dir>/proxy-ca.pem` unless it exists. Several processes may start at once on one
 * folder: each writes a private temporary file and hard-links it to the final name, which
 * fails for all but the first (EEXIST); readers see no file or a whole one.
 */
async function ensureGenerated(dir: string, log: Logger): Promise<void> {
  const bundle = join(dir, CA_BUNDLE_FILE);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let text: string;
  try {
    text = readFileSync(bundle, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new CaMaterialError(`proxy CA ${bundle}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    const { certPem, keyPem } = await generateCa(`connectors-proxy CA ${randomBytes(4).toString('hex')}`);
    const tmp = join(dir, `.${CA_BUNDLE_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
    writeFileSync(tmp, keyPem + certPem, { mode: 0o600, flag: 'wx' });
    try {
      linkSync(tmp, bundle);
      log.info({ file: bundle }, 'proxy CA generated');
    } catch (le) {
      if ((le as NodeJS.ErrnoException).code !== 'EEXIST') throw new CaMaterialError(`proxy CA ${bundle}: cannot write: ${(le as NodeJS.ErrnoException).code}`);
    } finally {
      rmSync(tmp, { force: true });
    }
    text = readFileSync(bundle, 'utf8');
  }
  // The certificate alone for clients (`--cacert`, GIT_SSL_CAINFO); derived, so rewritten freely.
  const cert = pemBlocks(text).cert;
  const certFile = join(dir, CA_CERT_FILE);
  let old = '';
  try { old = readFileSync(certFile, 'utf8'); } catch { /* not written yet */ }
  if (cert !== '' && old !== cert + '\n') {
    const tmp = `${certFile}.${process.pid}.tmp`;
    writeFileSync(tmp, cert + '\n', { mode: 0o644 });
    renameSync(tmp, certFile);
  }
}

const SECRET_CERT_KEY = 'tls.crt';
const SECRET_KEY_KEY = 'tls.key';
const RETRY_MS = { initial: 500, max: 30_000 };

/** Kubernetes mode: the `kubernetes.io/tls` Secret `namespace/name`, created when absent. */
export class KubeProxyCa extends CaHolder {
  private readonly reflector: Reflector<Secret>;
  private readonly path: string;
  /** Loads run one after another, in event order (each awaits WebCrypto). */
  private chain: Promise<unknown> = Promise.resolve();
  private creating = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = RETRY_MS.initial;
  private stopped = false;
  /** Creates sent (for tests: replicas agree without each creating one). */
  creates = 0;

  constructor(private readonly api: KubeWatchApi, readonly namespace: string, readonly name: string, opts: ProxyCaOptions) {
    super(opts);
    this.path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
    this.reflector = new Reflector<Secret>(api, {
      replace: (items) => {
        const s = items.find((i) => i.metadata.name === name);
        if (s) this.accept(s);
        else this.ensure();
      },
      upsert: (s) => this.accept(s),
      remove: () => {
        opts.log.warn({ secret: this.where }, 'proxy CA Secret deleted: creating a new CA (clients must trust the new certificate)');
        this.ensure();
      },
    }, opts.log, { name: 'proxy-ca-secret', path: this.path, query: `fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}` });
  }

  private get where(): string { return `${this.namespace}/${this.name}`; }

  start(): this {
    this.reflector.start();
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.reflector.stop();
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  private accept(s: Secret): void {
    const decode = (key: string): string => {
      const v = s.data?.[key];
      if (v === undefined || v === '') throw new CaMaterialError(`Secret ${this.where}: data["${key}"] is missing (expected a kubernetes.io/tls Secret with tls.crt and tls.key)`);
      return Buffer.from(v, 'base64').toString('utf8');
    };
    const origin = { secret: this.where, resourceVersion: s.metadata.resourceVersion ?? '' };
    this.chain = this.chain.then(async () => {
      if (this.stopped) return;
      let cert: string;
      let key: string;
      try {
        cert = decode(SECRET_CERT_KEY);
        key = decode(SECRET_KEY_KEY);
      } catch (e) {
        this.failed(origin, e as CaMaterialError);
        return;
      }
      await this.use(cert, key, { cert: `Secret ${this.where} data["${SECRET_CERT_KEY}"]`, key: `Secret ${this.where} data["${SECRET_KEY_KEY}"]` }, origin);
    }).catch((e: unknown) => {
      // `use` logged an unusable CA; the previous one stays. Anything else is logged here, and
      // the chain goes on with the next event either way.
      if (!(e instanceof CaMaterialError)) this.opts.log.error({ secret: this.where, err: (e as Error).message }, 'proxy CA not loaded');
    });
  }

  /** Creates the Secret with a new CA unless it exists (409: another replica's wins and is read). */
  private ensure(): void {
    if (this.creating || this.stopped) return;
    this.creating = true;
    void this.create().then(() => {
      this.retryMs = RETRY_MS.initial;
    }, (e: unknown) => {
      if (this.stopped) return;
      const wait = this.retryMs;
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MS.max);
      this.opts.log.warn({ secret: this.where, err: (e as Error).message, retryInMs: wait }, 'proxy CA Secret not created: retrying');
      this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.ensure(); }, wait);
      this.retryTimer.unref();
    }).finally(() => { this.creating = false; });
  }

  private async create(): Promise<void> {
    const { certPem, keyPem } = await generateCa(`connectors-proxy CA ${this.namespace}`);
    const body: Secret = {
      apiVersion: 'v1', kind: 'Secret',
      metadata: {
        name: this.name, namespace: this.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'connectors-proxy', 'app.kubernetes.io/component': 'proxy-ca' },
        annotations: { 'connectors.cpaas.io/description': 'CA of the connectors-proxy forward proxy (TLS interception). Clients trust tls.crt; edit both keys to rotate.' },
      },
      type: 'kubernetes.io/tls',
      data: { [SECRET_CERT_KEY]: Buffer.from(certPem).toString('base64'), [SECRET_KEY_KEY]: Buffer.from(keyPem).toString('base64') },
    };
    let stored: Secret;
    try {
      this.creates++;
      stored = await this.api.request<Secret>('POST', this.path, body);
      this.opts.log.info({ secret: this.where }, 'proxy CA generated and stored in its Secret');
    } catch (e) {
      if (!(e instanceof KubeApiError && e.status === 409)) throw e;
      stored = await this.api.request<Secret>('GET', `${this.path}/${encodeURIComponent(this.name)}`);
    }
    if (!this.stopped) this.accept(stored);
    await this.chain;
  }
}

/** What app.ts needs to choose and start the CA of this process. */
export interface ProxyCaSettings {
  readonly source: 'files' | 'kubernetes';
  readonly namespace: string;
  readonly proxyCa: { readonly secretName: string; readonly certFile?: string; readonly keyFile?: string; readonly dir: string };
  readonly watch: boolean;
}

/** The CA for this process: the Secret (Kubernetes source) or the files (files source). */
export function createProxyCa(cfg: ProxyCaSettings, opts: ProxyCaOptions & { kube?: KubeWatchApi }): ProxyCa {
  if (cfg.source === 'kubernetes' && cfg.proxyCa.certFile === undefined) {
    if (!opts.kube) throw new Error('createProxyCa: the kubernetes source needs a Kubernetes client');
    return new KubeProxyCa(opts.kube, cfg.namespace, cfg.proxyCa.secretName, opts).start();
  }
  return new FileProxyCa({ certFile: cfg.proxyCa.certFile, keyFile: cfg.proxyCa.keyFile, dir: cfg.proxyCa.dir, watch: cfg.watch }, opts);
}
