// Credentials that go into one header (`Authorization`): a value fixed per Secret version,
// or one a CredentialSource hands out per scope (OAuth2 token, registry token).
import { mapMaybe, type MaybePromise } from '../util/maybe';
import type { Credential, CredentialSource } from '../credentials/source';
import { getHeader, setHeader, type Injector, type OutgoingRequest } from './injector';

/** A header value computed once from the Secret. */
export class StaticHeaderInjector implements Injector {
  constructor(readonly kind: string, private readonly name: string, private readonly value: string) {}
  inject(req: OutgoingRequest): void {
    // The client's own value was dropped with the hop-by-hop and owned headers: push, not set.
    req.headers.push(this.name, this.value);
  }
}

export interface ScopeRules<Scope> {
  /** The scope a request needs (e.g. the registry repository and actions). */
  scopeOf(req: OutgoingRequest): Scope;
  /** The scope to ask for after the tool refused a request with `challenge` (default: the same). */
  retryScope?(scope: Scope, challenge: string | undefined): Scope;
}

/** A header whose value a CredentialSource hands out, renewed once when the tool refuses it. */
export class SourceHeaderInjector<Scope> implements Injector {
  readonly kind: string;

  constructor(private readonly source: CredentialSource<Scope>, private readonly name: string, private readonly rules: ScopeRules<Scope>) {
    this.kind = source.kind;
  }

  inject(req: OutgoingRequest): MaybePromise<void> {
    return mapMaybe(this.source.get(this.rules.scopeOf(req)), (c) => this.place(req, c));
  }

  readonly onUnauthorized = async (req: OutgoingRequest, challenge: string | undefined, resendable: boolean): Promise<boolean> => {
    const used = getHeader(req.headers, this.name);
    this.source.invalidate(used, challenge);
    // Nothing can be sent again; the client's retry gets a fresh credential.
    if (!resendable) return false;
    const scope = this.rules.scopeOf(req);
    const next = await this.source.get(this.rules.retryScope?.(scope, challenge) ?? scope);
    if (next === undefined || next === used) return false;
    setHeader(req.headers, this.name, next);
    return true;
  };

  private place(req: OutgoingRequest, c: Credential): void {
    if (c !== undefined) setHeader(req.headers, this.name, c);
  }
}
