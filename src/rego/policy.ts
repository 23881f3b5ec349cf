// A compiled policy, evaluated in-process with @open-policy-agent/opa-wasm. Evaluation is
// synchronous, so one instance per policy serves every request in turn.
import { loadPolicySync, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { HOST_BUILTINS, NONDETERMINISTIC, evalClock } from './builtins';

/** The policy ran but failed: a conflict, a builtin error, a type error at run time. */
export class RegoEvalError extends Error {
  override readonly name = 'RegoEvalError';
}

export class WasmPolicy {
  private constructor(private readonly loaded: LoadedPolicy, readonly requestIndependent: boolean) {}

  /** `source` is the Rego text, read to tell whether results can be cached (see below). */
  static load(wasm: Buffer, source: string): WasmPolicy {
    const loaded = loadPolicySync(wasm, undefined, HOST_BUILTINS as Record<string, (...a: unknown[]) => unknown>);
    return new WasmPolicy(loaded, isRequestIndependent(source));
  }

  /** The value of `proxy.auth`, or undefined when the rule is undefined for this input. */
  evaluate(input: unknown): unknown {
    evalClock.nowNs = Date.now() * 1e6;
    let rs: unknown;
    try {
      rs = this.loaded.evaluate(input);
    } catch (err) {
      // opa-wasm throws OPA's abort message as a plain string.
      const msg = typeof err === 'string' ? err : (err as Error).message;
      throw new RegoEvalError(msg + conflictHint(msg));
    }
    const first = Array.isArray(rs) ? (rs[0] as { result?: unknown } | undefined) : undefined;
    return first?.result;
  }
}

function conflictHint(msg: string): string {
  return /conflict/.test(msg)
    ? ' (hint: several `auth` rules produced different values; keep one complete rule and use `else`, or `default auth := ...` with one conditional rule)'
    : '';
}

/**
 * True when the policy's result can only depend on the Secret: it never reads
 * `input.request` (or input through a variable key) and calls no builtin whose result
 * changes between calls. Such results are computed once per Secret version instead of per
 * request. Reading the text errs on the side of "depends": any doubt means per request.
 */
export function isRequestIndependent(source: string): boolean {
  const code = source.replace(/"(?:[^"\\\n]|\\.)*"|`[^`]*`/g, '""').replace(/#[^\n]*/g, '');
  for (const name of NONDETERMINISTIC) if (code.includes(name)) return false;
  // Every use of `input` must be `input.<key>` or `input["<key>"]` with a key other than request.
  const uses = code.match(/\binput\b(\s*\.\s*\w+|\s*\[\s*""\s*\]|)/g) ?? [];
  for (const use of uses) {
    const rest = use.slice(5).trim();
    if (rest === '' || rest.startsWith('[')) return false; // bare `input`, or a string key we blanked out
    if (rest.replace(/^\.\s*/, '') === 'request') return false;
  }
  return true;
}
