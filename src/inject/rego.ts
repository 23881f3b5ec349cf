// Rego "generator" credentials (SPEC section 5): the auth type's policy returns
// `{position: header|query|body, contentType?, auth: {k: v}}` and the result is applied to
// the outgoing request. A result that does not fit is an error: never half the credentials.
import type { PolicyHandle } from '../rego/policy-store';
import { RegoEvalError } from '../rego/policy';
import { CredentialError } from '../credentials/source';
import { assertHeaderSafe } from '../credentials/static';
import { getHeader, setHeader, type Injector, type OutgoingRequest } from './injector';
import { requestInput, secretObject } from '../rego/input';

interface AuthResult {
  readonly position: 'header' | 'query' | 'body';
  readonly contentType: string | undefined;
  readonly auth: ReadonlyArray<readonly [string, string]>;
}

export interface RegoInjectorOptions {
  /** Largest request body the `body` position may rewrite (413 beyond). */
  readonly maxBodyBytes: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FORBIDDEN_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive']);
/** Body input for policies that read `input.request.body`: JSON only, and small. */
const BODY_INPUT_LIMIT = 64 * 1024;

export class RegoInjector implements Injector {
  readonly kind = 'rego';
  private readonly secret: Record<string, string>;
  private cached: AuthResult | undefined;
  private readonly readsBody: boolean;

  constructor(
    private readonly handle: PolicyHandle,
    data: ReadonlyMap<string, string>,
    private readonly options: RegoInjectorOptions,
    source: string,
  ) {
    this.secret = secretObject(data);
    this.readsBody = /\brequest\s*(\.\s*body\b|\[\s*"body"\s*\])/.test(source);
  }

  inject(req: OutgoingRequest): void | Promise<void> {
    const policy = this.handle.policy;
    if (policy === undefined) {
      if (this.handle.error) throw new CredentialError(`policy does not compile: ${this.handle.error.message}`);
      return this.handle.ready.then(() => this.inject(req), () => this.inject(req));
    }
    if (this.cached !== undefined) return this.apply(this.cached, req);
    if (this.readsBody && isSmallJson(req)) {
      return req.readBody(BODY_INPUT_LIMIT).then((b) => {
        req.body = b;
        let parsed: unknown;
        try { parsed = b.length > 0 ? JSON.parse(b.toString('utf8')) : undefined; } catch { parsed = undefined; }
        return this.apply(this.run(req, parsed), req);
      });
    }
    const result = this.run(req, undefined);
    if (policy.requestIndependent) this.cached = result;
    return this.apply(result, req);
  }

  private run(req: OutgoingRequest, body: unknown): AuthResult {
    const input = { ...this.secret, data: this.secret, request: requestInput(req.method, req.path, req.host, req.headers, body) };
    let value: unknown;
    try {
      value = this.handle.policy!.evaluate(input);
    } catch (err) {
      throw new CredentialError(err instanceof RegoEvalError ? `policy evaluation failed: ${err.message}` : `policy evaluation failed: ${(err as Error).message}`);
    }
    return checkResult(value);
  }

  private apply(r: AuthResult, req: OutgoingRequest): void | Promise<void> {
    if (r.position === 'header') {
      for (const [k, v] of r.auth) setHeader(req.headers, k.toLowerCase(), v);
      return;
    }
    if (r.position === 'query') {
      req.path = withQuery(req.path, r.auth);
      return;
    }
    return this.applyBody(r, req);
  }

  private async applyBody(r: AuthResult, req: OutgoingRequest): Promise<void> {
    const body = req.body ?? await req.readBody(this.options.maxBodyBytes);
    const declared = getHeader(req.headers, 'content-type');
    const type = (declared ?? r.contentType ?? 'application/json').split(';')[0]!.trim().toLowerCase();
    let out: string;
    if (type === 'application/json' || type.endsWith('+json')) {
      let obj: unknown = {};
      if (body.length > 0) {
        try { obj = JSON.parse(body.toString('utf8')); } catch { throw new CredentialError('the request body is not valid JSON, so credentials cannot be merged into it', 400); }
      }
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new CredentialError('the request body must be a JSON object for credentials to be merged into it', 400);
      for (const [k, v] of r.auth) (obj as Record<string, unknown>)[k] = v;
      out = JSON.stringify(obj);
    } else if (type === 'application/x-www-form-urlencoded') {
      const form = new URLSearchParams(body.toString('utf8'));
      for (const [k, v] of r.auth) form.set(k, v);
      out = form.toString();
    } else {
      throw new CredentialError(`credentials go into the body, which needs a JSON or form body, not ${type}`, 415);
    }
    if (declared === undefined) setHeader(req.headers, 'content-type', r.contentType ?? 'application/json');
    req.body = Buffer.from(out, 'utf8');
    setHeader(req.headers, 'content-length', String(req.body.length));
  }
}

function isSmallJson(req: OutgoingRequest): boolean {
  const type = getHeader(req.headers, 'content-type') ?? '';
  const len = Number(getHeader(req.headers, 'content-length') ?? NaN);
  return /json/i.test(type) && len > 0 && len <= BODY_INPUT_LIMIT;
}

function checkResult(value: unknown): AuthResult {
  if (value === undefined) throw new CredentialError('the policy left `auth` undefined for this request (no rule matched; add a default)');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new CredentialError(`\`auth\` must be an object {position, auth}, got ${describe(value)}`);
  const v = value as Record<string, unknown>;
  const position = v.position;
  if (position !== 'header' && position !== 'query' && position !== 'body') {
    throw new CredentialError(`\`auth.position\` must be "header", "query" or "body", got ${describe(position)}`);
  }
  if (v.contentType !== undefined && typeof v.contentType !== 'string') throw new CredentialError(`\`auth.contentType\` must be a string, got ${describe(v.contentType)}`);
  const auth = v.auth;
  if (auth === null || typeof auth !== 'object' || Array.isArray(auth)) throw new CredentialError(`\`auth.auth\` must be an object of strings, got ${describe(auth)}`);
  const pairs: Array<readonly [string, string]> = [];
  for (const [k, val] of Object.entries(auth)) {
    if (typeof val !== 'string') throw new CredentialError(`\`auth.auth["${k}"]\` must be a string, got ${describe(val)}`);
    if (k === '') throw new CredentialError('`auth.auth` has an empty key');
    if (position === 'header') {
      if (!TOKEN.test(k)) throw new CredentialError(`\`auth.auth["${k}"]\` is not a valid header name`);
      if (FORBIDDEN_HEADERS.has(k.toLowerCase())) throw new CredentialError(`\`auth.auth\` may not set the ${k} header`);
      assertHeaderSafe(val, `\`auth.auth["${k}"]\``);
    } else {
      assertHeaderSafe(val, `\`auth.auth["${k}"]\``);
    }
    pairs.push([k, val]);
  }
  if (pairs.length === 0) throw new CredentialError('`auth.auth` is empty: no credentials to add');
  return { position, contentType: v.contentType as string | undefined, auth: pairs };
}

/** Value types only, never the value: it may be a credential. */
function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'string' ? 'a string' : `a ${typeof v}`;
}

/** Sets query parameters, replacing any the client sent under the same names. */
function withQuery(path: string, params: ReadonlyArray<readonly [string, string]>): string {
  const q = path.indexOf('?');
  const base = q < 0 ? path : path.slice(0, q);
  const names = new Set(params.map(([k]) => k));
  const kept = q < 0 ? [] : path.slice(q + 1).split('&').filter((p) => {
    if (p === '') return false;
    const eq = p.indexOf('=');
    const raw = eq < 0 ? p : p.slice(0, eq);
    let name: string;
    try { name = decodeURIComponent(raw.replace(/\+/g, ' ')); } catch { name = raw; }
    return !names.has(name);
  });
  for (const [k, v] of params) kept.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  return `${base}?${kept.join('&')}`;
}
