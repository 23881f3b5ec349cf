// Forward proxy mode (SPEC section 3): the client sets
//   http_proxy=http://<ns>%2F<name>[,<ns>%2F<name>...]:<token>@<proxy>
// and sends absolute-form requests (`GET http://tool/path HTTP/1.1`) with
// `Proxy-Authorization: Basic base64(<ns>/<name>[,...]:<token>)`. Credentials are added only
// when the target matches one of the listed Connectors' addresses; other targets are
// relayed without them. This module holds the parsing and matching; admission and the
// pipeline are shared with reverse mode.
import type { ConnectorRef } from '../auth/authenticator';
import { isUnder, type Upstream } from '../routes/route';

/** Most Connectors one Proxy-Authorization may list: the list is walked per request. */
export const MAX_LISTED_CONNECTORS = 16;

/** Sent with every 407 so clients (curl, git, pip, npm) retry with their proxy credentials. */
export const PROXY_AUTHENTICATE = 'Basic realm="connectors-proxy", charset="UTF-8"';

export interface ProxyCredentials {
  readonly connectors: readonly ConnectorRef[];
  readonly token: string;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Parses `Proxy-Authorization: Basic base64(<ns>/<name>[,<ns>/<name>...]:<token>)`. Clients
 * decode the user part of http_proxy before encoding it, but some send `%2F` as written, so
 * both are accepted. The error text never contains the token.
 */
export function parseProxyAuthorization(header: string | undefined): ProxyCredentials | { readonly error: string } {
  if (header === undefined) return { error: 'proxy authentication required: set http_proxy=http://<namespace>%2F<connector>:<token>@<proxy>' };
  const space = header.indexOf(' ');
  if (space < 0 || header.slice(0, space).toLowerCase() !== 'basic') {
    return { error: 'Proxy-Authorization must be Basic <namespace>/<connector>[,...]:<token>' };
  }
  const decoded = Buffer.from(header.slice(space + 1).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { error: 'Proxy-Authorization must be Basic <namespace>/<connector>[,...]:<token>' };
  const token = decoded.slice(colon + 1);
  if (token === '') return { error: 'Proxy-Authorization has no token: put your ServiceAccount token as the password of http_proxy' };
  let user = decoded.slice(0, colon);
  if (user.includes('%')) {
    try {
      user = decodeURIComponent(user);
    } catch {
      return { error: 'the user part of Proxy-Authorization is not valid percent-encoding' };
    }
  }
  const connectors: ConnectorRef[] = [];
  for (const item of user.split(',')) {
    const entry = item.trim();
    if (entry === '') continue;
    const slash = entry.indexOf('/');
    const namespace = entry.slice(0, slash);
    const name = entry.slice(slash + 1);
    if (slash <= 0 || !NAMESPACE.test(namespace) || !NAME.test(name)) {
      return { error: `"${printable(entry)}" in the Proxy-Authorization user is not <namespace>/<connector>` };
    }
    connectors.push({ namespace, name });
  }
  if (connectors.length === 0) return { error: 'Proxy-Authorization names no Connector: the user must be <namespace>/<connector>[,...]' };
  if (connectors.length > MAX_LISTED_CONNECTORS) return { error: `Proxy-Authorization lists ${connectors.length} Connectors; at most ${MAX_LISTED_CONNECTORS} are allowed` };
  return { connectors, token };
}

/** The target of an absolute-form request. */
export interface ForwardTarget {
  /** `http://host:port` as URL.origin gives it (default port omitted). */
  readonly origin: string;
  readonly host: string;
  /** Path and query, as the client sent them. */
  readonly path: string;
}

/** Parses `http://host[:port]/path?query` (or https). */
export function parseTarget(url: string): ForwardTarget | { readonly error: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { error: 'the request target is not a valid absolute URL' };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { error: `forward proxy mode serves http and https targets, not ${u.protocol.slice(0, -1)}` };
  if (u.username !== '' || u.password !== '') return { error: 'the request target must not contain user information' };
  // The path as sent (URL would normalize dot segments and percent-encoding).
  const start = url.indexOf('/', url.indexOf('//') + 2);
  let path = start < 0 ? '/' : url.slice(start);
  const hash = path.indexOf('#');
  if (hash >= 0) path = path.slice(0, hash);
  if (path.charCodeAt(0) === 63 /* ? */) path = '/' + path;
  return { origin: u.origin, host: u.host, path };
}

/**
 * True when `target` is under `place`: the same origin and the place's path prefix ending
 * at a segment boundary (`/gitlab` matches `/gitlab/x`, never `/gitlab-evil`).
 */
export function targetMatches(place: Upstream, target: ForwardTarget): boolean {
  return isUnder(place, target.origin, target.path);
}

/** A CONNECT target: `host:port`, the host lower-case (IPv6 in brackets, as URLs write it). */
export interface Authority {
  readonly host: string;
  readonly port: number;
  /** `host:port` */
  readonly text: string;
}

const HOST_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;

/** Parses the `host:port` of a CONNECT request line; undefined for anything else. */
export function parseAuthority(value: string): Authority | undefined {
  const colon = value.lastIndexOf(':');
  if (colon <= 0 || colon === value.length - 1 || value.length > 300) return undefined;
  const portText = value.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  let host = value.slice(0, colon).toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (!(IPV6.test(host) || HOST_NAME.test(host))) return undefined;
  return { host, port, text: `${host}:${port}` };
}

/** True when a `Host` header names `authority` (`host:port`; no port means https's 443). */
export function sameAuthority(hostHeader: string, authority: string): boolean {
  let h = hostHeader.trim().toLowerCase();
  const bracket = h.lastIndexOf(']');
  const colon = h.lastIndexOf(':');
  if (colon <= bracket) h += ':443';
  const dot = h.lastIndexOf('.:');
  if (dot >= 0 && dot === h.lastIndexOf(':') - 1) h = h.slice(0, dot) + h.slice(dot + 1); // a fully qualified name
  return h === authority;
}

/** A client-sent value (a Host, a target) fit for an error message. */
export function printable(s: string): string {
  return s.length > 80 ? s.slice(0, 80) + '…' : s.replace(/[^\x20-\x7e]/g, '?');
}
