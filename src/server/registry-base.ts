// The OCI distribution version check on the proxy's own host: registry clients (skopeo,
// crane, docker) call `GET /v2/` before anything else and learn there how to authenticate.
// The proxy answers as a registry with Basic auth: 401 and a Basic challenge until the
// client sends a valid token (its ServiceAccount token as the password), then 200. The
// repositories behind it are addressed `/v2/namespaces/<ns>/connectors/<name>/<repo>/...`.
// On a `c-<name>.<ns>.<domain>` host `/v2/` is the tool's and goes to the Connector instead.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthDecision, ClientAuthenticator } from '../auth/authenticator';
import { WWW_AUTHENTICATE, tokenFromAuthorization } from '../auth/client-token';

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

/** Answers `GET|HEAD /v2/`; `done` gets the status (access log, metrics). */
export function serveRegistryBase(req: IncomingMessage, res: ServerResponse, auth: ClientAuthenticator, done: (status: number, user?: string) => void): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    answer(res, req.method, 405, 'UNSUPPORTED', 'the registry version check is read with GET', { allow: 'GET, HEAD' });
    return done(405);
  }
  const token = tokenFromAuthorization(req.headers.authorization);
  if (token === undefined) {
    answer(res, req.method, 401, 'UNAUTHORIZED', 'authentication required: log in with any user name and your ServiceAccount token as the password', { 'www-authenticate': WWW_AUTHENTICATE });
    return done(401);
  }
  const decided = (d: AuthDecision): void => {
    if (d.allowed) {
      answer(res, req.method, 200, undefined, undefined, {});
      return done(200, d.user);
    }
    if (d.status === 401) {
      answer(res, req.method, 401, 'UNAUTHORIZED', `token rejected: ${d.reason}`, { 'www-authenticate': WWW_AUTHENTICATE });
    } else {
      // A 403 cannot happen without a Connector; anything else means the check itself failed.
      answer(res, req.method, 503, 'UNAVAILABLE', `cannot check the token now: ${d.reason}`, { 'retry-after': '1' });
    }
    done(d.status, d.user);
  };
  const d = auth.authenticate(token);
  if (d instanceof Promise) d.then(decided, () => { answer(res, req.method, 503, 'UNAVAILABLE', 'cannot check the token now; try again', {}); done(503); });
  else decided(d);
}

/** A registry-style answer: the API version header and, for errors, `{"errors":[{code,message}]}`. */
function answer(res: ServerResponse, method: string | undefined, status: number, code: string | undefined, message: string | undefined, headers: Record<string, string>): void {
  const body = code === undefined ? '{}' : JSON.stringify({ errors: [{ code, message: `connectors-proxy: ${message}`, detail: null }] });
  res.writeHead(status, {
    'docker-distribution-api-version': API_VERSION,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(method === 'HEAD' ? undefined : body);
}
