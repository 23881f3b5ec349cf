// Picks how an auth type's credentials are placed and where they come from (SPEC section 5).
import type { Dispatcher } from 'undici';
import { SecretTypes, type AuthTypeSpec, type Connector, type ConnectorClass } from '../types';
import { basicCredential, bearerCredential } from '../credentials/static';
import { ClientCredentialsSource, clientCredentialsConfig, grantKey } from '../credentials/oauth2';
import type { CredentialSources } from '../credentials/sources';
import { RegistryTokenSource } from '../oci/token-source';
import { requestScopes, scopesAfterChallenge } from '../oci/scopes';
import type { PolicyHandle } from '../rego/policy-store';
import { StaticHeaderInjector, SourceHeaderInjector } from './header';
import type { Injector } from './injector';
import { RegoInjector } from './rego';

export { CredentialError, type Injector, type OutgoingRequest } from './injector';

/** What building an injector needs besides the auth type and the Secret's values. */
export interface InjectorContext {
  /** The compiled `generator.rego` of the auth type, when it has one. */
  readonly policy: PolicyHandle | undefined;
  readonly maxBodyBytes: number;
  /** The Connector and class the injector serves (params such as an OAuth2 token URL). */
  readonly connector: Connector;
  readonly connectorClass: ConnectorClass;
  /** The Connector's address: origin and path prefix (`''` for none). */
  readonly origin: string;
  readonly basePath: string;
  /**
   * A dispatcher for `origin` that verifies TLS with the Connector's CA trust: how sources
   * reach token endpoints. Called per use (pools are replaced when CAs change).
   */
  dispatcherFor(origin: string): Dispatcher;
  /** Names the Connector's CA set (the same grant with other CAs is another source). */
  readonly trustKey: string;
  /** Fetched-credential sources, kept across route rebuilds and replaced with the Secret version. */
  readonly sources: CredentialSources;
  /** Whose sources these are: the Secret (`ns/name`), or the Connector when it has none. */
  readonly owner: string;
  /** The Secret's version (its data hash): a new one gets new sources. */
  readonly version: string;
}

/**
 * Builds the injector for `authType` from decoded Secret data. Throws with a message fit
 * for a 502 body (names keys and types, never values) when it cannot.
 */
export function buildInjector(authType: AuthTypeSpec, data: ReadonlyMap<string, string>, ctx: InjectorContext): Injector {
  const source = authType.generator?.rego;
  if (source !== undefined) {
    if (ctx.policy === undefined) throw new Error('generator.rego needs the OPA compiler, which is not configured');
    return new RegoInjector(ctx.policy, data, { maxBodyBytes: ctx.maxBodyBytes }, source);
  }
  switch (authType.secretType) {
    case SecretTypes.basicAuth: return new StaticHeaderInjector('basic', 'authorization', basicCredential(data));
    case SecretTypes.bearerToken: return new StaticHeaderInjector('bearer', 'authorization', bearerCredential(data));
    case SecretTypes.oauth2ClientCredentials: {
      const cfg = clientCredentialsConfig(data, ctx);
      const s = ctx.sources.get(ctx.owner, ctx.version, `oauth2\u0000${grantKey(cfg, ctx.trustKey)}`, () => new ClientCredentialsSource(cfg, (o) => ctx.dispatcherFor(o)));
      return new SourceHeaderInjector<void>(s, 'authorization', { scopeOf: () => undefined });
    }
    case SecretTypes.registryToken: {
      const username = data.get('username') ?? '';
      const password = data.get('password') ?? '';
      if (username === '') throw new Error('Secret key "username" is empty');
      if (password === '') throw new Error('Secret key "password" is empty');
      return registryInjector(username, password, ctx);
    }
    default:
      throw new Error(`auth type "${authType.name}": secretType "${authType.secretType}" has no built-in injector (use generator.rego)`);
  }
}

/**
 * The injector of an optional auth type whose Connector names no Secret, if it has one: the
 * registry token flow runs anonymously (a registry with token auth wants a token for public
 * repositories too). Undefined: the request goes without credentials.
 */
export function anonymousInjector(authType: AuthTypeSpec, ctx: InjectorContext): Injector | undefined {
  if (authType.generator?.rego !== undefined || authType.secretType !== SecretTypes.registryToken) return undefined;
  return registryInjector('', '', ctx);
}

/** The registry token flow for the Connector's address, scoped per request. */
function registryInjector(username: string, password: string, ctx: InjectorContext): Injector {
  const { origin, basePath } = ctx;
  const source = ctx.sources.get(ctx.owner, ctx.version, `registry\u0000${origin}${basePath}\u0000${ctx.trustKey}`,
    () => new RegistryTokenSource(username, password, { origin, basePath, dispatcherFor: (o) => ctx.dispatcherFor(o) }));
  return new SourceHeaderInjector<readonly string[]>(source, 'authorization', {
    scopeOf: (req) => requestScopes(req.method, req.path, basePath),
    retryScope: scopesAfterChallenge,
  });
}
