// The OCI distribution token flow (cpaas.io/distribution-registry-token): to the registry the
// proxy is a token-auth client. It learns the token service from the registry's `/v2/`
// challenge (`Bearer realm=...,service=...`), asks it for a token per scope
// (`repository:<repo>:pull[,push]`) with the Secret's username and password, caches each
// token until shortly before it expires (one fetch per scope at a time), and on the
// registry's 401 fetches once more for the scope the challenge names.
import { createHash } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { InjectError, assertHeaderSafe, getHeader, setHeader, type Injector, type OutgoingRequest } from './injector';
import { parseJsonObject, readLimited, safeText, transportReason } from './token-endpoint';

/** What the injector needs from its surroundings. */
export interface RegistryContext {
  /** A dispatcher for an origin with the Connector's TLS trust (registry and token service). */
  dispatcherFor(origin: string): Dispatcher;
  readonly trustKey?: string;
  /** The Connector's address: origin and path prefix of the registry. */
  readonly origin: string;
  readonly basePath: string;
}

/** Time allowed for the registry's `/v2/` and the token service to answer. */
const TIMEOUT_MS = 30_000;
const BODY_LIMIT = 64 * 1024;
/** The distribution token spec's default when `expires_in` is absent. */
const DEFAULT_LIFETIME_S = 60;
/** Scopes with a cached token per registry; beyond it the oldest go (they refetch on next use). */
const MAX_SCOPES = 512;
/** Registries (Connector address + Secret) kept; beyond it the oldest go. */
const MAX_REGISTRIES = 1024;
/** A failed `/v2/` discovery is retried after this long, not on every request. */
const DISCOVERY_RETRY_MS = 5_000;

/** How the registry wants to be authenticated, from its `/v2/` answer. */
type Challenge =
  | { readonly kind: 'none' }
  | { readonly kind: 'basic' }
  | { readonly kind: 'bearer'; readonly realm: URL; readonly service: string | undefined };

interface Token {
  readonly header: string;
  readonly refreshAt: number;
}

/** A parsed `WWW-Authenticate` challenge: scheme (lower-case) and its auth-params (names lower-case). */
export interface ParsedChallenge {
  readonly scheme: string;
  readonly params: ReadonlyMap<string, string>;
}

/**
 * Parses the first challenge of a `WWW-Authenticate` value (RFC 9110 section 11.6.1):
 * `Bearer realm="https://auth",service="registry",scope="repository:a:pull,push"`.
 * Commas inside quoted strings belong to the value.
 */
export function parseChallenge(value: string): ParsedChallenge | undefined {
  const m = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*/.exec(value);
  if (m === null) return undefined;
  const params = new Map<string, string>();
  const re = /([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  re.lastIndex = m[0].length;
  for (let p = re.exec(value); p !== null; p = re.exec(value)) {
    params.set(p[1]!.toLowerCase(), p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!);
    if (re.lastIndex >= value.length) break;
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

/**
 * The token scopes a registry request needs (distribution's rules): GET/HEAD pull, DELETE
 * delete, other methods pull and push on the repository; a cross-repository mount
 * (`?mount=<digest>&from=<repo>`) pull on `from` too; `/v2/_catalog` the catalog. `[]` for
 * the `/v2/` base and paths that name no repository. `path` is relative to the registry
 * address (starts with `/v2`).
 */
export function scopesFor(method: string, path: string): string[] {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.slice(0, q);
  if (!p.startsWith('/v2/')) return [];
  const segs = p.slice(4).split('/');
  const n = segs.length;
  if (n === 1 && segs[0] === '_catalog') return ['registry:catalog:*'];
  let nameEnd = -1;
  if (n >= 4 && segs[n - 3] === 'blobs' && segs[n - 2] === 'uploads') nameEnd = n - 3;
  else if (n >= 3 && segs[n - 2] === 'blobs' && segs[n - 1] === 'uploads') nameEnd = n - 2; // `.../blobs/uploads` without the slash
  else if (n >= 3 && (segs[n - 2] === 'manifests' || segs[n - 2] === 'blobs' || segs[n - 2] === 'referrers' || (segs[n - 2] === 'tags' && segs[n - 1] === 'list'))) nameEnd = n - 2;
  if (nameEnd <= 0) return [];
  const name = segs.slice(0, nameEnd).join('/');
  const actions = method === 'GET' || method === 'HEAD' ? 'pull' : method === 'DELETE' ? 'delete' : 'pull,push';
  const scopes = [`repository:${name}:${actions}`];
  if (q >= 0 && method === 'POST') {
    const query = new URLSearchParams(path.slice(q + 1));
    const from = query.get('from');
    if (from !== null && from !== '' && from !== name && query.has('mount')) scopes.push(`repository:${from}:pull`);
  }
  return scopes;
}

const ACTION_ORDER: Record<string, number> = { pull: 0, push: 1, delete: 2 };

/**
 * `a` plus the scopes of `b`, actions of the same resource joined (`repository:x:push,pull`
 * from a challenge is `repository:x:pull,push` already asked): one cache key per need.
 */
export function mergeScopes(a: readonly string[], b: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const s of [...a, ...b]) {
    const last = s.lastIndexOf(':');
    if (s === '' || last <= 0) continue;
    const resource = s.slice(0, last);
    let actions = byResource.get(resource);
    if (actions === undefined) byResource.set(resource, actions = new Set());
    for (const x of s.slice(last + 1).split(',')) if (x !== '') actions.add(x);
  }
  const rank = (x: string): number => ACTION_ORDER[x] ?? 3;
  return [...byResource].map(([r, actions]) => `${r}:${[...actions].sort((x, y) => rank(x) - rank(y) || x.localeCompare(y)).join(',')}`);
}

/** One registry as seen with one Secret: its challenge and its tokens by scope. */
class RegistryAuth {
  private challenge: Challenge | undefined;
  private discovering: Promise<Challenge> | undefined;
  private discoveryFailedAt = 0;
  private discoveryError: InjectError | undefined;
  private readonly tokens = new Map<string, Token>();
  private readonly pending = new Map<string, Promise<Token>>();
  /** Token requests sent (tests). */
  fetches = 0;

  constructor(
    private readonly username: string,
    private readonly password: string,
    private ctx: RegistryContext,
  ) {}

  /** Routes are rebuilt on every index change; the newest one's dispatcher is used. */
  rebind(ctx: RegistryContext): void {
    this.ctx = ctx;
  }

  /** The Authorization value for `scopes` (undefined: send none), fetching what is missing. */
  authorization(scopes: readonly string[]): string | undefined | Promise<string | undefined> {
    const c = this.challenge;
    if (c === undefined) return this.discover().then((d) => this.forChallenge(d, scopes));
    return this.forChallenge(c, scopes);
  }

  /**
   * The registry answered 401 to a request sent with `used`: forget that token, learn the
   * challenge (the registry may name another realm, or the scope it wants), and return the
   * header for another try; undefined when there is nothing better to send.
   */
  async renew(used: string | undefined, header: string | undefined, scopes: readonly string[]): Promise<string | undefined> {
    this.forget(used);
    let c: Challenge | undefined = this.challenge;
    const parsed = header === undefined ? undefined : parseChallenge(header);
    if (parsed?.scheme === 'bearer') {
      const realm = parsed.params.get('realm');
      if (realm !== undefined) c = this.challenge = this.bearer(realm, parsed.params.get('service'));
      const wanted = parsed.params.get('scope');
      // The registry says which scope it wants (e.g. a mount's `from` repository): ask for that as well.
      if (wanted !== undefined) scopes = mergeScopes(scopes, wanted.split(' '));
    } else if (parsed?.scheme === 'basic') {
      c = this.challenge = { kind: 'basic' };
    }
    if (c === undefined) return undefined;
    const next = await this.forChallenge(c, scopes);
    return next === used ? undefined : next;
  }

  /** Drops the cached token the registry refused (unless a newer one replaced it already). */
  forget(used: string | undefined): void {
    if (used === undefined) return;
    for (const [k, t] of this.tokens) if (t.header === used) this.tokens.delete(k);
  }

  private forChallenge(c: Challenge, scopes: readonly string[]): string | undefined | Promise<string> {
    if (c.kind === 'none') return undefined;
    if (c.kind === 'basic') return this.username === '' && this.password === '' ? undefined : basicHeader(this.username, this.password);
    const key = scopes.join(' ');
    const t = this.tokens.get(key);
    if (t !== undefined && Date.now() < t.refreshAt) return t.header;
    return this.refresh(c, key, scopes).then((n) => n.header);
  }

  private bearer(realm: string, service: string | undefined): Challenge {
    let url: URL;
    try {
      url = new URL(realm, this.ctx.origin);
    } catch {
      throw new InjectError('the registry challenge names a realm that is not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InjectError('the registry challenge names a realm that is not an http(s) URL');
    return { kind: 'bearer', realm: url, service };
  }

  /** Asks the registry's `/v2/` how to authenticate (once, shared by concurrent requests). */
  private discover(): Promise<Challenge> {
    if (this.discoveryError !== undefined && Date.now() - this.discoveryFailedAt < DISCOVERY_RETRY_MS) return Promise.reject(this.discoveryError);
    this.discovering ??= this.ping().then(
      (c) => { this.discovering = undefined; this.discoveryError = undefined; this.challenge = c; return c; },
      (err: InjectError) => { this.discovering = undefined; this.discoveryError = err; this.discoveryFailedAt = Date.now(); throw err; },
    );
    return this.discovering;
  }

  private async ping(): Promise<Challenge> {
    const { origin, basePath } = this.ctx;
    const where = `the registry ${origin}${basePath}/v2/`;
    let status: number;
    let header: string | string[] | undefined;
    try {
      const res = await request(`${origin}${basePath}/v2/`, {
        method: 'GET', dispatcher: this.ctx.dispatcherFor(origin),
        headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS,
      });
      status = res.statusCode;
      header = res.headers['www-authenticate'];
      await res.body.dump();
    } catch (err) {
      throw new InjectError(`${where} ${transportReason(err as Error & { code?: string })}`);
    }
    if (status >= 200 && status < 300) return { kind: 'none' };
    if (status !== 401) throw new InjectError(`${where} answered HTTP ${status}; an OCI distribution registry answers 200 or 401`);
    const parsed = parseChallenge(Array.isArray(header) ? header[0] ?? '' : header ?? '');
    if (parsed?.scheme === 'basic') return { kind: 'basic' };
    const realm = parsed?.params.get('realm');
    if (parsed?.scheme !== 'bearer' || realm === undefined) throw new InjectError(`${where} answered 401 without a Bearer realm or Basic challenge`);
    return this.bearer(realm, parsed.params.get('service'));
  }

  private refresh(c: Challenge & { kind: 'bearer' }, key: string, scopes: readonly string[]): Promise<Token> {
    let p = this.pending.get(key);
    if (p === undefined) {
      p = this.fetch(c, scopes).then(
        (t) => {
          this.pending.delete(key);
          if (this.tokens.size >= MAX_SCOPES && !this.tokens.has(key)) this.tokens.delete(this.tokens.keys().next().value!);
          this.tokens.set(key, t);
          return t;
        },
        (err: Error) => { this.pending.delete(key); throw err; },
      );
      this.pending.set(key, p);
    }
    return p;
  }

  private async fetch(c: Challenge & { kind: 'bearer' }, scopes: readonly string[]): Promise<Token> {
    this.fetches++;
    const url = new URL(c.realm);
    if (c.service !== undefined) url.searchParams.set('service', c.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const where = `the registry token service ${c.realm.origin}${c.realm.pathname}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.username !== '' || this.password !== '') headers.authorization = basicHeader(this.username, this.password);
    let status: number;
    let text: string;
    const started = Date.now();
    try {
      const res = await request(url, {
        method: 'GET', headers, dispatcher: this.ctx.dispatcherFor(url.origin),
        headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS,
      });
      status = res.statusCode;
      text = await readLimited(res.body, BODY_LIMIT);
    } catch (err) {
      throw new InjectError(`${where} ${transportReason(err as Error & { code?: string })}`);
    }
    const body = parseJsonObject(text);
    const what = scopes.length === 0 ? 'a token' : `a token for ${scopes.join(' ')}`;
    if (status !== 200) {
      throw new InjectError(`${where} refused ${what} ${this.username === '' && this.password === '' ? 'to an anonymous client (no Secret)' : "with the Secret's username and password"} (HTTP ${status}${this.registryMessage(body)})`);
    }
    const token = typeof body?.token === 'string' && body.token !== '' ? body.token : body?.access_token;
    if (typeof token !== 'string' || token === '') throw new InjectError(`${where} answered 200 without a token`);
    assertHeaderSafe(token, `the token from ${where}`);
    const expiresIn = Number(body?.expires_in ?? DEFAULT_LIFETIME_S);
    const lifetimeMs = (Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : DEFAULT_LIFETIME_S) * 1000;
    // Renew a little early (a tenth of the lifetime, at most 30 s): no request leaves with a token about to lapse.
    return { header: `Bearer ${token}`, refreshAt: started + lifetimeMs - Math.min(30_000, lifetimeMs / 10) };
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

// Routes (and so injectors) are rebuilt whenever the index changes; challenges and tokens
// live here so they survive that, keyed by the registry, the Secret and the CA trust.
const registries = new Map<string, RegistryAuth>();

function registryFor(username: string, password: string, ctx: RegistryContext): RegistryAuth {
  const key = createHash('sha256').update([ctx.origin, ctx.basePath, username, password, ctx.trustKey ?? ''].join('\0')).digest('hex');
  let r = registries.get(key);
  if (r === undefined) {
    if (registries.size >= MAX_REGISTRIES) registries.delete(registries.keys().next().value!);
    r = new RegistryAuth(username, password, ctx);
    registries.set(key, r);
  } else {
    r.rebind(ctx);
  }
  return r;
}

/** RegistryTokenInjector's `kind`: routes with it get the proxy's Basic challenge instead of the registry's. */
export const REGISTRY_TOKEN_KIND = 'registry-token';

export class RegistryTokenInjector implements Injector {
  readonly kind = REGISTRY_TOKEN_KIND;
  private readonly registry: RegistryAuth;
  private readonly basePath: string;

  /** `data` undefined: anonymous (no Secret; the token service is asked without credentials). */
  constructor(data: ReadonlyMap<string, string> | undefined, ctx: RegistryContext) {
    const username = data?.get('username') ?? '';
    const password = data?.get('password') ?? '';
    if (data !== undefined && username === '') throw new Error('Secret key "username" is empty');
    if (data !== undefined && password === '') throw new Error('Secret key "password" is empty');
    this.basePath = ctx.basePath;
    this.registry = registryFor(username, password, ctx);
  }

  /** Token requests sent to the registry's token service (tests). */
  get tokenFetches(): number {
    return this.registry.fetches;
  }

  inject(req: OutgoingRequest): void | Promise<void> {
    const h = this.registry.authorization(this.scopes(req));
    if (h === undefined) return;
    if (typeof h === 'string') {
      setHeader(req.headers, 'authorization', h);
      return;
    }
    return h.then((v) => { if (v !== undefined) setHeader(req.headers, 'authorization', v); });
  }

  async onUnauthorized(req: OutgoingRequest, challenge: string | undefined, resendable: boolean): Promise<boolean> {
    const used = getHeader(req.headers, 'authorization');
    if (!resendable) {
      // Nothing can be sent again; drop the refused token so the client's retry gets a new one.
      this.registry.forget(used);
      return false;
    }
    const next = await this.registry.renew(used, challenge, this.scopes(req));
    if (next === undefined) return false;
    setHeader(req.headers, 'authorization', next);
    return true;
  }

  private scopes(req: OutgoingRequest): string[] {
    const p = this.basePath !== '' && req.path.startsWith(this.basePath) ? req.path.slice(this.basePath.length) : req.path;
    return scopesFor(req.method, p);
  }
}
