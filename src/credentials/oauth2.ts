// OAuth2 client credentials (RFC 6749 section 4.4): the Secret holds a client ID and secret,
// the proxy trades them at the token endpoint for an access token, `Bearer <token>`. Tokens
// are cached until shortly before they expire, one fetch serves every request waiting for it
// (single flight), and a token the tool refused is dropped so the next request gets a new one.
import { createHash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import type { Connector, ConnectorClass } from '../types';
import type { MaybePromise } from '../util/maybe';
import { askTokenEndpoint, safeText } from './token-endpoint';
import { SYSTEM_CLOCK, TokenCache, renewalTime, type Clock, type Expiring } from './expiring';
import { CredentialError, type Credential, type CredentialSource } from './source';
import { assertHeaderSafe } from './static';

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

/** Where the settings are read: the Connector and its class (params such as a token URL). */
export interface OAuth2Settings {
  readonly connector: Connector;
  readonly connectorClass: ConnectorClass;
}

/** Lifetime assumed when the token endpoint does not say (`expires_in` is optional). */
const DEFAULT_LIFETIME_S = 300;

/**
 * A parameter of the auth: the Secret's key, else the Connector's `spec.auth.params` or
 * `spec.params`, else the default of the class's `spec.params` (a class can fix the token URL).
 */
function setting(name: string, data: ReadonlyMap<string, string>, ctx: OAuth2Settings): string | undefined {
  const v = data.get(name)
    ?? ctx.connector.spec.auth?.params?.find((p) => p.name === name)?.value
    ?? ctx.connector.spec.params?.find((p) => p.name === name)?.value
    ?? ctx.connectorClass.spec.params?.find((p) => p.name === name)?.default;
  const t = v?.trim();
  return t === '' ? undefined : t;
}

/** Reads and checks the configuration; errors name keys and params, never values. */
export function clientCredentialsConfig(data: ReadonlyMap<string, string>, ctx: OAuth2Settings): ClientCredentialsConfig {
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

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 appendix B). */
function formEncode(v: string): string {
  return encodeURIComponent(v).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** Everything that identifies a grant: two Connectors with the same one share a token. */
export function grantKey(cfg: ClientCredentialsConfig, trustKey: string): string {
  return createHash('sha256')
    .update([cfg.tokenURL.href, cfg.clientAuth, cfg.clientID, cfg.clientSecret, cfg.scope, cfg.audience, trustKey].join('\0'))
    .digest('hex');
}

/** One client at one token endpoint: its current `Bearer` credential. */
export class ClientCredentialsSource implements CredentialSource<void> {
  readonly kind = 'oauth2';
  private readonly tokens: TokenCache<string>;

  constructor(
    private readonly cfg: ClientCredentialsConfig,
    /** A dispatcher for an origin with the Connector's TLS trust (asked per fetch: pools follow CA changes). */
    private readonly dispatcherFor: (origin: string) => Dispatcher,
    private readonly clock?: Clock,
  ) {
    this.tokens = new TokenCache(1, clock);
  }

  /** Token requests sent (tests, metrics). */
  get fetches(): number {
    return this.tokens.fetches;
  }

  get(): MaybePromise<Credential> {
    return this.tokens.get('', () => this.fetch());
  }

  invalidate(used: Credential): void {
    if (used !== undefined) this.tokens.forget(used);
  }

  private async fetch(): Promise<Expiring<string>> {
    const { cfg } = this;
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
    const started = (this.clock ?? SYSTEM_CLOCK).now();
    const { status, body } = await askTokenEndpoint(cfg.tokenURL, this.dispatcherFor(cfg.tokenURL.origin), where, { method: 'POST', headers, body: form.toString() });
    if (status !== 200) {
      const error = typeof body?.error === 'string' ? safeText(body.error, [cfg.clientSecret]) : undefined;
      const description = typeof body?.error_description === 'string' ? safeText(body.error_description, [cfg.clientSecret]) : undefined;
      const detail = error ? `${error}${description ? `: ${description}` : ''}` : 'no OAuth2 error in the answer';
      throw new CredentialError(`${where} refused the client credentials grant (HTTP ${status}, ${detail})`);
    }
    const token = body?.access_token;
    if (typeof token !== 'string' || token === '') throw new CredentialError(`${where} answered 200 without an access_token`);
    const type = body?.token_type;
    if (type !== undefined && (typeof type !== 'string' || type.toLowerCase() !== 'bearer')) {
      throw new CredentialError(`${where} issued a token of type ${typeof type === 'string' ? JSON.stringify(safeText(type, [cfg.clientSecret])) : 'unknown'}, not Bearer`);
    }
    assertHeaderSafe(token, `the access token from ${where}`);
    return { value: `Bearer ${token}`, refreshAt: renewalTime(started, body?.expires_in, DEFAULT_LIFETIME_S) };
  }
}
