// The Service `c-<name>` per Connector whose class has `spec.proxy`: what makes the proxy
// address `http://c-<name>.<ns>.svc.cluster.local` resolve inside a Pod (the docs: "the
// system will automatically create a Service for proxying access").
//
// Each is an ExternalName Service: a DNS CNAME to the proxy's own Service (or to the Service
// the class's spec.proxy.ref names), no ClusterIP of its own and no endpoints to keep in step
// with the proxy's Pods (README "Kubernetes mode" says why). It carries the label
// app.kubernetes.io/managed-by=connectors-proxy and an owner reference to its Connector (a
// real cluster's garbage collector removes it with the Connector; this proxy removes it too,
// and when the class loses spec.proxy). A `c-<name>` Service without both is someone else's:
// it is never changed or deleted, and ProxyServiceReady says so.
//
// Every Service of the cluster is watched (a Service created by someone else must be seen
// before we create ours, and its deletion lets us create ours), stripped to the few fields
// read here. Only the elected leader writes; every replica keeps the picture current, so a new
// leader compares and writes only what differs. Writes carry preconditions: an update the
// resourceVersion read, a delete the uid and resourceVersion, so a Service replaced meanwhile
// by someone else's is never overwritten or deleted.
import type { Logger } from 'pino';
import { API_VERSION, objectKey, splitObjectKey, type Condition, type Connector, type ConnectorClass, type KubeService, type ObjectKey, type ServicePort } from '../types';
import { KubeApiError, type KubeWatchApi } from '../kube/client';
import type { ObjectStore } from '../sources/store';
import { Reflector } from '../sources/reflector';
import { KeyedWorkQueue } from '../util/work-queue';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGER = 'connectors-proxy';
/** The Connector a managed Service belongs to (when its name fits a label value). */
export const CONNECTOR_LABEL = 'connectors.alauda.io/connector';

export interface ServiceTargetOptions {
  /** The proxy's namespace. */
  readonly namespace: string;
  /** The proxy's own Service in that namespace (deploy/service.yaml). */
  readonly proxyService: string;
  /** The cluster's DNS domain, e.g. `cluster.local`. */
  readonly clusterDomain: string;
}

export interface ConnectorServicesOptions extends ServiceTargetOptions {
  /** Writes happen only while this is true (the leader). */
  readonly isLeader: () => boolean;
  /** Writes in flight at once (default 4). */
  readonly concurrency?: number;
  /** Called when a Connector's Service picture changed (the prober re-checks it). */
  readonly onChange?: () => void;
}

type Cond = Condition['status'];
const cond = (type: string, status: Cond, reason = '', message = ''): Condition => ({ type, status, reason, message });

const DNS_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `c-<name>`, or undefined when that is no valid Service name (a DNS label of at most 63 characters). */
export function serviceNameFor(connectorName: string): string | undefined {
  const n = `c-${connectorName}`;
  return DNS_LABEL.test(n) ? n : undefined;
}

/** The Service a class's Connectors point at: spec.proxy.ref (its namespace defaulting to the proxy's), else the proxy's own. */
export function proxyTarget(cls: ConnectorClass, o: ServiceTargetOptions): { namespace: string; name: string } {
  const ref = cls.spec.proxy?.ref;
  if (ref?.name) return { namespace: ref.namespace || o.namespace, name: ref.name };
  return { namespace: o.namespace, name: o.proxyService };
}

export function serviceFqdn(namespace: string, name: string, clusterDomain: string): string {
  return `${name}.${namespace}.svc.${clusterDomain}`;
}

/**
 * The host-name suffixes a Pod may put after `c-<name>.<namespace>`: the resolver domain, the
 * cluster's `svc.<cluster domain>`, `svc`, and nothing (`c-<name>.<ns>` through the Pod's DNS
 * search path). Longest first, so the longest match decides; for src/server/resolve.ts.
 */
export function podHostSuffixes(domain: string, clusterDomain: string): string[] {
  const norm = (d: string): string => d.toLowerCase().replace(/^\.+|\.+$/g, '');
  return [...new Set([norm(domain), `svc.${norm(clusterDomain)}`, 'svc', ''])].sort((a, b) => b.length - a.length);
}

const ownerOf = (svc: KubeService): { name: string; uid: string } | undefined =>
  svc.metadata.ownerReferences?.find((r) => r.kind === 'Connector' && r.apiVersion.startsWith('connectors.alauda.io/'));

/** Ours: the managed-by label and an owner reference to the Connector the name says. */
export function isManagedService(svc: KubeService): boolean {
  const owner = ownerOf(svc);
  return svc.metadata.labels?.[MANAGED_BY_LABEL] === MANAGER && owner !== undefined && svc.metadata.name === `c-${owner.name}`;
}

const samePorts = (a: readonly ServicePort[] | undefined, b: readonly ServicePort[] | undefined): boolean =>
  (a ?? []).length === (b ?? []).length && (a ?? []).every((p, i) => p.name === b![i]!.name && p.port === b![i]!.port && (p.protocol ?? 'TCP') === (b![i]!.protocol ?? 'TCP'));

/** What `c-<name>` should be for `c`, or undefined when it should not exist. */
export function desiredService(c: Connector, cls: ConnectorClass | undefined, o: ServiceTargetOptions, targetPorts?: readonly ServicePort[]): KubeService | undefined {
  if (cls?.spec.proxy == null) return undefined;
  const name = serviceNameFor(c.metadata.name);
  if (name === undefined || c.metadata.uid === undefined) return undefined;
  const t = proxyTarget(cls, o);
  const labels: Record<string, string> = { [MANAGED_BY_LABEL]: MANAGER, 'app.kubernetes.io/part-of': 'connectors' };
  if (DNS_LABEL.test(c.metadata.name)) labels[CONNECTOR_LABEL] = c.metadata.name;
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: {
      name, namespace: c.metadata.namespace, labels,
      ownerReferences: [{ apiVersion: API_VERSION, kind: 'Connector', name: c.metadata.name, uid: c.metadata.uid, controller: true }],
    },
    spec: {
      type: 'ExternalName',
      externalName: serviceFqdn(t.namespace, t.name, o.clusterDomain),
      // Informational for an ExternalName (clients use the target's ports): the target's, so
      // `kubectl get svc` tells which ports work.
      ...(targetPorts && targetPorts.length > 0 ? { ports: targetPorts.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol ?? 'TCP' })) } : {}),
    },
  };
}

/** True when `have` (ours) already is `want`. */
function upToDate(have: KubeService, want: KubeService): boolean {
  const owner = ownerOf(have);
  return have.spec?.type === 'ExternalName'
    && (have.spec.externalName ?? '').toLowerCase() === want.spec!.externalName
    && samePorts(have.spec.ports, want.spec!.ports)
    && Object.entries(want.metadata.labels ?? {}).every(([k, v]) => have.metadata.labels?.[k] === v)
    && owner?.uid === want.metadata.ownerReferences![0]!.uid;
}

/** Only what is read here: a cluster's Services can be many, and their annotations large. */
function strip(s: KubeService): KubeService {
  const m = s.metadata;
  return {
    metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, labels: m.labels, ownerReferences: m.ownerReferences },
    spec: { type: s.spec?.type, externalName: s.spec?.externalName, ports: s.spec?.ports?.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })) },
  };
}

export class ConnectorServices {
  /** Writes sent, by kind (tests, metrics). */
  readonly writes = { create: 0, update: 0, delete: 0 };
  private readonly services = new Map<ObjectKey, KubeService>();
  private readonly reflector: Reflector<KubeService>;
  private listed = false;
  private readonly queue: KeyedWorkQueue<ObjectKey>;
  private stopped = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The last write error per Connector (for ProxyServiceReady) and its retry count. */
  private readonly errors = new Map<ObjectKey, { message: string; attempts: number }>();
  private readonly retries = new Map<ObjectKey, NodeJS.Timeout>();

  constructor(
    private readonly api: KubeWatchApi,
    private readonly index: ObjectStore,
    private readonly log: Logger,
    private readonly opts: ConnectorServicesOptions,
  ) {
    this.queue = new KeyedWorkQueue((key) => this.reconcile(key), opts.concurrency ?? 4);
    this.reflector = new Reflector<KubeService>(api, {
      replace: (items) => {
        this.services.clear();
        for (const s of items) this.services.set(objectKey(s.metadata.namespace, s.metadata.name), strip(s));
        this.listed = true;
        this.changed();
        this.sweepSoon();
      },
      upsert: (s) => this.serviceEvent(s, false),
      remove: (s) => this.serviceEvent(s, true),
    }, log, { name: 'services', path: '/api/v1/services' });
    index.onChange(() => this.sweepSoon());
  }

  start(): void {
    this.reflector.start();
  }

  stop(): void {
    this.stopped = true;
    this.reflector.stop();
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    for (const t of this.retries.values()) clearTimeout(t);
    this.queue.stop();
  }

  /** The leader changed: a new leader compares everything and writes what differs. */
  leaderChanged(leading: boolean): void {
    if (leading) this.sweepSoon();
  }

  /** What the conditions of `c` depend on here (the prober re-checks when it changes). */
  version(c: Connector, cls: ConnectorClass | undefined): string {
    const name = serviceNameFor(c.metadata.name);
    const svc = name === undefined ? undefined : this.services.get(objectKey(c.metadata.namespace, name));
    const t = cls && proxyTarget(cls, this.opts);
    const target = t && this.services.get(objectKey(t.namespace, t.name));
    return `${this.listed ? 1 : 0}:${svc ? svc.metadata.resourceVersion : '-'}:${target ? target.metadata.resourceVersion : '-'}:${this.errors.get(objectKey(c.metadata.namespace, c.metadata.name))?.message ?? ''}`;
  }

  classVersion(cls: ConnectorClass): string {
    const t = proxyTarget(cls, this.opts);
    return `${this.listed ? 1 : 0}:${this.services.get(objectKey(t.namespace, t.name))?.metadata.resourceVersion ?? '-'}`;
  }

  /** ProxyServiceReady of a Connector whose class has spec.proxy. */
  connectorCondition(c: Connector, cls: ConnectorClass): Condition {
    const T = 'ProxyServiceReady';
    const name = serviceNameFor(c.metadata.name);
    if (name === undefined) {
      return cond(T, 'False', 'InvalidServiceName', `"c-${c.metadata.name}" is not a valid Service name (at most 63 lower-case letters, digits and '-'): this Connector is reachable only in the path form`);
    }
    const where = `${c.metadata.namespace}/${name}`;
    if (!this.listed) return cond(T, 'Unknown', 'Checking', 'Services not listed yet');
    const svc = this.services.get(objectKey(c.metadata.namespace, name));
    if (svc === undefined) {
      const err = this.errors.get(objectKey(c.metadata.namespace, c.metadata.name));
      return err ? cond(T, 'False', 'ServiceNotCreated', `Service ${where} not created: ${err.message}`) : cond(T, 'Unknown', 'Creating', `creating Service ${where}`);
    }
    if (!isManagedService(svc)) {
      return cond(T, 'False', 'ServiceConflict', `Service ${where} exists and is not managed by ${MANAGER} (label ${MANAGED_BY_LABEL}=${MANAGER} and an owner reference to this Connector): it is left alone; delete or rename it so that the proxy can create its own`);
    }
    const want = desiredService(c, cls, this.opts, this.targetPorts(cls));
    if (want === undefined || !upToDate(svc, want)) {
      const err = this.errors.get(objectKey(c.metadata.namespace, c.metadata.name));
      return err ? cond(T, 'False', 'ServiceNotUpdated', `Service ${where} not updated: ${err.message}`) : cond(T, 'Unknown', 'Updating', `updating Service ${where}`);
    }
    const t = proxyTarget(cls, this.opts);
    if (!this.services.has(objectKey(t.namespace, t.name))) {
      return cond(T, 'False', 'ProxyServiceNotFound', `Service ${t.name} not found in namespace ${t.namespace} (Service ${where} points at it)`);
    }
    return cond(T, 'True', '', `Service ${where} points at ${want.spec!.externalName}`);
  }

  /** ProxyReady of a class whose spec.proxy names a Service; undefined when it names none (a uri). */
  classCondition(cls: ConnectorClass): Condition | undefined {
    if (!cls.spec.proxy?.ref?.name) return undefined;
    const T = 'ProxyReady';
    if (!this.listed) return cond(T, 'Unknown', 'Checking', 'Services not listed yet');
    const t = proxyTarget(cls, this.opts);
    if (!this.services.has(objectKey(t.namespace, t.name))) return cond(T, 'False', 'ProxyServiceNotFound', `Service ${t.name} not found in namespace ${t.namespace}`);
    const own = t.namespace === this.opts.namespace && t.name === this.opts.proxyService;
    return cond(T, 'True', '', `Service ${t.namespace}/${t.name} exists${own ? " (this proxy's own Service)" : ''}`);
  }

  private targetPorts(cls: ConnectorClass): readonly ServicePort[] | undefined {
    const t = proxyTarget(cls, this.opts);
    return this.services.get(objectKey(t.namespace, t.name))?.spec?.ports;
  }

  private serviceEvent(s: KubeService, removed: boolean): void {
    const key = objectKey(s.metadata.namespace, s.metadata.name);
    if (removed) this.services.delete(key);
    else this.services.set(key, strip(s));
    this.changed();
    if (s.metadata.name.startsWith('c-')) this.enqueue(objectKey(s.metadata.namespace, s.metadata.name.slice(2)));
    // A proxy Service's ports (or existence) matter to every Service pointing at it.
    else this.sweepSoon();
  }

  private changed(): void {
    this.opts.onChange?.();
  }

  /** Compares every Connector with its Service (in memory) shortly after a burst of changes. */
  private sweepSoon(): void {
    if (this.stopped || this.sweepTimer !== undefined) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweep();
    }, 50);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    if (!this.listed || !this.index.ready || !this.opts.isLeader()) return;
    for (const c of this.index.allConnectors()) {
      const cls = this.index.connectorClass(c.spec.connectorClassName);
      const want = desiredService(c, cls, this.opts, cls && this.targetPorts(cls));
      const name = serviceNameFor(c.metadata.name);
      const have = name === undefined ? undefined : this.services.get(objectKey(c.metadata.namespace, name));
      const ok = want === undefined ? !(have && isManagedService(have)) : have !== undefined && (!isManagedService(have) || upToDate(have, want));
      if (!ok) this.enqueue(objectKey(c.metadata.namespace, c.metadata.name));
    }
    // Ours whose Connector is gone.
    for (const svc of this.services.values()) {
      if (!isManagedService(svc)) continue;
      const owner = ownerOf(svc)!;
      if (this.index.connector(svc.metadata.namespace, owner.name) === undefined) this.enqueue(objectKey(svc.metadata.namespace, owner.name));
    }
  }

  private enqueue(key: ObjectKey): void {
    if (this.stopped || !this.listed || !this.index.ready) return;
    this.queue.add(key);
  }

  /** Deletes the Service as this replica last saw it (preconditions: a newer one is not deleted). */
  private async deleteService(path: string, have: KubeService): Promise<void> {
    this.writes.delete++;
    await this.api.request('DELETE', `${path}/${encodeURIComponent(have.metadata.name)}`, {
      apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: have.metadata.uid, resourceVersion: have.metadata.resourceVersion },
    });
    this.services.delete(objectKey(have.metadata.namespace, have.metadata.name));
  }

  private async reconcile(key: ObjectKey): Promise<void> {
    if (!this.opts.isLeader()) return;
    const [ns, connectorName] = splitObjectKey(key);
    const name = serviceNameFor(connectorName);
    if (name === undefined) return;
    const c = this.index.connector(ns, connectorName);
    const cls = c && this.index.connectorClass(c.spec.connectorClassName);
    const want = c && desiredService(c, cls, this.opts, cls && this.targetPorts(cls));
    const have = this.services.get(objectKey(ns, name));
    const path = `/api/v1/namespaces/${encodeURIComponent(ns)}/services`;
    const what = `Service ${ns}/${name}`;
    try {
      if (want === undefined) {
        if (have === undefined || !isManagedService(have)) return this.settled(key);
        await this.deleteService(path, have);
        this.log.info({ service: `${ns}/${name}`, reason: c === undefined ? 'Connector deleted' : 'ConnectorClass without spec.proxy' }, 'Connector Service deleted');
      } else if (have === undefined) {
        this.writes.create++;
        const created = await this.api.request<KubeService>('POST', path, want);
        this.services.set(objectKey(ns, name), strip(created));
        this.log.info({ service: `${ns}/${name}`, externalName: want.spec!.externalName }, 'Connector Service created');
      } else if (!isManagedService(have)) {
        return this.settled(key); // someone else's: ProxyServiceReady=False/ServiceConflict
      } else if (!upToDate(have, want)) {
        if (have.spec?.type !== 'ExternalName') {
          // Turned into another type by hand: a type change needs fields cleared that a patch
          // cannot always clear, so delete it (with preconditions) and create it anew.
          await this.deleteService(path, have);
          this.enqueue(key);
          return;
        }
        this.writes.update++;
        const others = (have.metadata.ownerReferences ?? []).filter((r) => r.kind !== 'Connector');
        const patched = await this.api.request<KubeService>('PATCH', `${path}/${encodeURIComponent(name)}`, {
          metadata: { resourceVersion: have.metadata.resourceVersion, labels: want.metadata.labels, ownerReferences: [...want.metadata.ownerReferences!, ...others] },
          spec: { type: 'ExternalName', externalName: want.spec!.externalName, ports: want.spec!.ports ?? null },
        }, 'application/merge-patch+json');
        this.services.set(objectKey(ns, name), strip(patched));
        this.log.info({ service: `${ns}/${name}`, externalName: want.spec!.externalName }, 'Connector Service updated');
      }
      this.settled(key);
    } catch (e) {
      if (e instanceof KubeApiError && (e.status === 409 || e.status === 404)) {
        // Someone else's appeared, or ours changed or vanished meanwhile: the watch brings the
        // current object; look again then.
        this.retry(key, 500);
        return;
      }
      const prev = this.errors.get(key);
      const attempts = (prev?.attempts ?? 0) + 1;
      this.errors.set(key, { message: (e as Error).message, attempts });
      if (prev?.message !== (e as Error).message) this.changed();
      const wait = Math.min(30_000, 1000 * 2 ** (attempts - 1));
      this.log.warn({ service: `${ns}/${name}`, err: (e as Error).message, retryInMs: wait }, `${what} not written: retrying`);
      this.retry(key, wait);
    }
  }

  private settled(key: ObjectKey): void {
    if (this.errors.delete(key)) this.changed();
  }

  private retry(key: ObjectKey, ms: number): void {
    if (this.retries.has(key)) return;
    const t = setTimeout(() => {
      this.retries.delete(key);
      this.enqueue(key);
    }, ms);
    t.unref();
    this.retries.set(key, t);
  }
}
