// Which auth type of its class a Connector uses and the state of its Secret: one answer for
// the route (injector or 502) and for the conditions (SecretReady).
import { objectKey, type AuthTypeSpec, type Connector, type ConnectorClass, type ObjectKey, type Secret } from '../types';
import { requiredSecretKeys } from './validate';

export type AuthResolution =
  | { readonly kind: 'none' }
  | { readonly kind: 'unknown-type'; readonly wanted: string }
  | { readonly kind: 'ambiguous'; readonly names: readonly string[] }
  | { readonly kind: 'no-secret'; readonly authType: AuthTypeSpec }
  | { readonly kind: 'secret-not-found'; readonly authType: AuthTypeSpec; readonly secretKey: ObjectKey }
  | { readonly kind: 'cross-namespace'; readonly authType: AuthTypeSpec; readonly secretKey: ObjectKey }
  | { readonly kind: 'missing-keys'; readonly authType: AuthTypeSpec; readonly secretKey: ObjectKey; readonly secret: Secret; readonly missing: readonly string[] }
  | { readonly kind: 'ok'; readonly authType: AuthTypeSpec; readonly secretKey: ObjectKey; readonly secret: Secret; readonly data: Map<string, string> };

/**
 * Resolves `c`'s auth against its class `cls`, reading Secrets through `secret`. A Secret in
 * another namespace is refused unless `allowCrossNamespace` (--allow-cross-namespace-secrets).
 */
export function resolveAuth(
  c: Connector,
  cls: ConnectorClass,
  secret: (namespace: string, name: string) => Secret | undefined,
  allowCrossNamespace: boolean,
): AuthResolution {
  const types = cls.spec.auth?.types ?? [];
  if (types.length === 0) return { kind: 'none' };
  const wanted = c.spec.auth?.name;
  const authType = wanted !== undefined ? types.find((t) => t.name === wanted) : types.length === 1 ? types[0] : undefined;
  if (authType === undefined) {
    return wanted !== undefined ? { kind: 'unknown-type', wanted } : { kind: 'ambiguous', names: types.map((t) => t.name) };
  }
  const ref = c.spec.auth?.secretRef;
  if (ref === undefined) return { kind: 'no-secret', authType };
  const namespace = ref.namespace || c.metadata.namespace;
  const secretKey = objectKey(namespace, ref.name);
  if (ref.namespace && ref.namespace !== c.metadata.namespace && !allowCrossNamespace) {
    return { kind: 'cross-namespace', authType, secretKey };
  }
  const s = secret(namespace, ref.name);
  if (s === undefined) return { kind: 'secret-not-found', authType, secretKey };
  const data = decodeSecret(s);
  const missing = requiredSecretKeys(authType).filter((k) => !data.has(k));
  if (missing.length > 0) return { kind: 'missing-keys', authType, secretKey, secret: s, missing };
  return { kind: 'ok', authType, secretKey, secret: s, data };
}

export function decodeSecret(s: Secret): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(s.data ?? {})) out.set(k, Buffer.from(v, 'base64').toString('utf8'));
  return out;
}

/** Why a Secret of another namespace is not used (route 502 and SecretReady). */
export function crossNamespaceMessage(secretKey: ObjectKey): string {
  return `Secret ${secretKey} is in another namespace than the Connector: refused unless the proxy runs with --allow-cross-namespace-secrets`;
}
