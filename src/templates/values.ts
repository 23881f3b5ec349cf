// The Go value model the engine evaluates over. Templates see JSON-like data, so the Go types
// that can occur are few: string, bool, int64 (JSON integers, as Kubernetes' unstructured
// converter yields), float64, []interface{}, map[string]interface{} and nil, plus the handful
// of other types that builtins and sprig functions return (int, uint8, []string, []int,
// map[string]string). Type names matter because Go prints them (%T, %!d(string=x), error
// messages), so values carry enough to recover them:
//   undefined  an invalid reflect.Value (a missing map key, "<no value>")
//   null       a nil interface{} (a JSON null read out of a map or slice)
//   number     int64 when integral, float64 otherwise
//   GoNum      any other numeric type, or a float64 whose value happens to be integral
//   arrays     []interface{} unless tagged with another element type (sliceOf)
//   objects    map[string]interface{} unless tagged (mapOf)

export type NumKind = 'int' | 'int64' | 'int32' | 'uint8' | 'float64';

export class GoNum {
  constructor(readonly kind: NumKind, readonly value: number) {}
}

export type GoValue = undefined | null | string | boolean | number | GoNum | GoSlice | GoMap;
export type GoSlice = readonly GoValue[];
export interface GoMap { readonly [key: string]: GoValue }

const ELEM_TYPE = Symbol('goElemType');
const NIL = Symbol('goNil');

interface Tagged { [ELEM_TYPE]?: string; [NIL]?: true }

/** Tags an array with a Go element type other than interface{} (e.g. "string" for []string). */
export function sliceOf<T extends GoValue[]>(elemType: string, arr: T): T {
  Object.defineProperty(arr, ELEM_TYPE, { value: elemType });
  return arr;
}

/** Tags an object as map[string]<elemType>. */
export function mapOf<T extends Record<string, GoValue>>(elemType: string, obj: T): T {
  Object.defineProperty(obj, ELEM_TYPE, { value: elemType });
  return obj;
}

/** A typed nil []interface{} (prints "[]", encodes as JSON null). */
export const NIL_SLICE: GoSlice = Object.freeze(Object.defineProperty([] as GoValue[], NIL, { value: true }));
/** A typed nil map[string]interface{} (prints "map[]", encodes as JSON null). */
export const NIL_MAP: GoMap = Object.freeze(Object.defineProperty(Object.create(null) as GoMap, NIL, { value: true }));

export function isNilCollection(v: GoSlice | GoMap): boolean {
  return (v as Tagged)[NIL] === true;
}

export function elemType(v: GoSlice | GoMap): string {
  return (v as Tagged)[ELEM_TYPE] ?? 'interface {}';
}

export function isSlice(v: GoValue): v is GoSlice {
  return Array.isArray(v);
}

export function isMap(v: GoValue): v is GoMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof GoNum);
}

export function isNumber(v: GoValue): v is number | GoNum {
  return typeof v === 'number' || v instanceof GoNum;
}

export function numValue(v: number | GoNum): number {
  return typeof v === 'number' ? v : v.value;
}

export function numKind(v: number | GoNum): NumKind {
  if (typeof v !== 'number') return v.kind;
  return Number.isInteger(v) ? 'int64' : 'float64';
}

export function isFloat(v: number | GoNum): boolean {
  return numKind(v) === 'float64';
}

/** A float64 result: plain when the number is not integral, tagged otherwise. */
export function f64(x: number): number | GoNum {
  return Number.isInteger(x) ? new GoNum('float64', x) : x;
}

/** An int result: Go's `int`. */
export function goInt(x: number): GoNum {
  return new GoNum('int', x);
}

/** Own-property lookup: map keys never reach the prototype ("constructor", "__proto__"). */
const hasOwn = Object.prototype.hasOwnProperty;
export function mapGet(m: GoMap, key: string): GoValue {
  if (!hasOwn.call(m, key)) return undefined;
  const v = m[key];
  return v === undefined ? undefined : v;
}

export function mapHas(m: GoMap, key: string): boolean {
  return hasOwn.call(m, key) && m[key] !== undefined;
}

export function mapKeys(m: GoMap): string[] {
  const keys: string[] = [];
  for (const k of Object.keys(m)) if (m[k] !== undefined) keys.push(k);
  return keys.sort(compareStrings);
}

/** A slice element: JS holes and undefined read as nil. */
export function sliceAt(s: GoSlice, i: number): GoValue {
  const v = s[i];
  return v === undefined ? null : v;
}

/** Go compares strings bytewise (UTF-8), which is code point order, not UTF-16 order. */
export function compareStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca !== cb) {
      if (ca < 0xd800 && cb < 0xd800) return ca - cb;
      return (a.codePointAt(i) ?? 0) - (b.codePointAt(i) ?? 0);
    }
  }
  return a.length - b.length;
}

/** Go's reflect type string, e.g. "int64", "[]interface {}", "map[string]interface {}". */
export function typeName(v: GoValue): string {
  if (v === undefined) return 'invalid';
  if (v === null) return 'interface {}';
  switch (typeof v) {
    case 'string': return 'string';
    case 'boolean': return 'bool';
    case 'number': return Number.isInteger(v) ? 'int64' : 'float64';
  }
  if (v instanceof GoNum) return v.kind;
  if (Array.isArray(v)) return '[]' + elemType(v);
  return 'map[string]' + elemType(v as GoMap);
}

/** Go's reflect.Kind name, as sprig's kindOf reports it. */
export function kindName(v: GoValue): string {
  if (v === undefined || v === null) return 'invalid';
  switch (typeof v) {
    case 'string': return 'string';
    case 'boolean': return 'bool';
    case 'number': return Number.isInteger(v) ? 'int64' : 'float64';
  }
  if (v instanceof GoNum) return v.kind;
  return Array.isArray(v) ? 'slice' : 'map';
}

/** text/template's truth: zero values and empty collections are false. */
export function isTrue(v: GoValue): boolean {
  if (v === undefined || v === null) return false;
  switch (typeof v) {
    case 'string': return v.length > 0;
    case 'boolean': return v;
    case 'number': return v !== 0;
  }
  if (v instanceof GoNum) return v.value !== 0;
  if (Array.isArray(v)) return v.length > 0;
  return mapKeys(v as GoMap).length > 0;
}

const ASCII = /^[\x00-\x7f]*$/;

export function isAscii(s: string): boolean {
  return ASCII.test(s);
}

/** Length in UTF-8 bytes, as Go's len(string). */
export function byteLength(s: string): number {
  return isAscii(s) ? s.length : Buffer.byteLength(s, 'utf8');
}

export function toBytes(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

export function fromBytes(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
}

/** Go's s[start:end] on bytes. */
export function byteSlice(s: string, start: number, end?: number): string {
  if (isAscii(s)) return s.slice(start, end);
  return fromBytes(toBytes(s).subarray(start, end));
}

const MAX_DATA_DEPTH = 1000;

/**
 * Brings caller data into the model. JSON-like data comes back as the very same objects (one
 * walk, no copy); other JS values are made JSON-like the way JSON.stringify sees them: toJSON()
 * is used (Date), bigint becomes a number, functions, symbols and undefined are absent.
 * Throws RangeError for data nested deeper than any JSON document we render (or cyclic).
 */
export function fromJS(data: unknown, depth = 0): GoValue {
  switch (typeof data) {
    case 'string': case 'boolean': case 'number': return data;
    case 'bigint': return Number(data);
    case 'object': break;
    default: return undefined;
  }
  if (data === null || data instanceof GoNum) return data;
  if (depth > MAX_DATA_DEPTH) throw new RangeError('template data is nested too deeply (or cyclic)');
  if (Array.isArray(data)) {
    let out: GoValue[] | undefined;
    for (let i = 0; i < data.length; i++) {
      const e: unknown = data[i];
      const v = fromJS(e, depth + 1);
      const nv = v === undefined ? null : v;
      if (nv !== e && out === undefined) out = data.slice(0, i) as GoValue[];
      if (out !== undefined) out.push(nv);
    }
    return out ?? (data as GoValue[]);
  }
  const toJSON = (data as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return fromJS(toJSON.call(data), depth + 1);
  let out: Record<string, GoValue> | undefined;
  const keys = Object.keys(data);
  for (let i = 0; i < keys.length; i++) {
    const e: unknown = (data as Record<string, unknown>)[keys[i]];
    const v = fromJS(e, depth + 1);
    if (v !== e && out === undefined) {
      out = {};
      for (let j = 0; j < i; j++) out[keys[j]] = (data as Record<string, GoValue>)[keys[j]];
    }
    if (out !== undefined && v !== undefined) out[keys[i]] = v;
  }
  return out ?? (data as GoMap);
}
