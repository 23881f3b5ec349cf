// One keep-alive undici Pool per upstream origin and CA set. Dispatching on the Pool directly
// skips Agent's extra dispatch layer on every request. A Connector whose CA set changes (a
// rotated caCertSecretRef, a new global CA Secret) gets a new pool at its next request; pools
// nobody asked for during a sweep interval are closed gracefully (in-flight requests finish).
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { Pool } from 'undici';
import { newPool } from '../http/undici';
import { SYSTEM_TRUST, type UpstreamTrust } from '../tls/ca-trust';

/** How often unused pools are looked for; a pool unused for a whole interval is closed. */
const SWEEP_MS = 5 * 60_000;

interface Entry {
  readonly pool: Pool;
  used: boolean;
}

export class UpstreamPools {
  private readonly pools = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: Pool.Options, sweepMs = SWEEP_MS) {
    this.sweeper = setInterval(() => this.sweep(), sweepMs);
    this.sweeper.unref();
  }

  /** The pool for `origin` verifying TLS against `trust` (system roots when omitted). */
  get(origin: string, trust: UpstreamTrust = SYSTEM_TRUST): Pool {
    const key = trust.key === '' ? origin : `${origin} ${trust.key}`;
    let e = this.pools.get(key);
    if (e === undefined) {
      e = { pool: newPool(origin, this.poolOptions(origin, trust)), used: true };
      this.pools.set(key, e);
    } else {
      e.used = true;
    }
    return e.pool;
  }

  get size(): number {
    return this.pools.size;
  }

  private poolOptions(origin: string, trust: UpstreamTrust): Pool.Options {
    if (trust.key === '' || !origin.startsWith('https:')) return this.options;
    // One SecureContext per pool: passing `ca` to every tls.connect would parse the ~140
    // system roots on each handshake. The system roots stay in the pool (the docs' first layer).
    const secureContext: SecureContext | undefined = trust.ca.length > 0 ? createSecureContext({ ca: [...rootCertificates, ...trust.ca] }) : undefined;
    // SNI: undici sends the address's host name (not for IP addresses) as servername.
    return {
      ...this.options,
      connect: { ...(this.options.connect as object), ...(secureContext ? { secureContext } : {}), rejectUnauthorized: !trust.insecure },
    };
  }

  private sweep(): void {
    for (const [key, e] of this.pools) {
      if (e.used) {
        e.used = false;
        continue;
      }
      this.pools.delete(key);
      e.pool.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.pools.values()].map((e) => e.pool.close()));
    this.pools.clear();
  }
}
