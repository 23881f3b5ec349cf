// `WWW-Authenticate` challenges (RFC 9110 section 11.6.1).

/** A parsed challenge: scheme (lower-case) and its auth-params (names lower-case). */
export interface ParsedChallenge {
  readonly scheme: string;
  readonly params: ReadonlyMap<string, string>;
}

/**
 * Parses the first challenge of a `WWW-Authenticate` value:
 * `Bearer realm="https://auth",service="registry",scope="repository:a:pull,push"`.
 * Commas inside quoted strings belong to the value.
 */
export function parseChallenge(value: string): ParsedChallenge | undefined {
  const m = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*/.exec(value);
  if (m === null) return undefined;
  const params = new Map<string, string>();
  const re = /([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  re.lastIndex = m[0].length;
  for (let p = re.exec(value); p !== null; p = re.exec(value)) {
    params.set(p[1]!.toLowerCase(), p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!);
    if (re.lastIndex >= value.length) break;
  }
  return { scheme: m[1]!.toLowerCase(), params };
}
