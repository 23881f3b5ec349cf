// Picks the credential builder for an auth type (SPEC section 5).
import { SecretTypes, type AuthTypeSpec } from '../types';
import { basicInjector } from './basic';
import { bearerInjector } from './bearer';
import type { Injector } from './injector';

export type { Injector, OutgoingRequest } from './injector';

/**
 * Builds the injector for `authType` from decoded Secret data. Throws with a message fit
 * for a 502 body (names keys and types, never values) when it cannot.
 */
export function buildInjector(authType: AuthTypeSpec, data: ReadonlyMap<string, string>): Injector {
  if (authType.generator?.rego) {
    throw new Error(`auth type "${authType.name}" uses a Rego generator, which this build does not evaluate yet`);
  }
  switch (authType.secretType) {
    case SecretTypes.basicAuth: return basicInjector(data);
    case SecretTypes.bearerToken: return bearerInjector(data);
    default:
      throw new Error(`auth type "${authType.name}": secretType "${authType.secretType}" has no built-in injector (use generator.rego)`);
  }
}
