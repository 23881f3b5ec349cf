// The token arithmetic every fetched credential shares (OAuth2 access tokens, registry
// tokens): cache until shortly before expiry, one fetch per key at a time however many
// requests wait (single flight), a bounded number of keys. The clock is injectable so
// expiry is tested without waiting.
import type { MaybePromise } from '../util/maybe';

export interface Clock {
  now(): number;
}

export const SYSTEM_CLOCK: Clock = { now: () => Date.now() };

/** A fetched value and when to fetch the next one (ms since epoch). */
export interface Expiring<V> {
  readonly value: V;
  readonly refreshAt: number;
}

/**
 * When a token fetched at `started` should be renewed: `expiresIn` seconds (the answer's
 * `expires_in`; `defaultSeconds` when absent or not a positive number) less a tenth of that
 * lifetime, at most 30 s, so no request leaves with a token about to lapse.
 */
export function renewalTime(started: number, expiresIn: unknown, defaultSeconds: number): number {
  const s = Number(expiresIn ?? defaultSeconds);
  const lifetimeMs = (Number.isFinite(s) && s > 0 ? s : defaultSeconds) * 1000;
  return started + lifetimeMs - Math.min(30_000, lifetimeMs / 10);
}

export class TokenCache<V> {
  private readonly values = new Map<string, Expiring<V>>();
  private readonly pending = new Map<string, Promise<Expiring<V>>>();
  /** Fetches started (tests, metrics). */
  fetches = 0;

  constructor(private readonly maxKeys: number, private readonly clock: Clock = SYSTEM_CLOCK) {}

  /** The value for `key`: cached and fresh → now; else `fetch` (shared by concurrent callers). */
  get(key: string, fetch: () => Promise<Expiring<V>>): MaybePromise<V> {
    const v = this.values.get(key);
    if (v !== undefined && this.clock.now() < v.refreshAt) return v.value;
    let p = this.pending.get(key);
    if (p === undefined) {
      this.fetches++;
      p = fetch().then(
        (fresh) => {
          this.pending.delete(key);
          if (this.values.size >= this.maxKeys && !this.values.has(key)) this.values.delete(this.values.keys().next().value!);
          this.values.set(key, fresh);
          return fresh;
        },
        (err: unknown) => { this.pending.delete(key); throw err; },
      );
      this.pending.set(key, p);
    }
    return p.then((fresh) => fresh.value);
  }

  /** Forgets every cached value equal to `value` (a token the tool refused). */
  forget(value: V): void {
    for (const [k, v] of this.values) if (v.value === value) this.values.delete(k);
  }

  get size(): number {
    return this.values.size;
  }
}
