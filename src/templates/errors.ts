// Errors carry the caller's template name and a line:column position, worded as Go's
// text/template words them, e.g.
//   template: ConnectorClass git, spec.configurations[0].data[".gitconfig"]:2:40: executing "…" at <b64enc>: …
// Go gives parse errors a line only; ours add the column of the offending token too.

export type TemplateErrorKind = 'parse' | 'exec';

export class TemplateError extends Error {
  override readonly name = 'TemplateError';

  constructor(
    readonly kind: TemplateErrorKind,
    /** The name given to compileTemplate. */
    readonly templateName: string,
    /** 1-based line; 0 when the error is not about a place in the text. */
    readonly line: number,
    /** Column as Go counts it: bytes from the start of the line, 0-based. */
    readonly column: number,
    /** The message without the "template: NAME:LINE:COL: " prefix. */
    readonly detail: string,
  ) {
    // Line 0: an error about the data or the set as a whole, not a place in the text.
    super(line === 0 ? `template: ${templateName}: ${detail}` : `template: ${templateName}:${line}:${column}: ${detail}`);
  }
}

/** Line (1-based) and Go byte column (0-based) of a UTF-16 offset. */
export function position(text: string, pos: number): { line: number; column: number } {
  const before = text.slice(0, pos);
  const nl = before.lastIndexOf('\n');
  let line = 1;
  for (let i = before.indexOf('\n'); i >= 0; i = before.indexOf('\n', i + 1)) line++;
  const lineText = nl < 0 ? before : before.slice(nl + 1);
  return { line, column: Buffer.byteLength(lineText, 'utf8') };
}
