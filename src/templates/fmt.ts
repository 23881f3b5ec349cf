// A port of the parts of Go's fmt and strconv that templates reach: Sprint, Sprintln, Sprintf
// (flags, width, precision, explicit argument indexes, verbs v s d q x X o O b c U t e E f F g
// G T, and the %!verb(type=value) / MISSING / EXTRA forms), strconv.Quote and float formatting.
import {
  GoMap, GoNum, GoSlice, GoValue, isNilCollection, isNumber, mapGet, mapKeys, numKind,
  numValue, toBytes, typeName,
} from './values';

// ---------- strconv ----------

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
export function isPrint(cp: number): boolean {
  if (cp < 0x80) return cp >= 0x20 && cp < 0x7f;
  return PRINTABLE.test(String.fromCodePoint(cp));
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function appendEscapedRune(cp: number, quote: string, asciiOnly: boolean): string {
  if (cp === quote.charCodeAt(0) || cp === 0x5c) return '\\' + String.fromCodePoint(cp);
  if (asciiOnly ? cp < 0x80 && isPrint(cp) : isPrint(cp)) return String.fromCodePoint(cp);
  switch (cp) {
    case 0x07: return '\\a';
    case 0x08: return '\\b';
    case 0x0c: return '\\f';
    case 0x0a: return '\\n';
    case 0x0d: return '\\r';
    case 0x09: return '\\t';
    case 0x0b: return '\\v';
  }
  if (cp < 0x20 || cp === 0x7f) return '\\x' + hex2(cp);
  if (cp >= 0xd800 && cp < 0xe000) return '\\ufffd'; // lone surrogate: invalid UTF-8 in Go
  if (cp < 0x10000) return '\\u' + cp.toString(16).padStart(4, '0');
  return '\\U' + cp.toString(16).padStart(8, '0');
}

/** strconv.Quote (or QuoteToASCII). */
export function quoteString(s: string, asciiOnly = false): string {
  let out = '"';
  for (const ch of s) out += appendEscapedRune(ch.codePointAt(0) ?? 0, '"', asciiOnly);
  return out + '"';
}

/** strconv.QuoteRune. */
export function quoteRune(cp: number, asciiOnly = false): string {
  if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000) || cp < 0) cp = 0xfffd;
  return "'" + appendEscapedRune(cp, "'", asciiOnly) + "'";
}

/** strconv.CanBackquote. */
function canBackquote(s: string): boolean {
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp === 0x60 || cp === 0xfeff) return false;
    if (cp < 0x20 && cp !== 0x09) return false;
    if (cp === 0x7f) return false;
  }
  return true;
}

interface Digits { d: string; dp: number } // value = 0.d × 10^dp; d has no leading zeros

/** Shortest digits that round-trip (what Go's %v and JS's toString both use). */
function shortestDigits(v: number): Digits {
  if (v === 0) return { d: '', dp: 0 };
  const [mant, exp] = Math.abs(v).toExponential().split('e');
  return { d: mant.replace('.', ''), dp: Number(exp) + 1 };
}

/** The exact decimal expansion of a finite float64. */
function exactDigits(v: number): Digits {
  v = Math.abs(v);
  if (v === 0) return { d: '', dp: 0 };
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, v);
  const hi = buf.getUint32(0);
  const lo = buf.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exp: number;
  if (biased === 0) exp = -1074;
  else { mant |= 1n << 52n; exp = biased - 1075; }
  let digits: string;
  let dp: number;
  if (exp >= 0) {
    digits = (mant << BigInt(exp)).toString();
    dp = digits.length;
  } else {
    digits = (mant * 5n ** BigInt(-exp)).toString();
    dp = digits.length + exp;
  }
  return { d: trimZeros(digits), dp };
}

function trimZeros(d: string): string {
  let n = d.length;
  while (n > 0 && d.charCodeAt(n - 1) === 48) n--;
  return d.slice(0, n);
}

/** Rounds to nd digits, half to even on exact ties (Go's decimal.Round). */
function roundDigits(x: Digits, nd: number): Digits {
  if (nd < 0) return { d: '', dp: x.dp };
  if (nd >= x.d.length) return x;
  const next = x.d.charCodeAt(nd) - 48;
  let up: boolean;
  if (next > 5) up = true;
  else if (next < 5) up = false;
  else if (nd + 1 < x.d.length) up = true; // more non-zero digits follow (trailing zeros trimmed)
  else up = nd > 0 && (x.d.charCodeAt(nd - 1) - 48) % 2 === 1;
  let d = x.d.slice(0, nd);
  let dp = x.dp;
  if (up) {
    let i = d.length - 1;
    while (i >= 0 && d[i] === '9') i--;
    if (i < 0) { d = '1'; dp++; } else d = d.slice(0, i) + String.fromCharCode(d.charCodeAt(i) + 1);
  }
  return { d: trimZeros(d), dp };
}

function fmtE(neg: boolean, x: Digits, prec: number, e: string): string {
  let out = neg ? '-' : '';
  out += x.d.length ? x.d[0] : '0';
  if (prec > 0) {
    out += '.';
    let frac = x.d.slice(1, prec + 1);
    frac += '0'.repeat(prec - frac.length);
    out += frac;
  }
  let exp = x.d.length === 0 ? 0 : x.dp - 1;
  const sign = exp < 0 ? '-' : '+';
  exp = Math.abs(exp);
  return out + e + sign + (exp < 10 ? '0' + exp : String(exp));
}

function fmtF(neg: boolean, x: Digits, prec: number): string {
  let out = neg ? '-' : '';
  if (x.dp > 0) {
    out += x.d.slice(0, x.dp);
    if (x.d.length < x.dp) out += '0'.repeat(x.dp - x.d.length);
  } else out += '0';
  if (prec > 0) {
    out += '.';
    for (let i = 0; i < prec; i++) {
      const j = x.dp + i;
      out += j >= 0 && j < x.d.length ? x.d[j] : '0';
    }
  }
  return out;
}

/** strconv.FormatFloat(v, fmt, prec, 64) for fmt in e E f g G. */
export function formatFloat(v: number, fmt: string, prec: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  const neg = v < 0 || Object.is(v, -0);
  const shortest = prec < 0;
  let x: Digits;
  if (shortest) {
    x = shortestDigits(v);
    if (fmt === 'e' || fmt === 'E') prec = Math.max(x.d.length - 1, 0);
    else if (fmt === 'f') prec = Math.max(x.d.length - x.dp, 0);
    else prec = x.d.length;
  } else {
    const exact = exactDigits(v);
    if (fmt === 'f') x = roundDigits(exact, exact.dp + prec);
    else if (fmt === 'e' || fmt === 'E') x = roundDigits(exact, prec + 1);
    else { if (prec === 0) prec = 1; x = roundDigits(exact, prec); }
    if (x.d.length === 0) x = { d: '', dp: fmt === 'f' ? 0 : x.dp };
  }
  switch (fmt) {
    case 'e': case 'E': return fmtE(neg, x, prec, fmt);
    case 'f': return fmtF(neg, x, prec);
    default: {
      let eprec = prec;
      if (eprec > x.d.length && x.d.length >= x.dp) eprec = x.d.length;
      if (shortest) eprec = 6;
      const exp = x.dp - 1;
      if (exp < -4 || exp >= eprec) {
        if (prec > x.d.length) prec = x.d.length;
        return fmtE(neg, x, prec - 1, fmt === 'G' ? 'E' : 'e');
      }
      if (prec > x.dp) prec = x.d.length;
      return fmtF(neg, x, Math.max(prec - x.dp, 0));
    }
  }
}

// ---------- fmt ----------

function runeCount(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) n++;
  }
  return n;
}

interface Flags {
  plus: boolean; minus: boolean; sharp: boolean; space: boolean; zero: boolean;
  plusV: boolean; sharpV: boolean;
  wid: number; widPresent: boolean; prec: number; precPresent: boolean;
}

function newFlags(): Flags {
  return {
    plus: false, minus: false, sharp: false, space: false, zero: false, plusV: false, sharpV: false,
    wid: 0, widPresent: false, prec: 0, precPresent: false,
  };
}

class Printer {
  buf = '';
  f: Flags = newFlags();

  private clearFlags(): void {
    this.f = newFlags();
  }

  private padding(n: number): string {
    if (n <= 0) return '';
    return (this.f.zero && !this.f.minus ? '0' : ' ').repeat(n);
  }

  private padString(s: string): void {
    if (!this.f.widPresent || this.f.wid === 0) { this.buf += s; return; }
    const width = this.f.wid - runeCount(s);
    if (!this.f.minus) this.buf += this.padding(width) + s;
    else this.buf += s + this.padding(width);
  }

  private badVerb(verb: string, arg: GoValue): void {
    this.buf += '%!' + verb + '(';
    if (arg === null || arg === undefined) this.buf += '<nil>';
    else {
      this.buf += typeName(arg) + '=';
      this.printArg(arg, 'v');
    }
    this.buf += ')';
  }

  private fmtInteger(v: number, signed: boolean, base: number, verb: string, upper: boolean): void {
    const f = this.f;
    const negative = signed && v < 0;
    let digits = BigInt(Math.abs(v)).toString(base);
    if (upper) digits = digits.toUpperCase();
    let prec = 0;
    if (f.precPresent) {
      prec = f.prec;
      if (prec === 0 && v === 0) {
        const oldZero = f.zero;
        f.zero = false;
        this.buf += this.padding(f.wid);
        f.zero = oldZero;
        return;
      }
    } else if (f.zero && !f.minus && f.widPresent) {
      prec = f.wid;
      if (negative || f.plus || f.space) prec--;
    }
    if (digits.length < prec) digits = '0'.repeat(prec - digits.length) + digits;
    if (f.sharp) {
      if (base === 2) digits = '0b' + digits;
      else if (base === 8) { if (digits[0] !== '0') digits = '0' + digits; }
      else if (base === 16) digits = (upper ? '0X' : '0x') + digits;
    }
    if (verb === 'O') digits = '0o' + digits;
    if (negative) digits = '-' + digits;
    else if (f.plus) digits = '+' + digits;
    else if (f.space) digits = ' ' + digits;
    const oldZero = f.zero;
    f.zero = false;
    this.padString(digits);
    f.zero = oldZero;
  }

  private fmtC(c: number): void {
    const cp = c > 0x10ffff || (c >= 0xd800 && c < 0xe000) || c < 0 ? 0xfffd : c;
    this.padString(String.fromCodePoint(cp));
  }

  private fmtUnicode(u: number): void {
    let prec = 4;
    if (this.f.precPresent && this.f.prec > 4) prec = this.f.prec;
    let s = 'U+' + u.toString(16).toUpperCase().padStart(prec, '0');
    if (this.f.sharp && u <= 0x10ffff && isPrint(u)) s += " '" + String.fromCodePoint(u) + "'";
    const oldZero = this.f.zero;
    this.f.zero = false;
    this.padString(s);
    this.f.zero = oldZero;
  }

  private printInteger(v: number, signed: boolean, verb: string, arg: GoValue): void {
    switch (verb) {
      case 'v':
        if (this.f.sharpV && !signed) {
          const sharp = this.f.sharp;
          this.f.sharp = true;
          this.fmtInteger(v, false, 16, 'v', false);
          this.f.sharp = sharp;
        } else this.fmtInteger(v, signed, 10, verb, false);
        return;
      case 'd': this.fmtInteger(v, signed, 10, verb, false); return;
      case 'b': this.fmtInteger(v, signed, 2, verb, false); return;
      case 'o': case 'O': this.fmtInteger(v, signed, 8, verb, false); return;
      case 'x': this.fmtInteger(v, signed, 16, verb, false); return;
      case 'X': this.fmtInteger(v, signed, 16, verb, true); return;
      case 'c': this.fmtC(v); return;
      case 'q': this.padString(quoteRune(v, this.f.plus)); return;
      case 'U': this.fmtUnicode(v); return;
      default: this.badVerb(verb, arg);
    }
  }

  private fmtFloat(v: number, verb: string, prec: number): void {
    const f = this.f;
    if (f.precPresent) prec = f.prec;
    let num = formatFloat(v, verb, prec);
    if (num[0] !== '-' && num[0] !== '+') num = '+' + num;
    if (f.space && num[0] === '+' && !f.plus) num = ' ' + num.slice(1);
    if (num[1] === 'I' || num[1] === 'N') {
      const oldZero = f.zero;
      f.zero = false;
      if (num[1] === 'N' && !f.space && !f.plus) num = num.slice(1);
      this.padString(num);
      f.zero = oldZero;
      return;
    }
    if (f.sharp && verb !== 'b') {
      let digits = 0;
      if (verb === 'v' || verb === 'g' || verb === 'G' || verb === 'x') digits = prec === -1 ? 6 : prec;
      let tail = '';
      let body = num;
      let eIdx = body.indexOf('e');
      if (eIdx < 0) eIdx = body.indexOf('E');
      if (eIdx >= 0) { tail = body.slice(eIdx); body = body.slice(0, eIdx); }
      let hasPoint = false;
      let sawNonzero = false;
      for (let i = 1; i < body.length; i++) {
        const c = body[i];
        if (c === '.') { hasPoint = true; continue; }
        if (c !== '0') sawNonzero = true;
        if (sawNonzero) digits--;
      }
      if (!hasPoint) {
        if (body.length === 2 && body[1] === '0') digits--;
        body += '.';
      }
      while (digits > 0) { body += '0'; digits--; }
      num = body + tail;
    }
    if (f.plus || num[0] !== '+') {
      if (f.zero && !f.minus && f.widPresent && f.wid > num.length) {
        this.buf += num[0] + '0'.repeat(f.wid - num.length) + num.slice(1);
        return;
      }
      this.padString(num);
      return;
    }
    this.padString(num.slice(1));
  }

  private printFloat(v: number, verb: string, arg: GoValue): void {
    switch (verb) {
      case 'v': this.fmtFloat(v, 'g', -1); return;
      case 'g': case 'G': this.fmtFloat(v, verb, -1); return;
      case 'f': case 'e': case 'E': this.fmtFloat(v, verb, 6); return;
      case 'F': this.fmtFloat(v, 'f', 6); return;
      default: this.badVerb(verb, arg);
    }
  }

  private truncate(s: string): string {
    if (!this.f.precPresent) return s;
    let n = this.f.prec;
    let i = 0;
    for (const ch of s) {
      if (n-- <= 0) return s.slice(0, i);
      i += ch.length;
    }
    return s;
  }

  private fmtSx(s: string, upper: boolean): void {
    const f = this.f;
    let bytes = toBytes(s);
    if (f.precPresent && f.prec < bytes.length) bytes = bytes.subarray(0, f.prec);
    const length = bytes.length;
    if (length === 0) {
      if (f.widPresent) this.buf += this.padding(f.wid);
      return;
    }
    let width = 2 * length;
    if (f.space) { if (f.sharp) width *= 2; width += length - 1; } else if (f.sharp) width += 2;
    const prefix = upper ? '0X' : '0x';
    let out = '';
    if (f.sharp) out += prefix;
    for (let i = 0; i < length; i++) {
      if (f.space && i > 0) { out += ' '; if (f.sharp) out += prefix; }
      const h = hex2(bytes[i]);
      out += upper ? h.toUpperCase() : h;
    }
    if (f.widPresent && f.wid > width && !f.minus) this.buf += this.padding(f.wid - width);
    this.buf += out;
    if (f.widPresent && f.wid > width && f.minus) this.buf += this.padding(f.wid - width);
  }

  private fmtQ(s: string): void {
    s = this.truncate(s);
    if (this.f.sharp && canBackquote(s)) { this.padString('`' + s + '`'); return; }
    this.padString(quoteString(s, this.f.plus));
  }

  private printString(s: string, verb: string, arg: GoValue): void {
    switch (verb) {
      case 'v': if (this.f.sharpV) this.fmtQ(s); else this.padString(this.truncate(s)); return;
      case 's': this.padString(this.truncate(s)); return;
      case 'x': this.fmtSx(s, false); return;
      case 'X': this.fmtSx(s, true); return;
      case 'q': this.fmtQ(s); return;
      default: this.badVerb(verb, arg);
    }
  }

  private printBool(b: boolean, verb: string, arg: GoValue): void {
    if (verb === 't' || verb === 'v') this.padString(b ? 'true' : 'false');
    else this.badVerb(verb, arg);
  }

  /** fmt's printArg: the top-level value of one operand. */
  printArg(arg: GoValue, verb: string): void {
    if (arg === null || arg === undefined) {
      if (verb === 'T' || verb === 'v') this.padString('<nil>');
      else this.badVerb(verb, arg);
      return;
    }
    if (verb === 'T') { this.padString(typeName(arg)); return; }
    if (verb === 'p') { this.badVerb(verb, arg); return; }
    this.printValue(arg, verb, 0);
  }

  private printValue(v: GoValue, verb: string, depth: number): void {
    if (v === undefined || v === null) {
      // A nil element of an interface slice or map.
      if (this.f.sharpV) this.buf += 'interface {}(nil)';
      else this.buf += '<nil>';
      return;
    }
    switch (typeof v) {
      case 'boolean': this.printBool(v, verb, v); return;
      case 'string': this.printString(v, verb, v); return;
      case 'number':
        if (Number.isInteger(v)) this.printInteger(v, true, verb, v);
        else this.printFloat(v, verb, v);
        return;
    }
    if (v instanceof GoNum) {
      if (v.kind === 'float64') this.printFloat(v.value, verb, v);
      else this.printInteger(v.value, v.kind !== 'uint8', verb, v);
      return;
    }
    if (Array.isArray(v)) {
      const s = v as GoSlice;
      if (this.f.sharpV) {
        this.buf += typeName(s);
        if (isNilCollection(s)) { this.buf += '(nil)'; return; }
        this.buf += '{';
        s.forEach((e, i) => { if (i > 0) this.buf += ', '; this.printValue(e ?? null, verb, depth + 1); });
        this.buf += '}';
      } else {
        this.buf += '[';
        s.forEach((e, i) => { if (i > 0) this.buf += ' '; this.printValue(e ?? null, verb, depth + 1); });
        this.buf += ']';
      }
      return;
    }
    const m = v as GoMap;
    if (this.f.sharpV) {
      this.buf += typeName(m);
      if (isNilCollection(m)) { this.buf += '(nil)'; return; }
      this.buf += '{';
    } else this.buf += 'map[';
    mapKeys(m).forEach((k, i) => {
      if (i > 0) this.buf += this.f.sharpV ? ', ' : ' ';
      this.printValue(k, verb, depth + 1);
      this.buf += ':';
      this.printValue(mapGet(m, k) ?? null, verb, depth + 1);
    });
    this.buf += this.f.sharpV ? '}' : ']';
  }

  doPrint(args: readonly GoValue[]): void {
    let prevString = false;
    args.forEach((arg, i) => {
      const isString = typeof arg === 'string';
      if (i > 0 && !isString && !prevString) this.buf += ' ';
      this.printArg(arg, 'v');
      prevString = isString;
    });
  }

  doPrintln(args: readonly GoValue[]): void {
    args.forEach((arg, i) => {
      if (i > 0) this.buf += ' ';
      this.printArg(arg, 'v');
    });
    this.buf += '\n';
  }

  doPrintf(format: string, a: readonly GoValue[]): void {
    const end = format.length;
    let argNum = 0;
    let afterIndex = false;
    let reordered = false;
    let goodArgNum = true;

    const parsenum = (i: number): [number, boolean, number] => {
      let num = 0;
      let isnum = false;
      while (i < end && format.charCodeAt(i) >= 48 && format.charCodeAt(i) <= 57) {
        if (num > 1e6) return [0, false, end];
        num = num * 10 + (format.charCodeAt(i) - 48);
        isnum = true;
        i++;
      }
      return [num, isnum, i];
    };
    const argNumber = (i: number): [number, number, boolean] => {
      if (end <= i || format[i] !== '[') return [argNum, i, false];
      reordered = true;
      // parseArgNumber
      let index = 0;
      let wid = 1;
      let ok = false;
      if (end - i >= 3) {
        for (let j = i + 1; j < end; j++) {
          if (format[j] === ']') {
            const [w, isnum, newi] = parsenum(i + 1);
            if (!isnum || newi !== j) { wid = j - i + 1; ok = false; } else { index = w - 1; wid = j - i + 1; ok = true; }
            break;
          }
        }
      }
      if (ok && index >= 0 && index < a.length) return [index, i + wid, true];
      goodArgNum = false;
      return [argNum, i + wid, ok];
    };
    const intFromArg = (n: number): [number, boolean, number] => {
      if (n >= a.length) return [0, false, n];
      const v = a[n];
      let num = 0;
      let isInt = false;
      if (v !== null && v !== undefined && isNumber(v) && numKind(v) !== 'float64') {
        num = numValue(v);
        isInt = true;
      }
      if (num > 1e6 || num < -1e6) { num = 0; isInt = false; }
      return [num, isInt, n + 1];
    };

    let i = 0;
    while (i < end) {
      goodArgNum = true;
      const lasti = i;
      while (i < end && format[i] !== '%') i++;
      if (i > lasti) this.buf += format.slice(lasti, i);
      if (i >= end) break;
      i++;
      this.clearFlags();
      const f = this.f;
      let simple = false;
      for (; i < end; i++) {
        const c = format[i];
        if (c === '#') f.sharp = true;
        else if (c === '0') f.zero = true;
        else if (c === '+') f.plus = true;
        else if (c === '-') f.minus = true;
        else if (c === ' ') f.space = true;
        else {
          if (c >= 'a' && c <= 'z' && argNum < a.length) {
            if (c === 'v' || c === 'w') {
              f.sharpV = f.sharp; f.sharp = false;
              f.plusV = f.plus; f.plus = false;
            }
            this.printArg(a[argNum], c);
            argNum++;
            i++;
            simple = true;
          }
          break;
        }
      }
      if (simple) continue;

      [argNum, i, afterIndex] = argNumber(i);

      if (i < end && format[i] === '*') {
        i++;
        [f.wid, f.widPresent, argNum] = intFromArg(argNum);
        if (!f.widPresent) this.buf += '%!(BADWIDTH)';
        if (f.wid < 0) { f.wid = -f.wid; f.minus = true; f.zero = false; }
        afterIndex = false;
      } else {
        [f.wid, f.widPresent, i] = parsenum(i);
        if (afterIndex && f.widPresent) goodArgNum = false;
      }

      if (i + 1 < end && format[i] === '.') {
        i++;
        if (afterIndex) goodArgNum = false;
        [argNum, i, afterIndex] = argNumber(i);
        if (i < end && format[i] === '*') {
          i++;
          [f.prec, f.precPresent, argNum] = intFromArg(argNum);
          if (f.prec < 0) { f.prec = 0; f.precPresent = false; }
          if (!f.precPresent) this.buf += '%!(BADPREC)';
          afterIndex = false;
        } else {
          [f.prec, f.precPresent, i] = parsenum(i);
          if (!f.precPresent) { f.prec = 0; f.precPresent = true; }
        }
      }

      if (!afterIndex) [argNum, i, afterIndex] = argNumber(i);

      if (i >= end) { this.buf += '%!(NOVERB)'; break; }

      const verb = String.fromCodePoint(format.codePointAt(i) ?? 0);
      i += verb.length;

      if (verb === '%') this.buf += '%';
      else if (!goodArgNum) this.buf += '%!' + verb + '(BADINDEX)';
      else if (argNum >= a.length) this.buf += '%!' + verb + '(MISSING)';
      else {
        if (verb === 'v' || verb === 'w') {
          f.sharpV = f.sharp; f.sharp = false;
          f.plusV = f.plus; f.plus = false;
        }
        this.printArg(a[argNum], verb);
        argNum++;
      }
    }

    if (!reordered && argNum < a.length) {
      this.clearFlags();
      this.buf += '%!(EXTRA ';
      a.slice(argNum).forEach((arg, k) => {
        if (k > 0) this.buf += ', ';
        if (arg === null || arg === undefined) this.buf += '<nil>';
        else { this.buf += typeName(arg) + '='; this.printArg(arg, 'v'); }
      });
      this.buf += ')';
    }
  }
}

export function sprint(args: readonly GoValue[]): string {
  const p = new Printer();
  p.doPrint(args);
  return p.buf;
}

export function sprintln(args: readonly GoValue[]): string {
  const p = new Printer();
  p.doPrintln(args);
  return p.buf;
}

export function sprintf(format: string, args: readonly GoValue[]): string {
  const p = new Printer();
  p.doPrintf(format, args);
  return p.buf;
}

/** fmt.Sprint of one value, the common path of printing an action's result. */
export function formatValue(v: GoValue): string {
  if (typeof v === 'string') return v;
  const p = new Printer();
  p.printArg(v, 'v');
  return p.buf;
}
