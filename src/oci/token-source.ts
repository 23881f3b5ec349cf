// The OCI distribution token flow (cpaas.io/distribution-registry-token) as a credential
// source: to the registry the proxy is a token-auth client. It learns the token service
// from the registry's `/v2/` challenge (`Bearer realm=...,service=...`), asks it for a token
// per scope (`repository:<repo>:pull[,push]`) with the Secret's username and password, and
// caches each token until shortly before it expires (one fetch per scope at a time). A
// registry that answers with a Basic challenge gets the Secret as Basic; one that answers
// 200 gets nothing.
import type { Dispatcher } from 'undici';
import { request } from '../http/undici';
import { parseChallenge } from '../http/challenge';
import type { MaybePromise } from '../util/maybe';
import { SYSTEM_CLOCK, TokenCache, renewalTime, type Clock, type Expiring } from '../credentials/expiring';
import { CredentialError, type Credential, type CredentialSource } from '../credentials/source';
import { assertHeaderSafe } from '../credentials/static';
import { askTokenEndpoint, safeText, transportReason } from '../credentials/token-endpoint';

/** What the source needs from its surroundings. */
export interface RegistryEndpoint {
  /** The Connector's address: origin and path prefix of the registry. */
  readonly origin: string;
  readonly basePath: string;
  /** A dispatcher for an origin with the Connector's TLS trust (registry and token service; asked per use). */
  dispatcherFor(origin: string): Dispatcher;
}

/** Time allowed for the registry's `/v2/` and the token service to answer. */
const TIMEOUT_MS = 30_000;
/** The distribution token spec's default when `expires_in` is absent. */
const DEFAULT_LIFETIME_S = 60;
/** Scopes with a cached token per registry; beyond it the oldest go (they refetch on next use). */
const MAX_SCOPES = 512;
/** A failed `/v2/` discovery is retried after this long, not on every request. */
const DISCOVERY_RETRY_MS = 5_000;

/** How the registry wants to be authenticated, from its `/v2/` answer. */
type Challenge =
  | { readonly kind: 'none' }
  | { readonly kind: 'basic' }
  | { readonly kind: 'bearer'; readonly realm: URL; readonly service: string | undefined };

/** One registry as seen with one Secret (or anonymously): its challenge and its tokens by scope. */
export class RegistryTokenSource implements CredentialSource<readonly string[]> {
  readonly kind = 'registry-token';
  private challenge: Challenge | undefined;
  private discovering: Promise<Challenge> | undefined;
  private discoveryFailedAt = 0;
  private discoveryError: CredentialError | undefined;
  private readonly tokens: TokenCache<string>;

  /** `username` and `password` empty: anonymous (the token service is asked without credentials). */
  constructor(
    private readonly username: string,
    private readonly password: string,
    private readonly endpoint: RegistryEndpoint,
    private readonly clock?: Clock,
  ) {
    this.tokens = new TokenCache(MAX_SCOPES, clock);
  }

  /** Token requests sent to the registry's token service (tests). */
  get fetches(): number {
    return this.tokens.fetches;
  }

  get(scopes: readonly string[]): MaybePromise<Credential> {
    const c = this.challenge;
    if (c === undefined) return this.discover().then((d) => this.forChallenge(d, scopes));
    return this.forChallenge(c, scopes);
  }

  /** Drops the refused token and learns the registry's challenge (another realm, or Basic). */
  invalidate(used: Credential, challenge: string | undefined): void {
    if (used !== undefined) this.tokens.forget(used);
    const parsed = challenge === undefined ? undefined : parseChallenge(challenge);
    if (parsed?.scheme === 'bearer') {
      const realm = parsed.params.get('realm');
      if (realm === undefined) return;
      try {
        this.challenge = this.bearer(realm, parsed.params.get('service'));
      } catch { /* a realm that is no URL: keep what /v2/ said */ }
    } else if (parsed?.scheme === 'basic') {
      this.challenge = { kind: 'basic' };
    }
  }

  private forChallenge(c: Challenge, scopes: readonly string[]): MaybePromise<Credential> {
    if (c.kind === 'none') return undefined;
    if (c.kind === 'basic') return this.username === '' && this.password === '' ? undefined : basicHeader(this.username, this.password);
    return this.tokens.get(scopes.join(' '), () => this.fetch(c, scopes));
  }

  private bearer(realm: string, service: string | undefined): Challenge {
    let url: URL;
    try {
      url = new URL(realm, this.endpoint.origin);
    } catch {
      throw new CredentialError('the registry challenge names a realm that is not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CredentialError('the registry challenge names a realm that is not an http(s) URL');
    return { kind: 'bearer', realm: url, service };
  }

  /** Asks the registry's `/v2/` how to authenticate (once, shared by concurrent requests). */
  private discover(): Promise<Challenge> {
    const now = (this.clock ?? SYSTEM_CLOCK).now();
    if (this.discoveryError !== undefined && now - this.discoveryFailedAt < DISCOVERY_RETRY_MS) return Promise.reject(this.discoveryError);
    this.discovering ??= this.ping().then(
      (c) => { this.discovering = undefined; this.discoveryError = undefined; this.challenge = c; return c; },
      (err: CredentialError) => { this.discovering = undefined; this.discoveryError = err; this.discoveryFailedAt = (this.clock ?? SYSTEM_CLOCK).now(); throw err; },
    );
    return this.discovering;
  }

  private async ping(): Promise<Challenge> {
    const { origin, basePath } = this.endpoint;
    const where = `the registry ${origin}${basePath}/v2/`;
    let status: number;
    let header: string | string[] | undefined;
    try {
      const res = await request(`${origin}${basePath}/v2/`, {
        method: 'GET', dispatcher: this.endpoint.dispatcherFor(origin),
        headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS,
      });
      status = res.statusCode;
      header = res.headers['www-authenticate'];
      await res.body.dump();
    } catch (err) {
      throw new CredentialError(`${where} ${transportReason(err as Error & { code?: string })}`);
    }
    if (status >= 200 && status < 300) return { kind: 'none' };
    if (status !== 401) throw new CredentialError(`${where} answered HTTP ${status}; an OCI distribution registry answers 200 or 401`);
    const parsed = parseChallenge(Array.isArray(header) ? header[0] ?? '' : header ?? '');
    if (parsed?.scheme === 'basic') return { kind: 'basic' };
    const realm = parsed?.params.get('realm');
    if (parsed?.scheme !== 'bearer' || realm === undefined) throw new CredentialError(`${where} answered 401 without a Bearer realm or Basic challenge`);
    return this.bearer(realm, parsed.params.get('service'));
  }

  private async fetch(c: Challenge & { kind: 'bearer' }, scopes: readonly string[]): Promise<Expiring<string>> {
    const url = new URL(c.realm);
    if (c.service !== undefined) url.searchParams.set('service', c.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const where = `the registry token service ${c.realm.origin}${c.realm.pathname}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.username !== '' || this.password !== '') headers.authorization = basicHeader(this.username, this.password);
    const started = (this.clock ?? SYSTEM_CLOCK).now();
    const { status, body } = await askTokenEndpoint(url, this.endpoint.dispatcherFor(url.origin), where, { method: 'GET', headers });
    const what = scopes.length === 0 ? 'a token' : `a token for ${scopes.join(' ')}`;
    if (status !== 200) {
      throw new CredentialError(`${where} refused ${what} ${this.username === '' && this.password === '' ? 'to an anonymous client (no Secret)' : "with the Secret's username and password"} (HTTP ${status}${this.registryMessage(body)})`);
    }
    const token = typeof body?.token === 'string' && body.token !== '' ? body.token : body?.access_token;
    if (typeof token !== 'string' || token === '') throw new CredentialError(`${where} answered 200 without a token`);
    assertHeaderSafe(token, `the token from ${where}`);
    return { value: `Bearer ${token}`, refreshAt: renewalTime(started, body?.expires_in, DEFAULT_LIFETIME_S) };
  }

  /** `: <message>` from a registry error body (`{errors:[{code,message}]}` or `{details}`), cleaned of the Secret. */
  private registryMessage(body: Record<string, unknown> | undefined): string {
    let msg: unknown;
    const errors = body?.errors;
    if (Array.isArray(errors) && errors.length > 0) {
      const e = errors[0] as Record<string, unknown>;
      msg = [e.code, e.message].filter((x) => typeof x === 'string' && x !== '').join(': ');
    } else {
      msg = body?.details ?? body?.error_description ?? body?.error ?? body?.message;
    }
    if (typeof msg !== 'string' || msg === '') return '';
    // A careless token service may echo what it got; the password never leaves.
    return `: ${safeText(msg, [this.password])}`;
  }
}

function basicHeader(username: string, password: string): string {
  return 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64');
}
