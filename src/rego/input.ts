// The policy input (SPEC section 5): `input.data` and the same keys at the top level are the
// Secret's values as strings; `input.request` describes the request being sent.

export interface RequestInput {
  method: string;
  path: string;
  host: string;
  /** Canonical names as Go's http.Header has them (`Private-Token`), values as lists. */
  headers: Record<string, string[]>;
  query: Record<string, string[]>;
  body?: unknown;
}

export function secretObject(data: ReadonlyMap<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of data) out[k] = v;
  return out;
}

/** `private-token` → `Private-Token`, as Go canonicalizes MIME header keys. */
export function canonicalHeaderName(name: string): string {
  let out = '';
  let upper = true;
  for (const ch of name) {
    out += upper ? ch.toUpperCase() : ch.toLowerCase();
    upper = ch === '-';
  }
  return out;
}

export function requestInput(method: string, pathAndQuery: string, host: string, flatHeaders: readonly string[], body: unknown): RequestInput {
  const headers: Record<string, string[]> = {};
  for (let i = 0; i < flatHeaders.length; i += 2) {
    const name = canonicalHeaderName(flatHeaders[i]!);
    (headers[name] ??= []).push(flatHeaders[i + 1]!);
  }
  const q = pathAndQuery.indexOf('?');
  const query: Record<string, string[]> = {};
  if (q >= 0) for (const [k, v] of new URLSearchParams(pathAndQuery.slice(q + 1))) (query[k] ??= []).push(v);
  const input: RequestInput = { method, path: q < 0 ? pathAndQuery : pathAndQuery.slice(0, q), host, headers, query };
  if (body !== undefined) input.body = body;
  return input;
}
