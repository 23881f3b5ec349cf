// Admission: from a request to `Admitted` (whose credentials go where, for whom) or a
// `Refusal` (status and message). Every way in decides here, and an auth decision becomes a
// status in one place (`refusalFor`). Cached decisions answer synchronously; the few that
// wait for the API server go through the one `MaybePromise` helper.
import type { IncomingMessage } from 'node:http';
import type { AuthDecision, ClientAuthenticator, ConnectorRef } from '../auth/authenticator';
import { WWW_AUTHENTICATE, tokenFromAuthorization } from '../auth/client-token';
import type { Extracted } from '../auth/extractor';
import type { ResponseProfile } from '../http/profile';
import { FORWARD_PROFILE } from '../http/profile';
import type { Route } from '../routes/route';
import type { UpstreamTrust } from '../tls/ca-trust';
import type { RouteTable } from '../routes/route-table';
import { mapMaybe, type MaybePromise } from '../util/maybe';
import { PROXY_AUTHENTICATE, parseAuthority, parseProxyAuthorization, parseTarget, printable, sameAuthority, targetMatches, type ForwardTarget, type ProxyCredentials } from './forward-proxy';
import { hasDotSegment, type Resolved, type Resolver } from './resolve';

export interface Admitted {
  readonly admitted: true;
  /** Whose credentials go upstream; undefined for a forward-proxy target no listed Connector matches. */
  readonly route: Route | undefined;
  /** Where the request goes: the Connector address (reverse) or the client's target (forward). */
  readonly target: ForwardTarget;
  /** Reverse mode: the path prefix the client used (`''` in host form), for rewriting. Forward mode: undefined. */
  readonly publicPrefix: string | undefined;
  /** How the response goes back (Location, challenge, bodies). */
  readonly profile: ResponseProfile;
  readonly user: string;
  /** Headers that carried the client's token (found by the class's auth extractor). */
  readonly dropHeaders: ReadonlySet<string> | undefined;
  /**
   * Without a route: the CA trust of a listed Connector of the same origin (a path outside its
   * address prefix goes without credentials, but to the same tool, verified the same way).
   */
  readonly trust?: UpstreamTrust;
}

export interface Refusal {
  readonly admitted: false;
  readonly status: number;
  /** One plain sentence: names, never a credential. */
  readonly message: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** The route the refusal concerns, once it was found (its metrics series). */
  readonly route?: Route;
  /** Who asked for what, for the access log. */
  readonly connector?: string;
  readonly user?: string;
}

export type Admission = Admitted | Refusal;

/** What a CONNECT established: the authority, and the credentials requests inside it use. */
export interface TunnelContext {
  /** `host:port` as the client asked for it (normalised: lower-case host). */
  readonly authority: string;
  readonly host: string;
  readonly port: number;
  /** `https://host[:port]`: the origin requests inside the tunnel go to. */
  readonly origin: string;
  readonly credentials: ProxyCredentials;
  readonly user: string;
}

export interface ConnectAdmission {
  readonly admitted: true;
  /** True: terminate TLS and serve the requests inside (a Connector origin); false: relay bytes. */
  readonly intercept: boolean;
  readonly user: string;
  readonly tunnel: TunnelContext;
}

/** How a client is asked for its token: `WWW-Authenticate` (reverse) or `Proxy-Authenticate` (forward, 407). */
export type ChallengeScheme = 'www' | 'proxy';

const CHALLENGE = Object.freeze({ 'www-authenticate': WWW_AUTHENTICATE });
const PROXY_CHALLENGE = Object.freeze({ 'proxy-authenticate': PROXY_AUTHENTICATE });
const RETRY_SOON = Object.freeze({ 'retry-after': '1' });

export function refusal(status: number, message: string, more?: Omit<Refusal, 'admitted' | 'status' | 'message'>): Refusal {
  return { admitted: false, status, message, ...more };
}

/** The status of a negative auth decision: 401/407 with a challenge, 403, or 503 (never an open door). */
export function refusalFor(d: AuthDecision & { allowed: false }, scheme: ChallengeScheme, connector?: string): Refusal {
  const who = { connector, user: d.user };
  if (d.status === 401) {
    return scheme === 'proxy'
      ? refusal(407, `token rejected: ${d.reason}`, { headers: PROXY_CHALLENGE, ...who })
      : refusal(401, `token rejected: ${d.reason}`, { headers: CHALLENGE, ...who });
  }
  if (d.status === 403) return refusal(403, `forbidden: ${d.reason}${connector === undefined ? '' : ` (connector ${connector})`}`, who);
  return refusal(503, `cannot check the token now: ${d.reason}`, { headers: RETRY_SOON, ...who });
}

/** No token where one was required. */
export const NO_TOKEN: Refusal = Object.freeze(refusal(401, 'authentication required: send your ServiceAccount token as the Basic password or a Bearer token', { headers: CHALLENGE }));
/** The authenticator failed to answer (a rejected promise): never an open door. */
const CHECK_FAILED: Refusal = Object.freeze(refusal(503, 'cannot check the token now; try again', { headers: RETRY_SOON }));
const READ_FAILED: Refusal = Object.freeze(refusal(503, 'cannot read the token now; try again', { headers: RETRY_SOON }));
const checkFailed = (): Refusal => CHECK_FAILED;
const DOT_SEGMENTS: Refusal = Object.freeze(refusal(400, 'the request path contains "." or ".." segments; send a normalized path'));

export class Admissions {
  constructor(
    private readonly resolver: Resolver,
    private readonly routes: RouteTable,
    private readonly auth: ClientAuthenticator,
  ) {}

  /**
   * Reverse mode (host and path form): resolve the Connector, take the token (Basic
   * password, Bearer, or where the class's auth extractor finds it), decide, and check
   * the Connector can be served in this form.
   */
  reverse(req: IncomingMessage): MaybePromise<Admission> {
    const resolved = this.resolver.resolve(req.headers.host, req.url ?? '/');
    if ('error' in resolved) return refusal(resolved.status, resolved.error);
    const route = this.routes.route(resolved.namespace, resolved.name);
    const extractor = route?.extractor;
    if (extractor === undefined) return this.decide(tokenFromAuthorization(req.headers.authorization), undefined, resolved, route);
    return mapMaybe(extractor.extract(req), (e: Extracted): MaybePromise<Admission> => {
      if ('error' in e) return refusal(502, `connector ${route!.key} (class "${route!.className}"): ${e.error}`, { route });
      return this.decide(e.token ?? tokenFromAuthorization(req.headers.authorization), e.dropHeaders, resolved, route);
    }, () => READ_FAILED);
  }

  private decide(token: string | undefined, dropHeaders: ReadonlySet<string> | undefined, resolved: Resolved, route: Route | undefined): MaybePromise<Admission> {
    if (token === undefined) return NO_TOKEN;
    return mapMaybe(this.auth.check(token, resolved), (d) => this.admitReverse(d, resolved, route, dropHeaders), checkFailed);
  }

  private admitReverse(d: AuthDecision, resolved: Resolved, route: Route | undefined, dropHeaders: ReadonlySet<string> | undefined): Admission {
    const id = `${resolved.namespace}/${resolved.name}`;
    if (!d.allowed) return refusalFor(d, 'www', id);
    const who = { connector: id, user: d.user };
    if (route === undefined) {
      // Before the first sync "not found" may be false: the client should retry, not give up.
      if (!this.routes.ready) return refusal(503, 'connectors are not loaded yet; try again', { headers: RETRY_SOON, ...who });
      return refusal(404, `connector ${id} not found`, who);
    }
    if (route.resolver !== resolved.form) {
      const where = route.resolver === 'host' ? `http://${this.resolver.hostFor(route.namespace, route.name)}/` : `/namespaces/${route.namespace}/connectors/${route.name}/`;
      return refusal(404, `connector ${id} uses the ${route.resolver} resolver of its ConnectorClass: call it at ${where}`, { route, ...who });
    }
    if (route.broken !== undefined) return refusal(502, `${route.label} cannot be used: ${route.broken}`, { route, ...who });
    const u = route.upstream;
    return {
      admitted: true, route, user: d.user, dropHeaders,
      target: { origin: u.origin, host: u.host, path: u.basePath + resolved.rest },
      publicPrefix: resolved.publicPrefix,
      profile: resolved.profile ?? route.profile,
    };
  }

  /**
   * Forward proxy mode: an absolute-form request. The token comes from Proxy-Authorization
   * and must be allowed on the listed Connector whose address the target matches (then its
   * credentials are added), or, for a target none matches, on one of the listed Connectors
   * (then the request goes without credentials): never an open relay.
   */
  forward(req: IncomingMessage): MaybePromise<Admission> {
    const target = parseTarget(req.url!);
    if ('error' in target) return refusal(400, target.error);
    if (hasDotSegment(target.path)) return DOT_SEGMENTS;
    const creds = parseProxyAuthorization(req.headers['proxy-authorization']);
    if ('error' in creds) return refusal(407, creds.error, { headers: PROXY_CHALLENGE });
    return this.toTarget(target, creds, 'proxy');
  }

  /**
   * A request inside an intercepted CONNECT tunnel: the tunnel's origin, the credentials the
   * CONNECT carried; `Host` must name the tunnel's authority (421 otherwise), so a tunnel to
   * one host never carries credentials to another.
   */
  intercepted(req: IncomingMessage, tunnel: TunnelContext): MaybePromise<Admission> {
    const host = req.headers.host;
    if (host === undefined || !sameAuthority(host, tunnel.authority)) {
      return refusal(421, `this TLS connection was opened (CONNECT) for ${tunnel.authority}, not for ${host === undefined ? 'a request without Host' : printable(host)}: open another connection`, { user: tunnel.user });
    }
    let path = req.url ?? '/';
    if (path.charCodeAt(0) !== 47 /* / */) {
      // Absolute form inside a tunnel: allowed for the tunnel's own origin only.
      const t = parseTarget(path);
      if ('error' in t || t.origin !== tunnel.origin) return refusal(421, `this TLS connection was opened (CONNECT) for ${tunnel.authority} only`, { user: tunnel.user });
      path = t.path;
    }
    if (hasDotSegment(path)) return DOT_SEGMENTS;
    // The token was checked at CONNECT (and is again for a Connector's credentials): a 401 here could not be answered.
    // The tool's Host as the origin writes it: `host` for 443 (what the client sent), not `host:443`.
    return this.toTarget({ origin: tunnel.origin, host: tunnel.origin.slice('https://'.length), path }, tunnel.credentials, 'tunnel');
  }

  /**
   * Admission of a forward-proxy target (absolute form, or inside a tunnel): the listed
   * Connector whose address the target is under brings its credentials; other targets go
   * without any, for a token allowed on at least one listed Connector.
   */
  private toTarget(target: ForwardTarget, creds: ProxyCredentials, scheme: 'proxy' | 'tunnel'): MaybePromise<Admission> {
    let matched: Route | undefined;
    let sameOrigin: Route | undefined;
    for (const ref of creds.connectors) {
      const r = this.routes.route(ref.namespace, ref.name);
      if (r === undefined) continue;
      if (r.forwardTargets.some((p) => targetMatches(p, target))) { matched = r; break; }
      if (sameOrigin === undefined && r.forwardTargets.some((p) => p.origin === target.origin)) sameOrigin = r;
    }
    const refs = matched === undefined ? creds.connectors : [matched];
    const admitted = (d: AuthDecision & { allowed: true }): Admission => {
      if (matched === undefined) return { admitted: true, route: undefined, target, publicPrefix: undefined, profile: FORWARD_PROFILE, user: d.user, dropHeaders: undefined, trust: sameOrigin?.trust };
      if (matched.broken !== undefined) return refusal(502, `${matched.label} cannot be used: ${matched.broken}`, { route: matched, connector: matched.key, user: d.user });
      return { admitted: true, route: matched, target, publicPrefix: undefined, profile: FORWARD_PROFILE, user: d.user, dropHeaders: undefined };
    };
    return mapMaybe(this.firstAllowed(creds.token, refs), ({ decision: d, ref }): Admission => {
      if (d.allowed) return admitted(d);
      // Inside a tunnel no proxy challenge can be answered: a rejected token is 403.
      if (scheme === 'tunnel' && d.status === 401) return refusal(403, `token rejected: ${d.reason}`, { connector: `${ref.namespace}/${ref.name}` });
      return refusalFor(d, 'proxy', `${ref.namespace}/${ref.name}`);
    }, checkFailed);
  }

  /**
   * The first of `refs` that allows `token`, tried in order; else the last refusal and the
   * Connector it was for. A 503 ends the search: the check failed, not the token.
   */
  private firstAllowed(token: string, refs: readonly ConnectorRef[], i = 0): MaybePromise<{ readonly decision: AuthDecision; readonly ref: ConnectorRef }> {
    const ref = refs[i]!;
    return mapMaybe(this.auth.check(token, ref), (d) =>
      d.allowed || i + 1 >= refs.length || d.status === 503 ? { decision: d, ref } : this.firstAllowed(token, refs, i + 1));
  }

  /**
   * `CONNECT host:port` (https_proxy): who may open a tunnel, and whether the proxy
   * intercepts it (the authority is the origin of a listed Connector's https address or URL
   * address extension) or only relays bytes (any other target). Either way the token must
   * be allowed on at least one listed Connector: never an open relay.
   */
  connect(req: IncomingMessage): MaybePromise<ConnectAdmission | Refusal> {
    const authority = parseAuthority(req.url ?? '');
    if (authority === undefined) return refusal(400, 'CONNECT needs a host:port target');
    const creds = parseProxyAuthorization(req.headers['proxy-authorization']);
    if ('error' in creds) return refusal(407, creds.error.replace('http_proxy=', 'https_proxy='), { headers: PROXY_CHALLENGE });
    const origin = authority.port === 443 ? `https://${authority.host}` : `https://${authority.host}:${authority.port}`;
    let intercept: Route | undefined;
    for (const ref of creds.connectors) {
      const r = this.routes.route(ref.namespace, ref.name);
      if (r !== undefined && r.forwardTargets.some((p) => p.origin === origin)) { intercept = r; break; }
    }
    const refs = intercept === undefined ? creds.connectors : [intercept, ...creds.connectors.filter((c) => c.namespace !== intercept!.namespace || c.name !== intercept!.name)];
    return mapMaybe(this.firstAllowed(creds.token, refs), ({ decision: d, ref }): ConnectAdmission | Refusal => {
      if (!d.allowed) return refusalFor(d, 'proxy', `${ref.namespace}/${ref.name}`);
      return {
        admitted: true, intercept: intercept !== undefined, user: d.user,
        tunnel: { authority: authority.text, host: authority.host, port: authority.port, origin, credentials: creds, user: d.user },
      };
    }, checkFailed);
  }

  /** Whether `token` may use Connector `ref` (the configurations endpoint). */
  connector(token: string | undefined, ref: ConnectorRef): MaybePromise<Refusal | { readonly admitted: true; readonly user: string }> {
    if (token === undefined) return NO_TOKEN;
    const id = `${ref.namespace}/${ref.name}`;
    return mapMaybe(this.auth.check(token, ref), (d) => d.allowed ? { admitted: true as const, user: d.user } : refusalFor(d, 'www', id), checkFailed);
  }

  /** Whether `token` is valid at all, for no Connector in particular (the registry's `/v2/` check). */
  token(token: string | undefined): MaybePromise<Refusal | { readonly admitted: true; readonly user: string }> {
    if (token === undefined) return NO_TOKEN;
    return mapMaybe(this.auth.authenticate(token), (d) => d.allowed ? { admitted: true as const, user: d.user } : refusalFor(d, 'www'), checkFailed);
  }
}
