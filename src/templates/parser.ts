// A port of text/template/parse/parse.go: builds one Tree per template name ({{define}} and
// {{block}} add more) from the lexer's items.
import {
  ActionNode, ArgNode, BranchNode, CommandNode, ElseNode, EndNode, ListNode, Node, NumberNode, PipeNode,
  TemplateNode, Tree, VariableNode, isEmptyTree, nodeString,
} from './ast';
import { TemplateError, position } from './errors';
import { quoteString } from './fmt';
import { Item, Lexer, T } from './lexer';

export interface FunctionCheck {
  /** Whether a function of this name exists (builtin or sprig). */
  has(name: string): boolean;
  /** A reason to refuse a known-but-unsupported function, or undefined. */
  unsupported(name: string): string | undefined;
}

class ParseAbort {
  constructor(readonly error: TemplateError) {}
}

const MAX_STACK_DEPTH = 10000;

/** Parses text; returns the trees by name. Throws TemplateError (kind "parse"). */
export function parseTemplates(name: string, text: string, funcs: FunctionCheck): Map<string, Tree> {
  const treeSet = new Map<string, Tree>();
  const lexer = new Lexer(text);
  lexer.breakOK = !funcs.has('break');
  lexer.continueOK = !funcs.has('continue');
  const p = new Parser(name, name, text, lexer, treeSet, funcs);
  try {
    p.parse();
    p.add();
  } catch (e) {
    if (e instanceof ParseAbort) throw e.error;
    throw e;
  }
  return treeSet;
}

class Parser {
  private token: Item[] = [];
  private peekCount = 0;
  private vars: string[] = ['$'];
  private actionLine = 0;
  private rangeDepth = 0;
  private stackDepth = 0;
  root: ListNode = { type: 'list', pos: 0, nodes: [] };

  constructor(
    public treeName: string,
    private readonly parseName: string,
    private readonly text: string,
    private readonly lex: Lexer,
    private readonly treeSet: Map<string, Tree>,
    private readonly funcs: FunctionCheck,
  ) {
    this.token = [eofItem(), eofItem(), eofItem()];
  }

  // ---- token stream ----

  private next(): Item {
    if (this.peekCount > 0) this.peekCount--;
    else this.token[0] = this.lex.nextItem();
    return this.token[this.peekCount];
  }

  private backup(): void {
    this.peekCount++;
  }

  private backup2(t1: Item): void {
    this.token[1] = t1;
    this.peekCount = 2;
  }

  private backup3(t2: Item, t1: Item): void {
    this.token[1] = t1;
    this.token[2] = t2;
    this.peekCount = 3;
  }

  private peek(): Item {
    if (this.peekCount > 0) return this.token[this.peekCount - 1];
    this.peekCount = 1;
    this.token[0] = this.lex.nextItem();
    return this.token[0];
  }

  private nextNonSpace(): Item {
    let token: Item;
    do token = this.next(); while (token.typ === T.Space);
    return token;
  }

  private peekNonSpace(): Item {
    const token = this.nextNonSpace();
    this.backup();
    return token;
  }

  // ---- errors ----

  errorf(msg: string): never {
    const tok = this.token[0];
    const { column } = position(this.text, Math.min(tok.pos, this.text.length));
    throw new ParseAbort(new TemplateError('parse', this.parseName, tok.line, column, msg));
  }

  private expect(expected: T, context: string): Item {
    const token = this.nextNonSpace();
    if (token.typ !== expected) this.unexpected(token, context);
    return token;
  }

  private expectOneOf(e1: T, e2: T, context: string): Item {
    const token = this.nextNonSpace();
    if (token.typ !== e1 && token.typ !== e2) this.unexpected(token, context);
    return token;
  }

  private unexpected(token: Item, context: string): never {
    if (token.typ === T.Error) {
      let extra = '';
      if (this.actionLine !== 0 && this.actionLine !== token.line) {
        extra = ` in action started at ${this.parseName}:${this.actionLine}`;
        if (token.val.endsWith(' action')) extra = extra.slice(' in action'.length);
      }
      this.errorf(`${token.val}${extra}`);
    }
    this.errorf(`unexpected ${itemString(token)} in ${context}`);
  }

  // ---- trees ----

  add(): void {
    const tree = this.treeSet.get(this.treeName);
    if (tree === undefined || isEmptyTree(tree.root)) {
      this.treeSet.set(this.treeName, { name: this.treeName, root: this.root });
      return;
    }
    if (!isEmptyTree(this.root)) this.errorf(`template: multiple definition of template ${quoteString(this.treeName)}`);
  }

  private child(name: string): Parser {
    return new Parser(name, this.parseName, this.text, this.lex, this.treeSet, this.funcs);
  }

  parse(): void {
    this.root = { type: 'list', pos: this.peek().pos, nodes: [] };
    while (this.peek().typ !== T.EOF) {
      if (this.peek().typ === T.LeftDelim) {
        const delim = this.next();
        if (this.nextNonSpace().typ === T.Define) {
          const def = this.child('definition');
          def.parseDefinition();
          continue;
        }
        this.backup2(delim);
      }
      const n = this.textOrAction();
      if (n.type === 'end' || n.type === 'else') this.errorf(`unexpected ${nodeString(n)}`);
      this.root.nodes.push(n);
    }
  }

  private parseDefinition(): void {
    const context = 'define clause';
    const name = this.expectOneOf(T.String, T.RawString, context);
    const unq = unquote(name.val);
    if (unq === undefined) this.errorf('invalid syntax');
    this.treeName = unq;
    this.expect(T.RightDelim, context);
    const [list, end] = this.itemList();
    if (end.type !== 'end') this.errorf(`unexpected ${nodeString(end)} in ${context}`);
    this.root = list;
    this.add();
  }

  private itemList(): [ListNode, Node] {
    const list: ListNode = { type: 'list', pos: this.peekNonSpace().pos, nodes: [] };
    while (this.peekNonSpace().typ !== T.EOF) {
      const n = this.textOrAction();
      if (n.type === 'end' || n.type === 'else') return [list, n];
      list.nodes.push(n);
    }
    this.errorf('unexpected EOF');
  }

  private textOrAction(): Node {
    const token = this.nextNonSpace();
    switch (token.typ) {
      case T.Text: return { type: 'text', pos: token.pos, text: token.val };
      case T.LeftDelim: {
        this.actionLine = token.line;
        try {
          return this.action();
        } finally {
          this.actionLine = 0;
        }
      }
      default: this.unexpected(token, 'input');
    }
  }

  private action(): Node {
    const token = this.nextNonSpace();
    switch (token.typ) {
      case T.Block: return this.blockControl();
      case T.Break: return this.breakControl(token.pos);
      case T.Continue: return this.continueControl(token.pos);
      case T.Else: return this.elseControl();
      case T.End: return this.endControl();
      case T.If: return this.branch('if');
      case T.Range: return this.branch('range');
      case T.Template: return this.templateControl();
      case T.With: return this.branch('with');
    }
    this.backup();
    const tok = this.peek();
    const action: ActionNode = { type: 'action', pos: tok.pos, pipe: this.pipeline('command', T.RightDelim) };
    return action;
  }

  private breakControl(pos: number): Node {
    const token = this.nextNonSpace();
    if (token.typ !== T.RightDelim) this.unexpected(token, '{{break}}');
    if (this.rangeDepth === 0) this.errorf('{{break}} outside {{range}}');
    return { type: 'break', pos };
  }

  private continueControl(pos: number): Node {
    const token = this.nextNonSpace();
    if (token.typ !== T.RightDelim) this.unexpected(token, '{{continue}}');
    if (this.rangeDepth === 0) this.errorf('{{continue}} outside {{range}}');
    return { type: 'continue', pos };
  }

  private pipeline(context: string, end: T): PipeNode {
    const token = this.peekNonSpace();
    const pipe: PipeNode = { type: 'pipe', pos: token.pos, isAssign: false, decl: [], cmds: [] };
    decls: for (;;) {
      const v = this.peekNonSpace();
      if (v.typ !== T.Variable) break;
      this.next();
      const tokenAfterVariable = this.peek();
      const next = this.peekNonSpace();
      if (next.typ === T.Assign || next.typ === T.Declare) {
        pipe.isAssign = next.typ === T.Assign;
        this.nextNonSpace();
        pipe.decl.push(newVariable(v.pos, v.val));
        this.vars.push(v.val);
      } else if (next.typ === T.Char && next.val === ',') {
        this.nextNonSpace();
        pipe.decl.push(newVariable(v.pos, v.val));
        this.vars.push(v.val);
        if (context === 'range' && pipe.decl.length < 2) {
          const t = this.peekNonSpace().typ;
          if (t === T.Variable || t === T.RightDelim || t === T.RightParen) continue decls;
          this.errorf('range can only initialize variables');
        }
        this.errorf(`too many declarations in ${context}`);
      } else if (tokenAfterVariable.typ === T.Space) {
        this.backup3(v, tokenAfterVariable);
      } else {
        this.backup2(v);
      }
      break;
    }
    for (;;) {
      const token = this.nextNonSpace();
      switch (token.typ) {
        case end:
          this.checkPipeline(pipe, context);
          return pipe;
        case T.Bool: case T.CharConstant: case T.Complex: case T.Dot: case T.Field: case T.Identifier:
        case T.Number: case T.Nil: case T.RawString: case T.String: case T.Variable: case T.LeftParen:
          this.backup();
          pipe.cmds.push(this.command());
          break;
        default:
          this.unexpected(token, context);
      }
    }
  }

  private checkPipeline(pipe: PipeNode, context: string): void {
    if (pipe.cmds.length === 0) this.errorf(`missing value for ${context}`);
    pipe.cmds.slice(1).forEach((c, i) => {
      switch (c.args[0].type) {
        case 'bool': case 'dot': case 'nil': case 'number': case 'string':
          this.errorf(`non executable command in pipeline stage ${i + 2}`);
      }
    });
  }

  private parseControl(context: 'if' | 'range' | 'with'): [PipeNode, ListNode, ListNode | null] {
    const mark = this.vars.length;
    try {
      const pipe = this.pipeline(context, T.RightDelim);
      if (context === 'range') this.rangeDepth++;
      const [list, first] = this.itemList();
      let next = first;
      if (context === 'range') this.rangeDepth--;
      let elseList: ListNode | null = null;
      if (next.type === 'else') {
        if (context === 'if' && this.peek().typ === T.If) {
          this.next();
          elseList = { type: 'list', pos: next.pos, nodes: [this.branch('if')] };
        } else if (context === 'with' && this.peek().typ === T.With) {
          this.next();
          elseList = { type: 'list', pos: next.pos, nodes: [this.branch('with')] };
        } else {
          [elseList, next] = this.itemList();
          if (next.type !== 'end') this.errorf(`expected end; found ${nodeString(next)}`);
        }
      }
      return [pipe, list, elseList];
    } finally {
      this.vars.length = mark;
    }
  }

  private branch(context: 'if' | 'range' | 'with'): BranchNode {
    const [pipe, list, elseList] = this.parseControl(context);
    return { type: context, pos: pipe.pos, pipe, list, elseList };
  }

  private endControl(): EndNode {
    return { type: 'end', pos: this.expect(T.RightDelim, 'end').pos };
  }

  private elseControl(): ElseNode {
    const peek = this.peekNonSpace();
    if (peek.typ === T.If || peek.typ === T.With) return { type: 'else', pos: peek.pos };
    const token = this.expect(T.RightDelim, 'else');
    return { type: 'else', pos: token.pos };
  }

  private blockControl(): TemplateNode {
    const context = 'block clause';
    const token = this.nextNonSpace();
    const name = this.parseTemplateName(token, context);
    const pipe = this.pipeline(context, T.RightDelim);
    const block = this.child(name);
    const [list, end] = block.itemList();
    if (end.type !== 'end') this.errorf(`unexpected ${nodeString(end)} in ${context}`);
    block.root = list;
    block.add();
    return { type: 'template', pos: token.pos, name, pipe };
  }

  private templateControl(): TemplateNode {
    const context = 'template clause';
    const token = this.nextNonSpace();
    const name = this.parseTemplateName(token, context);
    let pipe: PipeNode | null = null;
    if (this.nextNonSpace().typ !== T.RightDelim) {
      this.backup();
      pipe = this.pipeline(context, T.RightDelim);
    }
    return { type: 'template', pos: token.pos, name, pipe };
  }

  private parseTemplateName(token: Item, context: string): string {
    if (token.typ === T.String || token.typ === T.RawString) {
      const s = unquote(token.val);
      if (s === undefined) this.errorf('invalid syntax');
      return s;
    }
    this.unexpected(token, context);
  }

  private command(): CommandNode {
    const cmd: CommandNode = { type: 'command', pos: this.peekNonSpace().pos, args: [] };
    for (;;) {
      this.peekNonSpace();
      const operand = this.operand();
      if (operand !== null) cmd.args.push(operand);
      const token = this.next();
      if (token.typ === T.Space) continue;
      if (token.typ === T.RightDelim || token.typ === T.RightParen) this.backup();
      else if (token.typ !== T.Pipe) this.unexpected(token, 'operand');
      break;
    }
    if (cmd.args.length === 0) this.errorf('empty command');
    return cmd;
  }

  private operand(): ArgNode | null {
    const node = this.term();
    if (node === null) return null;
    if (this.peek().typ === T.Field) {
      const pos = this.peek().pos;
      const fields: string[] = [];
      while (this.peek().typ === T.Field) fields.push(this.next().val.slice(1));
      switch (node.type) {
        case 'field': return { type: 'field', pos, ident: [...node.ident, ...fields] };
        case 'variable': return { type: 'variable', pos, ident: [...node.ident, ...fields] };
        case 'bool': case 'string': case 'number': case 'nil': case 'dot':
          this.errorf(`unexpected . after term ${quoteString(nodeString(node))}`);
      }
      return { type: 'chain', pos, node, field: fields };
    }
    return node;
  }

  private term(): ArgNode | null {
    const token = this.nextNonSpace();
    switch (token.typ) {
      case T.Identifier: {
        if (!this.funcs.has(token.val)) this.errorf(`function ${quoteString(token.val)} not defined`);
        const why = this.funcs.unsupported(token.val);
        if (why !== undefined) this.errorf(why);
        return { type: 'identifier', pos: token.pos, ident: token.val };
      }
      case T.Dot: return { type: 'dot', pos: token.pos };
      case T.Nil: return { type: 'nil', pos: token.pos };
      case T.Variable: return this.useVar(token.pos, token.val);
      case T.Field: return { type: 'field', pos: token.pos, ident: token.val.slice(1).split('.') };
      case T.Bool: return { type: 'bool', pos: token.pos, val: token.val === 'true' };
      case T.CharConstant: case T.Complex: case T.Number: return this.newNumber(token);
      case T.LeftParen: {
        if (this.stackDepth >= MAX_STACK_DEPTH) this.errorf('max expression depth exceeded');
        this.stackDepth++;
        try {
          return this.pipeline('parenthesized pipeline', T.RightParen);
        } finally {
          this.stackDepth--;
        }
      }
      case T.String: case T.RawString: {
        const s = unquote(token.val);
        if (s === undefined) this.errorf('invalid syntax');
        return { type: 'string', pos: token.pos, quoted: token.val, text: s };
      }
    }
    this.backup();
    return null;
  }

  private useVar(pos: number, name: string): VariableNode {
    const v = newVariable(pos, name);
    if (this.vars.includes(v.ident[0])) return v;
    this.errorf(`undefined variable ${quoteString(v.ident[0])}`);
  }

  private newNumber(token: Item): NumberNode {
    const text = token.val;
    const isHexInt = text.length > 2 && text[0] === '0' && (text[1] === 'x' || text[1] === 'X') && !/[pP]/.test(text);
    const floatSyntax = !isHexInt && token.typ !== T.CharConstant && /[.eEpP]/.test(text);
    const base = { type: 'number' as const, pos: token.pos, text, floatSyntax };
    if (token.typ === T.CharConstant) {
      const r = unquoteChar(text);
      if (r === undefined) this.errorf('invalid syntax');
      return { ...base, isInt: true, isUint: true, isFloat: true, int: r, float: r };
    }
    if (token.typ === T.Complex || text.endsWith('i')) this.errorf(`complex numbers are not supported: ${text}`);
    const i = parseGoInt(text);
    if (i !== undefined) {
      return { ...base, isInt: true, isUint: i >= 0, isFloat: true, int: i, float: i };
    }
    const f = parseGoFloat(text);
    if (f !== undefined) {
      if (!/[.eEpP]/.test(text)) this.errorf(`integer overflow: ${quoteString(text)}`);
      const isInt = Number.isInteger(f) && Math.abs(f) < 2 ** 63;
      return { ...base, isInt, isUint: isInt && f >= 0, isFloat: true, int: isInt ? f : 0, float: f };
    }
    this.errorf(`illegal number syntax: ${quoteString(text)}`);
  }
}

function eofItem(): Item {
  return { typ: T.EOF, pos: 0, val: 'EOF', line: 1 };
}

function newVariable(pos: number, ident: string): VariableNode {
  return { type: 'variable', pos, ident: ident.split('.') };
}

/** Go's item.String() as used in "unexpected X in Y". */
function itemString(i: Item): string {
  if (i.typ === T.EOF) return 'EOF';
  if (i.typ === T.Error) return i.val;
  if (i.typ > T.Keyword) return `<${i.val}>`;
  const runes = [...i.val];
  if (runes.length > 10) return quoteString(runes.slice(0, 10).join('')) + '...';
  return quoteString(i.val);
}

// ---- literals (strconv.Unquote, ParseInt(s, 0, 64), ParseFloat) ----

const DEC_INT = /^[+-]?(?:0|[1-9](?:_?[0-9])*)$/;
const HEX_INT = /^[+-]?0[xX](?:_?[0-9a-fA-F])+$/;
const OCT_INT = /^[+-]?0[oO]?(?:_?[0-7])+$/;
const BIN_INT = /^[+-]?0[bB](?:_?[01])+$/;
const DEC_FLOAT = /^[+-]?(?:(?:[0-9](?:_?[0-9])*)?\.?(?:[0-9](?:_?[0-9])*)?)(?:[eE][+-]?[0-9](?:_?[0-9])*)?$/;
const HEX_FLOAT = /^([+-]?)0[xX]((?:_?[0-9a-fA-F])*)\.?((?:[0-9a-fA-F]_?)*)[pP]([+-]?[0-9](?:_?[0-9])*)$/;

const UNDERSCORES = /_/g;

/** strconv.ParseInt(text, 0, 64); undefined when not an int64 literal. Also used when rendering (sprig's casts). */
export function parseGoInt(text: string): number | undefined {
  let radix: number;
  if (DEC_INT.test(text)) radix = 10;
  else if (HEX_INT.test(text)) radix = 16;
  else if (BIN_INT.test(text)) radix = 2;
  else if (OCT_INT.test(text)) radix = 8;
  else return undefined;
  let digits = text.replace(UNDERSCORES, '');
  const neg = digits[0] === '-';
  if (neg || digits[0] === '+') digits = digits.slice(1);
  if (radix === 16 || radix === 2 || (radix === 8 && (digits[1] === 'o' || digits[1] === 'O'))) digits = digits.slice(2);
  else if (radix === 8) digits = digits.slice(1);
  let big = 0n;
  const r = BigInt(radix);
  for (const ch of digits) big = big * r + BigInt(parseInt(ch, radix));
  if (neg) big = -big;
  if (big > 2n ** 63n - 1n || big < -(2n ** 63n)) return undefined;
  return Number(big);
}

function parseGoFloat(text: string): number | undefined {
  if (text === '' || text === '.' || text === '+' || text === '-') return undefined;
  if (DEC_FLOAT.test(text) && /[0-9]/.test(text)) {
    const v = Number(text.replace(UNDERSCORES, ''));
    return Number.isNaN(v) ? undefined : v;
  }
  const m = HEX_FLOAT.exec(text);
  if (m) {
    const intPart = m[2].replace(UNDERSCORES, '');
    const frac = m[3].replace(UNDERSCORES, '');
    if (intPart === '' && frac === '') return undefined;
    let v = parseInt(intPart || '0', 16);
    for (let i = 0; i < frac.length; i++) v += parseInt(frac[i], 16) / 16 ** (i + 1);
    v *= 2 ** Number(m[4].replace(UNDERSCORES, ''));
    return m[1] === '-' ? -v : v;
  }
  return undefined;
}

const SIMPLE_ESCAPES: Readonly<Record<string, number>> = {
  a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 0x5c, "'": 0x27, '"': 0x22,
};

/**
 * Decodes one (possibly escaped) character at s[i]; returns [bytes or code point, next index].
 * \x and octal escapes are bytes, the others code points.
 */
function unquoteOne(s: string, i: number, quote: string): { cp?: number; byte?: number; next: number } | undefined {
  const c = s[i];
  if (c === quote && quote !== '`') return undefined;
  if (c !== '\\') {
    const cp = s.codePointAt(i) ?? 0;
    return { cp, next: i + (cp > 0xffff ? 2 : 1) };
  }
  const e = s[i + 1];
  if (e === undefined) return undefined;
  if (e in SIMPLE_ESCAPES) {
    if ((e === "'" && quote !== "'") || (e === '"' && quote !== '"')) return undefined;
    return { cp: SIMPLE_ESCAPES[e], next: i + 2 };
  }
  const hexN = (n: number): number | undefined => {
    const h = s.slice(i + 2, i + 2 + n);
    return h.length === n && /^[0-9a-fA-F]+$/.test(h) ? parseInt(h, 16) : undefined;
  };
  switch (e) {
    case 'x': { const v = hexN(2); return v === undefined ? undefined : { byte: v, next: i + 4 }; }
    case 'u': {
      const v = hexN(4);
      return v === undefined || (v >= 0xd800 && v < 0xe000) ? undefined : { cp: v, next: i + 6 };
    }
    case 'U': {
      const v = hexN(8);
      return v === undefined || v > 0x10ffff || (v >= 0xd800 && v < 0xe000) ? undefined : { cp: v, next: i + 10 };
    }
  }
  if (e >= '0' && e <= '7') {
    const o = s.slice(i + 1, i + 4);
    if (!/^[0-7]{3}$/.test(o)) return undefined;
    const v = parseInt(o, 8);
    return v > 255 ? undefined : { byte: v, next: i + 4 };
  }
  return undefined;
}

/** strconv.Unquote for "..." and `...` literals; undefined on bad syntax. */
export function unquote(lit: string): string | undefined {
  if (lit.length < 2) return undefined;
  const q = lit[0];
  if (q !== lit[lit.length - 1]) return undefined;
  const body = lit.slice(1, -1);
  if (q === '`') return body.includes('`') ? undefined : body.replace(/\r/g, '');
  if (q !== '"') return undefined;
  if (!body.includes('\\')) return body.includes('"') || body.includes('\n') ? undefined : body;
  const bytes: number[] = [];
  for (let i = 0; i < body.length;) {
    if (body[i] === '\n') return undefined;
    const r = unquoteOne(body, i, '"');
    if (r === undefined) return undefined;
    if (r.byte !== undefined) bytes.push(r.byte);
    else for (const b of Buffer.from(String.fromCodePoint(r.cp ?? 0), 'utf8')) bytes.push(b);
    i = r.next;
  }
  return Buffer.from(bytes).toString('utf8');
}

function unquoteChar(lit: string): number | undefined {
  if (lit.length < 3 || lit[0] !== "'" || lit[lit.length - 1] !== "'") return undefined;
  const r = unquoteOne(lit, 1, "'");
  if (r === undefined || r.next !== lit.length - 1) return undefined;
  return r.byte ?? r.cp;
}
