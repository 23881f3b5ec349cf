import { StaticHeaderInjector, assertHeaderSafe, type Injector } from './injector';

/** `connectors.cpaas.io/bearer-token` → `Authorization: Bearer <token>`. */
export function bearerInjector(data: ReadonlyMap<string, string>): Injector {
  const token = (data.get('token') ?? '').trim();
  assertHeaderSafe(token, 'Secret key "token"');
  return new StaticHeaderInjector('bearer', 'authorization', `Bearer ${token}`);
}
