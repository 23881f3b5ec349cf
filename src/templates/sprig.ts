// The sprig (github.com/Masterminds/sprig/v3 v3.3.0) functions this engine supports, ported
// from sprig's source with Go's semantics (byte-oriented strings, int64 arithmetic, cast's
// lenient conversions, the panics sprig raises). Helm's `required` is included because
// ConnectorClass authors expect it. Functions that are random, read the environment or the
// network, or need large libraries (dates, crypto, semver, regexp, mergo) are refused at
// parse time with a clear message; see UNSUPPORTED_SPRIG.
import { createHash } from 'node:crypto';
import { parseGoInt } from './parser';
import { formatFloat, quoteString, sprintf } from './fmt';
import { FuncError, GoFunc, fn } from './funcs';
import { hostname, parseUrl, parseUserinfo, urlFromParts, urlString, userinfo } from './gourl';
import {
  GoMap, GoNum, GoSlice, GoValue, NIL_MAP, NIL_SLICE, byteLength, byteSlice, compareStrings, elemType, f64,
  fromBytes, goInt, isMap, isNilCollection, isNumber, isSlice, kindName, mapGet, mapHas, mapKeys, mapOf,
  numValue, sliceAt, sliceOf, toBytes, typeName,
} from './values';

// ---------- helpers ----------

/** Maps created by template functions; only these may be changed by set/unset. */
const OWNED = new WeakSet<object>();

function own<T extends Record<string, GoValue>>(m: T): T {
  OWNED.add(m);
  return m;
}

const NIL_DEREF = 'runtime error: invalid memory address or nil pointer dereference';

/** sprig's strval: strings as they are, anything else through %v. */
function strval(v: GoValue): string {
  return typeof v === 'string' ? v : sprintf('%v', [v === undefined ? null : v]);
}

/** cast.ToInt64 (errors become 0, as sprig ignores them). */
function toInt64(v: GoValue): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') {
    const n = parseGoInt(trimZeroDecimal(v));
    return n === undefined ? 0 : n;
  }
  if (isNumber(v)) {
    const x = Math.trunc(numValue(v));
    return Number.isFinite(x) ? x : 0;
  }
  return 0;
}

function trimZeroDecimal(s: string): string {
  let foundZero = false;
  for (let i = s.length; i > 0; i--) {
    const c = s[i - 1];
    if (c === '.') { if (foundZero) return s.slice(0, i - 1); }
    else if (c === '0') foundZero = true;
    else return s;
  }
  return s;
}

const GO_FLOAT = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i;
const DECIMAL_INT = /^[+-]?[0-9]+$/;
const OCTAL_INT = /^[+-]?[0-7]+$/;

/** cast.ToFloat64. */
function toFloat64(v: GoValue): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') {
    if (!GO_FLOAT.test(v)) return 0;
    const lower = v.toLowerCase();
    if (lower.endsWith('nan')) return NaN;
    if (lower.endsWith('inf') || lower.endsWith('infinity')) return lower[0] === '-' ? -Infinity : Infinity;
    return Number(v);
  }
  if (isNumber(v)) return numValue(v);
  return 0;
}

function int64(x: number): number {
  return x === 0 ? 0 : x; // no -0
}

function str(v: GoValue): string {
  return v as string;
}

function int(v: GoValue): number {
  return numValue(v as GoNum);
}

/** sprig's list functions panic on nil (reflect.TypeOf(nil).Kind()) and error on non-lists. */
function asList(v: GoValue, what: string): GoSlice {
  if (v === undefined || v === null) throw new FuncError(NIL_DEREF);
  if (!isSlice(v)) throw new FuncError(`${what} ${kindName(v)}`);
  return v;
}

/** sprig's strslice. */
function strslice(v: GoValue): string[] {
  if (isSlice(v)) {
    const out: string[] = [];
    for (const e of v) if (e !== null && e !== undefined) out.push(strval(e));
    return out;
  }
  if (v === undefined || v === null) return [];
  return [strval(v)];
}

/** sprig's empty(): zero values and empty collections. */
function empty(v: GoValue): boolean {
  if (v === undefined || v === null) return true;
  switch (typeof v) {
    case 'string': return v.length === 0;
    case 'boolean': return !v;
    case 'number': return v === 0;
  }
  if (v instanceof GoNum) return v.value === 0;
  if (isSlice(v)) return v.length === 0;
  return mapKeys(v as GoMap).length === 0;
}

/** reflect.DeepEqual over the model: dynamic types must match too. */
function deepEqual(a: GoValue, b: GoValue): boolean {
  if (a === undefined) a = null;
  if (b === undefined) b = null;
  if (a === null || b === null) return a === b;
  if (typeName(a) !== typeName(b)) return false;
  if (isSlice(a) && isSlice(b)) {
    if (isNilCollection(a) !== isNilCollection(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(sliceAt(a, i), sliceAt(b, i))) return false;
    return true;
  }
  if (isMap(a) && isMap(b)) {
    if (isNilCollection(a) !== isNilCollection(b)) return false;
    const ka = mapKeys(a);
    const kb = mapKeys(b);
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && deepEqual(mapGet(a as GoMap, k), mapGet(b as GoMap, k)));
  }
  if (isNumber(a) && isNumber(b)) return numValue(a) === numValue(b);
  return a === b;
}

function inList(haystack: readonly GoValue[], needle: GoValue): boolean {
  return haystack.some((h) => deepEqual(needle, h));
}

function deepCopy(v: GoValue): GoValue {
  if (isSlice(v)) return isNilCollection(v) ? v : withElemType(v, v.map((e) => deepCopy(e === undefined ? null : e)));
  if (isMap(v)) {
    if (isNilCollection(v)) return v;
    const out: Record<string, GoValue> = {};
    for (const k of mapKeys(v)) out[k] = deepCopy(mapGet(v, k));
    return own(elemType(v) === 'interface {}' ? out : mapOf(elemType(v), out));
  }
  return v;
}

function withElemType(src: GoSlice, arr: GoValue[]): GoSlice {
  const t = elemType(src);
  return t === 'interface {}' ? arr : sliceOf(t, arr);
}

// ---------- unicode (Go's simple case mapping and unicode.IsSpace) ----------

function isGoSpace(cp: number): boolean {
  if (cp <= 0xff) return cp === 0x20 || (cp >= 0x09 && cp <= 0x0d) || cp === 0x85 || cp === 0xa0;
  return cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp === 0x2028 || cp === 0x2029 ||
    cp === 0x202f || cp === 0x205f || cp === 0x3000;
}

function mapRunes(s: string, f: (ch: string) => string): string {
  let out = '';
  for (const ch of s) out += f(ch);
  return out;
}

/** unicode.ToUpper: one rune to one rune (JS's full mapping turns "ß" into "SS"; Go keeps it). */
function upperRune(ch: string): string {
  const u = ch.toUpperCase();
  return u.length === ch.length || [...u].length === 1 ? u : ch;
}

function lowerRune(ch: string): string {
  const l = ch.toLowerCase();
  return l.length === ch.length || [...l].length === 1 ? l : ch;
}

const LETTER_OR_DIGIT = /^[\p{L}\p{Nd}]$/u;

/** strings.Title's isSeparator. */
function isSeparator(ch: string): boolean {
  const r = ch.codePointAt(0) ?? 0;
  if (r <= 0x7f) return !((r >= 0x30 && r <= 0x39) || (r >= 0x61 && r <= 0x7a) || (r >= 0x41 && r <= 0x5a) || r === 0x5f);
  if (LETTER_OR_DIGIT.test(ch)) return false;
  return isGoSpace(r);
}

function title(s: string): string {
  let prev = ' ';
  return mapRunes(s, (ch) => {
    const out = isSeparator(prev) ? upperRune(ch) : ch;
    prev = ch;
    return out;
  });
}

function untitle(s: string): string {
  let next = true;
  return mapRunes(s, (ch) => {
    if (isGoSpace(ch.codePointAt(0) ?? 0)) { next = true; return ch; }
    if (next) { next = false; return lowerRune(ch); }
    return ch;
  });
}

function trimSpace(s: string): string {
  const runes = [...s];
  let a = 0;
  let b = runes.length;
  while (a < b && isGoSpace(runes[a].codePointAt(0) ?? 0)) a++;
  while (b > a && isGoSpace(runes[b - 1].codePointAt(0) ?? 0)) b--;
  return runes.slice(a, b).join('');
}

/** strings.Trim(s, cutset). */
function trimCutset(s: string, cutset: string): string {
  if (s === '' || cutset === '') return s;
  const set = new Set([...cutset]);
  const runes = [...s];
  let a = 0;
  let b = runes.length;
  while (a < b && set.has(runes[a])) a++;
  while (b > a && set.has(runes[b - 1])) b--;
  return runes.slice(a, b).join('');
}

/** goutils.DeleteWhiteSpace, which works on bytes (and so mangles non-ASCII when it removes anything). */
function nospace(s: string): string {
  const bytes = toBytes(s);
  const kept: number[] = [];
  for (const b of bytes) if (!isGoSpace(b)) kept.push(b);
  if (kept.length === bytes.length) return s;
  return String.fromCodePoint(...kept);
}

/** strings.Replace(s, old, new, -1). */
function replaceAll(s: string, oldS: string, newS: string): string {
  if (oldS === '') {
    if (s === '') return newS;
    return newS + [...s].join(newS) + newS;
  }
  return s.split(oldS).join(newS);
}

/** strings.SplitN. */
function splitN(s: string, sep: string, n: number): string[] {
  if (n === 0) return [];
  if (sep === '') {
    const runes = [...s];
    if (n < 0 || n > runes.length) n = runes.length;
    const out = runes.slice(0, Math.max(n - 1, 0));
    if (n > 0) out.push(runes.slice(n - 1).join(''));
    return out;
  }
  const parts = s.split(sep);
  if (n < 0 || parts.length <= n) return parts;
  return [...parts.slice(0, n - 1), parts.slice(n - 1).join(sep)];
}

function sliceBounds(start: number, end: number, len: number): void {
  if (end < 0 || end > len) throw new FuncError(`runtime error: slice bounds out of range [:${end}] with length ${len}`);
  if (start < 0 || start > end) throw new FuncError(`runtime error: slice bounds out of range [${start}:${end}]`);
}

function substr(start: number, end: number, s: string): string {
  const len = byteLength(s);
  if (start < 0) { sliceBounds(0, end, len); return byteSlice(s, 0, end); }
  if (end < 0 || end > len) { sliceBounds(start, len, len); return byteSlice(s, start); }
  sliceBounds(start, end, len);
  return byteSlice(s, start, end);
}

function trunc(c: number, s: string): string {
  const len = byteLength(s);
  if (c < 0 && len + c > 0) return byteSlice(s, len + c);
  if (c >= 0 && len > c) return byteSlice(s, 0, c);
  return s;
}

function indent(spaces: number, v: string): string {
  if (spaces < 0) throw new FuncError('strings: negative Repeat count');
  const pad = ' '.repeat(spaces);
  return pad + v.split('\n').join('\n' + pad);
}

// ---------- encodings ----------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_MAP = new Map([...B64].map((c, i) => [c.charCodeAt(0), i]));

/** encoding/base64 StdEncoding.DecodeString; sprig returns the error text on failure. */
function b64dec(s: string): string {
  const src = toBytes(s);
  const out: number[] = [];
  let si = 0;
  const corrupt = (at: number): string => `illegal base64 data at input byte ${at}`;
  while (si < src.length) {
    const dbuf = [0, 0, 0, 0];
    let dlen = 4;
    let j = 0;
    let trailing: number | undefined;
    for (; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return fromBytes(Uint8Array.from(out));
        return corrupt(si - j);
      }
      const inb = src[si++];
      const v = B64_MAP.get(inb);
      if (v !== undefined) { dbuf[j] = v; continue; }
      if (inb === 0x0a || inb === 0x0d) { j--; continue; }
      if (inb !== 0x3d) return corrupt(si - 1);
      if (j === 0 || j === 1) return corrupt(si - 1);
      if (j === 2) {
        while (si < src.length && (src[si] === 0x0a || src[si] === 0x0d)) si++;
        if (si === src.length) return corrupt(src.length);
        if (src[si] !== 0x3d) return corrupt(si - 1);
        si++;
      }
      while (si < src.length && (src[si] === 0x0a || src[si] === 0x0d)) si++;
      if (si < src.length) trailing = si;
      dlen = j;
      break;
    }
    const val = (dbuf[0] << 18) | (dbuf[1] << 12) | (dbuf[2] << 6) | dbuf[3];
    const bytes = [(val >> 16) & 0xff, (val >> 8) & 0xff, val & 0xff];
    out.push(...bytes.slice(0, dlen - 1));
    if (trailing !== undefined) return corrupt(trailing);
    if (dlen < 4) break;
  }
  return fromBytes(Uint8Array.from(out));
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const B32_MAP = new Map([...B32].map((c, i) => [c.charCodeAt(0), i]));

function b32enc(s: string): string {
  const src = toBytes(s);
  let out = '';
  for (let i = 0; i < src.length; i += 5) {
    const chunk = src.subarray(i, i + 5);
    let bits = 0n;
    for (let k = 0; k < 5; k++) bits = (bits << 8n) | BigInt(chunk[k] ?? 0);
    const nChars = [0, 2, 4, 5, 7, 8][chunk.length];
    for (let k = 0; k < 8; k++) {
      out += k < nChars ? B32[Number((bits >> BigInt(35 - 5 * k)) & 31n)] : '=';
    }
  }
  return out;
}

/** encoding/base32 StdEncoding.DecodeString. */
function b32dec(s: string): string {
  const src = [...toBytes(s)].filter((b) => b !== 0x0a && b !== 0x0d);
  const olen = src.length;
  const out: number[] = [];
  let p = 0;
  const corrupt = (at: number): string => `illegal base32 data at input byte ${at}`;
  let end = false;
  while (p < olen && !end) {
    const dbuf = [0, 0, 0, 0, 0, 0, 0, 0];
    let dlen = 8;
    for (let j = 0; j < 8;) {
      const remaining = olen - p;
      if (remaining === 0) return corrupt(olen - remaining - j);
      const inb = src[p++];
      const left = olen - p;
      if (inb === 0x3d && j >= 2 && left < 8) {
        if (left + j < 8 - 1) return corrupt(olen);
        for (let k = 0; k < 8 - 1 - j; k++) {
          if (left > k && src[p + k] !== 0x3d) return corrupt(olen - left + k - 1);
        }
        dlen = j;
        end = true;
        if (dlen === 1 || dlen === 3 || dlen === 6) return corrupt(olen - left - 1);
        break;
      }
      const v = B32_MAP.get(inb);
      if (v === undefined) return corrupt(olen - left - 1);
      dbuf[j] = v;
      j++;
    }
    const b = [
      ((dbuf[0] << 3) | (dbuf[1] >> 2)) & 0xff,
      ((dbuf[1] << 6) | (dbuf[2] << 1) | (dbuf[3] >> 4)) & 0xff,
      ((dbuf[3] << 4) | (dbuf[4] >> 1)) & 0xff,
      ((dbuf[4] << 7) | (dbuf[5] << 2) | (dbuf[6] >> 3)) & 0xff,
      ((dbuf[6] << 5) | dbuf[7]) & 0xff,
    ];
    const n = { 8: 5, 7: 4, 5: 3, 4: 2, 2: 1 }[dlen] ?? 0;
    out.push(...b.slice(0, n));
    if (end) break;
  }
  return fromBytes(Uint8Array.from(out));
}

function adler32(s: string): number {
  let a = 1;
  let b = 0;
  for (const byte of toBytes(s)) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

function hashHex(alg: string, s: string): string {
  return createHash(alg).update(toBytes(s)).digest('hex');
}

// ---------- JSON (encoding/json) ----------

function jsonString(s: string, escapeHTML: boolean): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x80) {
      if (c === 0x22) out += '\\"';
      else if (c === 0x5c) out += '\\\\';
      else if (c >= 0x20 && !(escapeHTML && (c === 0x3c || c === 0x3e || c === 0x26))) out += ch;
      else if (c === 0x08) out += '\\b';
      else if (c === 0x0c) out += '\\f';
      else if (c === 0x0a) out += '\\n';
      else if (c === 0x0d) out += '\\r';
      else if (c === 0x09) out += '\\t';
      else out += '\\u00' + c.toString(16).padStart(2, '0');
    } else if (c === 0x2028 || c === 0x2029) out += '\\u' + c.toString(16);
    else if (c >= 0xd800 && c < 0xe000) out += '\\ufffd';
    else out += ch;
  }
  return out + '"';
}

function jsonFloat(f: number): string {
  if (!Number.isFinite(f)) throw new FuncError(`json: unsupported value: ${formatFloat(f, 'g', -1)}`);
  const abs = Math.abs(f);
  if (abs !== 0 && (abs < 1e-6 || abs >= 1e21)) {
    let s = formatFloat(f, 'e', -1);
    const n = s.length;
    if (n >= 4 && s[n - 4] === 'e' && s[n - 3] === '-' && s[n - 2] === '0') s = s.slice(0, n - 2) + s[n - 1];
    return s;
  }
  return formatFloat(f, 'f', -1);
}

/** json.Marshal / MarshalIndent(v, "", indent) / an Encoder without HTML escaping. */
function toJSON(v: GoValue, indent: string, escapeHTML: boolean, prefix = ''): string {
  if (v === undefined || v === null) return 'null';
  switch (typeof v) {
    case 'string': return jsonString(v, escapeHTML);
    case 'boolean': return v ? 'true' : 'false';
    case 'number': return Number.isInteger(v) ? String(v) : jsonFloat(v);
  }
  if (v instanceof GoNum) return v.kind === 'float64' ? jsonFloat(v.value) : String(v.value);
  const inner = prefix + indent;
  const nl = indent ? '\n' : '';
  if (isSlice(v)) {
    if (isNilCollection(v)) return 'null';
    if (v.length === 0) return '[]';
    const items = v.map((e) => inner + toJSON(e === undefined ? null : e, indent, escapeHTML, inner));
    return '[' + nl + items.join(',' + nl) + nl + prefix + ']';
  }
  const m = v as GoMap;
  if (isNilCollection(m)) return 'null';
  const keys = mapKeys(m);
  if (keys.length === 0) return '{}';
  const sep = indent ? ': ' : ':';
  const items = keys.map((k) => inner + jsonString(k, escapeHTML) + sep + toJSON(mapGet(m, k), indent, escapeHTML, inner));
  return '{' + nl + items.join(',' + nl) + nl + prefix + '}';
}

/** json.Unmarshal into interface{}: numbers become float64. */
function fromJSON(s: string): GoValue {
  const parsed = JSON.parse(s, (_k, value: unknown) => {
    if (typeof value === 'number') return f64(value);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) OWNED.add(value);
    return value;
  }) as GoValue;
  return parsed;
}

// ---------- path ----------

function pathClean(p: string): string {
  if (p === '') return '.';
  const rooted = p[0] === '/';
  const out: string[] = [];
  let dotdot = 0;
  for (const elem of p.split('/')) {
    if (elem === '' || elem === '.') continue;
    if (elem === '..') {
      if (out.length > dotdot) out.pop();
      else if (!rooted) { out.push('..'); dotdot = out.length; }
      continue;
    }
    out.push(elem);
  }
  const joined = out.join('/');
  if (rooted) return '/' + joined;
  return joined === '' ? '.' : joined;
}

function pathBase(p: string): string {
  if (p === '') return '.';
  let end = p.length;
  while (end > 0 && p[end - 1] === '/') end--;
  p = p.slice(0, end);
  const i = p.lastIndexOf('/');
  if (i >= 0) p = p.slice(i + 1);
  return p === '' ? '/' : p;
}

function pathDir(p: string): string {
  return pathClean(p.slice(0, p.lastIndexOf('/') + 1));
}

function pathExt(p: string): string {
  for (let i = p.length - 1; i >= 0 && p[i] !== '/'; i--) if (p[i] === '.') return p.slice(i);
  return '';
}

// ---------- numbers ----------

function untilStep(start: number, stop: number, step: number): GoSlice {
  const v: GoValue[] = [];
  if (stop < start) {
    if (step >= 0) return sliceOf('int', v);
    for (let i = start; i > stop; i += step) v.push(goInt(i));
    return sliceOf('int', v);
  }
  if (step <= 0) return sliceOf('int', v);
  for (let i = start; i < stop; i += step) v.push(goInt(i));
  return sliceOf('int', v);
}

function seq(params: number[]): string {
  const join = (s: GoSlice): string => s.map((x) => String(numValue(x as GoNum))).join(' ');
  switch (params.length) {
    case 0: return '';
    case 1: {
      const start = 1;
      const end = params[0];
      const inc = end < start ? -1 : 1;
      return join(untilStep(start, end + inc, inc));
    }
    case 2: {
      const [start, end] = params;
      const step = end < start ? -1 : 1;
      return join(untilStep(start, end + step, step));
    }
    case 3: {
      const [start, step, end] = params;
      let inc = 1;
      if (end < start) {
        inc = -1;
        if (step > 0) return '';
      }
      return join(untilStep(start, end + inc, step));
    }
    default: return '';
  }
}

function divmod(a: GoValue, b: GoValue, op: (x: number, y: number) => number): number {
  const y = toInt64(b);
  if (y === 0) throw new FuncError('runtime error: integer divide by zero');
  return int64(op(toInt64(a), y));
}

function round(a: GoValue, p: number, rOpt: GoValue[]): GoValue {
  const roundOn = rOpt.length > 0 ? toFloat64(rOpt[0]) : 0.5;
  const val = toFloat64(a);
  const pow = Math.pow(10, p);
  const digit = pow * val;
  const frac = digit - Math.trunc(digit);
  const r = frac >= roundOn ? Math.ceil(digit) : Math.floor(digit);
  return f64(r / pow);
}

// ---------- lists and dicts ----------

function first(v: GoValue): GoValue {
  const l = asList(v, 'Cannot find first on type');
  return l.length === 0 ? null : sliceAt(l, 0);
}

function last(v: GoValue): GoValue {
  const l = asList(v, 'Cannot find last on type');
  return l.length === 0 ? null : sliceAt(l, l.length - 1);
}

function rest(v: GoValue): GoValue {
  const l = asList(v, 'Cannot find rest on type');
  return l.length === 0 ? NIL_SLICE : l.slice(1).map((e) => e ?? null);
}

function initial(v: GoValue): GoValue {
  const l = asList(v, 'Cannot find initial on type');
  return l.length === 0 ? NIL_SLICE : l.slice(0, -1).map((e) => e ?? null);
}

function listSlice(list: GoValue, indices: GoValue[]): GoValue {
  const l = asList(list, 'list should be type of slice or array but');
  if (l.length === 0) return null;
  const start = indices.length > 0 ? toInt64(indices[0]) : 0;
  const end = indices.length < 2 ? l.length : toInt64(indices[1]);
  if (start < 0 || end < start || end > l.length) throw new FuncError('reflect: slice index out of range');
  return withElemType(l, l.slice(start, end).map((e) => e ?? null));
}

function chunk(size: number, list: GoValue): GoValue {
  const l = asList(list, 'Cannot chunk type');
  const cs = Math.floor((l.length - 1) / size) + 1;
  if (!Number.isFinite(cs) || cs < 0) throw new FuncError('runtime error: makeslice: len out of range');
  const out: GoValue[] = [];
  for (let i = 0; i < cs; i++) {
    let clen = size;
    if (i === cs - 1) {
      clen = Math.floor(l.length % size);
      if (clen === 0) clen = size;
    }
    const c: GoValue[] = [];
    for (let j = 0; j < clen; j++) {
      const ix = i * size + j;
      if (ix >= l.length) throw new FuncError('reflect: slice index out of range');
      c.push(sliceAt(l, ix));
    }
    out.push(c);
  }
  return sliceOf('[]interface {}', out);
}

function mutableMap(d: GoValue, key: string, what: string): Record<string, GoValue> {
  if (!OWNED.has(d as object)) {
    throw new FuncError(`${what} ${quoteString(key)}: cannot modify the template's input data; copy it first (deepCopy, dict)`);
  }
  return d as Record<string, GoValue>;
}

function dig(ps: GoValue[]): GoValue {
  if (ps.length < 3) throw new FuncError('dig needs at least three arguments');
  const asMap = (v: GoValue): GoMap => {
    if (!isMap(v) || elemType(v) !== 'interface {}') {
      throw new FuncError(`interface conversion: interface {} is ${v === null || v === undefined ? 'nil' : typeName(v)}, not map[string]interface {}`);
    }
    return v;
  };
  let dict = asMap(ps[ps.length - 1]);
  const def = ps[ps.length - 2];
  const ks = ps.slice(0, -2).map((k) => {
    if (typeof k !== 'string') throw new FuncError(`interface conversion: interface {} is ${k === null || k === undefined ? 'nil' : typeName(k)}, not string`);
    return k;
  });
  for (let i = 0; ; i++) {
    if (!mapHas(dict, ks[i])) return def;
    const step = mapGet(dict, ks[i]);
    if (i === ks.length - 1) return step;
    dict = asMap(step);
  }
}

function typeOfValue(v: GoValue): string {
  return v === null || v === undefined ? '<nil>' : typeName(v);
}

// ---------- the table ----------

const S = 'string' as const;
const A = 'any' as const;
const I = 'int' as const;
const M = 'map' as const;

const entries: Array<[string, GoFunc]> = [
  ['hello', fn([], () => 'Hello!')],

  // strings
  ['trunc', fn([I, S], ([c, s]) => trunc(int(c), str(s)))],
  ['trim', fn([S], ([s]) => trimSpace(str(s)))],
  ['upper', fn([S], ([s]) => mapRunes(str(s), upperRune))],
  ['lower', fn([S], ([s]) => mapRunes(str(s), lowerRune))],
  ['title', fn([S], ([s]) => title(str(s)))],
  ['untitle', fn([S], ([s]) => untitle(str(s)))],
  ['substr', fn([I, I, S], ([a, b, s]) => substr(int(a), int(b), str(s)))],
  ['repeat', fn([I, S], ([c, s]) => {
    if (int(c) < 0) throw new FuncError('strings: negative Repeat count');
    return str(s).repeat(int(c));
  })],
  ['trimAll', fn([S, S], ([a, b]) => trimCutset(str(b), str(a)))],
  ['trimSuffix', fn([S, S], ([a, b]) => (str(b).endsWith(str(a)) ? str(b).slice(0, str(b).length - str(a).length) : str(b)))],
  ['trimPrefix', fn([S, S], ([a, b]) => (str(b).startsWith(str(a)) ? str(b).slice(str(a).length) : str(b)))],
  ['nospace', fn([S], ([s]) => nospace(str(s)))],
  ['contains', fn([S, S], ([sub, s]) => str(s).includes(str(sub)))],
  ['hasPrefix', fn([S, S], ([sub, s]) => str(s).startsWith(str(sub)))],
  ['hasSuffix', fn([S, S], ([sub, s]) => str(s).endsWith(str(sub)))],
  ['quote', fn([], (args) => args.filter((a) => a !== null && a !== undefined).map((a) => quoteString(strval(a))).join(' '), A)],
  ['squote', fn([], (args) => args.filter((a) => a !== null && a !== undefined).map((a) => `'${sprintf('%v', [a])}'`).join(' '), A)],
  ['cat', fn([], (args) => args.filter((a) => a !== null && a !== undefined).map((a) => sprintf('%v', [a])).join(' '), A)],
  ['indent', fn([I, S], ([n, s]) => indent(int(n), str(s)))],
  ['nindent', fn([I, S], ([n, s]) => '\n' + indent(int(n), str(s)))],
  ['replace', fn([S, S, S], ([o, n, s]) => replaceAll(str(s), str(o), str(n)))],
  ['plural', fn([S, S, I], ([one, many, c]) => (int(c) === 1 ? one : many))],
  ['sha1sum', fn([S], ([s]) => hashHex('sha1', str(s)))],
  ['sha256sum', fn([S], ([s]) => hashHex('sha256', str(s)))],
  ['sha512sum', fn([S], ([s]) => hashHex('sha512', str(s)))],
  ['adler32sum', fn([S], ([s]) => String(adler32(str(s))))],
  ['toString', fn([A], ([v]) => strval(v))],

  // conversions and numbers
  ['atoi', fn([S], ([s]) => {
    const t = str(s);
    const n = DECIMAL_INT.test(t) ? parseGoInt(t) : undefined;
    return goInt(n ?? 0);
  })],
  ['int64', fn([A], ([v]) => toInt64(v))],
  ['int', fn([A], ([v]) => goInt(toInt64(v)))],
  ['float64', fn([A], ([v]) => f64(toFloat64(v)))],
  ['seq', fn([], (args) => seq(args.map(int)), I)],
  ['toDecimal', fn([A], ([v]) => {
    const t = sprintf('%v', [v === undefined ? null : v]);
    if (!OCTAL_INT.test(t)) return 0;
    const n = parseInt(t, 8);
    return Number.isSafeInteger(n) ? n : 0;
  })],
  ['split', fn([S, S], ([sep, s]) => {
    const out: Record<string, GoValue> = {};
    splitN(str(s), str(sep), -1).forEach((p, i) => { out['_' + i] = p; });
    return own(mapOf('string', out));
  })],
  ['splitList', fn([S, S], ([sep, s]) => sliceOf('string', splitN(str(s), str(sep), -1)))],
  ['splitn', fn([S, I, S], ([sep, n, s]) => {
    const out: Record<string, GoValue> = {};
    splitN(str(s), str(sep), int(n)).forEach((p, i) => { out['_' + i] = p; });
    return own(mapOf('string', out));
  })],
  ['toStrings', fn([A], ([v]) => sliceOf('string', strslice(v)))],
  ['until', fn([I], ([c]) => untilStep(0, int(c), int(c) < 0 ? -1 : 1))],
  ['untilStep', fn([I, I, I], ([a, b, c]) => untilStep(int(a), int(b), int(c)))],
  ['add1', fn([A], ([v]) => int64(toInt64(v) + 1))],
  ['add', fn([], (args) => int64(args.reduce<number>((acc, b) => acc + toInt64(b), 0)), A)],
  ['sub', fn([A, A], ([a, b]) => int64(toInt64(a) - toInt64(b)))],
  ['div', fn([A, A], ([a, b]) => divmod(a, b, (x, y) => Math.trunc(x / y)))],
  ['mod', fn([A, A], ([a, b]) => divmod(a, b, (x, y) => x % y))],
  ['mul', fn([A], ([a, ...rest]) => int64(rest.reduce<number>((acc, b) => acc * toInt64(b), toInt64(a))), A)],
  ['max', fn([A], ([a, ...rest]) => rest.reduce<number>((acc, b) => Math.max(acc, toInt64(b)), toInt64(a)), A)],
  ['min', fn([A], ([a, ...rest]) => rest.reduce<number>((acc, b) => Math.min(acc, toInt64(b)), toInt64(a)), A)],
  ['maxf', fn([A], ([a, ...rest]) => f64(rest.reduce<number>((acc, b) => Math.max(acc, toFloat64(b)), toFloat64(a))), A)],
  ['minf', fn([A], ([a, ...rest]) => f64(rest.reduce<number>((acc, b) => Math.min(acc, toFloat64(b)), toFloat64(a))), A)],
  ['ceil', fn([A], ([a]) => f64(Math.ceil(toFloat64(a))))],
  ['floor', fn([A], ([a]) => f64(Math.floor(toFloat64(a))))],
  ['round', fn([A, I], ([a, p, ...r]) => round(a, int(p), r), 'float64')],

  // string lists
  ['join', fn([S, A], ([sep, v]) => strslice(v).join(str(sep)))],
  ['sortAlpha', fn([A], ([v]) => sliceOf('string', isSlice(v) ? strslice(v).sort(compareStrings) : [strval(v)]))],

  // defaults, JSON, flow
  ['default', fn([A], ([d, ...given]) => (given.length === 0 || empty(given[0]) ? d : given[0]), A)],
  ['empty', fn([A], ([v]) => empty(v))],
  ['coalesce', fn([], (args) => args.find((v) => !empty(v)) ?? null, A)],
  ['all', fn([], (args) => args.every((v) => !empty(v)), A)],
  ['any', fn([], (args) => args.some((v) => !empty(v)), A)],
  ['compact', fn([A], ([v]) => asList(v, 'Cannot compact on type').filter((e) => !empty(e ?? null)).map((e) => e ?? null))],
  ['fromJson', fn([S], ([s]) => { try { return fromJSON(str(s)); } catch { return null; } })],
  ['mustFromJson', fn([S], ([s]) => {
    try { return fromJSON(str(s)); } catch (e) { throw new FuncError(e instanceof Error ? e.message : String(e)); }
  })],
  ['toJson', fn([A], ([v]) => { try { return toJSON(v, '', true); } catch { return ''; } })],
  ['mustToJson', fn([A], ([v]) => toJSON(v, '', true))],
  ['toPrettyJson', fn([A], ([v]) => { try { return toJSON(v, '  ', true); } catch { return ''; } })],
  ['mustToPrettyJson', fn([A], ([v]) => toJSON(v, '  ', true))],
  ['toRawJson', fn([A], ([v]) => toJSON(v, '', false))],
  ['ternary', fn([A, A, 'bool'], ([t, f, c]) => (c ? t : f))],
  ['deepCopy', fn([A], ([v]) => deepCopy(v))],
  ['fail', fn([S], ([m]) => { throw new FuncError(str(m)); })],
  ['required', fn([S, A], ([warn, v]) => {
    if (v === null || v === undefined || v === '') throw new FuncError(str(warn));
    return v;
  })],

  // reflection
  ['typeOf', fn([A], ([v]) => typeOfValue(v))],
  ['typeIs', fn([S, A], ([t, v]) => t === typeOfValue(v))],
  ['typeIsLike', fn([S, A], ([t, v]) => t === typeOfValue(v) || '*' + str(t) === typeOfValue(v))],
  ['kindOf', fn([A], ([v]) => kindName(v))],
  ['kindIs', fn([S, A], ([t, v]) => t === kindName(v))],
  ['deepEqual', fn([A, A], ([a, b]) => deepEqual(a, b))],

  // paths (path and, on Linux, path/filepath)
  ['base', fn([S], ([p]) => pathBase(str(p)))],
  ['dir', fn([S], ([p]) => pathDir(str(p)))],
  ['clean', fn([S], ([p]) => pathClean(str(p)))],
  ['ext', fn([S], ([p]) => pathExt(str(p)))],
  ['isAbs', fn([S], ([p]) => str(p).startsWith('/'))],

  // encodings
  ['b64enc', fn([S], ([s]) => toBytes(str(s)).toString('base64'))],
  ['b64dec', fn([S], ([s]) => b64dec(str(s)))],
  ['b32enc', fn([S], ([s]) => b32enc(str(s)))],
  ['b32dec', fn([S], ([s]) => b32dec(str(s)))],

  // URLs (net/url, as sprig: a parse error or a non-string part panics)
  ['urlParse', fn([S], ([v]) => {
    let u;
    try { u = parseUrl(str(v)); } catch (e) { throw new FuncError(`unable to parse url: ${(e as Error).message}`); }
    return own({ scheme: u.scheme, host: u.host, hostname: hostname(u), path: u.path, query: u.rawQuery, opaque: u.opaque, fragment: u.fragment, userinfo: userinfo(u) });
  })],
  ['urlJoin', fn([M], ([d]) => {
    const part = (key: string): string => {
      if (!mapHas(d as GoMap, key)) return '';
      const v = mapGet(d as GoMap, key);
      if (v === null || v === undefined) throw new FuncError(NIL_DEREF);
      if (typeof v !== 'string') throw new FuncError(`unable to parse ${key} key, must be of type string, but ${kindName(v)} found`);
      return v;
    };
    const p = { scheme: part('scheme'), host: part('host'), path: part('path'), query: part('query'), opaque: part('opaque'), fragment: part('fragment') };
    const info = part('userinfo');
    let user;
    if (info !== '') {
      try { user = parseUserinfo(info); } catch (e) { throw new FuncError(`unable to parse userinfo in dict: ${(e as Error).message}`); }
    }
    return urlString(urlFromParts({ ...p, user }));
  })],

  // dicts
  ['list', fn([], (args) => [...args], A)],
  ['dict', fn([], (args) => {
    const d: Record<string, GoValue> = {};
    for (let i = 0; i < args.length; i += 2) d[strval(args[i])] = i + 1 < args.length ? args[i + 1] : '';
    return own(d);
  }, A)],
  ['get', fn([M, S], ([d, k]) => (mapHas(d as GoMap, str(k)) ? mapGet(d as GoMap, str(k)) : ''))],
  ['set', fn([M, S, A], ([d, k, v]) => {
    if (d === NIL_MAP) throw new FuncError('assignment to entry in nil map');
    mutableMap(d, str(k), 'set')[str(k)] = v;
    return d;
  })],
  ['unset', fn([M, S], ([d, k]) => {
    if (d === NIL_MAP || !mapHas(d as GoMap, str(k))) return d;
    delete mutableMap(d, str(k), 'unset')[str(k)];
    return d;
  })],
  ['hasKey', fn([M, S], ([d, k]) => mapHas(d as GoMap, str(k)))],
  ['pluck', fn([S], ([k, ...ds]) => ds.filter((d) => mapHas(d as GoMap, str(k))).map((d) => mapGet(d as GoMap, str(k)) ?? null), M)],
  ['keys', fn([], (ds) => sliceOf('string', ds.flatMap((d) => mapKeys(d as GoMap)).sort(compareStrings)), M)],
  ['pick', fn([M], ([d, ...ks]) => {
    const out: Record<string, GoValue> = {};
    for (const k of ks) if (mapHas(d as GoMap, str(k))) out[str(k)] = mapGet(d as GoMap, str(k));
    return own(out);
  }, S)],
  ['omit', fn([M], ([d, ...ks]) => {
    const skip = new Set(ks.map(str));
    const out: Record<string, GoValue> = {};
    for (const k of mapKeys(d as GoMap)) if (!skip.has(k)) out[k] = mapGet(d as GoMap, k);
    return own(out);
  }, S)],
  ['values', fn([M], ([d]) => mapKeys(d as GoMap).map((k) => mapGet(d as GoMap, k) ?? null))],
  ['dig', fn([], (ps) => dig(ps), A)],

  // lists
  ['append', fn([A, A], ([l, v]) => [...asList(l, 'Cannot push on type').map((e) => e ?? null), v])],
  ['prepend', fn([A, A], ([l, v]) => [v, ...asList(l, 'Cannot prepend on type').map((e) => e ?? null)])],
  ['first', fn([A], ([l]) => first(l))],
  ['rest', fn([A], ([l]) => rest(l))],
  ['last', fn([A], ([l]) => last(l))],
  ['initial', fn([A], ([l]) => initial(l))],
  ['reverse', fn([A], ([l]) => [...asList(l, 'Cannot find reverse on type')].reverse().map((e) => e ?? null))],
  ['uniq', fn([A], ([l]) => {
    const dest: GoValue[] = [];
    for (const e of asList(l, 'Cannot find uniq on type')) if (!inList(dest, e ?? null)) dest.push(e ?? null);
    return dest;
  })],
  ['without', fn([A], ([l, ...omit]) => asList(l, 'Cannot find without on type').filter((e) => !inList(omit, e ?? null)).map((e) => e ?? null), A)],
  ['has', fn([A, A], ([needle, hay]) => {
    if (hay === null || hay === undefined) return false;
    return asList(hay, 'Cannot find has on type').some((e) => deepEqual(needle, e ?? null));
  })],
  ['slice', fn([A], ([l, ...ix]) => listSlice(l, ix), A)],
  ['concat', fn([], (lists) => {
    const res: GoValue[] = [];
    for (const l of lists) {
      if (l === null || l === undefined) throw new FuncError(NIL_DEREF);
      if (!isSlice(l)) throw new FuncError(`Cannot concat type ${kindName(l)} as list`);
      for (const e of l) res.push(e ?? null);
    }
    return res.length === 0 ? NIL_SLICE : res;
  }, A)],
  ['chunk', fn([I, A], ([n, l]) => chunk(int(n), l))],
];

/** Names sprig binds to the same function as another (the must* variants here already fail as Go's do). */
const ALIASES: ReadonlyArray<[alias: string, of: string]> = [
  ['trimall', 'trimAll'], ['biggest', 'max'], ['tuple', 'list'], ['push', 'append'], ['mustAppend', 'append'],
  ['mustPush', 'append'], ['mustPrepend', 'prepend'], ['mustFirst', 'first'], ['mustRest', 'rest'], ['mustLast', 'last'],
  ['mustInitial', 'initial'], ['mustReverse', 'reverse'], ['mustUniq', 'uniq'], ['mustWithout', 'without'],
  ['mustHas', 'has'], ['mustSlice', 'slice'], ['mustChunk', 'chunk'], ['mustCompact', 'compact'],
  ['mustToRawJson', 'toRawJson'], ['mustDeepCopy', 'deepCopy'], ['osBase', 'base'],
  ['osDir', 'dir'], ['osClean', 'clean'], ['osExt', 'ext'], ['osIsAbs', 'isAbs'],
];

function buildTable(): Map<string, GoFunc> {
  const table = new Map(entries);
  for (const [alias, of] of ALIASES) table.set(alias, table.get(of) as GoFunc);
  return table;
}

export const SPRIG: ReadonlyMap<string, GoFunc> = buildTable();

/** Sprig functions deliberately left out, with the reason given to template authors. */
export const UNSUPPORTED_SPRIG: ReadonlyMap<string, string> = new Map([
  ...['date', 'date_in_zone', 'date_modify', 'dateInZone', 'dateModify', 'htmlDate', 'htmlDateInZone', 'now',
    'ago', 'duration', 'durationRound', 'must_date_modify', 'mustDateModify', 'mustToDate', 'toDate',
    'unixEpoch'].map((n): [string, string] => [n, 'date functions are not supported']),
  ...['randAlphaNum', 'randAlpha', 'randAscii', 'randNumeric', 'randInt', 'randBytes', 'uuidv4', 'shuffle']
    .map((n): [string, string] => [n, 'random functions are not supported (templates must render the same every time)']),
  ...['env', 'expandenv'].map((n): [string, string] => [n, 'reading the proxy\'s environment is not allowed']),
  ['getHostByName', 'network lookups are not allowed'],
  ...['bcrypt', 'htpasswd', 'genPrivateKey', 'derivePassword', 'buildCustomCert', 'genCA', 'genCAWithKey',
    'genSelfSignedCert', 'genSelfSignedCertWithKey', 'genSignedCert', 'genSignedCertWithKey', 'encryptAES',
    'decryptAES'].map((n): [string, string] => [n, 'crypto functions other than the sha*sum hashes are not supported']),
  ...['semver', 'semverCompare'].map((n): [string, string] => [n, 'semver functions are not supported']),
  ...['regexMatch', 'mustRegexMatch', 'regexFindAll', 'mustRegexFindAll', 'regexFind', 'mustRegexFind',
    'regexReplaceAll', 'mustRegexReplaceAll', 'regexReplaceAllLiteral', 'mustRegexReplaceAllLiteral',
    'regexSplit', 'mustRegexSplit', 'regexQuoteMeta'].map((n): [string, string] => [n, 'regular expression functions are not supported (Go RE2 syntax differs from JavaScript)']),
  ...['merge', 'mergeOverwrite', 'mustMerge', 'mustMergeOverwrite'].map((n): [string, string] => [n, 'merge functions are not supported']),
  ...['addf', 'add1f', 'subf', 'mulf', 'divf'].map((n): [string, string] => [n, 'decimal arithmetic functions are not supported']),
  ...['abbrev', 'abbrevboth', 'initials', 'wrap', 'wrapWith', 'swapcase', 'snakecase', 'camelcase', 'kebabcase']
    .map((n): [string, string] => [n, 'this string function is not supported']),
]);
