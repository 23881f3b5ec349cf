// Which Connector a request is for (SPEC section 3):
//   host form  c-<name>.<namespace>.<domain>            path passed unchanged
//   path form  /namespaces/<ns>/connectors/<name>/<rest>  <rest> appended to the address
//   OCI path   /v2/namespaces/<ns>/connectors/<name>/<repo>/...  → /v2/<repo>/... (src/oci/)
import type { ResponseProfile } from '../http/profile';
import { REGISTRY_PATH_PREFIX, REGISTRY_PROFILE } from '../oci/profile';

export interface Resolved {
  readonly form: 'host' | 'path';
  readonly namespace: string;
  readonly name: string;
  /** Path and query to append to the Connector address; always starts with `/`. */
  readonly rest: string;
  /** The path prefix the client used for this Connector (`''` in host form). */
  readonly publicPrefix: string;
  /** How responses go back when the form itself says (the OCI path form); else the route's. */
  readonly profile?: ResponseProfile;
}

export type ResolveResult = Resolved | { readonly error: string; readonly status: 400 | 404 };

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export class Resolver {
  private readonly suffix: string;
  /** Every suffix accepted after `c-<name>.<ns>`, longest first ('' = none: `c-<name>.<ns>`). */
  private readonly suffixes: string[];

  /** `aliases`: more domains Pods may use (podHostSuffixes in src/cluster/connector-services.ts). */
  constructor(domain: string, aliases: readonly string[] = []) {
    const dot = (d: string): string => { const n = d.toLowerCase().replace(/^\.+|\.+$/g, ''); return n === '' ? '' : '.' + n; };
    this.suffix = dot(domain);
    this.suffixes = [...new Set([this.suffix, ...aliases.map(dot)])].sort((a, b) => b.length - a.length);
  }

  resolve(hostHeader: string | undefined, url: string): ResolveResult {
    if (url.charCodeAt(0) !== 47 /* / */) {
      return { status: 400, error: 'the request target must be a path (absolute-form requests are for forward proxy mode)' };
    }
    if (hasDotSegment(url)) {
      return { status: 400, error: 'the request path contains "." or ".." segments; send a normalized path' };
    }
    const host = hostHeader === undefined ? undefined : this.connectorHost(hostHeader);
    if (host !== undefined) return { form: 'host', namespace: host.namespace, name: host.name, rest: url, publicPrefix: '' };
    return resolvePath(url);
  }

  /** Parses `c-<name>.<ns>.<domain>[:port]`; undefined when the host is not of that form. */
  connectorHost(hostHeader: string): { namespace: string; name: string } | undefined {
    let host = hostHeader;
    const colon = host.lastIndexOf(':');
    if (colon > 0 && host.charCodeAt(0) !== 91 /* [ */) {
      if (!isPort(host, colon + 1)) return undefined; // `host:aa` names no port, so no Connector
      host = host.slice(0, colon);
    }
    host = host.toLowerCase();
    if (host.endsWith('.')) host = host.slice(0, -1); // a fully qualified name
    if (!host.startsWith('c-')) return undefined;
    for (const suffix of this.suffixes) {
      if (host.length <= suffix.length + 4 || !host.endsWith(suffix)) continue;
      const inner = host.slice(2, host.length - suffix.length);
      const dot = inner.lastIndexOf('.');
      if (dot <= 0) continue;
      const name = inner.slice(0, dot);
      const namespace = inner.slice(dot + 1);
      // Through an alias the name is one DNS label, as a Service name is (`c-a.b.ns` is no Pod's name).
      if (suffix !== this.suffix && name.includes('.')) continue;
      if (NAME.test(name) && NAMESPACE.test(namespace)) return { namespace, name };
    }
    return undefined;
  }

  hostFor(namespace: string, name: string): string {
    return `c-${name}.${namespace}${this.suffix}`;
  }
}

/** Digits only (possibly none: `host:` is an empty port, RFC 3986) from `from` to the end. */
function isPort(s: string, from: number): boolean {
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** A path form: how it starts, what of it the tool's path keeps, and its response rules. */
interface PathForm {
  readonly prefix: string;
  readonly keep: string;
  readonly profile?: ResponseProfile;
}

const PATH_FORMS: readonly PathForm[] = [
  { prefix: '/namespaces/', keep: '' },
  // Registry clients put the Connector inside the repository name; the registry's `/v2` stays.
  { prefix: REGISTRY_PATH_PREFIX, keep: '/v2', profile: REGISTRY_PROFILE },
];
const CONNECTORS = 'connectors/';

function resolvePath(url: string): ResolveResult {
  const form = PATH_FORMS.find((f) => url.startsWith(f.prefix));
  if (form === undefined) return notFound;
  const start = form.prefix.length;
  const nsEnd = url.indexOf('/', start);
  if (nsEnd < 0 || !url.startsWith(CONNECTORS, nsEnd + 1)) return notFound;
  const namespace = url.slice(start, nsEnd);
  const nameStart = nsEnd + 1 + CONNECTORS.length;
  let nameEnd = nameStart;
  while (nameEnd < url.length) {
    const c = url.charCodeAt(nameEnd);
    if (c === 47 /* / */ || c === 63 /* ? */) break;
    nameEnd++;
  }
  const name = url.slice(nameStart, nameEnd);
  if (!NAMESPACE.test(namespace) || !NAME.test(name)) return notFound;
  let rest = url.slice(nameEnd);
  if (rest.charCodeAt(0) !== 47) rest = '/' + rest;
  const resolved = { form: 'path' as const, namespace, name, rest: form.keep + rest, publicPrefix: url.slice(0, nameEnd) };
  return form.profile === undefined ? resolved : { ...resolved, profile: form.profile };
}

const notFound: ResolveResult = Object.freeze({
  status: 404,
  error: 'no connector in this request: use http://c-<name>.<namespace>.<domain>/... or /namespaces/<namespace>/connectors/<name>/...',
});

/**
 * A `.` or `..` segment: `.`, `%2e` or `%252e` (encoded twice, for a tool that decodes
 * twice), once or twice, with an optional `;param` (Tomcat and Jetty read `..;x` as `..`),
 * between separators that some tool may decode: `/`, `\\`, `%2f`, `%5c`, `%252f`, `%255c`.
 */
const DOT_SEGMENT = /(?:^|[/\\]|%2f|%5c|%252f|%255c)(?:\.|%2e|%252e){1,2}(?:;(?:(?!%2f|%5c|%252f|%255c)[^/\\])*)?(?=$|[/\\]|%2f|%5c|%252f|%255c)/i;
const MAYBE_DOT = /\.|%2e|%252e/i;
const PATH_END = /[?#]/;

/**
 * True when the path (not the query) has a `.` or `..` segment, also percent-encoded, with
 * path parameters, or between encoded slashes or backslashes. Such paths are refused rather
 * than normalized: the tool behind could resolve them differently from us (and climb out of
 * the Connector's address prefix), and they have no legitimate use through a Connector.
 */
export function hasDotSegment(url: string): boolean {
  // A `#` ends the path too for a tool that parses the target as a URL (`/..#x` is `/..`).
  const q = url.search(PATH_END);
  const path = q < 0 ? url : url.slice(0, q);
  return MAYBE_DOT.test(path) && DOT_SEGMENT.test(path);
}
