// Leaf certificates for intercepted hosts, as TLS secure contexts ready for a server-side
// TLSSocket: one per host and CA, minted on first use, kept in a bounded LRU (a hit is
// synchronous, no promise), reminted before it expires, and never minted twice at once for
// one host (concurrent handshakes for a new host wait for one minting). A rotated CA mints
// fresh leaves: the cache key holds the CA's fingerprint, and a change of CA empties it.
import { isIP } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { ProxyCa } from './proxy-ca';
import { mintLeaf, type SigningCa } from './x509';
import { settle, type MaybePromise } from '../util/maybe';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface LeafOptions {
  /** Hosts kept (least recently used go first); default 1000. */
  readonly maxEntries?: number;
  /** Validity of a leaf from its minting (it starts an hour earlier for clock skew); default 7 days. */
  readonly validityMs?: number;
  /** A cached leaf with less than this left is reminted; default 1 day. */
  readonly renewBeforeMs?: number;
  /** The clock (tests move it instead of waiting). */
  readonly now?: () => number;
}

/** No CA is loaded yet (Kubernetes mode before the Secret is read): interception must wait or fail. */
export class ProxyCaUnavailableError extends Error {
  override readonly name = 'ProxyCaUnavailableError';
}

/** A host name a certificate cannot be made for (empty, too long, wildcard, bad characters). */
export class InvalidLeafHostError extends Error {
  override readonly name = 'InvalidLeafHostError';
}

/** The client's SNI is not the host it asked to CONNECT to. */
export class SniMismatchError extends Error {
  override readonly name = 'SniMismatchError';
}

export type SniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;

interface Entry {
  readonly context: SecureContext;
  /** Remint from this time on (ms). */
  readonly renewAt: number;
}

/** Counters for metrics, the bench and tests. */
export interface LeafStats {
  /** Leaves minted (signatures made). */
  minted: number;
  /** Served from the cache, synchronously. */
  hits: number;
  /** Waited for a minting another handshake had started. */
  coalesced: number;
  /** Dropped for room (least recently used). */
  evicted: number;
}

/**
 * Lower-case, no trailing dot, no IPv6 brackets; throws InvalidLeafHostError for what cannot
 * be a certificate's DNS or IP name. The same normalisation is used to compare SNI with the
 * CONNECT authority.
 */
export function normalizeLeafHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (isIP(h) !== 0) return h;
  if (h.endsWith('.')) h = h.slice(0, -1);
  // LDH labels (underscores occur in real service names); no wildcards: a leaf names one host.
  if (h.length === 0 || h.length > 253 || !/^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/.test(h)) {
    throw new InvalidLeafHostError(`cannot make a certificate for the host "${host.slice(0, 64)}": not a DNS name or IP address`);
  }
  return h;
}

export class LeafCertificates {
  readonly stats: LeafStats = { minted: 0, hits: 0, coalesced: 0, evicted: 0 };
  private readonly cache = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<SecureContext>>();
  private readonly maxEntries: number;
  private readonly validityMs: number;
  private readonly renewBeforeMs: number;
  private readonly now: () => number;
  private readonly unsubscribe: () => void;

  constructor(private readonly ca: ProxyCa, opts: LeafOptions = {}) {
    this.maxEntries = Math.max(1, opts.maxEntries ?? 1000);
    this.validityMs = opts.validityMs ?? 7 * DAY;
    this.renewBeforeMs = Math.min(opts.renewBeforeMs ?? DAY, this.validityMs / 2);
    this.now = opts.now ?? Date.now;
    // Leaves of the old CA are unreachable (keyed by CA) anyway; free them now.
    this.unsubscribe = ca.onChange(() => this.cache.clear());
  }

  /** Hosts cached now. */
  get size(): number {
    return this.cache.size;
  }

  /**
   * The TLS context presenting a leaf for `host` (a DNS name or an IP address, which gets an
   * IP SAN): synchronous on a cache hit, else a promise of the minting (shared by concurrent
   * callers). Rejects with ProxyCaUnavailableError before the CA is loaded and with
   * InvalidLeafHostError for a name no certificate can carry.
   */
  secureContextFor(host: string): MaybePromise<SecureContext> {
    const ca = this.ca.current();
    if (!ca) return Promise.reject(new ProxyCaUnavailableError('the proxy CA is not loaded yet: cannot intercept TLS'));
    let name: string;
    try {
      name = normalizeLeafHost(host);
    } catch (e) {
      return Promise.reject(e);
    }
    const key = `${ca.id} ${name}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      if (this.now() < hit.renewAt) {
        this.cache.delete(key); // re-insert: most recently used last
        this.cache.set(key, hit);
        this.stats.hits++;
        return hit.context;
      }
      this.cache.delete(key);
    }
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined) {
      this.stats.coalesced++;
      return inFlight;
    }
    const minting = this.mint(ca, name, key);
    this.pending.set(key, minting);
    const done = (): void => { this.pending.delete(key); };
    minting.then(done, done);
    return minting;
  }

  /** Node's SNICallback for any host the client names (tls.createServer / new TLSSocket). */
  readonly sniCallback: SniCallback = (servername, cb) => this.deliver(servername, cb);

  /**
   * An SNICallback for one CONNECT tunnel: the client's SNI must name the CONNECT authority's
   * host (compared after normalisation), else the handshake fails with SniMismatchError. A
   * client that sends no SNI (an IP address target) never calls it: give the TLSSocket
   * `secureContext: await secureContextFor(authorityHost)` for that case.
   */
  sniCallbackFor(authorityHost: string): SniCallback {
    let expected: string;
    try {
      expected = normalizeLeafHost(authorityHost);
    } catch (e) {
      return (_servername, cb) => cb(e as Error);
    }
    return (servername, cb) => {
      let got: string;
      try {
        got = normalizeLeafHost(servername);
      } catch (e) {
        cb(e as Error);
        return;
      }
      if (got !== expected) {
        cb(new SniMismatchError(`TLS server name "${servername.slice(0, 64)}" differs from the CONNECT host "${expected}"`));
        return;
      }
      this.deliver(expected, cb);
    };
  }

  /** Drops every cached leaf (e.g. on shutdown) and stops following CA changes. */
  close(): void {
    this.unsubscribe();
    this.cache.clear();
  }

  private deliver(host: string, cb: (err: Error | null, ctx?: SecureContext) => void): void {
    settle(this.secureContextFor(host), (ctx) => cb(null, ctx), (e) => cb(e as Error));
  }

  private async mint(ca: SigningCa, host: string, key: string): Promise<SecureContext> {
    const now = this.now();
    const leaf = await mintLeaf(ca, host, this.validityMs, now);
    this.stats.minted++;
    // The leaf alone: clients hold the CA as a trust anchor already.
    const context = createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
    // A CA rotated during the minting: hand this context to the waiting handshakes only.
    if (this.ca.current()?.id === ca.id) {
      this.cache.set(key, { context, renewAt: Math.min(now + this.validityMs - this.renewBeforeMs, leaf.notAfter.getTime() - this.renewBeforeMs) });
      while (this.cache.size > this.maxEntries) {
        this.cache.delete(this.cache.keys().next().value!);
        this.stats.evicted++;
      }
    }
    return context;
  }
}
