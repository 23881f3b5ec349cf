// The gateway's admission: from `/connectors/v1alpha1/<ns>/<name>/path/<api-path>` to where
// the request goes (the tool with the Connector's credentials, or the class's API service
// with the X-Plugin headers) or a refusal. Order: the path and method (405 for writes unless
// enable-connector-apis-write-passthrough), the Bearer token, `get` on the Connector (plus,
// with enable-connector-apis-permissions, the method's verb on `connectors/apis/<class>` or
// on `connectors/apis/<class><template>`), then the Connector, its class and the address.
// The token is checked before anything is said about the Connector.
import type { IncomingMessage } from 'node:http';
import type { ApiPermission, ApiVerb, AuthDecision, ClientAuthenticator } from '../auth/authenticator';
import type { Route, Upstream } from '../routes/route';
import { upstreamOf } from '../routes/route';
import type { RouteTable } from '../routes/route-table';
import { refusal, refusalFor, type Admission, type Admitted, type Refusal } from '../server/admission';
import { hasDotSegment } from '../server/resolve';
import type { ObjectStore } from '../sources/store';
import { connectorProblem } from '../sources/validate';
import type { Connector, ConnectorClass } from '../types';
import { mapMaybe, type MaybePromise } from '../util/maybe';
import type { ClassApis } from './class-apis';
import { APIS_PERMISSIONS, APIS_WRITE_PASSTHROUGH, type GatewayFlags } from './flags';
import type { OperationKey, PathMatch } from './openapi';
import { parseGatewayPath, type GatewayPath } from './path';
import { authSecretOf, pluginHeaders } from '../http/plugin-headers';

export interface GatewayDeps {
  readonly store: ObjectStore;
  readonly routes: RouteTable;
  readonly auth: ClientAuthenticator;
  /** Read on every request: a flag may change while the proxy runs. */
  readonly flags: GatewayFlags;
  readonly classApis: ClassApis;
}

/** Admitted to the class's API service: the X-Plugin headers its Rewrite adds. */
export interface GatewayAdmitted extends Admitted {
  readonly pluginHeaders: readonly string[];
}

export function isServiceAdmission(a: Admitted): a is GatewayAdmitted {
  return (a as Partial<GatewayAdmitted>).pluginHeaders !== undefined;
}

interface Method {
  readonly verb: ApiVerb;
  /** The OpenAPI operation it is routed by: HEAD and OPTIONS by `get` (connector_api.mdx). */
  readonly operation: OperationKey;
  readonly write: boolean;
}

const METHODS: ReadonlyMap<string, Method> = new Map([
  ['GET', { verb: 'get', operation: 'get', write: false }],
  ['HEAD', { verb: 'get', operation: 'get', write: false }],
  ['OPTIONS', { verb: 'get', operation: 'get', write: false }],
  ['POST', { verb: 'create', operation: 'post', write: true }],
  ['PUT', { verb: 'update', operation: 'put', write: true }],
  ['DELETE', { verb: 'delete', operation: 'delete', write: true }],
  ['PATCH', { verb: 'patch', operation: 'patch', write: true }],
]);

const READ_ONLY = Object.freeze({ allow: 'GET, HEAD, OPTIONS' });
const READ_WRITE = Object.freeze({ allow: 'GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE' });
const BEARER_CHALLENGE = Object.freeze({ 'www-authenticate': 'Bearer realm="connectors-proxy"' });
const RETRY_SOON = Object.freeze({ 'retry-after': '1' });
const NO_BEARER: Refusal = Object.freeze(refusal(401, 'authentication required: the Connectors API takes a Kubernetes token as "Authorization: Bearer <token>"', { headers: BEARER_CHALLENGE }));
const CHECK_FAILED: Refusal = Object.freeze(refusal(503, 'cannot check the token now; try again', { headers: RETRY_SOON }));
const checkFailed = (): Refusal => CHECK_FAILED;
const URL_SCHEME = /^[a-z][a-z0-9+.-]*:/i;

/** Per route (rebuilt when the Connector, its class or its Secret change): what the gateway derives from it. */
interface RouteExtras {
  /** The route toward the class's API service: no injector, the same metrics series. */
  service?: Route;
  plugin?: readonly string[];
  /** `x-openapi-address` values resolved against the Connector: an Upstream or why not. */
  readonly addresses: Map<string, Upstream | string>;
}

export class GatewayAdmission {
  private readonly extras = new WeakMap<Route, RouteExtras>();

  constructor(private readonly deps: GatewayDeps) {}

  admit(req: IncomingMessage): MaybePromise<Admission> {
    const url = req.url ?? '/';
    const p = parseGatewayPath(url);
    if ('error' in p) return refusal(404, p.error);
    if (hasDotSegment(url)) return refusal(400, 'the API path contains "." or ".." segments; send a normalized path');
    const method = METHODS.get(req.method ?? '');
    if (method === undefined) return refusal(405, `the Connectors API does not serve ${req.method}`, { headers: this.writable() ? READ_WRITE : READ_ONLY });
    if (method.write && !this.writable()) {
      return refusal(405, `${req.method} through the Connectors API needs the ${APIS_WRITE_PASSTHROUGH} feature flag; only GET, HEAD and OPTIONS are served`, { headers: READ_ONLY });
    }
    const token = bearerToken(req.headers.authorization);
    if (token === undefined) return NO_BEARER;
    const { store } = this.deps;
    const c = store.connector(p.namespace, p.name);
    const cls = c && store.connectorClass(c.spec.connectorClassName);
    const api = cls && this.deps.classApis.of(cls);
    const match = api?.matcher?.match(p.apiPath);
    // Without the Connector there is no class to ask about: `get` alone decides 401/403, then 404.
    const permission: ApiPermission | undefined = c !== undefined && this.deps.flags.enabled(APIS_PERMISSIONS)
      ? { verb: method.verb, className: c.spec.connectorClassName, template: match?.template }
      : undefined;
    return mapMaybe(this.deps.auth.checkApi(token, p, permission), (d) => this.decided(d, p, method, c, cls, match), checkFailed);
  }

  private writable(): boolean {
    return this.deps.flags.enabled(APIS_WRITE_PASSTHROUGH);
  }

  private decided(d: AuthDecision, p: GatewayPath, method: Method, c: Connector | undefined, cls: ConnectorClass | undefined, match: PathMatch | undefined): Admission {
    const id = `${p.namespace}/${p.name}`;
    if (!d.allowed) {
      const r = refusalFor(d, 'www', id);
      return r.status === 401 ? { ...r, headers: BEARER_CHALLENGE } : r;
    }
    const who = { connector: id, user: d.user };
    const route = c === undefined ? undefined : this.deps.routes.route(p.namespace, p.name);
    if (c === undefined || route === undefined) {
      if (!this.deps.routes.ready) return refusal(503, 'connectors are not loaded yet; try again', { headers: RETRY_SOON, ...who });
      return refusal(404, `connector ${id} not found`, who);
    }
    const api = cls && this.deps.classApis.of(cls);
    // No operation for this path and method: the tool, at spec.address (the docs' default).
    const op = match?.operations.get(method.operation);
    // A class without spec.proxy has no proxy to the tool, but its own API still serves
    // (connector_api.mdx: "or the ConnectorClass does not provide Proxy Service capabilities").
    const classApiOnly = op?.provider === 'api' && cls !== undefined && cls.spec.proxy == null && connectorProblem(c, cls) === undefined;
    if (route.broken !== undefined && !classApiOnly) return refusal(502, `${route.label} cannot be used: ${route.broken}`, { route, ...who });
    if (cls === undefined || api === undefined) return refusal(502, `${route.label} cannot be used: ConnectorClass "${c.spec.connectorClassName}" not found`, { route, ...who });
    if (api.problem !== undefined) return refusal(502, `ConnectorClass "${cls.metadata.name}": ${api.problem}`, { route, ...who });
    const extras = this.extrasOf(route);
    if (op?.provider === 'api') {
      if (typeof api.service === 'string') return refusal(400, api.service, { route, ...who });
      const service = api.service;
      extras.service ??= { ...route, upstream: service, injector: undefined, forwardTargets: [service], broken: undefined };
      extras.plugin ??= pluginHeaders(c, authSecretOf(c, (ns, name) => this.deps.store.secret(ns, name)));
      const admitted: GatewayAdmitted = {
        ...this.target(extras.service, service, p, d.user),
        pluginHeaders: extras.plugin,
      };
      return admitted;
    }
    const upstream = op?.address === undefined ? route.upstream : this.address(extras, op.address, c, cls);
    if (typeof upstream === 'string') return refusal(400, upstream, { route, ...who });
    return this.target(route, upstream, p, d.user);
  }

  private target(route: Route, u: Upstream, p: GatewayPath, user: string): Admitted {
    return {
      admitted: true, route, user, dropHeaders: undefined,
      target: { origin: u.origin, host: u.host, path: u.basePath + p.apiPath + p.query },
      // Responses come back unchanged (connector_api.mdx): no Location or body rewriting.
      publicPrefix: undefined,
      profile: route.profile,
    };
  }

  private extrasOf(route: Route): RouteExtras {
    let e = this.extras.get(route);
    if (e === undefined) this.extras.set(route, e = { addresses: new Map() });
    return e;
  }

  /** `x-openapi-address`: an http(s) URL, or the name of one of the Connector's address extensions. */
  private address(extras: RouteExtras, selector: string, c: Connector, cls: ConnectorClass): Upstream | string {
    let u = extras.addresses.get(selector);
    if (u === undefined) extras.addresses.set(selector, u = resolveAddress(selector, c, cls));
    return u;
  }
}

function resolveAddress(selector: string, c: Connector, cls: ConnectorClass): Upstream | string {
  const id = `${c.metadata.namespace}/${c.metadata.name}`;
  if (URL_SCHEME.test(selector)) {
    return httpUpstream(selector) ?? `x-openapi-address ${JSON.stringify(selector)} of ConnectorClass "${cls.metadata.name}" is not a valid http(s) URL`;
  }
  // The Connector's value, else the class's default for that extension.
  const value = c.spec.addressExtensions?.find((e) => e.name === selector)?.value
    ?? cls.spec.addressExtensions?.find((e) => e.name === selector)?.default;
  if (value === undefined || value === '') {
    return `connector ${id} has no address extension "${selector}" (spec.addressExtensions), which x-openapi-address of ConnectorClass "${cls.metadata.name}" names`;
  }
  return httpUpstream(value) ?? `address extension "${selector}" of connector ${id} is not an http(s) URL`;
}

function httpUpstream(value: string): Upstream | undefined {
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.host !== '' ? upstreamOf(u) : undefined;
  } catch {
    return undefined;
  }
}

/** The token of `Authorization: Bearer <token>`; the gateway takes no other form (connector_api.mdx). */
function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined || header.length < 8 || header.charCodeAt(6) !== 32 || header.slice(0, 6).toLowerCase() !== 'bearer') return undefined;
  const token = header.slice(7).trim();
  return token === '' ? undefined : token;
}
