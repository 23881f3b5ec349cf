// Kubernetes mode's source: reflectors for ConnectorClasses and Connectors (cluster-wide)
// and Secrets, feeding the same ObjectStore the manifest folder feeds. Of the Secrets,
// only those a Connector references are kept: a cluster's Secrets (Helm releases,
// ServiceAccount tokens) can be hundreds of megabytes. A Secret that becomes referenced
// after the first sync is fetched once with a GET; from then on the watch keeps it current.
import type { Logger } from 'pino';
import { API_VERSION, objectKey, splitObjectKey, type Connector, type ConnectorClass, type ObjectKey, type Secret } from '../types';
import { KubeApiError, type KubeWatchApi } from '../kube/client';
import type { ObjectStore } from './store';
import { Reflector, type ReflectorOptions } from './reflector';
import { isGlobalCaSecret } from '../tls/ca-trust';

export interface KubeSourceOptions {
  /** Called for every Connector added or changed, and for all of a class's on a class change. */
  readonly onConnector?: (c: Connector) => void;
  /** Restarts of a watch loop, by resource and reason (metrics). */
  readonly onRestart?: (resource: string, reason: string) => void;
  /**
   * The proxy's namespace when custom CAs are on: its Secrets labelled
   * connectors.cpaas.io/ca-cert="true" are kept too (the global CA Secrets).
   */
  readonly caNamespace?: string;
  /**
   * Keep Secrets a Connector names in another namespace (--allow-cross-namespace-secrets);
   * otherwise the index refuses them anyway, so they are not watched or held.
   */
  readonly allowCrossNamespaceSecrets?: boolean;
  /** Overrides for the reflectors (tests). */
  readonly reflector?: Pick<ReflectorOptions, 'watchTimeoutSeconds' | 'backoffMs' | 'pageSize'>;
}

const GROUP_PATH = `/apis/${API_VERSION}`;

/** The Secrets a Connector needs: its auth Secret (unless in another namespace and not allowed) and its CA Secret. */
export function referencedSecrets(c: Connector, crossNamespace = true): ObjectKey[] {
  const out: ObjectKey[] = [];
  const ns = c.metadata.namespace;
  const auth = c.spec?.auth?.secretRef;
  if (auth?.name && (crossNamespace || !auth.namespace || auth.namespace === ns)) out.push(objectKey(auth.namespace || ns, auth.name));
  const ca = c.spec?.caCertSecretRef?.name;
  if (ca) out.push(objectKey(ns, ca));
  return out;
}

export class KubeSource {
  private readonly classes: Reflector<ConnectorClass>;
  private readonly connectors: Reflector<Connector>;
  private readonly secrets: Reflector<Secret>;
  /** Secret → how many Connector references it has. */
  private readonly refCount = new Map<ObjectKey, number>();
  /** Connector → the Secrets it references (to undo its counts on change or delete). */
  private readonly refsOf = new Map<ObjectKey, readonly ObjectKey[]>();
  /** Secrets being fetched, and whether a DELETED event came meanwhile. */
  private readonly fetching = new Map<ObjectKey, { deleted: boolean }>();
  private secretsSynced = false;
  private stopped = false;

  constructor(
    private readonly api: KubeWatchApi,
    private readonly index: ObjectStore,
    private readonly log: Logger,
    private readonly opts: KubeSourceOptions = {},
  ) {
    const reflect = <T extends ConnectorClass | Connector | Secret>(name: string, path: string, handler: ConstructorParameters<typeof Reflector<T>>[1]): Reflector<T> =>
      new Reflector<T>(api, handler, log, {
        name, path, ...opts.reflector,
        onRestart: (reason) => opts.onRestart?.(name, reason),
        // The API server is back: the other loops need not sleep out their backoff.
        onRecovered: () => { for (const r of [this.classes, this.connectors, this.secrets]) r?.retryNow(); },
      });

    this.classes = reflect<ConnectorClass>('connectorclasses', `${GROUP_PATH}/connectorclasses`, {
      replace: (items) => {
        index.replaceKind('ConnectorClass', items.map((o) => withKind(o, 'ConnectorClass', API_VERSION)));
        this.announceAll();
      },
      upsert: (o) => {
        index.upsert(withKind(o, 'ConnectorClass', API_VERSION));
        this.announceClass(o.metadata.name);
      },
      remove: (o) => {
        index.remove('ConnectorClass', '', o.metadata.name);
        this.announceClass(o.metadata.name);
      },
    });
    this.connectors = reflect<Connector>('connectors', `${GROUP_PATH}/connectors`, {
      replace: (items) => {
        const all = items.map((o) => withKind(o, 'Connector', API_VERSION));
        index.replaceKind('Connector', all);
        this.recountReferences(all);
        this.announceAll();
      },
      upsert: (o) => {
        const c = withKind(o, 'Connector', API_VERSION);
        this.reference(objectKey(c.metadata.namespace, c.metadata.name), referencedSecrets(c, this.opts.allowCrossNamespaceSecrets === true));
        index.upsert(c);
        opts.onConnector?.(c);
      },
      remove: (o) => {
        this.reference(objectKey(o.metadata.namespace, o.metadata.name), []);
        index.remove('Connector', o.metadata.namespace, o.metadata.name);
      },
    });
    this.secrets = reflect<Secret>('secrets', '/api/v1/secrets', {
      replace: (items) => {
        index.replaceKind('Secret', items.filter((s) => this.isReferenced(s)).map((s) => withKind(s, 'Secret', 'v1')));
      },
      upsert: (s) => {
        if (this.isReferenced(s)) index.upsert(withKind(s, 'Secret', 'v1'));
        else this.dropSecret(objectKey(s.metadata.namespace, s.metadata.name)); // e.g. its CA label was removed
      },
      remove: (s) => {
        const key = objectKey(s.metadata.namespace, s.metadata.name);
        const pending = this.fetching.get(key);
        if (pending) pending.deleted = true;
        this.dropSecret(key);
      },
    });
  }

  /**
   * Starts the watches; resolves after the first complete sync (then the index is ready).
   * Secrets are listed after Connectors, so the list keeps exactly the referenced ones.
   */
  async start(): Promise<void> {
    const started = Date.now();
    this.classes.start();
    this.connectors.start();
    await Promise.all([this.classes.synced, this.connectors.synced]);
    if (this.stopped) return;
    this.secrets.start();
    await this.secrets.synced;
    this.secretsSynced = true;
    // References added while Secrets were being listed.
    for (const key of this.refCount.keys()) void this.fetchIfMissing(key);
    this.index.markSynced();
    const counts = this.index.counts();
    this.log.info({ ...counts, syncMs: Date.now() - started }, 'Kubernetes resources synced');
  }

  stop(): void {
    this.stopped = true;
    this.classes.stop();
    this.connectors.stop();
    this.secrets.stop();
  }

  /** Lists done per resource (a relist after 410 Gone adds one). */
  get lists(): { connectorclasses: number; connectors: number; secrets: number } {
    return { connectorclasses: this.classes.lists, connectors: this.connectors.lists, secrets: this.secrets.lists };
  }

  private isReferenced(s: Secret): boolean {
    const ns = this.opts.caNamespace;
    return this.refCount.has(objectKey(s.metadata.namespace, s.metadata.name)) || (ns !== undefined && isGlobalCaSecret(s, ns));
  }

  /** Sets a Connector's references, dropping Secrets nobody references any more. */
  private reference(connector: ObjectKey, refs: readonly ObjectKey[]): void {
    const before = this.refsOf.get(connector) ?? [];
    if (before.length === refs.length && before.every((r, i) => r === refs[i])) return;
    for (const r of refs) {
      const n = this.refCount.get(r) ?? 0;
      this.refCount.set(r, n + 1);
      if (n === 0) void this.fetchIfMissing(r);
    }
    for (const r of before) this.unreference(r);
    if (refs.length > 0) this.refsOf.set(connector, refs);
    else this.refsOf.delete(connector);
  }

  private unreference(secret: ObjectKey): void {
    const n = (this.refCount.get(secret) ?? 0) - 1;
    if (n > 0) {
      this.refCount.set(secret, n);
      return;
    }
    this.refCount.delete(secret);
    this.release(secret);
  }

  /** Drops a Secret no Connector references any more, unless it is a global CA Secret. */
  private release(key: ObjectKey): void {
    const [ns, name] = splitObjectKey(key);
    const held = this.index.secret(ns, name);
    if (held !== undefined && !this.isReferenced(held)) this.index.remove('Secret', ns, name);
  }

  /** Forgets a Secret (a no-op, with no index rebuild, when it is not held). */
  private dropSecret(key: ObjectKey): void {
    const [ns, name] = splitObjectKey(key);
    if (this.index.secret(ns, name) !== undefined) this.index.remove('Secret', ns, name);
  }

  private recountReferences(all: readonly Connector[]): void {
    const old = new Set(this.refCount.keys());
    this.refCount.clear();
    this.refsOf.clear();
    for (const c of all) {
      const refs = referencedSecrets(c, this.opts.allowCrossNamespaceSecrets === true);
      if (refs.length === 0) continue;
      this.refsOf.set(objectKey(c.metadata.namespace, c.metadata.name), refs);
      for (const r of refs) this.refCount.set(r, (this.refCount.get(r) ?? 0) + 1);
    }
    for (const r of old) if (!this.refCount.has(r)) this.release(r);
    for (const r of this.refCount.keys()) if (!old.has(r)) void this.fetchIfMissing(r);
  }

  /** A Secret referenced after the Secrets were listed: GET it once; the watch does the rest. */
  private async fetchIfMissing(key: ObjectKey, attempt = 0): Promise<void> {
    if (!this.secretsSynced || this.stopped || this.fetching.has(key)) return;
    const [ns, name] = splitObjectKey(key);
    if (this.index.secret(ns, name) !== undefined) return;
    const state = { deleted: false };
    this.fetching.set(key, state);
    let s: Secret;
    try {
      s = await this.api.request<Secret>('GET', `/api/v1/namespaces/${encodeURIComponent(ns)}/secrets/${encodeURIComponent(name)}`);
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) { // created later: the watch brings it
        this.fetching.delete(key);
        return;
      }
      // Still "fetching" until the retry, so no other reference starts a second GET meanwhile.
      const wait = Math.min(30_000, 500 * 2 ** attempt);
      this.log.warn({ secret: key, err: (e as Error).message, retryInMs: wait }, 'Secret not fetched: retrying');
      setTimeout(() => {
        this.fetching.delete(key);
        if (this.refCount.has(key)) void this.fetchIfMissing(key, attempt + 1);
      }, wait).unref();
      return;
    }
    this.fetching.delete(key);
    // A watch event that came meanwhile is newer than this answer: it wins.
    if (!state.deleted && this.refCount.has(key) && this.index.secret(ns, name) === undefined) {
      delete (s.metadata as { managedFields?: unknown }).managedFields;
      this.index.upsert(withKind(s, 'Secret', 'v1'));
    }
  }

  private announceClass(className: string): void {
    const fn = this.opts.onConnector;
    if (fn === undefined) return;
    for (const c of this.index.allConnectors()) if (c.spec.connectorClassName === className) fn(c);
  }

  private announceAll(): void {
    const fn = this.opts.onConnector;
    if (fn === undefined || this.connectors.lists === 0) return;
    for (const c of this.index.allConnectors()) fn(c);
  }
}

/** API objects in lists carry no kind; the index (and the manifests) expect one. */
function withKind<T extends ConnectorClass | Connector | Secret>(o: T, kind: T['kind'], apiVersion: string): T {
  o.kind = kind;
  (o as { apiVersion: string }).apiVersion = apiVersion;
  return o;
}
