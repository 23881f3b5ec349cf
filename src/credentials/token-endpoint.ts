// Small pieces every injector that fetches credentials from a token endpoint needs (OAuth2
// client credentials, an OCI registry's token service): bounded reads, lenient JSON, and
// error text that is safe for a 502 body and a log line.
import type { Dispatcher } from 'undici';
import { request } from '../http/undici';
import { certificateProblem } from '../tls/ca-trust';
import { CredentialError } from './source';

/** Time a token endpoint has to answer. */
const TIMEOUT_MS = 30_000;
/** Largest token endpoint answer read. */
const BODY_LIMIT = 64 * 1024;

/** A token endpoint's answer: its status and its body if it is a JSON object. */
export interface TokenAnswer {
  readonly status: number;
  readonly body: Record<string, unknown> | undefined;
}

/**
 * Asks a token endpoint (`where` names it in errors): bounded time and size; a failure to
 * reach it is a CredentialError saying why (an untrusted certificate says how to trust it).
 */
export async function askTokenEndpoint(
  url: URL, dispatcher: Dispatcher, where: string,
  init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
): Promise<TokenAnswer> {
  try {
    const res = await request(url, { ...init, dispatcher, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS });
    return { status: res.statusCode, body: parseJsonObject(await readLimited(res.body, BODY_LIMIT)) };
  } catch (err) {
    throw new CredentialError(`${where} ${transportReason(err as Error & { code?: string })}`);
  }
}

/** A JSON object, or undefined for anything else (an HTML error page, a list, nothing). */
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

/** Reads a response body as text, giving up (and dropping the connection) past `limit` bytes. */
export async function readLimited(body: AsyncIterable<Buffer> & { destroy(): void }, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += c.length;
    if (size > limit) {
      body.destroy();
      throw Object.assign(new Error('answer too large'), { code: 'TOO_LARGE' });
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** Why a token endpoint could not be asked: an untrusted certificate says how to trust it. */
export function transportReason(err: Error & { code?: string }): string {
  return certificateProblem(err.code) ?? `could not be reached (${err.code ?? err.name})`;
}

/**
 * Text from a token endpoint made safe to show: printable ASCII, at most 300 characters, and
 * none of `secrets` (a careless endpoint may echo what it got), as they are or form-encoded.
 */
export function safeText(s: string, secrets: readonly string[]): string {
  let out = s.replace(/[^\x20-\x7e]/g, ' ').slice(0, 300);
  for (const secret of secrets) {
    for (const form of new Set([secret, encodeURIComponent(secret), encodeURIComponent(secret).replace(/%20/g, '+')])) {
      if (form.length >= 4) out = out.split(form).join('[hidden]');
    }
  }
  return out;
}
