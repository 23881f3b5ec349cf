// The OCI distribution version check on the proxy's own host: registry clients (skopeo,
// crane, docker) call `GET /v2/` before anything else and learn there how to authenticate.
// The proxy answers as a registry with Basic auth: 401 and a Basic challenge until the
// client sends a valid token (its ServiceAccount token as the password), then 200. The
// repositories behind it are addressed `/v2/namespaces/<ns>/connectors/<name>/<repo>/...`.
// On a `c-<name>.<ns>.<domain>` host `/v2/` is the tool's and goes to the Connector instead.
import type { ServerResponse } from 'node:http';

/** True for `/v2/` and `/v2` (with or without a query): the registry base, not a repository. */
export function isRegistryBase(url: string): boolean {
  if (!url.startsWith('/v2')) return false;
  const c = url.charCodeAt(3);
  if (Number.isNaN(c) || c === 63 /* ? */) return true;
  if (c !== 47 /* / */) return false;
  const d = url.charCodeAt(4);
  return Number.isNaN(d) || d === 63;
}

const API_VERSION = 'registry/2.0';

/** The distribution error code of a refusal's status. */
function errorCode(status: number): string {
  switch (status) {
    case 401: return 'UNAUTHORIZED';
    case 403: return 'DENIED';
    case 405: return 'UNSUPPORTED';
    default: return 'UNAVAILABLE';
  }
}

/**
 * A registry-style answer: the API version header and, for errors (`message` given),
 * `{"errors":[{code,message}]}`.
 */
export function registryAnswer(res: ServerResponse, method: string | undefined, status: number, message: string | undefined, headers: Readonly<Record<string, string>> | undefined): void {
  const body = message === undefined ? '{}' : JSON.stringify({ errors: [{ code: errorCode(status), message: `connectors-proxy: ${message}`, detail: null }] });
  res.writeHead(status, {
    'docker-distribution-api-version': API_VERSION,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(method === 'HEAD' ? undefined : body);
}
