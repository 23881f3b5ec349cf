// The seam between the proxy and whoever decides if a client token may use a Connector:
// the static token file here, TokenReview + SubjectAccessReview in Kubernetes mode.

export type AuthDecision =
  | { readonly allowed: true; readonly user: string }
  | { readonly allowed: false; readonly status: 401 | 403 | 503; readonly reason: string; readonly user?: string };

export interface ConnectorRef {
  readonly namespace: string;
  readonly name: string;
}

/** A Kubernetes verb the Connectors API gateway maps an HTTP method to (docs: connector_api.mdx). */
export type ApiVerb = 'get' | 'create' | 'update' | 'delete' | 'patch';

/**
 * What the Connectors API gateway asks beyond `get` on the Connector when
 * enable-connector-apis-permissions is on: `verb` on `connectors/apis/<className>` (any path
 * of the class), or else on `connectors/apis/<className><template>` (one OpenAPI path).
 */
export interface ApiPermission {
  readonly verb: ApiVerb;
  readonly className: string;
  /** The `spec.api.openapi` path template the request matched (`/api/v4/projects/{id}`), if any. */
  readonly template?: string;
}

export interface ClientAuthenticator {
  /**
   * Decides whether `token` may use the Connector `ref`. Answers synchronously when it
   * can (a cache hit, a static table) so the request path awaits nothing it need not.
   */
  check(token: string, ref: ConnectorRef): AuthDecision | Promise<AuthDecision>;
  /**
   * Decides whether `token` is a valid token at all, for no Connector in particular: the
   * OCI `/v2/` version check a registry client makes before it names a repository.
   */
  authenticate(token: string): AuthDecision | Promise<AuthDecision>;
  /**
   * The Connectors API gateway: whether `token` may `get` the Connector `ref` and, when
   * `permission` is given, use its class's API as it says. Unlike `check`, never asks for
   * `connectors/proxy`: the API and the proxy are separate capabilities (permission_model.mdx).
   */
  checkApi(token: string, ref: ConnectorRef, permission: ApiPermission | undefined): AuthDecision | Promise<AuthDecision>;
}

/** The resources `permission` names, class first: `connectors/apis/<class>[, connectors/apis/<class><template>]`. */
export function apiResources(permission: ApiPermission): readonly string[] {
  const cls = `connectors/apis/${permission.className}`;
  return permission.template === undefined ? [cls] : [cls, cls + permission.template];
}

export const UNAUTHENTICATED: AuthDecision = Object.freeze({
  allowed: false, status: 401, reason: 'missing or invalid token',
});
