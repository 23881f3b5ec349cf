// text/template's predefined functions (text/template/funcs.go). "and"/"or" short-circuit and
// are evaluated by the executor itself; "call" exists because Go has it, but data here holds
// no functions, so it fails as Go fails on a non-function.
import { sprint, sprintf, sprintln } from './fmt';
import { FuncError, GoFunc, fn } from './funcs';
import {
  GoMap, GoNum, GoValue, byteLength, compareStrings, elemType, isNumber, isTrue, mapGet, mapKeys,
  numKind, numValue, goInt, isSlice, isMap, sliceAt, toBytes, typeName,
} from './values';

type Kind = 'invalid' | 'bool' | 'int' | 'uint' | 'float' | 'string';

function basicKind(v: GoValue): Kind {
  if (v === undefined || v === null) return 'invalid';
  switch (typeof v) {
    case 'boolean': return 'bool';
    case 'string': return 'string';
    case 'number': return Number.isInteger(v) ? 'int' : 'float';
  }
  if (v instanceof GoNum) {
    if (v.kind === 'float64') return 'float';
    return v.kind === 'uint8' ? 'uint' : 'int';
  }
  return 'invalid';
}

/** indirectInterface: a nil interface becomes the invalid value. */
function indirect(v: GoValue): GoValue {
  return v === null ? undefined : v;
}

function num(v: GoValue): number {
  return numValue(v as number | GoNum);
}

function isNilValue(v: GoValue): boolean {
  return v === undefined || v === null;
}

function eq(arg1: GoValue, rest: GoValue[]): boolean {
  arg1 = indirect(arg1);
  if (rest.length === 0) throw new FuncError('missing argument for comparison');
  const k1 = basicKind(arg1);
  for (let arg of rest) {
    arg = indirect(arg);
    const k2 = basicKind(arg);
    let truth = false;
    if (k1 !== k2) {
      if ((k1 === 'int' && k2 === 'uint') || (k1 === 'uint' && k2 === 'int')) truth = num(arg1) === num(arg);
      else if (arg1 !== undefined && arg !== undefined) {
        throw new FuncError(`incompatible types for comparison: ${typeName(arg1)} and ${typeName(arg)}`);
      }
    } else {
      switch (k1) {
        case 'bool': case 'string': truth = arg1 === arg; break;
        case 'int': case 'uint': case 'float': truth = num(arg1) === num(arg); break;
        default: {
          const sameKind = (isSlice(arg1) && isSlice(arg)) || (isMap(arg1) && isMap(arg));
          if (!sameKind && arg1 !== undefined && arg !== undefined) {
            throw new FuncError(`non-comparable types ${sprintf('%s', [arg1])}: ${typeName(arg1)}, ${typeName(arg)}: ${sprintf('%v', [arg])}`);
          }
          if (isNilValue(arg1) || isNilValue(arg)) truth = isNilValue(arg1) === isNilValue(arg);
          else throw new FuncError(`non-comparable type ${sprintf('%s', [arg])}: ${typeName(arg)}`);
        }
      }
    }
    if (truth) return true;
  }
  return false;
}

function lt(arg1: GoValue, arg2: GoValue): boolean {
  arg1 = indirect(arg1);
  arg2 = indirect(arg2);
  const k1 = basicKind(arg1);
  const k2 = basicKind(arg2);
  if (k1 === 'invalid' || k2 === 'invalid') throw new FuncError('invalid type for comparison');
  if (k1 !== k2) {
    if ((k1 === 'int' && k2 === 'uint') || (k1 === 'uint' && k2 === 'int')) return num(arg1) < num(arg2);
    throw new FuncError(`incompatible types for comparison: ${typeName(arg1)} and ${typeName(arg2)}`);
  }
  switch (k1) {
    case 'bool': throw new FuncError('invalid type for comparison');
    case 'string': return compareStrings(arg1 as string, arg2 as string) < 0;
    default: return num(arg1) < num(arg2);
  }
}

function le(a: GoValue, b: GoValue): boolean {
  return lt(a, b) || eq(a, [b]);
}

function indexArg(index: GoValue, cap: number): number {
  if (index === undefined) throw new FuncError('cannot index slice/array with nil');
  if (!isNumber(index) || numKind(index) === 'float64') {
    throw new FuncError(`cannot index slice/array with type ${typeName(index)}`);
  }
  const x = numValue(index);
  if (x < 0 || x > cap) throw new FuncError(`index out of range: ${x}`);
  return x;
}

function index(item: GoValue, indexes: GoValue[]): GoValue {
  item = indirect(item);
  if (item === undefined) throw new FuncError('index of untyped nil');
  for (let ix of indexes) {
    ix = indirect(ix);
    if (item === null) throw new FuncError('index of nil pointer');
    if (typeof item === 'string') {
      const bytes = toBytes(item);
      const x = indexArg(ix, bytes.length);
      if (x === bytes.length) throw new FuncError('reflect: string index out of range');
      item = new GoNum('uint8', bytes[x]);
    } else if (isSlice(item)) {
      const x = indexArg(ix, item.length);
      if (x === item.length) throw new FuncError('reflect: slice index out of range');
      item = sliceAt(item, x);
    } else if (isMap(item)) {
      if (ix === undefined) throw new FuncError('value is nil; should be of type string');
      if (typeof ix !== 'string') throw new FuncError(`value has type ${typeName(ix)}; should be string`);
      const v = mapGet(item, ix);
      item = v !== undefined ? v : elemType(item) === 'string' ? '' : null;
    } else {
      throw new FuncError(`can't index item of type ${typeName(item)}`);
    }
  }
  return item;
}

function length(item: GoValue): GoValue {
  if (item === null) throw new FuncError('len of nil pointer');
  if (item === undefined) throw new FuncError('reflect: call of reflect.Value.Type on zero Value');
  if (typeof item === 'string') return goInt(byteLength(item));
  if (isSlice(item)) return goInt(item.length);
  if (isMap(item)) return goInt(mapKeys(item as GoMap).length);
  throw new FuncError(`len of type ${typeName(item)}`);
}

/** text/template's evalArgs: Sprint, but a missing value prints as <no value>. */
function evalArgs(args: GoValue[]): string {
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  return sprint(args.map((a) => (a === null || a === undefined ? '<no value>' : a)));
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '\0': '\uFFFD', '"': '&#34;', "'": '&#39;', '&': '&amp;', '<': '&lt;', '>': '&gt;',
};
const HTML_SPECIAL = /[\0"'&<>]/g;

export function htmlEscape(s: string): string {
  return s.replace(HTML_SPECIAL, (c) => HTML_ESCAPES[c]);
}

const JS_PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

export function jsEscape(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    switch (ch) {
      case '\\': out += '\\\\'; continue;
      case "'": out += "\\'"; continue;
      case '"': out += '\\"'; continue;
      case '<': out += '\\u003C'; continue;
      case '>': out += '\\u003E'; continue;
      case '&': out += '\\u0026'; continue;
      case '=': out += '\\u003D'; continue;
    }
    if (c < 0x20) out += '\\u00' + c.toString(16).toUpperCase().padStart(2, '0');
    else if (c < 0x80 || JS_PRINTABLE.test(ch)) out += ch;
    else out += '\\u' + c.toString(16).toUpperCase().padStart(4, '0');
  }
  return out;
}

/** url.QueryEscape. */
export function queryEscape(s: string): string {
  let out = '';
  for (const b of toBytes(s)) {
    if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
        b === 0x2d || b === 0x5f || b === 0x2e || b === 0x7e) out += String.fromCharCode(b);
    else if (b === 0x20) out += '+';
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

export const BUILTINS: ReadonlyMap<string, GoFunc> = new Map<string, GoFunc>([
  // and/or: the executor short-circuits them and never calls these.
  ['and', fn(['value'], (a) => a[a.length - 1], 'value')],
  ['or', fn(['value'], (a) => a[a.length - 1], 'value')],
  ['not', fn(['value'], ([a]) => !isTrue(indirect(a)))],
  ['call', fn(['value'], () => { throw new FuncError('call is not supported'); }, 'value')],
  ['html', fn([], (a) => htmlEscape(evalArgs(a)), 'any')],
  ['js', fn([], (a) => jsEscape(evalArgs(a)), 'any')],
  ['urlquery', fn([], (a) => queryEscape(evalArgs(a)), 'any')],
  ['index', fn(['value'], ([item, ...ix]) => index(item, ix), 'value')],
  ['len', fn(['value'], ([a]) => length(a))],
  ['print', fn([], (a) => sprint(a), 'any')],
  ['printf', fn(['string'], ([f, ...a]) => sprintf(f as string, a), 'any')],
  ['println', fn([], (a) => sprintln(a), 'any')],
  ['eq', fn(['value'], ([a, ...rest]) => eq(a, rest), 'value')],
  ['ne', fn(['value', 'value'], ([a, b]) => !eq(a, [b]))],
  ['lt', fn(['value', 'value'], ([a, b]) => lt(a, b))],
  ['le', fn(['value', 'value'], ([a, b]) => le(a, b))],
  ['gt', fn(['value', 'value'], ([a, b]) => !le(a, b))],
  ['ge', fn(['value', 'value'], ([a, b]) => !lt(a, b))],
]);
