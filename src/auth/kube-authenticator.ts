// Kubernetes mode's authenticator (SPEC section 4): TokenReview, then SubjectAccessReview
// `get connectors.connectors.alauda.io <name> -n <ns>` (and, with
// enable-connector-proxy-permissions, `get connectors/proxy`; for the Connectors API gateway
// with enable-connector-apis-permissions, the method's verb on `connectors/apis/<class>`). Decisions are cached briefly
// so a busy pipeline costs the API server a review per TTL, not per request; a cache hit
// answers synchronously. An API server that cannot answer gives 503, never an open door.
import { createHash } from 'node:crypto';
import { KubeApiError, KubeUnavailableError, type KubeApi } from '../kube/client';
import { apiResources, type ApiPermission, type AuthDecision, type ClientAuthenticator, type ConnectorRef } from './authenticator';
import { mapMaybe } from '../util/maybe';

export const CONNECTORS_GROUP = 'connectors.alauda.io';

export interface KubeAuthenticatorOptions {
  /** TokenReview `spec.audiences`; empty: the API server's own audiences. */
  readonly audiences?: readonly string[];
  /** The `enable-connector-proxy-permissions` flag (read per check: it may change at run time): also require `get connectors/proxy`. */
  readonly proxyPermission?: boolean | (() => boolean);
  /** How long an allowed decision (and an authenticated TokenReview) is kept (default 30 s). */
  readonly positiveTtlMs?: number;
  /** How long a 401/403 decision (and an unauthenticated TokenReview) is kept (default 5 s). */
  readonly negativeTtlMs?: number;
  /** Bound of each cache (decisions, token reviews); least recently used go first (default 10,000). */
  readonly maxEntries?: number;
  /** Called with the error when the API server cannot decide (the error never holds the token). */
  readonly onError?: (err: Error) => void;
  /** The clock (tests). */
  readonly now?: () => number;
}

/** A TokenReview's user, as SubjectAccessReview wants it back. */
export interface ReviewedUser {
  readonly username: string;
  readonly uid?: string;
  readonly groups?: readonly string[];
  readonly extra?: Readonly<Record<string, readonly string[]>>;
}

type Review = { readonly authenticated: true; readonly user: ReviewedUser } | { readonly authenticated: false };

interface TokenReviewReply {
  status?: {
    authenticated?: boolean;
    user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
    audiences?: string[];
  };
}

interface SarReply { status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string } }

const UNAUTHENTICATED: AuthDecision = Object.freeze({ allowed: false, status: 401, reason: 'missing or invalid token' });
const NOT_AUTHENTICATED: Review = Object.freeze({ authenticated: false });
/** The proxy's extra check (enable-connector-proxy-permissions): `get connectors/proxy`. */
const PROXY = Symbol('connectors/proxy');

/** A Map kept in use order: a hit moves the key to the end, inserts evict from the front. */
class TtlLru<V> {
  private readonly map = new Map<string, { value: V; expires: number }>();
  constructor(private readonly max: number) {}

  get(key: string, now: number): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    this.map.delete(key);
    if (e.expires <= now) return undefined;
    this.map.set(key, e);
    return e.value;
  }

  set(key: string, value: V, expires: number): void {
    this.map.delete(key);
    this.map.set(key, { value, expires });
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }

  get size(): number { return this.map.size; }
  clear(): void { this.map.clear(); }
}

export class KubeAuthenticator implements ClientAuthenticator {
  private readonly decisions: TtlLru<AuthDecision>;
  private readonly reviews: TtlLru<Review>;
  private readonly pendingDecisions = new Map<string, Promise<AuthDecision>>();
  private readonly pendingReviews = new Map<string, Promise<Review>>();
  private readonly audiences: readonly string[];
  private readonly proxyPermission: () => boolean;
  private readonly positiveTtl: number;
  private readonly negativeTtl: number;
  private readonly now: () => number;
  private readonly onError: (err: Error) => void;

  constructor(private readonly api: KubeApi, opts: KubeAuthenticatorOptions = {}) {
    this.audiences = [...(opts.audiences ?? [])];
    const pp = opts.proxyPermission ?? false;
    this.proxyPermission = typeof pp === 'function' ? pp : () => pp;
    this.positiveTtl = opts.positiveTtlMs ?? 30_000;
    this.negativeTtl = opts.negativeTtlMs ?? 5_000;
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError ?? (() => {});
    const max = opts.maxEntries ?? 10_000;
    this.decisions = new TtlLru(max);
    this.reviews = new TtlLru(max);
  }

  check(token: string, ref: ConnectorRef): AuthDecision | Promise<AuthDecision> {
    if (token === '') return UNAUTHENTICATED;
    // Keys hold a hash, so a heap dump of the caches shows no token.
    const tokenKey = createHash('sha256').update(token).digest('base64');
    // The flag is part of the key: flipping it never reuses a decision made under the other value.
    const proxyPermission = this.proxyPermission();
    const key = `${tokenKey} ${ref.namespace} ${ref.name}${proxyPermission ? ' p' : ''}`;
    return this.cached(key, () => this.decide(token, tokenKey, ref, proxyPermission ? PROXY : undefined));
  }

  checkApi(token: string, ref: ConnectorRef, permission: ApiPermission | undefined): AuthDecision | Promise<AuthDecision> {
    if (token === '') return UNAUTHENTICATED;
    const tokenKey = createHash('sha256').update(token).digest('base64');
    // NUL apart: a class name or path template cannot run into the next field.
    const key = permission === undefined
      ? `${tokenKey} ${ref.namespace} ${ref.name} api`
      : `${tokenKey} ${ref.namespace} ${ref.name} api\u0000${permission.verb}\u0000${permission.className}\u0000${permission.template ?? ''}`;
    return this.cached(key, () => this.decide(token, tokenKey, ref, permission));
  }

  /** A decision from the cache, the review already running for `key`, or a new one (then cached). */
  private cached(key: string, decide: () => Promise<AuthDecision>): AuthDecision | Promise<AuthDecision> {
    const cached = this.decisions.get(key, this.now());
    if (cached !== undefined) return cached;
    const pending = this.pendingDecisions.get(key);
    if (pending !== undefined) return pending;
    const p = decide().then((d) => {
      if (d.allowed) this.decisions.set(key, d, this.now() + this.positiveTtl);
      else if (d.status !== 503) this.decisions.set(key, d, this.now() + this.negativeTtl);
      return d;
    }).finally(() => this.pendingDecisions.delete(key));
    this.pendingDecisions.set(key, p);
    return p;
  }

  authenticate(token: string): AuthDecision | Promise<AuthDecision> {
    if (token === '') return UNAUTHENTICATED;
    const toDecision = (r: Review): AuthDecision => r.authenticated ? Object.freeze({ allowed: true, user: r.user.username }) : UNAUTHENTICATED;
    return mapMaybe(this.review(token, createHash('sha256').update(token).digest('base64')), toDecision, (e: unknown) => this.unavailable(e));
  }

  /** Entries in the decision and token-review caches (metrics, tests). */
  get cacheSize(): { decisions: number; reviews: number } {
    return { decisions: this.decisions.size, reviews: this.reviews.size };
  }

  /** Forgets every cached decision and review. */
  clearCache(): void {
    this.decisions.clear();
    this.reviews.clear();
  }

  /**
   * TokenReview, then `get` on the Connector and, in parallel, the extra permission: the
   * proxy's `get connectors/proxy`, or the gateway's verb on `connectors/apis/<class>` (else
   * on `connectors/apis/<class><template>`).
   */
  private async decide(token: string, tokenKey: string, ref: ConnectorRef, extra: ApiPermission | typeof PROXY | undefined): Promise<AuthDecision> {
    try {
      const review = await this.review(token, tokenKey);
      if (!review.authenticated) return UNAUTHENTICATED;
      const user = review.user;
      const checks = [this.access(user, ref, undefined, 'get')];
      if (extra === PROXY) checks.push(this.access(user, ref, 'proxy', 'get'));
      else if (extra !== undefined) checks.push(this.apisAccess(user, ref, extra));
      const denied = (await Promise.all(checks)).find((d) => d !== undefined);
      return denied ?? Object.freeze({ allowed: true, user: user.username });
    } catch (e) {
      return this.unavailable(e);
    }
  }

  /** undefined when `permission.verb` is allowed on the class's API or on the matched path's; else the 403. */
  private async apisAccess(user: ReviewedUser, ref: ConnectorRef, permission: ApiPermission): Promise<AuthDecision | undefined> {
    // RBAC matches `resource/subresource` exactly: a rule on connectors/apis/<class> does not
    // cover connectors/apis/<class>/<path>, so each level is its own review.
    const [classLevel, pathLevel] = apiResources(permission).map((r) => r.slice('connectors/'.length));
    const denied = await this.access(user, ref, classLevel, permission.verb);
    if (denied === undefined || pathLevel === undefined) return denied;
    if (await this.access(user, ref, pathLevel, permission.verb) === undefined) return undefined;
    return Object.freeze({
      allowed: false, status: 403, user: user.username,
      reason: `user "${user.username}" may not ${permission.verb} connectors/${classLevel} nor connectors/${pathLevel} of connector "${ref.name}" in namespace "${ref.namespace}"`,
    });
  }

  /** The 503 decision for a failed review, reported through onError. */
  private unavailable(e: unknown): AuthDecision {
    const err = e instanceof Error ? e : new Error(String(e));
    this.onError(err);
    const why = err instanceof KubeUnavailableError ? 'the Kubernetes API server is unreachable'
      : err instanceof KubeApiError ? `the Kubernetes API server answered ${err.status} ${err.reason}`
        : 'the Kubernetes API server gave an unexpected answer';
    return { allowed: false, status: 503, reason: `cannot check the token now: ${why}` };
  }

  /** The TokenReview of a token, cached and coalesced per token (N Connectors, one review). */
  private review(token: string, tokenKey: string): Review | Promise<Review> {
    const cached = this.reviews.get(tokenKey, this.now());
    if (cached !== undefined) return cached;
    const pending = this.pendingReviews.get(tokenKey);
    if (pending !== undefined) return pending;
    const p = this.tokenReview(token).then((r) => {
      this.reviews.set(tokenKey, r, this.now() + (r.authenticated ? this.positiveTtl : this.negativeTtl));
      return r;
    }).finally(() => this.pendingReviews.delete(tokenKey));
    this.pendingReviews.set(tokenKey, p);
    return p;
  }

  private async tokenReview(token: string): Promise<Review> {
    const reply = await this.api.request<TokenReviewReply>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, ...(this.audiences.length > 0 ? { audiences: this.audiences } : {}) },
    });
    const s = reply.status;
    if (s?.authenticated !== true || typeof s.user?.username !== 'string' || s.user.username === '') return NOT_AUTHENTICATED;
    // As client-go's webhook authenticator: the token must be valid for one of our audiences,
    // not merely for the API server.
    if (this.audiences.length > 0 && !(s.audiences ?? []).some((a) => this.audiences.includes(a))) return NOT_AUTHENTICATED;
    return {
      authenticated: true,
      user: { username: s.user.username, uid: s.user.uid, groups: s.user.groups, extra: s.user.extra },
    };
  }

  /** undefined when allowed, else the 403 decision. */
  private async access(user: ReviewedUser, ref: ConnectorRef, subresource: string | undefined, verb: string): Promise<AuthDecision | undefined> {
    const reply = await this.api.request<SarReply>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: user.username,
        uid: user.uid,
        groups: user.groups,
        extra: user.extra,
        resourceAttributes: {
          group: CONNECTORS_GROUP, resource: 'connectors', verb,
          namespace: ref.namespace, name: ref.name, ...(subresource ? { subresource } : {}),
        },
      },
    });
    if (reply.status?.allowed === true) return undefined;
    const what = subresource ? `connectors/${subresource}` : 'connectors';
    const why = reply.status?.reason ? ` (${reply.status.reason})` : '';
    return Object.freeze({
      allowed: false, status: 403, user: user.username,
      reason: `user "${user.username}" may not ${verb} ${what} "${ref.name}" in namespace "${ref.namespace}"${why}`,
    });
  }
}
