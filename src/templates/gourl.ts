// Go's net/url Parse and URL.String, for sprig's urlParse and urlJoin (templates of the docs'
// npm, Nexus and SonarQube classes take proxy and registry addresses apart with them). The
// rules follow the Go standard library that the reference renderer is built with, byte for
// byte (test/support/template-cases.ts): escaping per URL part, RawPath/RawFragment hints,
// OmitHost, ForceQuery and the error texts. Colons in an http(s) host are treated as before
// Go 1.26 (the last one starts the port), the behaviour of modules declaring an older Go.
import { isIPv6 } from 'node:net';
import { fromBytes, toBytes } from './values';

/** A URL part, as Go's `encoding` modes. */
type Mode = 'path' | 'pathSegment' | 'host' | 'zone' | 'userPassword' | 'queryComponent' | 'fragment';

export class UrlError extends Error {}

const isAlnum = (c: number): boolean => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39);
const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
const unhex = (c: number): number => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10);
const UPPERHEX = '0123456789ABCDEF';

function shouldEscape(c: number, mode: Mode): boolean {
  if (isAlnum(c)) return false;
  const ch = String.fromCharCode(c);
  if ((mode === 'host' || mode === 'zone') && '!$&\'()*+,;=:[]<>"'.includes(ch)) return false;
  if ('-_.~'.includes(ch)) return false;
  if ('$&+,/:;=?@'.includes(ch)) {
    switch (mode) {
      case 'path': return ch === '?';
      case 'pathSegment': return ch === '/' || ch === ';' || ch === ',' || ch === '?';
      case 'userPassword': return ch === '@' || ch === '/' || ch === '?' || ch === ':';
      case 'queryComponent': return true;
      case 'fragment': return false;
      default: break;
    }
  }
  if (mode === 'fragment' && '!()*'.includes(ch)) return false;
  return true;
}

/** strconv.Quote of a short ASCII-or-UTF-8 string, enough for the error texts here. */
function goQuote(s: string): string {
  let out = '"';
  for (const b of toBytes(s)) {
    if (b === 0x22) out += '\\"';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x09) out += '\\t';
    else if (b === 0x0d) out += '\\r';
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out + '"';
}

function unescape(s: string, mode: Mode): string {
  const b = toBytes(s);
  let n = 0;
  let hasPlus = false;
  for (let i = 0; i < b.length;) {
    const c = b[i]!;
    if (c === 0x25) {
      n++;
      if (i + 2 >= b.length || !isHex(b[i + 1]!) || !isHex(b[i + 2]!)) {
        throw new UrlError(`invalid URL escape ${goQuote(fromBytes(b.subarray(i, i + 3)))}`);
      }
      const three = fromBytes(b.subarray(i, i + 3));
      if (mode === 'host' && unhex(b[i + 1]!) < 8 && three !== '%25') throw new UrlError(`invalid URL escape ${goQuote(three)}`);
      if (mode === 'zone') {
        const v = (unhex(b[i + 1]!) << 4) | unhex(b[i + 2]!);
        if (three !== '%25' && v !== 0x20 && shouldEscape(v, 'host')) throw new UrlError(`invalid URL escape ${goQuote(three)}`);
      }
      i += 3;
    } else if (c === 0x2b) {
      hasPlus = mode === 'queryComponent';
      i++;
    } else {
      if ((mode === 'host' || mode === 'zone') && c < 0x80 && shouldEscape(c, mode)) {
        throw new UrlError(`invalid character ${goQuote(String.fromCharCode(c))} in host name`);
      }
      i++;
    }
  }
  if (n === 0 && !hasPlus) return s;
  const out: number[] = [];
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 0x25) {
      out.push((unhex(b[i + 1]!) << 4) | unhex(b[i + 2]!));
      i += 2;
    } else if (c === 0x2b) out.push(mode === 'queryComponent' ? 0x20 : 0x2b);
    else out.push(c);
  }
  return fromBytes(Uint8Array.from(out));
}

function escape(s: string, mode: Mode): string {
  let out = '';
  let changed = false;
  for (const c of toBytes(s)) {
    if (c === 0x20 && mode === 'queryComponent') { out += '+'; changed = true; }
    else if (shouldEscape(c, mode)) { out += `%${UPPERHEX[c >> 4]}${UPPERHEX[c & 15]}`; changed = true; }
    else out += String.fromCharCode(c);
  }
  return changed ? out : s;
}

interface Userinfo { readonly username: string; readonly password?: string }

export interface GoUrl {
  scheme: string;
  opaque: string;
  user?: Userinfo;
  host: string;
  path: string;
  rawPath: string;
  fragment: string;
  rawFragment: string;
  rawQuery: string;
  forceQuery: boolean;
  omitHost: boolean;
}

function userinfoString(u: Userinfo): string {
  return escape(u.username, 'userPassword') + (u.password === undefined ? '' : `:${escape(u.password, 'userPassword')}`);
}

function getScheme(raw: string): [string, string] {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a)) continue;
    if ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e) {
      if (i === 0) return ['', raw];
      continue;
    }
    if (c === 0x3a) {
      if (i === 0) throw new UrlError('missing protocol scheme');
      return [raw.slice(0, i), raw.slice(i + 1)];
    }
    return ['', raw];
  }
  return ['', raw];
}

const validOptionalPort = (port: string): boolean => port === '' || /^:[0-9]*$/.test(port);

function validUserinfo(s: string): boolean {
  return /^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(s);
}

function parseHost(scheme: string, host: string): string {
  const open = host.lastIndexOf('[');
  if (open > 0) throw new UrlError('invalid IP-literal');
  if (open === 0) {
    const close = host.lastIndexOf(']');
    if (close < 0) throw new UrlError("missing ']' in host");
    const colonPort = host.slice(close + 1);
    if (!validOptionalPort(colonPort)) throw new UrlError(`invalid port ${goQuote(colonPort)} after host`);
    const port = unescape(colonPort, 'host');
    const hostname = host.slice(1, close);
    const zone = hostname.indexOf('%25');
    const name = zone >= 0 ? unescape(hostname.slice(0, zone), 'host') + unescape(hostname.slice(zone), 'zone') : unescape(hostname, 'host');
    // netip.ParseAddr: only IPv6 (an IPv4 literal in brackets is refused).
    const addr = name.replace(/%.*$/, '');
    if (/^[0-9.]+$/.test(name) && name.includes('.')) throw new UrlError('invalid IP-literal');
    if (!isIPv6(addr)) throw new UrlError(`invalid host: ParseAddr(${goQuote(name)}): unable to parse IP`);
    return `[${name}]${port}`;
  }
  const i = host.indexOf(':');
  if (i !== -1) {
    // Before Go 1.26 (and for other schemes still) the last colon starts the port.
    const colonPort = host.slice(host.lastIndexOf(':'));
    if (!validOptionalPort(colonPort)) throw new UrlError(`invalid port ${goQuote(colonPort)} after host`);
  }
  void scheme;
  return unescape(host, 'host');
}

function setPath(u: GoUrl, p: string): void {
  const path = unescape(p, 'path');
  u.path = path;
  u.rawPath = escape(path, 'path') === p ? '' : p;
}

function setFragment(u: GoUrl, f: string): void {
  const frag = unescape(f, 'fragment');
  u.fragment = frag;
  u.rawFragment = escape(frag, 'fragment') === f ? '' : f;
}

function validEncoded(s: string, mode: Mode): boolean {
  for (const c of toBytes(s)) {
    if ("!$&'()*+,;=:@[]%".includes(String.fromCharCode(c))) continue;
    if (shouldEscape(c, mode)) return false;
  }
  return true;
}

function escapedPath(u: GoUrl): string {
  if (u.rawPath !== '' && validEncoded(u.rawPath, 'path')) {
    try {
      if (unescape(u.rawPath, 'path') === u.path) return u.rawPath;
    } catch { /* not a valid escaping: computed below */ }
  }
  if (u.path === '*') return '*';
  return escape(u.path, 'path');
}

function escapedFragment(u: GoUrl): string {
  if (u.rawFragment !== '' && validEncoded(u.rawFragment, 'fragment')) {
    try {
      if (unescape(u.rawFragment, 'fragment') === u.fragment) return u.rawFragment;
    } catch { /* computed below */ }
  }
  return escape(u.fragment, 'fragment');
}

function parseNoFragment(raw: string): GoUrl {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(raw)) throw new UrlError('net/url: invalid control character in URL');
  const u: GoUrl = { scheme: '', opaque: '', host: '', path: '', rawPath: '', fragment: '', rawFragment: '', rawQuery: '', forceQuery: false, omitHost: false };
  if (raw === '*') { u.path = '*'; return u; }
  let [scheme, rest] = getScheme(raw);
  u.scheme = scheme.toLowerCase();
  if (rest.endsWith('?') && rest.split('?').length === 2) {
    u.forceQuery = true;
    rest = rest.slice(0, -1);
  } else {
    const q = rest.indexOf('?');
    if (q >= 0) { u.rawQuery = rest.slice(q + 1); rest = rest.slice(0, q); }
  }
  if (!rest.startsWith('/')) {
    if (u.scheme !== '') { u.opaque = rest; return u; }
    const segment = rest.split('/')[0]!;
    if (segment.includes(':')) throw new UrlError('first path segment in URL cannot contain colon');
  }
  if ((u.scheme !== '' || !rest.startsWith('///')) && rest.startsWith('//')) {
    let authority = rest.slice(2);
    rest = '';
    const slash = authority.indexOf('/');
    if (slash >= 0) { rest = authority.slice(slash); authority = authority.slice(0, slash); }
    const at = authority.lastIndexOf('@');
    u.host = parseHost(u.scheme, at < 0 ? authority : authority.slice(at + 1));
    if (at >= 0) {
      const info = authority.slice(0, at);
      if (!validUserinfo(info)) throw new UrlError('net/url: invalid userinfo');
      const colon = info.indexOf(':');
      u.user = colon < 0
        ? { username: unescape(info, 'userPassword') }
        : { username: unescape(info.slice(0, colon), 'userPassword'), password: unescape(info.slice(colon + 1), 'userPassword') };
    }
  } else if (u.scheme !== '' && rest.startsWith('/')) {
    u.omitHost = true;
  }
  setPath(u, rest);
  return u;
}

/** url.Parse; errors read as Go's `parse "<url>": <reason>`. */
export function parseUrl(raw: string): GoUrl {
  const hash = raw.indexOf('#');
  const noFrag = hash < 0 ? raw : raw.slice(0, hash);
  let u: GoUrl;
  try {
    u = parseNoFragment(noFrag);
  } catch (e) {
    throw new UrlError(`parse ${goQuote(noFrag)}: ${(e as Error).message}`);
  }
  if (hash < 0 || hash === raw.length - 1) return u;
  try {
    setFragment(u, raw.slice(hash + 1));
  } catch (e) {
    throw new UrlError(`parse ${goQuote(raw)}: ${(e as Error).message}`);
  }
  return u;
}

/** URL.Hostname(): the host without port and IPv6 brackets. */
export function hostname(u: GoUrl): string {
  let host = u.host;
  const colon = host.lastIndexOf(':');
  if (colon !== -1 && validOptionalPort(host.slice(colon))) host = host.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return host;
}

export function userinfo(u: GoUrl): string {
  return u.user === undefined ? '' : userinfoString(u.user);
}

/** The Userinfo of a `user[:password]` text, as urlJoin reads it back (`proto://<info>@host`). */
export function parseUserinfo(info: string): Userinfo {
  const u = parseUrl(`proto://${info}@host`);
  return u.user ?? { username: '' };
}

/** URL.String(). */
export function urlString(u: GoUrl): string {
  let buf = '';
  if (u.scheme !== '') buf += `${u.scheme}:`;
  if (u.opaque !== '') buf += u.opaque;
  else {
    if (u.scheme !== '' || u.host !== '' || u.user !== undefined) {
      if (!(u.omitHost && u.host === '' && u.user === undefined)) {
        if (u.host !== '' || u.path !== '' || u.user !== undefined) buf += '//';
        if (u.user !== undefined) buf += `${userinfoString(u.user)}@`;
        if (u.host !== '') buf += escape(u.host, 'host');
      }
    }
    const path = escapedPath(u);
    if (path !== '' && path[0] !== '/' && u.host !== '') buf += '/';
    if (buf === '' && path.split('/')[0]!.includes(':')) buf += './';
    buf += path;
  }
  if (u.forceQuery || u.rawQuery !== '') buf += `?${u.rawQuery}`;
  if (u.fragment !== '') buf += `#${escapedFragment(u)}`;
  return buf;
}

/** A URL from its parts, as urlJoin builds it (no RawPath/RawFragment, no OmitHost). */
export function urlFromParts(p: { scheme: string; host: string; path: string; query: string; opaque: string; fragment: string; user?: Userinfo }): GoUrl {
  return { scheme: p.scheme, opaque: p.opaque, user: p.user, host: p.host, path: p.path, rawPath: '', fragment: p.fragment, rawFragment: '', rawQuery: p.query, forceQuery: false, omitHost: false };
}
