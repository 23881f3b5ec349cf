// OAuth2 client credentials (RFC 6749 section 4.4): the Secret holds a client ID and secret,
// the proxy trades them at the token endpoint for an access token and sends the tool
// `Authorization: Bearer <token>`. Tokens are cached until shortly before they expire, one
// fetch serves every request waiting for it (single flight), and a 401 from the tool drops
// the token and the request is sent once more with a new one.
import { createHash } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import type { AuthTypeSpec, Connector, ConnectorClass } from '../types';
import { parseJsonObject, readLimited, safeText, transportReason } from './token-endpoint';
import { InjectError, assertHeaderSafe, getHeader, setHeader, type Injector, type OutgoingRequest } from './injector';

export type ClientAuthMethod = 'basic' | 'body';

export interface ClientCredentialsConfig {
  readonly tokenURL: URL;
  readonly clientID: string;
  readonly clientSecret: string;
  /** Space-separated, as sent in `scope`; '' for none. */
  readonly scope: string;
  readonly audience: string;
  readonly clientAuth: ClientAuthMethod;
}

/** What the injector needs from its surroundings: where the token endpoint is reached. */
export interface OAuth2Context {
  readonly connector: Connector;
  readonly connectorClass: ConnectorClass;
  /** A dispatcher for an origin with the Connector's TLS trust. */
  dispatcherFor(origin: string): Dispatcher;
  /** Identifies the trust in the cache key: the same client at the same URL with other CAs is another source. */
  readonly trustKey?: string;
}

/** Time allowed for the token endpoint to answer. */
const TOKEN_TIMEOUT_MS = 30_000;
/** Largest token endpoint answer read. */
const TOKEN_BODY_LIMIT = 64 * 1024;
/** Lifetime assumed when the token endpoint does not say (`expires_in` is optional). */
const DEFAULT_LIFETIME_S = 300;
/** Token sources kept; beyond it the least recently created go (they refetch on next use). */
const MAX_SOURCES = 1024;

/**
 * A parameter of the auth: the Secret's key, else the Connector's `spec.auth.params` or
 * `spec.params`, else the default of the class's `spec.params` (a class can fix the token URL).
 */
function setting(name: string, data: ReadonlyMap<string, string>, ctx: OAuth2Context): string | undefined {
  const v = data.get(name)
    ?? ctx.connector.spec.auth?.params?.find((p) => p.name === name)?.value
    ?? ctx.connector.spec.params?.find((p) => p.name === name)?.value
    ?? ctx.connectorClass.spec.params?.find((p) => p.name === name)?.default;
  const t = v?.trim();
  return t === '' ? undefined : t;
}

/** Reads and checks the configuration; errors name keys and params, never values. */
export function clientCredentialsConfig(data: ReadonlyMap<string, string>, ctx: OAuth2Context): ClientCredentialsConfig {
  const clientID = data.get('clientID') ?? '';
  const clientSecret = data.get('clientSecret') ?? '';
  if (clientID === '') throw new Error('Secret key "clientID" is empty');
  if (clientSecret === '') throw new Error('Secret key "clientSecret" is empty');
  const raw = setting('tokenURL', data, ctx);
  if (raw === undefined) throw new Error('no token URL: set Secret key "tokenURL", or param "tokenURL" on the Connector or (as a default) the ConnectorClass');
  let tokenURL: URL;
  try { tokenURL = new URL(raw); } catch { throw new Error('"tokenURL" is not a URL'); }
  if (tokenURL.protocol !== 'https:' && tokenURL.protocol !== 'http:') throw new Error('"tokenURL" must be an http(s) URL');
  if (tokenURL.username !== '' || tokenURL.password !== '') throw new Error('"tokenURL" must not carry user information');
  const method = (setting('clientAuthMethod', data, ctx) ?? 'basic').toLowerCase();
  let clientAuth: ClientAuthMethod;
  if (method === 'basic' || method === 'client_secret_basic') clientAuth = 'basic';
  else if (method === 'body' || method === 'post' || method === 'client_secret_post') clientAuth = 'body';
  else throw new Error('param "clientAuthMethod" must be "basic" (client_secret_basic) or "body" (client_secret_post)');
  const scope = (setting('scopes', data, ctx) ?? '').split(/[\s,]+/).filter((s) => s !== '').join(' ');
  return { tokenURL, clientID, clientSecret, scope, audience: setting('audience', data, ctx) ?? '', clientAuth };
}

interface Token {
  readonly header: string;
  /** Refresh after this (ms since epoch): shortly before the real expiry. */
  readonly refreshAt: number;
}

/** One client at one token endpoint: its current token and the fetch under way. */
class TokenSource {
  private token: Token | undefined;
  private pending: Promise<Token> | undefined;
  /** Token requests sent (tests, metrics). */
  fetches = 0;

  constructor(private readonly cfg: ClientCredentialsConfig, private dispatcherFor: (origin: string) => Dispatcher) {}

  /** Routes are rebuilt on every index change; the newest one's dispatcher is used. */
  rebind(dispatcherFor: (origin: string) => Dispatcher): void {
    this.dispatcherFor = dispatcherFor;
  }

  /** The current `Bearer` header value, fetching a token when there is none or it is about to expire. */
  header(): string | Promise<string> {
    const t = this.token;
    if (t !== undefined && Date.now() < t.refreshAt) return t.header;
    return this.refresh().then((n) => n.header);
  }

  /** The tool refused `used`: forget it, unless a newer token replaced it already. */
  invalidate(used: string | undefined): void {
    if (this.token !== undefined && this.token.header === used) this.token = undefined;
  }

  private refresh(): Promise<Token> {
    this.pending ??= this.fetch().then(
      (t) => { this.pending = undefined; this.token = t; return t; },
      (err: Error) => { this.pending = undefined; throw err; },
    );
    return this.pending;
  }

  private async fetch(): Promise<Token> {
    const { cfg } = this;
    this.fetches++;
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (cfg.scope !== '') form.set('scope', cfg.scope);
    if (cfg.audience !== '') form.set('audience', cfg.audience);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (cfg.clientAuth === 'basic') {
      // RFC 6749 section 2.3.1: both parts form-encoded before Basic.
      headers.authorization = 'Basic ' + Buffer.from(`${formEncode(cfg.clientID)}:${formEncode(cfg.clientSecret)}`).toString('base64');
    } else {
      form.set('client_id', cfg.clientID);
      form.set('client_secret', cfg.clientSecret);
    }
    const where = `the token endpoint ${cfg.tokenURL.origin}${cfg.tokenURL.pathname}`;
    let status: number;
    let text: string;
    const started = Date.now();
    try {
      const res = await request(cfg.tokenURL, {
        method: 'POST', headers, body: form.toString(),
        dispatcher: this.dispatcherFor(cfg.tokenURL.origin),
        headersTimeout: TOKEN_TIMEOUT_MS, bodyTimeout: TOKEN_TIMEOUT_MS,
      });
      status = res.statusCode;
      text = await readLimited(res.body, TOKEN_BODY_LIMIT);
    } catch (err) {
      throw new InjectError(`${where} ${transportReason(err as Error & { code?: string })}`);
    }
    const body = parseJsonObject(text);
    if (status !== 200) {
      const error = typeof body?.error === 'string' ? safeText(body.error, [cfg.clientSecret]) : undefined;
      const description = typeof body?.error_description === 'string' ? safeText(body.error_description, [cfg.clientSecret]) : undefined;
      const detail = error ? `${error}${description ? `: ${description}` : ''}` : 'no OAuth2 error in the answer';
      throw new InjectError(`${where} refused the client credentials grant (HTTP ${status}, ${detail})`);
    }
    const token = body?.access_token;
    if (typeof token !== 'string' || token === '') throw new InjectError(`${where} answered 200 without an access_token`);
    const type = body?.token_type;
    if (type !== undefined && (typeof type !== 'string' || type.toLowerCase() !== 'bearer')) {
      throw new InjectError(`${where} issued a token of type ${typeof type === 'string' ? JSON.stringify(safeText(type, [cfg.clientSecret])) : 'unknown'}, not Bearer`);
    }
    assertHeaderSafe(token, `the access token from ${where}`);
    const expiresIn = Number(body?.expires_in ?? DEFAULT_LIFETIME_S);
    const lifetimeMs = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : DEFAULT_LIFETIME_S * 1000;
    // Refresh a little early (a tenth of the lifetime, at most 30 s) so no request goes out with a token about to lapse.
    return { header: `Bearer ${token}`, refreshAt: started + lifetimeMs - Math.min(30_000, lifetimeMs / 10) };
  }
}

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 appendix B). */
function formEncode(v: string): string {
  return encodeURIComponent(v).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

// Routes (and so injectors) are rebuilt whenever the index changes; the token sources live
// here so a token survives that, keyed by everything that identifies the grant.
const sources = new Map<string, TokenSource>();

function sourceFor(cfg: ClientCredentialsConfig, ctx: OAuth2Context): TokenSource {
  const key = createHash('sha256')
    .update([cfg.tokenURL.href, cfg.clientAuth, cfg.clientID, cfg.clientSecret, cfg.scope, cfg.audience, ctx.trustKey ?? ''].join('\0'))
    .digest('hex');
  let s = sources.get(key);
  if (s === undefined) {
    if (sources.size >= MAX_SOURCES) sources.delete(sources.keys().next().value!);
    s = new TokenSource(cfg, (o) => ctx.dispatcherFor(o));
    sources.set(key, s);
  } else {
    s.rebind((o) => ctx.dispatcherFor(o));
  }
  return s;
}

export class OAuth2Injector implements Injector {
  readonly kind = 'oauth2';
  private readonly source: TokenSource;

  constructor(readonly authType: AuthTypeSpec, data: ReadonlyMap<string, string>, ctx: OAuth2Context) {
    this.source = sourceFor(clientCredentialsConfig(data, ctx), ctx);
  }

  inject(req: OutgoingRequest): void | Promise<void> {
    const h = this.source.header();
    if (typeof h === 'string') {
      setHeader(req.headers, 'authorization', h);
      return;
    }
    return h.then((v) => setHeader(req.headers, 'authorization', v));
  }

  async onUnauthorized(req: OutgoingRequest, _challenge: string | undefined, resendable: boolean): Promise<boolean> {
    this.source.invalidate(getHeader(req.headers, 'authorization'));
    if (!resendable) return false;
    setHeader(req.headers, 'authorization', await this.source.header());
    return true;
  }
}
