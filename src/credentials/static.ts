// Credentials computed once from the Secret (per Secret version): nothing to fetch, nothing
// to renew. `kubernetes.io/basic-auth` and `connectors.cpaas.io/bearer-token`.
import { SecretTypes } from '../types';
import { CredentialError } from './source';

/** `Basic base64(username:password)` from a basic-auth Secret. */
export function basicCredential(data: ReadonlyMap<string, string>): string {
  const username = data.get('username') ?? '';
  const password = data.get('password') ?? '';
  if (username.includes(':')) throw new Error(`${SecretTypes.basicAuth} Secret key "username" must not contain ':'`);
  return 'Basic ' + Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
}

/** `Bearer <token>` from a bearer-token Secret. */
export function bearerCredential(data: ReadonlyMap<string, string>): string {
  const token = (data.get('token') ?? '').trim();
  assertHeaderSafe(token, 'Secret key "token"');
  return `Bearer ${token}`;
}

/** Rejects values that could split a header: a Secret is input too. */
export function assertHeaderSafe(value: string, what: string): void {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x0d || c === 0x0a || c === 0x00) throw new CredentialError(`${what} contains a CR, LF or NUL character`);
  }
}
