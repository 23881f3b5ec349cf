// A port of text/template/exec.go over the value model in values.ts. One Executor per render;
// the trees are shared and never mutated.
import {
  ActionNode, ArgNode, BranchNode, ChainNode, CommandNode, FieldNode, IdentifierNode, Node, NumberNode,
  PipeNode, TemplateNode, Tree, VariableNode, nodeString,
} from './ast';
import { TemplateError, position } from './errors';
import { formatValue, quoteString } from './fmt';
import { FuncError, FuncMap, GoFunc, PARAM_TYPE_NAMES, ParamType } from './funcs';
import {
  GoNum, GoValue, NIL_MAP, elemType, f64, goInt, isFloat, isMap, isNumber, isSlice, isTrue, mapGet, mapKeys,
  numKind, sliceAt, typeName,
} from './values';

/** The pipeline's "no final argument" marker (Go's missingVal). */
const MISSING: unique symbol = Symbol('missing');
type Final = GoValue | typeof MISSING;

/** Dot and variables remember whether they were read out of an interface{} slot: Go names the type "interface {}" then. */
interface Slot { readonly v: GoValue; readonly boxed: boolean }

interface Variable { readonly name: string; value: Slot }

class ExecAbort {
  constructor(readonly error: TemplateError) {}
}
const BREAK = { loop: 'break' };
const CONTINUE = { loop: 'continue' };

/** Go stops runaway {{template}} recursion at 100000; JS stacks are shallower. */
const MAX_EXEC_DEPTH = 1000;

export interface TemplateSet {
  readonly parseName: string;
  readonly text: string;
  readonly trees: ReadonlyMap<string, Tree>;
  readonly funcs: FuncMap;
  readonly builtins: FuncMap;
}

export function execute(set: TemplateSet, tree: Tree, data: GoValue): string {
  const ex = new Executor(set, tree.name);
  const dot: Slot = { v: data === null ? undefined : data, boxed: false };
  ex.vars.push({ name: '$', value: dot });
  try {
    ex.walk(dot, tree.root);
  } catch (e) {
    if (e instanceof ExecAbort) throw e.error;
    // The parser rejects break/continue outside range; a bug, a stack overflow or an oversized
    // output must still surface as a template error, never a raw JS error.
    if (e === BREAK || e === CONTINUE) throw ex.fail('{{break}} or {{continue}} outside {{range}}').error;
    const stack = e instanceof RangeError && /call stack/i.test(e.message);
    throw ex.fail(stack ? 'exceeded maximum template depth' : `internal error: ${String(e)}`).error;
  }
  return ex.out;
}

class Executor {
  out = '';
  vars: Variable[] = [];
  private node: Node | null = null;
  private depth = 0;

  constructor(private readonly set: TemplateSet, private tmplName: string) {}

  // ---- errors ----

  private at(node: Node): void {
    this.node = node;
  }

  fail(msg: string): ExecAbort {
    const node = this.node;
    if (node === null) {
      return new ExecAbort(new TemplateError('exec', this.set.parseName, 0, 0, msg));
    }
    const { line, column } = position(this.set.text, node.pos);
    const detail = `executing ${quoteString(this.tmplName)} at <${nodeString(node)}>: ${msg}`;
    return new ExecAbort(new TemplateError('exec', this.set.parseName, line, column, detail));
  }

  private errorf(msg: string): never {
    throw this.fail(msg);
  }

  // ---- variables ----

  private mark(): number {
    return this.vars.length;
  }

  private pop(mark: number): void {
    this.vars.length = mark;
  }

  private setVar(name: string, value: Slot): void {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i].name === name) { this.vars[i].value = value; return; }
    }
    this.errorf(`undefined variable: ${name}`);
  }

  private setTopVar(n: number, value: Slot): void {
    this.vars[this.vars.length - n].value = value;
  }

  private varValue(name: string): Slot {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i].name === name) return this.vars[i].value;
    }
    this.errorf(`undefined variable: ${name}`);
  }

  // ---- walking ----

  walk(dot: Slot, node: Node): void {
    this.at(node);
    switch (node.type) {
      case 'action': {
        const val = this.evalPipeline(dot, node.pipe);
        if (node.pipe.decl.length === 0) this.printValue(node, val);
        return;
      }
      case 'break': throw BREAK;
      case 'continue': throw CONTINUE;
      case 'if': case 'with': this.walkIfOrWith(dot, node); return;
      case 'list': for (const n of node.nodes) this.walk(dot, n); return;
      case 'range': this.walkRange(dot, node); return;
      case 'template': this.walkTemplate(dot, node); return;
      case 'text': this.out += node.text; return;
      default: this.errorf(`unknown node: ${nodeString(node)}`);
    }
  }

  private walkIfOrWith(dot: Slot, node: BranchNode): void {
    const mark = this.mark();
    try {
      const val = this.evalPipeline(dot, node.pipe);
      if (isTrue(val)) {
        this.walk(node.type === 'with' ? { v: val, boxed: false } : dot, node.list);
      } else if (node.elseList) {
        this.walk(dot, node.elseList);
      }
    } finally {
      this.pop(mark);
    }
  }

  private walkRange(dot: Slot, r: BranchNode): void {
    this.at(r);
    const outer = this.mark();
    try {
      const val = this.evalPipeline(dot, r.pipe);
      const mark = this.mark();
      const decl = r.pipe.decl;
      const oneIteration = (index: Slot, elem: Slot): boolean => {
        if (decl.length > 0) {
          if (r.pipe.isAssign) this.setVar(decl[0].ident[0], decl.length > 1 ? index : elem);
          else this.setTopVar(1, elem);
        }
        if (decl.length > 1) {
          if (r.pipe.isAssign) this.setVar(decl[1].ident[0], elem);
          else this.setTopVar(2, index);
        }
        try {
          this.walk(elem, r.list);
        } catch (e) {
          if (e === BREAK) return false;
          if (e !== CONTINUE) throw e;
        } finally {
          this.pop(mark);
        }
        return true;
      };
      let ran = false;
      if (isSlice(val)) {
        const boxed = elemType(val) === 'interface {}';
        for (let i = 0; i < val.length; i++) {
          ran = true;
          if (!oneIteration({ v: goInt(i), boxed: false }, { v: sliceAt(val, i), boxed })) break;
        }
      } else if (isMap(val)) {
        const boxed = elemType(val) === 'interface {}';
        for (const k of mapKeys(val)) {
          ran = true;
          if (!oneIteration({ v: k, boxed: false }, { v: mapGet(val, k), boxed })) break;
        }
      } else if (isNumber(val) && !isFloat(val)) {
        if (decl.length > 1) this.errorf(`can't use ${formatValue(val)} to iterate over more than one variable`);
        const n = typeof val === 'number' ? val : val.value;
        const kind = numKind(val);
        for (let i = 0; i < n; i++) {
          ran = true;
          const v: GoValue = kind === 'int64' ? i : new GoNum(kind, i);
          if (!oneIteration({ v: undefined, boxed: false }, { v, boxed: false })) break;
        }
      } else if (val !== undefined) {
        this.errorf(`range can't iterate over ${formatValue(val)}`);
      }
      if (!ran && r.elseList) this.walk(dot, r.elseList);
    } finally {
      this.pop(outer);
    }
  }

  private walkTemplate(dot: Slot, t: TemplateNode): void {
    this.at(t);
    const tree = this.set.trees.get(t.name);
    if (tree === undefined) this.errorf(`template ${quoteString(t.name)} not defined`);
    if (this.depth >= MAX_EXEC_DEPTH) this.errorf(`exceeded maximum template depth (${MAX_EXEC_DEPTH})`);
    const newDot: Slot = { v: t.pipe ? this.evalPipeline(dot, t.pipe) : undefined, boxed: false };
    const saved = { vars: this.vars, name: this.tmplName };
    this.depth++;
    this.vars = [{ name: '$', value: newDot }];
    this.tmplName = t.name;
    try {
      this.walk(newDot, tree.root);
    } finally {
      this.depth--;
      this.vars = saved.vars;
      this.tmplName = saved.name;
    }
  }

  // ---- evaluation ----

  private evalPipeline(dot: Slot, pipe: PipeNode): GoValue {
    this.at(pipe);
    let value: Final = MISSING;
    for (const cmd of pipe.cmds) {
      value = this.evalCommand(dot, cmd, value);
      // A nil interface{} result is no value at all.
      if (value === null) value = undefined;
    }
    const v = value === MISSING ? undefined : value;
    for (const variable of pipe.decl) {
      if (pipe.isAssign) this.setVar(variable.ident[0], { v, boxed: false });
      else this.vars.push({ name: variable.ident[0], value: { v, boxed: false } });
    }
    return v;
  }

  private notAFunction(args: readonly ArgNode[], final: Final): void {
    if (args.length > 1 || final !== MISSING) this.errorf(`can't give argument to non-function ${nodeString(args[0])}`);
  }

  private evalCommand(dot: Slot, cmd: CommandNode, final: Final): GoValue {
    const first = cmd.args[0];
    switch (first.type) {
      case 'field': return this.evalFieldNode(dot, first, cmd.args, final);
      case 'chain': return this.evalChainNode(dot, first, cmd.args, final);
      case 'identifier': return this.evalFunction(dot, first, cmd, cmd.args, final);
      case 'pipe':
        this.notAFunction(cmd.args, final);
        return this.evalPipeline(dot, first);
      case 'variable': return this.evalVariableNode(dot, first, cmd.args, final);
    }
    this.at(first);
    this.notAFunction(cmd.args, final);
    switch (first.type) {
      case 'bool': return first.val;
      case 'dot': return dot.v;
      case 'nil': this.errorf('nil is not a command');
      // eslint-disable-next-line no-fallthrough
      case 'number': return this.idealConstant(first);
      case 'string': return first.text;
    }
  }

  private idealConstant(c: NumberNode): GoValue {
    this.at(c);
    if (c.floatSyntax) return f64(c.float);
    if (c.isInt) return goInt(c.int);
    this.errorf(`${c.text} overflows int`);
  }

  private evalFieldNode(dot: Slot, field: FieldNode, args: readonly ArgNode[], final: Final): GoValue {
    this.at(field);
    return this.evalFieldChain(dot, dot, field, field.ident, args, final);
  }

  private evalChainNode(dot: Slot, chain: ChainNode, args: readonly ArgNode[], final: Final): GoValue {
    this.at(chain);
    if (chain.node.type === 'nil') this.errorf(`indirection through explicit nil in ${nodeString(chain)}`);
    const pipe = this.evalArg(dot, null, chain.node);
    return this.evalFieldChain(dot, { v: pipe, boxed: false }, chain, chain.field, args, final);
  }

  private evalVariableNode(dot: Slot, variable: VariableNode, args: readonly ArgNode[], final: Final): GoValue {
    this.at(variable);
    const value = this.varValue(variable.ident[0]);
    if (variable.ident.length === 1) {
      this.notAFunction(args, final);
      return value.v;
    }
    return this.evalFieldChain(dot, value, variable, variable.ident.slice(1), args, final);
  }

  private evalFieldChain(
    dot: Slot, receiver: Slot, node: Node, ident: readonly string[], args: readonly ArgNode[], final: Final,
  ): GoValue {
    const n = ident.length;
    for (let i = 0; i < n - 1; i++) receiver = this.evalField(ident[i], node, [], MISSING, receiver);
    return this.evalField(ident[n - 1], node, args, final, receiver).v;
  }

  private evalField(fieldName: string, _node: Node, args: readonly ArgNode[], final: Final, receiver: Slot): Slot {
    const r = receiver.v;
    if (r === undefined) return { v: undefined, boxed: false };
    const typ = receiver.boxed ? 'interface {}' : typeName(r);
    if (r === null) this.errorf(`nil pointer evaluating ${typ}.${fieldName}`);
    const hasArgs = args.length > 1 || final !== MISSING;
    if (isMap(r)) {
      if (hasArgs) this.errorf(`${fieldName} is not a method but has arguments`);
      return { v: mapGet(r, fieldName), boxed: elemType(r) === 'interface {}' };
    }
    this.errorf(`can't evaluate field ${fieldName} in type ${typ}`);
  }

  private evalFunction(dot: Slot, node: IdentifierNode, cmd: Node, args: readonly ArgNode[] | null, final: Final): GoValue {
    this.at(node);
    const name = node.ident;
    let fn = this.set.funcs.get(name);
    let isBuiltin = false;
    if (fn === undefined) {
      fn = this.set.builtins.get(name);
      isBuiltin = true;
    }
    if (fn === undefined) this.errorf(`${quoteString(name)} is not a defined function`);
    return this.evalCall(dot, fn, isBuiltin, cmd, name, args, final);
  }

  private evalCall(
    dot: Slot, fn: GoFunc, isBuiltin: boolean, node: Node, name: string, allArgs: readonly ArgNode[] | null, final: Final,
  ): GoValue {
    const args = allArgs === null ? [] : allArgs.slice(1);
    const numIn = args.length + (final !== MISSING ? 1 : 0);
    let numFixed = args.length;
    if (fn.variadic !== undefined) {
      numFixed = fn.params.length;
      if (numIn < numFixed) this.errorf(`wrong number of args for ${name}: want at least ${fn.params.length} got ${args.length}`);
    } else if (numIn !== fn.params.length) {
      this.errorf(`wrong number of args for ${name}: want ${fn.params.length} got ${numIn}`);
    }

    if (isBuiltin && (name === 'and' || name === 'or')) {
      let v: GoValue = undefined;
      for (const arg of args) {
        v = this.evalArg(dot, 'value', arg);
        if (isTrue(v === null ? undefined : v) === (name === 'or')) return v;
      }
      if (final !== MISSING) v = this.validateType(final, 'value');
      return v;
    }

    const argv: GoValue[] = [];
    let i = 0;
    for (; i < numFixed && i < args.length; i++) argv.push(this.evalArg(dot, fn.params[i], args[i]));
    if (fn.variadic !== undefined) {
      for (; i < args.length; i++) argv.push(this.evalArg(dot, fn.variadic, args[i]));
    }
    if (final !== MISSING) {
      let t: ParamType;
      if (fn.variadic !== undefined) t = numIn - 1 < numFixed ? fn.params[numIn - 1] : fn.variadic;
      else t = fn.params[fn.params.length - 1];
      argv.push(this.validateType(final, t));
    }

    try {
      if (isBuiltin && name === 'call') {
        const callee = args.length === 0 ? formatValue(final as GoValue) : nodeString(args[0]);
        const f = argv[0] === null ? undefined : argv[0];
        if (f === undefined) throw new FuncError('call of nil');
        throw new FuncError(`non-function ${callee} of type ${typeName(f)}`);
      }
      return fn.call(argv);
    } catch (e) {
      if (e instanceof ExecAbort) throw e;
      this.at(node);
      const msg = e instanceof FuncError ? e.message : e instanceof Error ? `runtime error: ${e.message}` : String(e);
      this.errorf(`error calling ${name}: ${msg}`);
    }
  }

  /** Go's validateType: can this value be passed as a parameter of that type? */
  private validateType(value: GoValue, typ: ParamType | null): GoValue {
    if (value === undefined) {
      if (typ === null || typ === 'value') return undefined;
      if (typ === 'any') return null;
      if (typ === 'map') return NIL_MAP;
      this.errorf(`invalid value; expected ${PARAM_TYPE_NAMES[typ]}`);
    }
    if (typ === null || typ === 'value' || typ === 'any') return value;
    if (value === null) this.errorf(`wrong type for value; expected ${PARAM_TYPE_NAMES[typ]}; got interface {}`);
    let ok: boolean;
    switch (typ) {
      case 'string': ok = typeof value === 'string'; break;
      case 'bool': ok = typeof value === 'boolean'; break;
      case 'int': ok = value instanceof GoNum && value.kind === 'int'; break;
      case 'float64': ok = isNumber(value) && numKind(value) === 'float64'; break;
      case 'map': ok = isMap(value) && elemType(value) === 'interface {}'; break;
    }
    if (!ok) this.errorf(`wrong type for value; expected ${PARAM_TYPE_NAMES[typ]}; got ${typeName(value)}`);
    return value;
  }

  private evalArg(dot: Slot, typ: ParamType | null, n: ArgNode): GoValue {
    this.at(n);
    switch (n.type) {
      case 'dot': return this.validateType(dot.v, typ);
      case 'nil':
        if (typ === null || typ === 'any') return null;
        if (typ === 'value') return undefined;
        if (typ === 'map') return NIL_MAP;
        this.errorf(`cannot assign nil to ${PARAM_TYPE_NAMES[typ]}`);
      // eslint-disable-next-line no-fallthrough
      case 'field': return this.validateType(this.evalFieldNode(dot, n, [n], MISSING), typ);
      case 'variable': return this.validateType(this.evalVariableNode(dot, n, [], MISSING), typ);
      case 'pipe': return this.validateType(this.evalPipeline(dot, n), typ);
      case 'identifier': return this.validateType(this.evalFunction(dot, n, n, null, MISSING), typ);
      case 'chain': return this.validateType(this.evalChainNode(dot, n, [], MISSING), typ);
    }
    switch (typ) {
      case 'bool':
        if (n.type === 'bool') return n.val;
        this.errorf(`expected bool; found ${nodeString(n)}`);
      // eslint-disable-next-line no-fallthrough
      case 'float64':
        if (n.type === 'number' && n.isFloat) return f64(n.float);
        this.errorf(`expected float; found ${nodeString(n)}`);
      // eslint-disable-next-line no-fallthrough
      case 'int':
        if (n.type === 'number' && n.isInt) return goInt(n.int);
        this.errorf(`expected integer; found ${nodeString(n)}`);
      // eslint-disable-next-line no-fallthrough
      case 'string':
        if (n.type === 'string') return n.text;
        this.errorf(`expected string; found ${nodeString(n)}`);
      // eslint-disable-next-line no-fallthrough
      case 'any': case 'value':
        return this.evalEmptyInterface(n);
    }
    this.errorf(`can't handle ${nodeString(n)} for arg of type ${typ === null ? 'nil' : PARAM_TYPE_NAMES[typ]}`);
  }

  private evalEmptyInterface(n: ArgNode): GoValue {
    this.at(n);
    switch (n.type) {
      case 'bool': return n.val;
      case 'number': return this.idealConstant(n);
      case 'string': return n.text;
    }
    this.errorf(`can't handle assignment of ${nodeString(n)} to empty interface argument`);
  }

  private printValue(node: ActionNode, v: GoValue): void {
    this.at(node);
    this.out += v === undefined ? '<no value>' : formatValue(v);
  }
}
