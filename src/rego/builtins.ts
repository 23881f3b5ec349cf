// Builtins that OPA's wasm target leaves to the host (the module imports them by name),
// implemented with node:crypto. The set was found by compiling a probe per builtin and
// reading the module's `builtins()` export; @open-policy-agent/opa-wasm itself supplies only
// sprintf, json.is_valid, regex.split and yaml.*. `hmac.sha256`/`hmac.sha512` are not OPA
// builtins: the ConnectorClass examples use them, so they are declared to the compiler
// (see EXTRA_DECLARATIONS) with the argument order of those examples: (key, message).
import { createHash, createHmac, createPrivateKey, randomInt, randomUUID, sign as cryptoSign, timingSafeEqual } from 'node:crypto';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Builtin = (...args: Json[]) => Json;

/** The evaluation's clock: OPA fixes time.now_ns for one evaluation; set before each. */
export const evalClock = { nowNs: 0 };

const str = (v: Json, what: string): string => {
  if (typeof v !== 'string') throw new Error(`${what}: operand must be a string, got ${typeof v}`);
  return v;
};
const num = (v: Json, what: string): number => {
  if (typeof v !== 'number') throw new Error(`${what}: operand must be a number, got ${typeof v}`);
  return v;
};

const hmac = (alg: string) => (x: Json, key: Json): string => createHmac(alg, str(key, `crypto.hmac.${alg}`)).update(str(x, `crypto.hmac.${alg}`)).digest('hex');
const digest = (alg: string) => (x: Json): string => createHash(alg).update(str(x, `crypto.${alg}`)).digest('hex');

function urlqueryEncodeObject(obj: Json): string {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Error('urlquery.encode_object: operand must be an object');
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) {
    if (Array.isArray(v)) for (const x of v) p.append(k, String(x));
    else p.append(k, typeof v === 'string' ? v : JSON.stringify(v));
  }
  return p.toString();
}

/** RFC 3339 with nanoseconds, as Go formats time.RFC3339Nano in UTC. */
function formatNs(ns: number): string {
  const ms = Math.floor(ns / 1e6);
  const frac = String(Math.round(ns % 1e9)).padStart(9, '0').replace(/0+$/, '');
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, frac ? `.${frac}Z` : 'Z');
}

const JWT_ALGS: Record<string, { hash: string; kind: 'hmac' | 'rsa' | 'ec' }> = {
  HS256: { hash: 'sha256', kind: 'hmac' }, HS384: { hash: 'sha384', kind: 'hmac' }, HS512: { hash: 'sha512', kind: 'hmac' },
  RS256: { hash: 'sha256', kind: 'rsa' }, RS384: { hash: 'sha384', kind: 'rsa' }, RS512: { hash: 'sha512', kind: 'rsa' },
  ES256: { hash: 'sha256', kind: 'ec' }, ES384: { hash: 'sha384', kind: 'ec' },
};

/** io.jwt.encode_sign(headers, payload, key JWK): e.g. GitHub App JWTs, service tokens. */
function jwtEncodeSign(headers: Json, payload: Json, jwk: Json): string {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) throw new Error('io.jwt.encode_sign: headers must be an object');
  const alg = JWT_ALGS[String(headers.alg)];
  if (alg === undefined) throw new Error(`io.jwt.encode_sign: unsupported alg ${JSON.stringify(headers.alg)}`);
  const b64 = (v: Json | Buffer): string => (Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v))).toString('base64url');
  const input = `${b64(headers)}.${b64(payload)}`;
  const key = jwk as { k?: string };
  let sig: Buffer;
  if (alg.kind === 'hmac') {
    if (typeof key?.k !== 'string') throw new Error('io.jwt.encode_sign: an HS* key must be an "oct" JWK with "k"');
    sig = createHmac(alg.hash, Buffer.from(key.k, 'base64url')).update(input).digest();
  } else {
    const pk = createPrivateKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
    sig = cryptoSign(alg.hash, Buffer.from(input), alg.kind === 'ec' ? { key: pk, dsaEncoding: 'ieee-p1363' } : pk);
  }
  return `${input}.${sig.toString('base64url')}`;
}

export const HOST_BUILTINS: Record<string, Builtin> = {
  'time.now_ns': () => evalClock.nowNs,
  'time.format': (x) => formatNs(Array.isArray(x) ? num(x[0]!, 'time.format') : num(x, 'time.format')),
  'time.parse_rfc3339_ns': (x) => {
    const s = str(x, 'time.parse_rfc3339_ns');
    const ms = Date.parse(s);
    if (Number.isNaN(ms)) throw new Error(`time.parse_rfc3339_ns: cannot parse ${JSON.stringify(s)}`);
    const frac = /\.(\d+)/.exec(s)?.[1] ?? '';
    return Math.floor(ms / 1000) * 1e9 + Number((frac + '000000000').slice(0, 9));
  },
  'time.date': (x) => { const d = new Date(num(x, 'time.date') / 1e6); return [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate()]; },
  'time.add_date': (ns, y, m, d) => {
    const t = new Date(num(ns, 'time.add_date') / 1e6);
    t.setUTCFullYear(t.getUTCFullYear() + num(y, 'time.add_date'), t.getUTCMonth() + num(m, 'time.add_date'), t.getUTCDate() + num(d, 'time.add_date'));
    return t.getTime() * 1e6 + ((ns as number) % 1e6);
  },
  'crypto.hmac.sha256': hmac('sha256'),
  'crypto.hmac.sha512': hmac('sha512'),
  'crypto.hmac.sha1': hmac('sha1'),
  'crypto.hmac.md5': hmac('md5'),
  'crypto.hmac.equal': (a, b) => {
    const x = Buffer.from(str(a, 'crypto.hmac.equal'));
    const y = Buffer.from(str(b, 'crypto.hmac.equal'));
    return x.length === y.length && timingSafeEqual(x, y);
  },
  'hmac.sha256': (key, msg) => hmac('sha256')(msg, key),
  'hmac.sha512': (key, msg) => hmac('sha512')(msg, key),
  'crypto.sha256': digest('sha256'),
  'crypto.sha1': digest('sha1'),
  'crypto.md5': digest('md5'),
  'base64url.encode_no_pad': (x) => Buffer.from(str(x, 'base64url.encode_no_pad')).toString('base64url'),
  'hex.encode': (x) => Buffer.from(str(x, 'hex.encode')).toString('hex'),
  'urlquery.encode': (x) => encodeURIComponent(str(x, 'urlquery.encode')).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
  'urlquery.encode_object': urlqueryEncodeObject,
  'uuid.rfc4122': () => randomUUID(),
  'rand.intn': (_key, n) => randomInt(Math.max(1, num(n, 'rand.intn'))),
  'io.jwt.encode_sign': jwtEncodeSign,
  'json.marshal_with_options': (x, opts) => {
    const o = (opts ?? {}) as { pretty?: boolean; indent?: string; prefix?: string };
    return o.pretty || o.indent ? JSON.stringify(x, null, o.indent ?? '\t') : JSON.stringify(x);
  },
};

/** Builtins a policy may call whose result changes between calls with the same input. */
export const NONDETERMINISTIC = new Set(['time.now_ns', 'uuid.rfc4122', 'rand.intn', 'http.send', 'opa.runtime', 'io.jwt.encode_sign_raw', 'net.lookup_ip_addr']);

/** Declarations added to OPA's capabilities so the compiler accepts the host-only names. */
export const EXTRA_DECLARATIONS = [
  {
    name: 'hmac.sha256',
    description: 'connectors-proxy: SHA256 HMAC of message with key, hex (argument order of the ConnectorClass examples: key first).',
    decl: { type: 'function', args: [{ name: 'key', type: 'string' }, { name: 'message', type: 'string' }], result: { name: 'y', type: 'string' } },
  },
  {
    name: 'hmac.sha512',
    description: 'connectors-proxy: SHA512 HMAC of message with key, hex (key first).',
    decl: { type: 'function', args: [{ name: 'key', type: 'string' }, { name: 'message', type: 'string' }], result: { name: 'y', type: 'string' } },
  },
];
