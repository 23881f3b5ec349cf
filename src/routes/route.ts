// A Connector as the request path needs it, prebuilt: where it points, whose credentials go
// there and how, and how its responses come back. Rebuilt only when the Connector, its
// class, its Secrets or its policies change (src/routes/route-table.ts).
import type { ObjectKey } from '../types';
import type { Injector } from '../inject';
import type { TokenExtractor } from '../auth/extractor';
import type { ResponseProfile } from '../http/profile';
import type { UpstreamTrust } from '../tls/ca-trust';

export type ResolverKind = 'host' | 'path';

/** An origin and path prefix a Connector's credentials may go to. */
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
  /** `connector ns/name (class "c", auth type "t")`: how error bodies name the Connector. */
  readonly label: string;
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
  /** How responses of this tool reach the client (Location, challenge, bodies). */
  readonly profile: ResponseProfile;
}

export function upstreamOf(u: URL): Upstream {
  const basePath = u.pathname.endsWith('/') ? u.pathname.slice(0, -1) : u.pathname;
  return { origin: u.origin, basePath, host: u.host };
}

/**
 * True when `target` (origin and path) is under `place`: the same origin and the place's
 * path prefix ending at a segment boundary (`/gitlab` matches `/gitlab/x`, never `/gitlab-evil`).
 */
export function isUnder(place: Upstream, origin: string, path: string): boolean {
  if (place.origin !== origin) return false;
  const prefix = place.basePath;
  if (prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  const next = path.charCodeAt(prefix.length);
  return Number.isNaN(next) || next === 47 /* / */ || next === 63 /* ? */;
}
