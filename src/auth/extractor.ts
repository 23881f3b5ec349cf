// `spec.proxy.authExtractor.rego`: where a class's clients put their token when the tool's
// own CLI cannot send Basic or Bearer (e.g. GitLab's `Private-Token` header). The policy
// sees `input.request` and returns `{token}`; the header carrying it is dropped upstream.
import type { IncomingMessage } from 'node:http';
import type { PolicyHandle } from '../rego/policy-store';
import { requestInput } from '../rego/input';

export type Extracted =
  | { readonly token: string | undefined; readonly dropHeaders: ReadonlySet<string> | undefined }
  | { readonly error: string };

export class TokenExtractor {
  constructor(private readonly handle: PolicyHandle) {}

  extract(req: IncomingMessage): Extracted | Promise<Extracted> {
    const policy = this.handle.policy;
    if (policy === undefined) {
      if (this.handle.error) return { error: `spec.proxy.authExtractor does not compile: ${this.handle.error.message}` };
      return this.handle.ready.then(() => this.extract(req), () => this.extract(req));
    }
    let value: unknown;
    try {
      value = policy.evaluate({ request: requestInput(req.method ?? 'GET', req.url ?? '/', req.headers.host ?? '', req.rawHeaders, undefined) });
    } catch (err) {
      return { error: `spec.proxy.authExtractor failed: ${(err as Error).message}` };
    }
    const token = (value as { token?: unknown } | undefined)?.token;
    if (value !== undefined && (value === null || typeof value !== 'object' || (token !== undefined && typeof token !== 'string'))) {
      return { error: 'spec.proxy.authExtractor must return {"token": "<string>"}' };
    }
    if (typeof token !== 'string' || token === '') return { token: undefined, dropHeaders: undefined };
    // Wherever the token came from, it must not travel on to the tool.
    let drop: Set<string> | undefined;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (raw[i + 1]!.includes(token)) (drop ??= new Set()).add(raw[i]!.toLowerCase());
    return { token, dropHeaders: drop };
  }
}
