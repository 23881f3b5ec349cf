// Picks the credential builder for an auth type (SPEC section 5).
import type { Dispatcher } from 'undici';
import { SecretTypes, type AuthTypeSpec, type Connector, type ConnectorClass } from '../types';
import { basicInjector } from './basic';
import { bearerInjector } from './bearer';
import type { Injector } from './injector';
import { RegoInjector } from './rego';
import { OAuth2Injector } from './oauth2';
import { RegistryTokenInjector } from './oci';
import type { PolicyHandle } from '../rego/policy-store';

export { InjectError, type Injector, type OutgoingRequest } from './injector';

export interface InjectorContext {
  /** The compiled `generator.rego` of the auth type, when it has one. */
  readonly policy: PolicyHandle | undefined;
  readonly maxBodyBytes: number;
  /** The Connector and class the injector serves (params such as an OAuth2 token URL). */
  readonly connector: Connector;
  readonly connectorClass: ConnectorClass;
  /**
   * A dispatcher for `origin` that verifies TLS with the Connector's CA trust: how injectors
   * reach token endpoints. Call it per use (pools are replaced when CAs change).
   */
  dispatcherFor(origin: string): Dispatcher;
  /** Names the Connector's CA set (caches keyed by it keep trusts apart). */
  readonly trustKey: string;
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
    case SecretTypes.basicAuth: return basicInjector(data);
    case SecretTypes.bearerToken: return bearerInjector(data);
    case SecretTypes.oauth2ClientCredentials: return new OAuth2Injector(authType, data, ctx);
    case SecretTypes.registryToken: return registryInjector(data, ctx);
    default:
      throw new Error(`auth type "${authType.name}": secretType "${authType.secretType}" has no built-in injector (use generator.rego)`);
  }
}

/**
 * The injector of an optional auth type whose Connector names no Secret, if it has one: the
 * registry token flow runs anonymously (a registry with token auth wants a token for public
 * repositories too). Undefined: the request goes without credentials.
 */
export function anonymousInjector(authType: AuthTypeSpec, ctx: () => InjectorContext): Injector | undefined {
  if (authType.generator?.rego !== undefined || authType.secretType !== SecretTypes.registryToken) return undefined;
  return registryInjector(undefined, ctx());
}

/** The registry token flow for the Connector's address (origin and path prefix, as the route uses them). */
function registryInjector(data: ReadonlyMap<string, string> | undefined, ctx: InjectorContext): Injector {
  let u: URL;
  try { u = new URL(ctx.connector.spec.address); } catch { throw new Error('the Connector address is not a URL'); }
  const basePath = u.pathname.endsWith('/') ? u.pathname.slice(0, -1) : u.pathname;
  return new RegistryTokenInjector(data, { origin: u.origin, basePath, trustKey: ctx.trustKey, dispatcherFor: (o) => ctx.dispatcherFor(o) });
}
