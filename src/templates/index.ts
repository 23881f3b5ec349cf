// Go text/template with sprig, for ConnectorClass probe paths/headers and
// spec.configurations files. Parse once with compileTemplate, render many times:
//
//   const t = compileTemplate('ConnectorClass git, spec.configurations[0].data[".gitconfig"]', text);
//   t.render({ connector, context: { token } });
//
// Output matches Go's text/template + sprig v3 (test/templates.test.ts runs every case through
// a real Go build). Data must be JSON-like (objects, arrays, strings, numbers, booleans, null):
// integral numbers behave as Go int64, others as float64. Errors are TemplateError, worded as Go
// words them and carrying the template name and line:column.
import { Tree } from './ast';
import { BUILTINS } from './builtins';
import { TemplateError } from './errors';
import { TemplateSet, execute } from './exec';
import { FuncMap } from './funcs';
import { FunctionCheck, parseTemplates } from './parser';
import { SPRIG, UNSUPPORTED_SPRIG } from './sprig';
import { fromJS } from './values';

export { TemplateError } from './errors';
export type { TemplateErrorKind } from './errors';

export interface CompiledTemplate {
  /** The name given at compile time, used in every error. */
  readonly name: string;
  /** Names of the templates defined in the text ({{define}}/{{block}}), the main one included. */
  readonly templates: readonly string[];
  /** Renders with this data. Throws TemplateError (kind "exec") when Go would fail. */
  render(data: unknown): string;
}

const FUNCS: FuncMap = SPRIG;

const FUNCTION_CHECK: FunctionCheck = {
  has: (name) => FUNCS.has(name) || BUILTINS.has(name) || UNSUPPORTED_SPRIG.has(name),
  unsupported: (name) => {
    const why = UNSUPPORTED_SPRIG.get(name);
    return why === undefined ? undefined : `function ${JSON.stringify(name)} is not supported: ${why}`;
  },
};

/** Parses a template. Throws TemplateError (kind "parse") with the name and position. */
export function compileTemplate(name: string, text: string): CompiledTemplate {
  const trees = parseTemplates(name, text, FUNCTION_CHECK);
  const set: TemplateSet = { parseName: name, text, trees, funcs: FUNCS, builtins: BUILTINS };
  const main = trees.get(name) as Tree;
  return {
    name,
    templates: [...trees.keys()].sort(),
    render(data: unknown): string {
      let value;
      try {
        value = fromJS(data);
      } catch (e) {
        throw new TemplateError('exec', name, 0, 0, `bad template data: ${e instanceof Error ? e.message : String(e)}`);
      }
      return execute(set, main, value);
    },
  };
}

/** Whether err is a template parse or render error (as opposed to a bug). */
export function isTemplateError(err: unknown): err is TemplateError {
  return err instanceof TemplateError;
}
