// What the gateway needs of each ConnectorClass, built once per class version (on the first
// request after a change): its compiled `spec.api.openapi` and the address of its API
// service (`status.api.address.url`, for `x-provider-type: api`).
import type { ObjectStore } from '../sources/store';
import type { ConnectorClass } from '../types';
import { upstreamOf, type Upstream } from '../routes/route';
import { serviceAddress } from '../status/conditions';
import { OpenApiMatcher } from './openapi';

export interface ClassApi {
  /** The compiled OpenAPI paths (empty without `spec.api.openapi`); undefined when `problem` is set. */
  readonly matcher: OpenApiMatcher | undefined;
  /** Why `spec.api.openapi` cannot be used (the field and what is wrong): every request gets 502. */
  readonly problem: string | undefined;
  /** The class API service, or the docs' sentence for why it is not resolved. */
  readonly service: Upstream | string;
}

export class ClassApis {
  private readonly cache = new Map<string, ClassApi>();
  /** Classes compiled since start (tests: once per class version, not per request). */
  compilations = 0;

  constructor(store: ObjectStore) {
    // The store reports a class only when its spec or annotations change, not its status.
    store.onChange((change) => {
      if (change.kind === 'ConnectorClass') this.cache.delete(change.key);
      else if (change.kind === 'all') this.cache.clear();
    });
  }

  of(cls: ConnectorClass): ClassApi {
    const name = cls.metadata.name;
    let api = this.cache.get(name);
    if (api === undefined) {
      api = compileClass(cls);
      this.compilations++;
      this.cache.set(name, api);
    }
    return api;
  }
}

function compileClass(cls: ConnectorClass): ClassApi {
  const compiled = OpenApiMatcher.compile(cls.spec.api?.openapi);
  return {
    matcher: 'matcher' in compiled ? compiled.matcher : undefined,
    problem: 'problem' in compiled ? compiled.problem : undefined,
    service: serviceOf(cls),
  };
}

function serviceOf(cls: ConnectorClass): Upstream | string {
  const notResolved = `api address of connectorclass '${cls.metadata.name}' is not resolved: set spec.api.uri (an absolute http(s) URL) or spec.api.ref (a Service)`;
  const url = serviceAddress(cls.spec.api ?? undefined);
  if (url === undefined) return notResolved;
  try {
    return upstreamOf(new URL(url));
  } catch {
    return notResolved;
  }
}
