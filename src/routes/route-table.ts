// The route table: a prebuilt Route per Connector, fed by the object store. A change
// rebuilds only what it concerns: a Connector its own route, a Secret the routes of the
// Connectors that reference it, a class its Connectors' routes, a global CA Secret every
// route (the trust of all changes). Routes are built lazily, on a Connector's first request
// after a change, so a burst of watch events (an initial list of 10,000 objects) costs
// nothing until traffic needs it.
import { createHash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { RESOLVER_ANNOTATION, SecretTypes, splitObjectKey, type AuthTypeSpec, type Connector, type ConnectorClass, type ObjectKey } from '../types';
import { anonymousInjector, buildInjector, type Injector, type InjectorContext } from '../inject';
import { CredentialSources } from '../credentials/sources';
import { TokenExtractor } from '../auth/extractor';
import type { PolicyHandle, PolicyStore } from '../rego/policy-store';
import type { ObjectStore, StoreChange } from '../sources/store';
import { crossNamespaceMessage, resolveAuth } from '../sources/auth-resolution';
import { validateConnector } from '../sources/validate';
import { DEFAULT_PROFILE, type ResponseProfile } from '../http/profile';
import { REGISTRY_PROFILE } from '../oci/profile';
import { SYSTEM_TRUST, TrustResolver, type TrustOptions, type UpstreamTrust } from '../tls/ca-trust';
import { upstreamOf, type ResolverKind, type Route, type Upstream } from './route';

export interface RouteTableOptions {
  /** Compiles generator and authExtractor policies; without it Rego auth types are broken. */
  readonly policies?: PolicyStore;
  /** Largest body a `body` generator may rewrite. */
  readonly maxBodyBytes: number;
  /** Custom CA trust (--enable-custom-ca-certs and the proxy's namespace); default: system roots only. */
  readonly trust?: TrustOptions;
  /** Upstream pools by origin and trust: how credential sources reach token endpoints. */
  readonly dispatcher?: (origin: string, trust: UpstreamTrust) => Dispatcher;
  /**
   * Let spec.auth.secretRef name a Secret in another namespace. Off by default: whoever may
   * create Connectors in A could otherwise have the proxy inject B's credentials.
   */
  readonly allowCrossNamespaceSecrets?: boolean;
}

/** The resolver a class's Connectors are served with (annotation, default host). */
export function resolverOf(cls: ConnectorClass): ResolverKind {
  return cls.metadata.annotations?.[RESOLVER_ANNOTATION] === 'path' ? 'path' : 'host';
}

export class RouteTable {
  private readonly routes = new Map<ObjectKey, Route>();
  /** The last compiled policy per class and auth type: served while an edit compiles. */
  private readonly lastGood = new Map<string, PolicyHandle>();
  private readonly trust: TrustResolver;
  readonly sources = new CredentialSources();
  /** Routes built since start (tests, bench). */
  builds = 0;

  constructor(private readonly store: ObjectStore, private readonly options: RouteTableOptions = { maxBodyBytes: 1024 * 1024 }) {
    this.trust = new TrustResolver(options.trust ?? { enabled: false, namespace: '' }, () => store.allSecrets(), (ns, name) => store.secret(ns, name));
    store.onChange((change) => this.changed(change));
    options.policies?.onSettled((source) => this.policySettled(source));
  }

  /** True once the store holds its first complete state ("not found" may be false before). */
  get ready(): boolean {
    return this.store.ready;
  }

  route(namespace: string, name: string): Route | undefined {
    const key = `${namespace}/${name}`;
    let r = this.routes.get(key);
    if (r === undefined) {
      const c = this.store.connector(namespace, name);
      if (c === undefined) return undefined;
      r = this.build(key, c);
      this.routes.set(key, r);
    }
    return r;
  }

  /** Routes held now (tests, bench). */
  get size(): number {
    return this.routes.size;
  }

  private changed(change: StoreChange): void {
    switch (change.kind) {
      case 'Connector':
        this.routes.delete(change.key);
        return;
      case 'ConnectorClass':
        for (const k of this.store.connectorsOfClass(change.key)) this.routes.delete(k);
        this.preparePolicies();
        return;
      case 'Secret': {
        const [ns, name] = splitObjectKey(change.key);
        if (this.trust.concerns(change.key, this.store.secret(ns, name))) return this.dropAll();
        for (const k of this.store.usersOfSecret(change.key)) this.routes.delete(k);
        return;
      }
      case 'all':
        this.dropAll();
        this.preparePolicies();
    }
  }

  /** Drops every route (a setting that changes them all, such as the CA trust, changed). */
  invalidateAll(): void {
    this.dropAll();
  }

  private dropAll(): void {
    this.routes.clear();
    this.trust.invalidate();
  }

  /** A policy finished compiling: the routes of the classes that use it swap to it. */
  private policySettled(source: string): void {
    for (const cls of this.store.allClasses()) {
      const uses = cls.spec.proxy?.authExtractor?.rego === source || (cls.spec.auth?.types ?? []).some((t) => t.generator?.rego === source);
      if (uses) for (const k of this.store.connectorsOfClass(cls.metadata.name)) this.routes.delete(k);
    }
  }

  private build(key: ObjectKey, c: Connector): Route {
    this.builds++;
    // What both sources refuse (src/sources/validate.ts), and classes without spec.proxy: 502.
    const refused = validateConnector(c, this.store.connectorClass(c.spec.connectorClassName));
    if (refused !== undefined) return unservedRoute(key, c, this.store.connectorClass(c.spec.connectorClassName), refused);
    const upstream = upstreamOf(new URL(c.spec.address));
    const trust = this.trust.forConnector(c);
    const base = {
      key, upstream, trust,
      namespace: c.metadata.namespace,
      name: c.metadata.name,
      className: c.spec.connectorClassName,
      forwardTargets: forwardTargetsOf(c, upstream),
    };
    const cls = this.store.connectorClass(c.spec.connectorClassName);
    if (cls === undefined) {
      return {
        ...base, label: labelOf(key, base.className, ''), resolver: 'host', injector: undefined, authType: '', profile: DEFAULT_PROFILE,
        broken: `ConnectorClass "${c.spec.connectorClassName}" not found`,
      };
    }
    const { authType, injector, broken } = this.credentials(c, cls, trust, upstream);
    const extractorSource = cls.spec.proxy?.authExtractor?.rego;
    const extractor = extractorSource === undefined ? undefined : this.policy(extractorSource, cls.metadata.name, '', 'authExtractor.rego');
    return {
      ...base, injector,
      label: labelOf(key, base.className, authType?.name ?? ''),
      resolver: resolverOf(cls),
      authType: authType?.name ?? '',
      profile: profileOf(authType),
      broken: broken ?? (extractorSource !== undefined && extractor === undefined ? 'spec.proxy.authExtractor needs the OPA compiler, which is not configured' : undefined),
      extractor: extractor && new TokenExtractor(extractor),
    };
  }

  /**
   * The handle of a class's policy. While an edited policy compiles, the last compiled
   * one keeps serving; when the compile settles, the class's routes are rebuilt.
   */
  private policy(source: string, className: string, authType: string, fileName: string): PolicyHandle | undefined {
    const store = this.options.policies;
    if (store === undefined) return undefined;
    const what = authType ? `ConnectorClass ${className}, auth type ${authType}` : `ConnectorClass ${className}, spec.proxy.authExtractor`;
    const h = store.get(source, fileName, what);
    const key = `${className}\u0000${authType}`;
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
      live.add(`${className}\u0000${authType}`);
      this.policy(source, className, authType, fileName);
    };
    for (const cls of this.store.allClasses()) {
      const name = cls.metadata.name;
      for (const t of cls.spec.auth?.types ?? []) if (t.generator?.rego !== undefined) prepare(t.generator.rego, name, t.name, 'generator.rego');
      const extractor = cls.spec.proxy?.authExtractor?.rego;
      if (extractor !== undefined) prepare(extractor, name, '', 'authExtractor.rego');
    }
    for (const key of this.lastGood.keys()) if (!live.has(key)) this.lastGood.delete(key);
    store.retain(used);
  }

  private credentials(c: Connector, cls: ConnectorClass, trust: UpstreamTrust, upstream: Upstream): { authType?: AuthTypeSpec; injector?: Injector; broken?: string } {
    const where = `ConnectorClass "${cls.metadata.name}"`;
    const auth = resolveAuth(c, cls, (ns, name) => this.store.secret(ns, name), this.options.allowCrossNamespaceSecrets === true);
    switch (auth.kind) {
      case 'none': return {};
      case 'unknown-type': return { broken: `${where} has no auth type "${auth.wanted}" (spec.auth.name)` };
      case 'ambiguous': return { broken: `${where} has several auth types: set spec.auth.name to one of ${auth.names.join(', ')}` };
      case 'no-secret':
        // A registry token flow runs anonymously without a Secret (public repositories need a token too).
        return auth.authType.optional
          ? { authType: auth.authType, injector: anonymousInjector(auth.authType, this.context(c, cls, trust, upstream, auth.authType, `${c.metadata.namespace}/${c.metadata.name}`, '')) }
          : { authType: auth.authType, broken: `auth type "${auth.authType.name}" of ${where} requires a Secret: set spec.auth.secretRef` };
      case 'secret-not-found': return { authType: auth.authType, broken: `Secret ${auth.secretKey} not found (spec.auth.secretRef)` };
      case 'cross-namespace': return { authType: auth.authType, broken: crossNamespaceMessage(auth.secretKey) };
      case 'missing-keys':
        return { authType: auth.authType, broken: `Secret ${auth.secretKey} lacks key(s) ${auth.missing.join(', ')} required by auth type "${auth.authType.name}" of ${where}` };
      case 'ok': break;
    }
    const { authType, data, secretKey } = auth;
    try {
      return { authType, injector: buildInjector(authType, data, this.context(c, cls, trust, upstream, authType, secretKey, versionOf(data))) };
    } catch (err) {
      return { authType, broken: `${where}, auth type "${authType.name}": ${(err as Error).message}` };
    }
  }

  private context(c: Connector, cls: ConnectorClass, trust: UpstreamTrust, upstream: Upstream, authType: AuthTypeSpec, owner: string, version: string): InjectorContext {
    const generator = authType.generator?.rego;
    const dispatcher = this.options.dispatcher;
    return {
      connector: c,
      connectorClass: cls,
      origin: upstream.origin,
      basePath: upstream.basePath,
      dispatcherFor: (origin) => {
        if (dispatcher === undefined) throw new Error('no upstream pools configured');
        return dispatcher(origin, trust);
      },
      trustKey: trust.key,
      maxBodyBytes: this.options.maxBodyBytes,
      policy: generator === undefined ? undefined : this.policy(generator, cls.metadata.name, authType.name, 'generator.rego'),
      sources: this.sources,
      owner,
      version,
    };
  }
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

/** The registry token flow makes the tool an OCI registry: the client meets the proxy as its registry. */
function profileOf(authType: AuthTypeSpec | undefined): ResponseProfile {
  return authType?.secretType === SecretTypes.registryToken && authType.generator === undefined ? REGISTRY_PROFILE : DEFAULT_PROFILE;
}

function labelOf(key: ObjectKey, className: string, authType: string): string {
  return `connector ${key} (class "${className}"${authType ? `, auth type "${authType}"` : ''})`;
}

/** A Secret version: a digest of its values (manifests have no resourceVersion). */
function versionOf(data: ReadonlyMap<string, string>): string {
  const h = createHash('sha256');
  for (const k of [...data.keys()].sort()) h.update(k).update('\u0000').update(data.get(k)!).update('\u0000');
  return h.digest('base64');
}

/** A Connector the validator refuses: every request gets 502 with `broken`, nothing is injected. */
function unservedRoute(key: ObjectKey, c: Connector, cls: ConnectorClass | undefined, broken: string): Route {
  let upstream: Upstream = { origin: '', basePath: '', host: '' };
  try { upstream = upstreamOf(new URL(c.spec.address)); } catch { /* the invalid field may be the address */ }
  const className = c.spec.connectorClassName;
  return {
    key, namespace: c.metadata.namespace, name: c.metadata.name, className, label: labelOf(key, className, ''),
    resolver: cls ? resolverOf(cls) : 'host', upstream, forwardTargets: upstream.origin ? [upstream] : [],
    trust: SYSTEM_TRUST, injector: undefined, authType: '', profile: DEFAULT_PROFILE, broken,
  };
}
