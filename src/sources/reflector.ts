// One list+watch loop for one resource, as client-go's Reflector: list (paged), hand the
// items over at once, watch from the list's resourceVersion (with bookmarks), hand each
// event over; when the watch ends, watch again from the last version seen; when the API
// server says that version is gone (410), list again. Connection failures back off with
// jitter. Nothing here keeps objects: the handler does (controller-runtime's cache keeps
// every Secret of the cluster; we keep only the ones Connectors reference).
import type { Logger } from 'pino';
import { KubeApiError, type KubeWatchApi, type WatchEvent } from '../kube/client';

export interface KubeObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string; managedFields?: unknown };
}

export interface ReflectorHandler<T> {
  /** The complete state after a list (first sync and every relist). */
  replace(items: T[]): void;
  upsert(obj: T): void;
  remove(obj: T): void;
}

export interface ReflectorOptions {
  /** Human name for logs and metrics, e.g. `connectors`. */
  readonly name: string;
  /** Collection path, e.g. `/apis/connectors.alauda.io/v1alpha1/connectors`. */
  readonly path: string;
  /** Extra query parameters for list and watch, e.g. `fieldSelector=metadata.name%3Dx` (RBAC with resourceNames). */
  readonly query?: string;
  /** Items per list page (default 500). */
  readonly pageSize?: number;
  /** Server-side watch timeout; the stream is then renewed from the last version (default 300 s). */
  readonly watchTimeoutSeconds?: number;
  /**
   * First and longest pause after a failure (defaults 250 ms and 5 s). The cap is low because a
   * proxy serving stale routes after an API server restart is worse than a few more retries.
   */
  readonly backoffMs?: { readonly initial: number; readonly max: number };
  /** Called on every restart of the loop, with why (`gone`, `error`, `closed`). */
  readonly onRestart?: (reason: 'gone' | 'error' | 'closed') => void;
  /** Called when the API server answers again after a failure (a list, or a watch event). */
  readonly onRecovered?: () => void;
}

interface ListReply<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

/** The watch's version is too old (410 Gone): only a new list helps. */
class Gone extends Error {}

/** A pause that `signal` cuts short; its listener goes with it (one per retry would pile up). */
const sleep = (ms: number, signal: AbortSignal): Promise<void> => new Promise((resolve) => {
  const done = (): void => {
    clearTimeout(t);
    signal.removeEventListener('abort', done);
    resolve();
  };
  const t = setTimeout(done, ms);
  signal.addEventListener('abort', done, { once: true });
});

export class Reflector<T extends KubeObject> {
  /** Lists done (first sync included): a relist after a 410 adds one. */
  lists = 0;
  private resourceVersion = '';
  private readonly stopper = new AbortController();
  /** Cuts the current pause short (see retryNow). */
  private waker: AbortController | undefined;
  private failing = false;
  private resolveSynced!: () => void;
  /** Resolves after the first complete list has been handed over. */
  readonly synced = new Promise<void>((r) => { this.resolveSynced = r; });

  constructor(
    private readonly api: KubeWatchApi,
    private readonly handler: ReflectorHandler<T>,
    private readonly log: Logger,
    private readonly opts: ReflectorOptions,
  ) {}

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopper.abort();
  }

  /** Ends a pause after a failure now: another loop has seen the API server answer again. */
  retryNow(): void {
    this.waker?.abort();
  }

  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.opts.onRecovered?.();
  }

  private get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  private async run(): Promise<void> {
    const { initial, max } = this.opts.backoffMs ?? { initial: 250, max: 5_000 };
    let pause = initial;
    let mustList = true;
    while (!this.stopped) {
      try {
        if (mustList) {
          await this.list();
          mustList = false;
          this.recovered();
        }
        const sawEvents = await this.watch();
        if (this.stopped) return;
        this.opts.onRestart?.('closed');
        if (sawEvents) pause = initial;
        continue;
      } catch (e) {
        if (this.stopped) return;
        if (e instanceof Gone) {
          this.log.info({ resource: this.opts.name }, 'watch expired (410 Gone): listing again');
          this.opts.onRestart?.('gone');
          mustList = true;
          continue;
        }
        const wait = Math.round(pause * (0.5 + Math.random()));
        this.log.warn({ resource: this.opts.name, err: (e as Error).message, retryInMs: wait }, mustList ? 'list failed: retrying' : 'watch failed: retrying');
        this.opts.onRestart?.('error');
        this.failing = true;
        this.waker = new AbortController();
        await sleep(wait, AbortSignal.any([this.stopper.signal, this.waker.signal]));
        this.waker = undefined;
        pause = Math.min(pause * 2, max);
      }
    }
  }

  private async list(): Promise<void> {
    const items: T[] = [];
    const limit = this.opts.pageSize ?? 500;
    let cont = '';
    let version = '';
    do {
      let reply: ListReply<T>;
      try {
        reply = await this.api.request<ListReply<T>>('GET', `${this.opts.path}?${this.opts.query ? `${this.opts.query}&` : ''}limit=${limit}${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
      } catch (e) {
        // The continue token of a long list expired: start the list over.
        if (e instanceof KubeApiError && e.status === 410) { items.length = 0; cont = ''; continue; }
        throw e;
      }
      for (const item of reply.items ?? []) items.push(strip(item));
      cont = reply.metadata?.continue ?? '';
      version = reply.metadata?.resourceVersion ?? '';
    } while (cont !== '' && !this.stopped);
    if (this.stopped) return;
    this.resourceVersion = version;
    this.lists++;
    this.handler.replace(items);
    this.log.info({ resource: this.opts.name, items: items.length, resourceVersion: version }, 'listed');
    this.resolveSynced();
  }

  /** One watch stream; true when it delivered at least one event. */
  private async watch(): Promise<boolean> {
    const timeout = this.opts.watchTimeoutSeconds ?? 300;
    const path = `${this.opts.path}?${this.opts.query ? `${this.opts.query}&` : ''}watch=1&allowWatchBookmarks=true&timeoutSeconds=${timeout}&resourceVersion=${encodeURIComponent(this.resourceVersion)}`;
    let events = 0;
    try {
      await this.api.watch<T>(path, (e) => {
        if (events++ === 0) this.recovered();
        this.apply(e);
      }, {
        signal: this.stopper.signal,
        // Bookmarks come about once a minute; a server gone silent for longer than the
        // whole watch is dead (the socket may never see a FIN).
        idleTimeoutMs: (timeout + 60) * 1000,
      });
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 410) throw new Gone();
      throw e;
    }
    return events > 0;
  }

  private apply(e: WatchEvent<T>): void {
    if (e.type === 'ERROR') {
      const status = e.object as unknown as { code?: number; message?: string };
      if (status.code === 410) throw new Gone();
      throw new KubeApiError(status.code ?? 500, 'WatchError', `watch ${this.opts.path}: ${status.message ?? 'error event'}`);
    }
    const version = e.object.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
    if (e.type === 'BOOKMARK') return;
    if (e.type === 'DELETED') this.handler.remove(strip(e.object));
    else this.handler.upsert(strip(e.object));
  }
}

/** managedFields are often larger than the object itself and never read. */
function strip<T extends KubeObject>(obj: T): T {
  if (obj.metadata?.managedFields !== undefined) delete obj.metadata.managedFields;
  return obj;
}
