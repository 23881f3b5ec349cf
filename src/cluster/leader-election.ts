// One writer among replicas: leader election on a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection package does it. Every replica serves traffic; only the holder of the Lease
// writes the c-<name> Services and status. A follower takes the Lease once the holder has not
// renewed it for leaseDurationSeconds, measured on the follower's own clock from when it last
// saw the record change (so clock skew between nodes does not matter). The leader gives up
// writing when it could not renew for the renew deadline (2/3 of the duration), before anyone
// else may take over; on shutdown it releases the Lease so a follower takes over at once.
// Every update carries the resourceVersion read: of two replicas racing, one gets 409.
import type { Logger } from 'pino';
import type { Lease } from '../types';
import { KubeApiError, type KubeApi } from '../kube/client';

export interface LeaderElectionOptions {
  readonly namespace: string;
  readonly name: string;
  /** This replica's identity (holderIdentity): unique per process. */
  readonly identity: string;
  readonly leaseDurationSeconds: number;
}

/** What the ops `/status` shows. */
export interface LeaderState {
  readonly identity: string;
  readonly leader: boolean;
  /** The holder this replica last saw ('' when none). */
  readonly holder: string;
  readonly lease: string;
}

/** MicroTime: RFC 3339 with six fraction digits (the API server refuses three). */
const microTime = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElector {
  private leading = false;
  private observedRecord = '';
  private observedAt = 0;
  private observedHolder = '';
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly listeners: Array<(leading: boolean) => void> = [];
  private readonly path: string;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;

  constructor(private readonly api: KubeApi, private readonly opts: LeaderElectionOptions, private readonly log: Logger) {
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(opts.namespace)}/leases`;
    this.leaseMs = opts.leaseDurationSeconds * 1000;
    // client-go's defaults are 15 s / 10 s / 2 s: the same proportions, retries at least every
    // 2 s (a long Lease must not make a follower notice a released one late).
    this.renewDeadlineMs = Math.round(this.leaseMs * 2 / 3);
    this.retryMs = Math.min(2_000, Math.max(200, Math.round(this.leaseMs * 2 / 15)));
  }

  /** True while this replica holds the Lease: check right before each write. */
  get isLeader(): boolean {
    return this.leading;
  }

  state(): LeaderState {
    return { identity: this.opts.identity, leader: this.leading, holder: this.leading ? this.opts.identity : this.observedHolder, lease: `${this.opts.namespace}/${this.opts.name}` };
  }

  /** Called with true when this replica becomes the leader, false when it stops being it. */
  onChange(fn: (leading: boolean) => void): void {
    this.listeners.push(fn);
  }

  start(): void {
    this.schedule(0);
  }

  /** Stops electing; a leader releases the Lease (a follower then takes over without waiting). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (!this.leading) return;
    this.setLeading(false);
    try {
      const lease = await this.api.request<Lease>('GET', `${this.path}/${encodeURIComponent(this.opts.name)}`);
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      const now = Date.now();
      await this.api.request('PUT', `${this.path}/${encodeURIComponent(this.opts.name)}`, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(now), acquireTime: microTime(now) },
      });
      this.log.info({ lease: `${this.opts.namespace}/${this.opts.name}` }, 'leader Lease released');
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'leader Lease not released: another replica takes over when it expires');
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round().finally(() => {
        this.running = undefined;
        this.schedule(this.retryMs);
      });
    }, ms);
    this.timer.unref();
  }

  private setLeading(v: boolean): void {
    if (v === this.leading) return;
    this.leading = v;
    this.log.info({ identity: this.opts.identity, lease: `${this.opts.namespace}/${this.opts.name}` }, v ? 'became the leader: writing Services and status' : 'no longer the leader: not writing');
    for (const fn of [...this.listeners]) {
      try { fn(v); } catch (e) { this.log.error({ err: (e as Error).message }, 'leader change listener failed'); }
    }
  }

  private async round(): Promise<void> {
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (e) {
      if (!this.stopped) this.log.warn({ err: (e as Error).message }, 'leader election: Lease not read or written');
    }
    if (this.stopped) return;
    const now = Date.now();
    if (ok) {
      this.lastRenew = now;
      this.setLeading(true);
    } else if (this.leading && (this.observedHolder !== this.opts.identity || now - this.lastRenew >= this.renewDeadlineMs)) {
      // Another holder, or no renewal within the deadline: stop before anyone else may start.
      this.setLeading(false);
    }
  }

  /** client-go's tryAcquireOrRenew: true when this replica holds the Lease after the call. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const url = `${this.path}/${encodeURIComponent(this.opts.name)}`;
    const now = Date.now();
    const me = this.opts.identity;
    let lease: Lease;
    try {
      lease = await this.api.request<Lease>('GET', url);
    } catch (e) {
      if (!(e instanceof KubeApiError && e.status === 404)) throw e;
      try {
        await this.api.request('POST', this.path, {
          apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
          metadata: { name: this.opts.name, namespace: this.opts.namespace },
          spec: { holderIdentity: me, leaseDurationSeconds: this.opts.leaseDurationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 409) return false; // another replica created it first
        throw err;
      }
      this.observe(me, 'created', now);
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    this.observe(holder, JSON.stringify([holder, spec.renewTime, spec.leaseDurationSeconds, spec.leaseTransitions]), now);
    const durationMs = (spec.leaseDurationSeconds ?? this.opts.leaseDurationSeconds) * 1000;
    if (holder !== '' && holder !== me && this.observedAt + durationMs > now) return false;
    const mine = holder === me;
    const next: Lease = {
      ...lease,
      spec: {
        holderIdentity: me,
        leaseDurationSeconds: this.opts.leaseDurationSeconds,
        acquireTime: mine && spec.acquireTime ? spec.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: mine ? spec.leaseTransitions ?? 0 : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    try {
      const written = await this.api.request<Lease>('PUT', url, next);
      const s = written.spec ?? {};
      this.observe(me, JSON.stringify([me, s.renewTime, s.leaseDurationSeconds, s.leaseTransitions]), now);
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 409) return false; // someone else wrote it meanwhile
      throw e;
    }
    if (!mine) this.log.info({ lease: `${this.opts.namespace}/${this.opts.name}`, previous: holder || null }, 'leader Lease acquired');
    return true;
  }

  private observe(holder: string, record: string, now: number): void {
    this.observedHolder = holder;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = now;
    }
  }
}
