import { SecretTypes } from '../types';
import { StaticHeaderInjector, type Injector } from './injector';

/** `kubernetes.io/basic-auth` → `Authorization: Basic base64(username:password)`. */
export function basicInjector(data: ReadonlyMap<string, string>): Injector {
  const username = data.get('username') ?? '';
  const password = data.get('password') ?? '';
  if (username.includes(':')) throw new Error(`${SecretTypes.basicAuth} Secret key "username" must not contain ':'`);
  const value = 'Basic ' + Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
  return new StaticHeaderInjector('basic', 'authorization', value);
}
