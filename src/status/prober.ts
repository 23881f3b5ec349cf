// Runs the status checks: every Connector and ConnectorClass again each interval (with
// jitter, so 10,000 Connectors do not probe their tools in the same second), at most
// `concurrency` at once, and at once when the object, its class or its Secret changed.
// Results go to a sink: the API server's status subresource in Kubernetes mode, memory
// (the ops server's /status) in embedded mode. A sink is told only about changes.
import type { Logger } from 'pino';
import { objectKey, type Condition, type Connector, type ConnectorClass } from '../types';
import type { ObjectStore } from '../sources/store';
import { classConditions, connectorConditions, type CheckOptions } from './conditions';

export interface ObjectStatus {
  readonly kind: 'Connector' | 'ConnectorClass';
  readonly namespace?: string;
  readonly name: string;
  /** The object's uid, for Events about it. */
  readonly uid?: string;
  readonly conditions: Condition[];
  /** ConnectorClass only: `status.api.address.url`. */
  readonly apiUrl?: string;
  /** ConnectorClass only: `status.proxy.httpAddress.url`. */
  readonly proxyUrl?: string;
  /** Warning Events this change raises (Kubernetes mode records them on the object). */
  readonly events?: readonly StatusEvent[];
}

export interface StatusEvent {
  readonly type: 'Warning';
  readonly reason: string;
  readonly message: string;
}

/** connector.mdx: a CACertReady=False comes with a Warning Event of this reason. */
const CA_EVENT_REASONS: Readonly<Record<string, string>> = { SecretNotFound: 'CACertSecretNotFound', InvalidPEM: 'InvalidCACert' };

/** The Warning Events of a change from `prev` to `next`: CACertReady turning False (or False for another reason). */
export function warningEvents(prev: readonly Condition[] | undefined, next: readonly Condition[]): StatusEvent[] {
  const now = next.find((c) => c.type === 'CACertReady');
  if (now === undefined || now.status !== 'False') return [];
  const before = prev?.find((c) => c.type === 'CACertReady');
  if (before !== undefined && before.status === 'False' && before.reason === now.reason) return [];
  const reason = CA_EVENT_REASONS[now.reason ?? ''];
  return reason === undefined ? [] : [{ type: 'Warning', reason, message: now.message ?? '' }];
}

export interface StatusSink {
  /** False when it could not be written (it is tried again next round). */
  write(s: ObjectStatus): Promise<boolean>;
}

/** Embedded mode: statuses live in the prober's snapshot only. */
export const MEMORY_SINK: StatusSink = { write: async () => true };

export interface ProberOptions extends CheckOptions {
  readonly intervalMs: number;
  readonly concurrency: number;
  /** More that an object's checks depend on (its c-<name> Service): a change makes it due now. */
  readonly fingerprint?: (o: Connector | ConnectorClass) => string;
}

interface Entry {
  fingerprint: string;
  due: number;
  last?: ObjectStatus;
}

const sameConditions = (a: readonly Condition[], b: readonly Condition[]): boolean =>
  a.length === b.length && a.every((c, i) => c.type === b[i]!.type && c.status === b[i]!.status && (c.reason ?? '') === (b[i]!.reason ?? '') && (c.message ?? '') === (b[i]!.message ?? ''));

/** Keeps lastTransitionTime where a condition's status did not change. */
function stamp(now: string, next: Condition[], prev: readonly Condition[] | undefined): Condition[] {
  return next.map((c) => {
    const before = prev?.find((p) => p.type === c.type);
    return { ...c, lastTransitionTime: before !== undefined && before.status === c.status && before.lastTransitionTime ? before.lastTransitionTime : now };
  });
}

export class StatusProber {
  private readonly entries = new Map<string, Entry>();
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<string>();

  constructor(
    private readonly index: ObjectStore,
    private readonly sink: StatusSink,
    private readonly log: Logger,
    private readonly opts: ProberOptions,
  ) {}

  start(): void {
    // Started again (a replica leading again): another leader may have written meanwhile, so
    // compare with what the objects carry now, not with what this replica last wrote.
    this.entries.clear();
    this.timer = setInterval(() => this.tick(), 250);
    this.timer.unref();
    this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The last computed status of every object (embedded mode's view). */
  snapshot(): ObjectStatus[] {
    return [...this.entries.values()].flatMap((e) => (e.last ? [e.last] : []));
  }

  private jitter(): number {
    return this.opts.intervalMs * (0.9 + Math.random() * 0.2);
  }

  /** What the checks of an object depend on; a change makes it due now. */
  private connectorFingerprint(c: Connector): string {
    const cls = this.index.connectorClass(c.spec.connectorClassName);
    const ref = c.spec.auth?.secretRef;
    const secret = ref ? this.index.secret(ref.namespace ?? c.metadata.namespace, ref.name) : undefined;
    // The CA Secret too: CACertReady changes when it appears or is edited.
    const caName = c.spec.caCertSecretRef?.name;
    const ca = caName ? this.index.secret(c.metadata.namespace, caName) : undefined;
    const sv = (s: typeof secret): string => (s ? version(s, () => s.metadata.resourceVersion ?? JSON.stringify(s.data)) : '-');
    // And the flag that turns CACertReady on and off.
    const caFlag = this.opts.customCaCerts?.() === true ? 'ca' : '';
    return `${version(c, () => c.metadata.generation ?? JSON.stringify(c.spec))}|${cls ? classVersion(cls) : '-'}|${sv(secret)}|${sv(ca)}|${caFlag}|${this.opts.fingerprint?.(c) ?? ''}`;
  }

  private tick(): void {
    if (!this.index.ready) return;
    const now = Date.now();
    const seen = new Set<string>();
    const due: Array<() => Promise<void>> = [];
    const consider = (key: string, fingerprint: string, run: () => Promise<ObjectStatus>): void => {
      seen.add(key);
      let e = this.entries.get(key);
      if (e === undefined) this.entries.set(key, e = { fingerprint: '', due: 0 });
      if (e.fingerprint !== fingerprint) { e.fingerprint = fingerprint; e.due = 0; }
      if (e.due > now || this.inFlight.has(key)) return;
      const entry = e;
      this.inFlight.add(key);
      due.push(async () => {
        try {
          entry.due = Date.now() + this.jitter();
          const next = await run();
          const prev = entry.last;
          if (prev !== undefined && sameConditions(prev.conditions, next.conditions) && prev.apiUrl === next.apiUrl && prev.proxyUrl === next.proxyUrl) return;
          const stored = this.stored(next);
          const events = warningEvents(prev?.conditions ?? stored, next.conditions);
          entry.last = { ...next, conditions: stamp(new Date().toISOString(), next.conditions, prev?.conditions ?? stored), ...(events.length > 0 ? { events } : {}) };
          // After a restart the API server may already say so: no write.
          if (prev === undefined && stored !== undefined && sameConditions(stored, next.conditions) && this.storedUrls(next)) return;
          for (const ev of events) this.log.warn({ object: next.namespace ? `${next.namespace}/${next.name}` : next.name, kind: next.kind, reason: ev.reason }, ev.message);
          if (!(await this.sink.write(entry.last))) {
            entry.last = prev;
            entry.due = Date.now() + Math.min(this.opts.intervalMs, 10_000);
          }
        } finally {
          this.inFlight.delete(key);
        }
      });
    };
    for (const cls of this.index.allClasses()) {
      consider(`class/${cls.metadata.name}`, `${classVersion(cls)}|${this.opts.fingerprint?.(cls) ?? ''}`, async () => {
        const r = await classConditions(cls, this.opts);
        return { kind: 'ConnectorClass', name: cls.metadata.name, conditions: r.conditions, apiUrl: r.apiUrl, proxyUrl: r.proxyUrl };
      });
    }
    for (const c of this.index.allConnectors()) {
      consider(objectKey(c.metadata.namespace, c.metadata.name), this.connectorFingerprint(c), async () => ({
        kind: 'Connector', namespace: c.metadata.namespace, name: c.metadata.name, uid: c.metadata.uid,
        conditions: await connectorConditions(c, this.index, this.opts),
      }));
    }
    for (const key of this.entries.keys()) if (!seen.has(key) && !this.inFlight.has(key)) this.entries.delete(key);
    this.queue.push(...due);
    this.drain();
  }

  private readonly queue: Array<() => Promise<void>> = [];

  private drain(): void {
    while (this.running < this.opts.concurrency && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running++;
      job().catch((e: Error) => this.log.warn({ err: e.message }, 'status check failed')).finally(() => {
        this.running--;
        this.drain();
      });
    }
  }

  /** Whether a class carries the addresses computed now (always true for a Connector). */
  private storedUrls(s: ObjectStatus): boolean {
    if (s.kind !== 'ConnectorClass') return true;
    const st = this.index.connectorClass(s.name)?.status;
    return st?.api?.address?.url === s.apiUrl && st?.proxy?.httpAddress?.url === s.proxyUrl;
  }

  /** The conditions the object carries now (from the API server or the manifests). */
  private stored(s: ObjectStatus): Condition[] | undefined {
    if (s.kind === 'ConnectorClass') return this.index.connectorClass(s.name)?.status?.conditions;
    return this.index.connector(s.namespace!, s.name)?.status?.conditions;
  }
}

// Every tick fingerprints every object; objects are replaced, never mutated, on change, so
// a version computed once per object (a JSON text for manifests, which carry no
// generation or resourceVersion) serves every later tick.
const versions = new WeakMap<object, string>();
function version(obj: object, compute: () => string | number): string {
  let v = versions.get(obj);
  if (v === undefined) versions.set(obj, v = String(compute()));
  return v;
}

function classVersion(cls: ConnectorClass): string {
  return version(cls, () => cls.metadata.generation ?? JSON.stringify(cls.spec));
}
