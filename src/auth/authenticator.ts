// The seam between the proxy and whoever decides if a client token may use a Connector:
// the static token file here, TokenReview + SubjectAccessReview in Kubernetes mode.

export type AuthDecision =
  | { readonly allowed: true; readonly user: string }
  | { readonly allowed: false; readonly status: 401 | 403 | 503; readonly reason: string; readonly user?: string };

export interface ConnectorRef {
  readonly namespace: string;
  readonly name: string;
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
}

export const UNAUTHENTICATED: AuthDecision = Object.freeze({
  allowed: false, status: 401, reason: 'missing or invalid token',
});
