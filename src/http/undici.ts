// The parts of undici the proxy uses, loaded one by one. `require('undici')` also loads fetch,
// WebSocket, EventSource, the cache stores, the mocks and the interceptors: ~8 MiB more RSS in
// every replica for code the proxy never runs (bench/README.md, "Before and after"). The
// modules are undici's own, pinned by package-lock.json; test/undici-subset.test.ts checks that
// they are the classes undici exports.
import type * as Undici from 'undici';
import type { Dispatcher } from 'undici';

const DispatcherBase = require('undici/lib/dispatcher/dispatcher') as typeof Undici.Dispatcher;
// What undici's index.js does: request(), stream(), pipeline(), ... on every dispatcher.
Object.assign(DispatcherBase.prototype, require('undici/lib/api') as object);

const PoolClass = require('undici/lib/dispatcher/pool') as typeof Undici.Pool;
const ProxyAgentClass = require('undici/lib/dispatcher/proxy-agent') as typeof Undici.ProxyAgent;
const { getGlobalDispatcher } = require('undici/lib/global') as { getGlobalDispatcher(): Dispatcher };

/** undici's `new Pool(origin, options)`. */
export function newPool(origin: string, options: Undici.Pool.Options): Undici.Pool {
  return new PoolClass(origin, options);
}

/** undici's `new ProxyAgent(options)`. */
export function newProxyAgent(options: Undici.ProxyAgent.Options): Undici.ProxyAgent {
  return new ProxyAgentClass(options);
}

export type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & {
  readonly method?: Dispatcher.HttpMethod;
  /** Where to send it; undici's global Agent when absent (as undici's own request()). */
  readonly dispatcher?: Dispatcher;
};

/** undici's top-level `request(url, options)`: one request to an absolute URL. */
export function request(url: string | URL, options: RequestOptions = {}): Promise<Dispatcher.ResponseData> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const { dispatcher = getGlobalDispatcher(), method = 'GET', ...rest } = options;
  return dispatcher.request({ ...rest, method, origin: u.origin, path: u.pathname + u.search });
}

/** The classes behind newPool and newProxyAgent, for the test that compares them with undici's exports. */
export const loadedClasses = { Dispatcher: DispatcherBase, Pool: PoolClass, ProxyAgent: ProxyAgentClass } as const;
