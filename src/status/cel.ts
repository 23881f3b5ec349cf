// `probe.http.response.cel` (connectorclass.mdx): a CEL expression over the probed tool's
// answer; the probe passes when it evaluates to true. Evaluated with @bufbuild/cel (see the
// README's dependency list), compiled once per expression text and checked against cel-go,
// the controller's engine, in test/cel.test.ts. The variables are the docs' `response.statusCode`
// (int), `response.bodyString`, `response.headers` (map of lists, canonical and lower-case
// names) and `response.body` (the body parsed as JSON, else an empty map); the SonarQube
// class of the docs writes `statusCode` and `bodyJSON`, so the same values are also bound at
// the top level: `statusCode`, `bodyString`, `headers`, `body`, `bodyJSON`.
import type * as CelLib from '@bufbuild/cel';
import type { CelInput } from '@bufbuild/cel';

let lib: typeof CelLib | undefined;
/** The library, loaded on first use: ~7 MiB of RSS that a proxy whose classes have no `cel` probe should not pay. */
function cel(): typeof CelLib {
  return (lib ??= require('@bufbuild/cel') as typeof CelLib);
}

export interface ProbeResponse {
  readonly statusCode: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

export type CelOutcome = { readonly ok: boolean } | { readonly error: string };

type Evaluate = (vars: Record<string, CelInput>) => unknown;

let env: ReturnType<typeof CelLib.celEnv> | undefined;
const MAX_CACHED = 512;
const compiled = new Map<string, Evaluate | { parseError: string }>();

function compile(expr: string): Evaluate | { parseError: string } {
  let c = compiled.get(expr);
  if (c === undefined) {
    try {
      const { plan, parse, celEnv } = cel();
      c = plan((env ??= celEnv()), parse(expr)) as Evaluate;
    } catch (e) {
      c = { parseError: (e as Error).message.split('\n')[0]! };
    }
    // Expressions come from classes: a handful. The bound only guards against churn.
    if (compiled.size >= MAX_CACHED) compiled.delete(compiled.keys().next().value as string);
    compiled.set(expr, c);
  }
  return c;
}

/** Undefined when `expr` parses; else the parser's message (a class error, shown as InvalidProbe). */
export function celSyntaxError(expr: string): string | undefined {
  const c = compile(expr);
  return typeof c === 'function' ? undefined : c.parseError;
}

/** JSON → CEL values as cel-go sees `encoding/json` output: objects are maps, numbers doubles. */
function fromJson(v: unknown): CelInput {
  if (Array.isArray(v)) return v.map(fromJson);
  if (v !== null && typeof v === 'object') return new Map(Object.entries(v).map(([k, x]) => [k, fromJson(x)]));
  return v as CelInput;
}

/** Go's http.CanonicalHeaderKey for the usual token characters. */
function canonical(name: string): string {
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_, sep: string, c: string) => sep + c.toUpperCase());
}

/** The variables an expression sees for one answer. */
export function celVariables(r: ProbeResponse): Record<string, CelInput> {
  const headers = new Map<string, string[]>();
  for (const [k, v] of Object.entries(r.headers)) {
    if (v === undefined) continue;
    const list = Array.isArray(v) ? [...v] : [v];
    headers.set(canonical(k), list);
    headers.set(k.toLowerCase(), list);
  }
  let body: CelInput = new Map();
  if (r.body.trim() !== '') {
    try { body = fromJson(JSON.parse(r.body)); } catch { /* not JSON: an empty map, bodyString has the text */ }
  }
  const statusCode = BigInt(r.statusCode);
  const response = new Map<string, CelInput>([['statusCode', statusCode], ['bodyString', r.body], ['headers', headers], ['body', body]]);
  return { response, statusCode, bodyString: r.body, headers, body, bodyJSON: body };
}

/** Evaluates `expr` for the answer: ok when it is true, an error when it fails or is not a bool. */
export function evaluateResponseCel(expr: string, r: ProbeResponse): CelOutcome {
  const c = compile(expr);
  if (typeof c !== 'function') return { error: `does not parse: ${c.parseError}` };
  let v: unknown;
  try {
    v = c(celVariables(r));
  } catch (e) {
    return { error: (e as Error).message };
  }
  if (cel().isCelError(v)) return { error: v.message };
  if (typeof v !== 'boolean') return { error: `evaluated to ${typeof v === 'bigint' ? 'an int' : typeof v}, not a bool` };
  return { ok: v };
}
