// Hop-by-hop handling, written once for both directions (RFC 9110 section 7.6.1), plus the
// headers the proxy owns on the way up: the client's credentials never pass.

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

/** Request headers the proxy drops or sets itself, beyond hop-by-hop ones. */
const OWNED_UPSTREAM = new Set([
  'authorization', // the client's token: never to the tool
  'host', 'expect', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'via', 'forwarded',
  'content-length', // set from the parsed value, once
]);

const CONNECTION_OPTIONS = new Set(['keep-alive', 'close']);

/** Names a `Connection` header lists are hop-by-hop too. */
function connectionTokens(value: string | undefined, into?: Set<string>): Set<string> | undefined {
  if (value === undefined || value === '') return into;
  // What nearly every peer sends, and lists no header.
  if (value.length <= 10 && CONNECTION_OPTIONS.has(value.toLowerCase())) return into;
  let out = into;
  for (const t of value.split(',')) {
    const name = t.trim().toLowerCase();
    if (name === '' || name === 'close' || name === 'keep-alive') continue;
    (out ??= new Set()).add(name);
  }
  return out;
}

export interface UpstreamHeaderContext {
  readonly upstreamHost: string;
  readonly clientAddress: string | undefined;
  readonly proto: 'http' | 'https';
  /** Further headers to drop (where the auth extractor found the token), lower-case. */
  readonly dropHeaders?: ReadonlySet<string>;
  /** Pass the client's Authorization (forward-proxy targets no Connector matches). */
  readonly keepAuthorization?: boolean;
}

/**
 * Builds the flat header list sent upstream from the client's raw headers. Returns
 * lower-case names; values are left as the client sent them.
 */
export function upstreamRequestHeaders(raw: readonly string[], connection: string | undefined, ctx: UpstreamHeaderContext): string[] {
  const listed = connectionTokens(connection);
  const out: string[] = ['host', ctx.upstreamHost];
  let xff: string | undefined;
  let via: string | undefined;
  let host: string | undefined;
  let contentLength: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (HOP_BY_HOP.has(name) || (listed !== undefined && listed.has(name)) || ctx.dropHeaders?.has(name)) continue;
    if (OWNED_UPSTREAM.has(name)) {
      if (name === 'authorization' && ctx.keepAuthorization === true) out.push(name, value);
      else if (name === 'x-forwarded-for') xff = xff === undefined ? value : `${xff}, ${value}`;
      else if (name === 'via') via = via === undefined ? value : `${via}, ${value}`;
      else if (name === 'host') host = value;
      else if (name === 'content-length') contentLength = value;
      continue;
    }
    out.push(name, value);
  }
  if (contentLength !== undefined) out.push('content-length', contentLength);
  const client = ctx.clientAddress ?? '';
  out.push('x-forwarded-for', xff === undefined ? client : `${xff}, ${client}`);
  if (host !== undefined) out.push('x-forwarded-host', host);
  out.push('x-forwarded-proto', ctx.proto);
  out.push('via', via === undefined ? '1.1 connectors-proxy' : `${via}, 1.1 connectors-proxy`);
  return out;
}

export interface LocationRewrite {
  /** `http://tool:port/prefix`: where the Connector points, no trailing slash. */
  readonly upstreamBase: string;
  /** The Connector's address path prefix, `''` for none. */
  readonly upstreamPath: string;
  /** `http://proxy-host[/namespaces/ns/connectors/name]`: where the client called us. */
  readonly publicBase: string;
  /** The path part of publicBase. */
  readonly publicPath: string;
}

/**
 * Points a `Location` (or `Content-Location`) that names the Connector's address back at
 * the proxy; other hosts are left alone (and the client goes there without our credentials).
 */
export function rewriteLocation(value: string, rw: LocationRewrite): string {
  if (value.charCodeAt(0) === 47 /* / */) {
    if (value.charCodeAt(1) === 47) return value; // scheme-relative: another host
    if (rw.upstreamPath === '') return rw.publicPath + value;
    if (value.startsWith(rw.upstreamPath) && isBoundary(value, rw.upstreamPath.length)) return rw.publicPath + value.slice(rw.upstreamPath.length);
    return value;
  }
  if (startsWithUrl(value, rw.upstreamBase)) return rw.publicBase + value.slice(rw.upstreamBase.length);
  return value;
}

/** True when `value` starts with the URL `base` (case-insensitively) at a path boundary. */
export function startsWithUrl(value: string, base: string): boolean {
  return value.length >= base.length && value.slice(0, base.length).toLowerCase() === base.toLowerCase() && isBoundary(value, base.length);
}

/**
 * `Link: <url>; rel="next"` (RFC 8288): each target goes through `rewrite`, so paging (a
 * registry's tag list, an API's next page) stays on the proxy.
 */
export function rewriteLinkTargets(value: string, rewrite: (target: string) => string): string {
  let out = '';
  let from = 0;
  for (let open = value.indexOf('<'); open >= 0; open = value.indexOf('<', from)) {
    const close = value.indexOf('>', open + 1);
    if (close < 0) break;
    out += value.slice(from, open + 1) + rewrite(value.slice(open + 1, close));
    from = close;
  }
  return out + value.slice(from);
}

/** True when `at` ends a path segment of `s` (end, `/`, `?` or `#`). */
export function isBoundary(s: string, at: number): boolean {
  if (at >= s.length) return true;
  const c = s.charCodeAt(at);
  return c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */;
}

/**
 * The flat response header list from undici's raw header buffers, without hop-by-hop
 * headers (also those a Connection field lists). Names keep the tool's spelling.
 */
export function clientResponseHeaders(raw: readonly Buffer[]): string[] {
  const out: string[] = [];
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    // Several Connection fields list names together (RFC 9110 section 5.3).
    if (lower === 'connection') listed = connectionTokens(raw[i + 1]!.toString('latin1'), listed);
    if (HOP_BY_HOP.has(lower)) continue;
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  if (listed === undefined) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) if (!listed.has(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!);
  return kept;
}
