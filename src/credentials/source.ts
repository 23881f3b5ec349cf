// Where a Connector's credentials come from, apart from where they are placed (src/inject/):
// the Secret itself, an OAuth2 token endpoint, an OCI registry's token service. A source
// hands out a credential for a scope and forgets one the tool refused; injectors only place.
import type { MaybePromise } from '../util/maybe';

/** A credential as it goes on the wire (`Basic ...`, `Bearer ...`), or undefined for none. */
export type Credential = string | undefined;

export interface CredentialSource<Scope> {
  /** `static`, `oauth2`, `registry-token`: shown in logs and errors, never the credential. */
  readonly kind: string;
  /** The credential for `scope`: synchronous when it is at hand, else fetched (once for all who wait). */
  get(scope: Scope): MaybePromise<Credential>;
  /**
   * The tool refused `used` (401, with its `WWW-Authenticate` challenge): drop it, unless a
   * newer one replaced it already, and learn what the challenge says (a realm, a scope).
   */
  invalidate(used: Credential, challenge: string | undefined): void;
}

/** Why credentials could not be had or placed; `status` is what the client gets (502 unless said). */
export class CredentialError extends Error {
  override readonly name = 'CredentialError';
  constructor(message: string, readonly status: number = 502) {
    super(message);
  }
}
