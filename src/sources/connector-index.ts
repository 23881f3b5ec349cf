// The in-memory index every source feeds (files or Kubernetes informers) and the request
// path reads. Readers get a prebuilt Route: upstream address, credential injector and
// labels, rebuilt only when a Connector, its class or its Secret changes.
import {
  RESOLVER_ANNOTATION, objectKey, type AuthTypeSpec, type Connector, type ConnectorClass,
  type ObjectKey, type Resource, type Secret,
} from '../types';
import { buildInjector, anonymousInjector, type Injector, type InjectorContext } from '../inject';
import { TokenExtractor } from '../auth/extractor';
import type { PolicyHandle, PolicyStore } from '../rego/policy-store';
import { requiredSecretKeys } from './validate';
import type { Dispatcher } from 'undici';
import { SYSTEM_TRUST, TrustResolver, type TrustOptions, type UpstreamTrust } from '../tls/ca-trust';

export type ResolverKind = 'host' | 'path';

export interface Upstream {
  /** `http://host:port`, no trailing slash. */
  readonly origin: string;
  /** Address path prefix without trailing slash, `''` for none (e.g. `/gitlab`). */
  readonly basePath: string;
  /** The Host header the tool expects. */
  readonly host: string;
}

export interface Route {
  readonly key: ObjectKey;
  readonly namespace: string;
  readonly name: string;
  readonly className: string;
  readonly resolver: ResolverKind;
  readonly upstream: Upstream;
  /** Undefined when the auth type is optional and no Secret is referenced. */
  readonly injector: Injector | undefined;
  readonly authType: string;
  /** Set when the Connector cannot be served: the 502 body says why. */
  readonly broken: string | undefined;
  /** The class's `spec.proxy.authExtractor`, when it has one. */
  readonly extractor?: TokenExtractor;
  /**
   * Forward proxy mode: the origins and path prefixes this Connector's credentials may be
   * sent to (`spec.address` and URL-valued `spec.addressExtensions[].value`).
   */
  readonly forwardTargets: readonly Upstream[];
  /** The CAs the tool's certificate is verified against (system roots, global and own CA Secrets). */
  readonly trust: UpstreamTrust;
}

function upstreamOf(u: URL): Upstream {
  const basePath = u.pathname.endsWith('/') ? u.pathname.slice(0, -1) : u.pathname;
  return { origin: u.origin, basePath, host: u.host };
}

/** The address and every http(s) URL among the address extensions (other values are not places). */
function forwardTargetsOf(c: Connector, address: Upstream): Upstream[] {
  const targets = [address];
  for (const ext of c.spec.addressExtensions ?? []) {
    if (!/^https?:\/\//i.test(ext.value)) continue;
    try {
      targets.push(upstreamOf(new URL(ext.value)));
    } catch { /* not a URL: an extension such as a registry namespace */ }
  }
  return targets;
}

/** The resolver a class's Connectors are served with (annotation, default host). */
export function resolverOf(cls: ConnectorClass): ResolverKind {
  return cls.metadata.annotations?.[RESOLVER_ANNOTATION] === 'path' ? 'path' : 'host';
}

/** What `resolveAuth` found: the auth type a Connector uses and the state of its Secret. */
export type AuthResolution =
  | { readonly kind: 'none' }
  | { readonly kind: 'unknown-type'; readonly wanted: string }
  | { readonly kind: 'ambiguous'; readonly names: readonly string[] }
  | { readonly kind: 'no-secret'; readonly authType: AuthTypeSpec }
  | { readonly kind: 'secret-not-found'; readonly authType: AuthTypeSpec; readonly secretKey: ObjectKey }
  | { readonly kind: 'cross-namespace'; readonly authType: AuthTypeSpec; readonly secretKey: ObjectKey }
  | { readonly kind: 'missing-keys'; readonly authType: AuthTypeSpec; readonly secretKey: ObjectKey; readonly secret: Secret; readonly missing: readonly string[] }
  | { readonly kind: 'ok'; readonly authType: AuthTypeSpec; readonly secretKey: ObjectKey; readonly secret: Secret; readonly data: Map<string, string> };

export interface IndexOptions {
  /** Compiles generator and authExtractor policies; without it Rego auth types are broken. */
  readonly policies?: PolicyStore;
  /** Largest body a `body` generator may rewrite. */
  readonly maxBodyBytes: number;
  /** Custom CA trust (--enable-custom-ca-certs and the proxy's namespace); default: system roots only. */
  readonly trust?: TrustOptions;
  /** Upstream pools by origin and trust: how injectors reach token endpoints (InjectorContext.dispatcherFor). */
  readonly dispatcher?: (origin: string, trust: UpstreamTrust) => Dispatcher;
  /**
   * Let spec.auth.secretRef name a Secret in another namespace. Off by default: whoever may
   * create Connectors in A could otherwise have the proxy inject B's credentials.
   */
  readonly allowCrossNamespaceSecrets?: boolean;
}

export class ConnectorIndex {
  private readonly classes = new Map<string, ConnectorClass>();
  private readonly connectors = new Map<ObjectKey, Connector>();
  private readonly secrets = new Map<ObjectKey, Secret>();
  private routes = new Map<ObjectKey, Route>();
  private readonly listeners: Array<() => void> = [];
  private synced = false;
  /** The last compiled policy per class and auth type: served while an edit compiles. */
  private readonly lastGood = new Map<string, PolicyHandle>();
  private readonly trust: TrustResolver;

  constructor(private readonly options: IndexOptions = { maxBodyBytes: 1024 * 1024 }) {
    options.policies?.onSettled(() => this.changed());
    this.trust = new TrustResolver(options.trust ?? { enabled: false, namespace: '' }, () => this.secrets.values(), (ns, name) => this.secret(ns, name));
  }

  /** True once the source delivered its first complete state. */
  get ready(): boolean {
    return this.synced;
  }

  markSynced(): void {
    this.synced = true;
  }

  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Rebuilds every route on next use: something they derive from changed (a feature flag). */
  refresh(): void {
    this.changed();
  }

  upsert(obj: Resource): void {
    switch (obj.kind) {
      case 'ConnectorClass': {
        const before = this.classes.get(obj.metadata.name);
        this.classes.set(obj.metadata.name, obj);
        // Our own condition writes change no route either.
        if (before !== undefined && sameClass(before, obj)) return;
        break;
      }
      case 'Connector': {
        const key = objectKey(obj.metadata.namespace, obj.metadata.name);
        const before = this.connectors.get(key);
        this.connectors.set(key, obj);
        // A status write (ours, or the probes') changes no route: keep the 10,000 others.
        if (before !== undefined && sameSpec(before, obj)) return;
        this.routes.delete(key);
        this.notify();
        return;
      }
      case 'Secret': this.secrets.set(objectKey(obj.metadata.namespace, obj.metadata.name), obj); break;
    }
    this.changed();
  }

  remove(kind: Resource['kind'], namespace: string, name: string): void {
    if (kind === 'ConnectorClass') this.classes.delete(name);
    else if (kind === 'Connector') {
      const key = objectKey(namespace, name);
      this.connectors.delete(key);
      this.routes.delete(key);
      this.notify();
      return;
    } else this.secrets.delete(objectKey(namespace, name));
    this.changed();
  }

  /** Swaps in a whole new state at once (the file source's reload). */
  replaceAll(objects: readonly Resource[]): void {
    this.classes.clear();
    this.connectors.clear();
    this.secrets.clear();
    for (const o of objects) this.put(o);
    this.changed();
  }

  /** Swaps in every object of one kind at once (a watcher's list or relist). */
  replaceKind(kind: Resource['kind'], objects: readonly Resource[]): void {
    (kind === 'ConnectorClass' ? this.classes : kind === 'Connector' ? this.connectors : this.secrets).clear();
    for (const o of objects) if (o.kind === kind) this.put(o);
    this.changed();
  }

  private put(o: Resource): void {
    if (o.kind === 'ConnectorClass') this.classes.set(o.metadata.name, o);
    else if (o.kind === 'Connector') this.connectors.set(objectKey(o.metadata.namespace, o.metadata.name), o);
    else this.secrets.set(objectKey(o.metadata.namespace, o.metadata.name), o);
  }

  // Routes are rebuilt lazily: dropping the cache is O(1), so a burst of watch events
  // (an initial list of 10,000 objects) costs nothing until a request needs a route.
  private changed(): void {
    if (this.routes.size > 0) this.routes = new Map();
    this.trust.invalidate();
    this.preparePolicies();
    this.notify();
  }

  private notify(): void {
    for (const fn of this.listeners) fn();
  }

  route(namespace: string, name: string): Route | undefined {
    const key = objectKey(namespace, name);
    let r = this.routes.get(key);
    if (r === undefined) {
      const c = this.connectors.get(key);
      if (c === undefined) return undefined;
      r = this.buildRoute(key, c);
      this.routes.set(key, r);
    }
    return r;
  }

  connector(namespace: string, name: string): Connector | undefined {
    return this.connectors.get(objectKey(namespace, name));
  }

  connectorClass(name: string): ConnectorClass | undefined {
    return this.classes.get(name);
  }

  secret(namespace: string, name: string): Secret | undefined {
    return this.secrets.get(objectKey(namespace, name));
  }

  allClasses(): IterableIterator<ConnectorClass> {
    return this.classes.values();
  }

  allConnectors(): IterableIterator<Connector> {
    return this.connectors.values();
  }

  counts(): { classes: number; connectors: number; secrets: number } {
    return { classes: this.classes.size, connectors: this.connectors.size, secrets: this.secrets.size };
  }

  private buildRoute(key: ObjectKey, c: Connector): Route {
    const upstream = upstreamOf(new URL(c.spec.address));
    const base = {
      key,
      namespace: c.metadata.namespace,
      name: c.metadata.name,
      className: c.spec.connectorClassName,
      upstream,
      forwardTargets: forwardTargetsOf(c, upstream),
      trust: this.trust.forConnector(c),
    };
    const cls = this.classes.get(c.spec.connectorClassName);
    if (cls === undefined) {
      return { ...base, resolver: 'host', injector: undefined, authType: '', broken: `ConnectorClass "${c.spec.connectorClassName}" not found` };
    }
    const resolver = resolverOf(cls);
    const { authType, injector, broken } = this.credentials(c, cls, base.trust);
    const extractorSource = cls.spec.proxy?.authExtractor?.rego;
    const extractor = extractorSource === undefined ? undefined : this.policy(extractorSource, cls.metadata.name, '', 'authExtractor.rego');
    return {
      ...base, resolver, injector, authType: authType?.name ?? '',
      broken: broken ?? (extractorSource !== undefined && extractor === undefined ? 'spec.proxy.authExtractor needs the OPA compiler, which is not configured' : undefined),
      extractor: extractor && new TokenExtractor(extractor),
    };
  }

  /**
   * The handle of a class's policy. While an edited policy compiles, the last compiled
   * one keeps serving; when the compile settles, routes are rebuilt and swap at once.
   */
  private policy(source: string, className: string, authType: string, fileName: string): PolicyHandle | undefined {
    const store = this.options.policies;
    if (store === undefined) return undefined;
    const what = authType ? `ConnectorClass ${className}, auth type ${authType}` : `ConnectorClass ${className}, spec.proxy.authExtractor`;
    const h = store.get(source, fileName, what);
    const key = policyKey(className, authType);
    if (h.settled) {
      this.lastGood.set(key, h);
      return h;
    }
    return this.lastGood.get(key) ?? h;
  }

  /**
   * Starts compiling every policy the classes name, off the request path, and drops
   * compiled policies (and last-good handles) no class uses any more.
   */
  private preparePolicies(): void {
    const store = this.options.policies;
    if (store === undefined) return;
    const used = new Set<string>();
    const live = new Set<string>();
    const prepare = (source: string, className: string, authType: string, fileName: string): void => {
      used.add(source);
      live.add(policyKey(className, authType));
      this.policy(source, className, authType, fileName);
    };
    for (const cls of this.classes.values()) {
      const name = cls.metadata.name;
      for (const t of cls.spec.auth?.types ?? []) if (t.generator?.rego !== undefined) prepare(t.generator.rego, name, t.name, 'generator.rego');
      const extractor = cls.spec.proxy?.authExtractor?.rego;
      if (extractor !== undefined) prepare(extractor, name, '', 'authExtractor.rego');
    }
    for (const key of this.lastGood.keys()) if (!live.has(key)) this.lastGood.delete(key);
    store.retain(used);
  }

  /**
   * Which auth type of its class a Connector uses and whether its Secret is there and
   * complete. One answer for the route (injector or 502) and the conditions (SecretReady).
   */
  resolveAuth(c: Connector, cls: ConnectorClass): AuthResolution {
    const types = cls.spec.auth?.types ?? [];
    if (types.length === 0) return { kind: 'none' };
    const wanted = c.spec.auth?.name;
    const authType = wanted !== undefined ? types.find((t) => t.name === wanted) : types.length === 1 ? types[0] : undefined;
    if (authType === undefined) {
      return wanted !== undefined ? { kind: 'unknown-type', wanted } : { kind: 'ambiguous', names: types.map((t) => t.name) };
    }
    const ref = c.spec.auth?.secretRef;
    if (ref === undefined) return { kind: 'no-secret', authType };
    const secretKey = objectKey(ref.namespace || c.metadata.namespace, ref.name);
    if (ref.namespace && ref.namespace !== c.metadata.namespace && this.options.allowCrossNamespaceSecrets !== true) {
      return { kind: 'cross-namespace', authType, secretKey };
    }
    const secret = this.secrets.get(secretKey);
    if (secret === undefined) return { kind: 'secret-not-found', authType, secretKey };
    const data = decodeSecret(secret);
    const missing = requiredSecretKeys(authType).filter((k) => !data.has(k));
    if (missing.length > 0) return { kind: 'missing-keys', authType, secretKey, secret, missing };
    return { kind: 'ok', authType, secretKey, secret, data };
  }

  private credentials(c: Connector, cls: ConnectorClass, trust: UpstreamTrust = SYSTEM_TRUST): { authType?: AuthTypeSpec; injector?: Injector; broken?: string } {
    const where = `ConnectorClass "${cls.metadata.name}"`;
    const auth = this.resolveAuth(c, cls);
    switch (auth.kind) {
      case 'none': return {};
      case 'unknown-type': return { broken: `${where} has no auth type "${auth.wanted}" (spec.auth.name)` };
      case 'ambiguous': return { broken: `${where} has several auth types: set spec.auth.name to one of ${auth.names.join(', ')}` };
      case 'no-secret':
        // A registry token flow runs anonymously without a Secret (public repositories need a token too).
        return auth.authType.optional
          ? { authType: auth.authType, injector: anonymousInjector(auth.authType, () => this.injectorContext(c, cls, trust, auth.authType)) }
          : { authType: auth.authType, broken: `auth type "${auth.authType.name}" of ${where} requires a Secret: set spec.auth.secretRef` };
      case 'secret-not-found': return { authType: auth.authType, broken: `Secret ${auth.secretKey} not found (spec.auth.secretRef)` };
      case 'cross-namespace': return { authType: auth.authType, broken: crossNamespaceMessage(auth.secretKey) };
      case 'missing-keys':
        return { authType: auth.authType, broken: `Secret ${auth.secretKey} lacks key(s) ${auth.missing.join(', ')} required by auth type "${auth.authType.name}" of ${where}` };
      case 'ok': break;
    }
    const { authType, data } = auth;
    try {
      return { authType, injector: buildInjector(authType, data, this.injectorContext(c, cls, trust, authType)) };
    } catch (err) {
      return { authType, broken: `${where}, auth type "${authType.name}": ${(err as Error).message}` };
    }
  }

  private injectorContext(c: Connector, cls: ConnectorClass, trust: UpstreamTrust, authType: AuthTypeSpec): InjectorContext {
    const generator = authType.generator?.rego;
    const dispatcher = this.options.dispatcher;
    return {
      connector: c,
      connectorClass: cls,
      dispatcherFor: (origin) => {
        if (dispatcher === undefined) throw new Error('no upstream pools configured');
        return dispatcher(origin, trust);
      },
      trustKey: trust.key,
      maxBodyBytes: this.options.maxBodyBytes,
      policy: generator === undefined ? undefined : this.policy(generator, cls.metadata.name, authType.name, 'generator.rego'),
    };
  }
}

/**
 * True when two versions of a Connector build the same route. `generation` moves only with
 * the spec (the status is a subresource); manifests have no generation, so compare specs.
 */
function sameSpec(a: Connector, b: Connector): boolean {
  const ga = a.metadata.generation;
  if (ga !== undefined && ga === b.metadata.generation) return true;
  return JSON.stringify(a.spec) === JSON.stringify(b.spec);
}

/** True when two versions of a class build the same routes (spec and resolver annotation). */
function sameClass(a: ConnectorClass, b: ConnectorClass): boolean {
  if (a.metadata.annotations?.[RESOLVER_ANNOTATION] !== b.metadata.annotations?.[RESOLVER_ANNOTATION]) return false;
  const ga = a.metadata.generation;
  if (ga !== undefined && ga === b.metadata.generation) return true;
  return JSON.stringify(a.spec) === JSON.stringify(b.spec);
}

/** The last-good key of a class's policy; `authType` is '' for the auth extractor. */
function policyKey(className: string, authType: string): string {
  return `${className}\u0000${authType}`;
}

export function decodeSecret(s: Secret): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(s.data ?? {})) out.set(k, Buffer.from(v, 'base64').toString('utf8'));
  return out;
}

/** Why a Secret of another namespace is not used (route 502 and SecretReady). */
export function crossNamespaceMessage(secretKey: ObjectKey): string {
  return `Secret ${secretKey} is in another namespace than the Connector: refused unless the proxy runs with --allow-cross-namespace-secrets`;
}
