// What a ConnectorClass API service gets instead of credentials placed for it
// (connectorclass_api_spec.mdx, "Authentication Information"): the tool address, the Secret
// type and the Secret data, each base64-encoded into an `X-Plugin-*` header.
import type { Connector, Secret } from '../types';

export const PLUGIN_META = 'x-plugin-meta';
export const PLUGIN_AUTH = 'x-plugin-auth';
export const PLUGIN_SECRET = 'x-plugin-secret';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/**
 * `[name, value, ...]` for the upstream request:
 *  - `X-Plugin-Meta`: base64 of `{"baseURL":"<spec.address>"}`;
 *  - `X-Plugin-Auth`: base64 of the Secret's type (`kubernetes.io/basic-auth`);
 *  - `X-Plugin-Secret`: base64 of the Secret's `data` as JSON, values still base64 as the API
 *    server keeps them (keys sorted, as Go's encoding/json writes a map).
 * Without a Secret (an optional auth type) only `X-Plugin-Meta` is sent.
 */
export function pluginHeaders(c: Connector, secret: Secret | undefined): readonly string[] {
  const out = [PLUGIN_META, b64(JSON.stringify({ baseURL: c.spec.address }))];
  if (secret === undefined) return out;
  const data: Record<string, string> = {};
  const given = secret.data ?? {};
  for (const k of Object.keys(given).sort()) data[k] = given[k]!;
  out.push(PLUGIN_AUTH, b64(secret.type ?? 'Opaque'), PLUGIN_SECRET, b64(JSON.stringify(data)));
  return out;
}

/** The Secret a Connector's auth names (the route checked that it may be used). */
export function authSecretOf(c: Connector, secret: (namespace: string, name: string) => Secret | undefined): Secret | undefined {
  const ref = c.spec.auth?.secretRef;
  return ref === undefined ? undefined : secret(ref.namespace || c.metadata.namespace, ref.name);
}

/** Drops every `X-Plugin-*` header a client sent: only the proxy speaks for the Connector. */
export function dropPluginHeaders(headers: string[]): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i]!.startsWith('x-plugin-')) headers.splice(i, 2);
}
