// What a response needs on its way back to the client, per protocol. The route carries a
// profile (the OCI registry's lives in src/oci/profile.ts); the relay applies it, so the
// generic request path holds no protocol cases.
import { rewriteLocation, type LocationRewrite } from './headers';

export interface ResponseProfile {
  /** Shown in tests and debugging. */
  readonly name: string;
  /** Points a `Location`, `Content-Location` or `Link` target at the proxy (reverse mode only). */
  rewriteLocation(value: string, rw: LocationRewrite): string;
  /** The tool's `WWW-Authenticate` is not for the client: it meets the proxy's own challenge instead. */
  readonly hidesChallenge: boolean;
  /** Whether JSON and HTML bodies have the tool's absolute URLs rewritten to the client's address. */
  readonly rewritesBodies: boolean;
}

/** Reverse mode for any tool: Location and Link targets, and absolute URLs in textual bodies. */
export const DEFAULT_PROFILE: ResponseProfile = Object.freeze({
  name: 'default',
  rewriteLocation,
  hidesChallenge: false,
  rewritesBodies: true,
});

/** Forward mode: the client used the tool's own URLs; the response passes as the tool wrote it. */
export const FORWARD_PROFILE: ResponseProfile = Object.freeze({
  name: 'forward',
  rewriteLocation: (value: string) => value,
  hidesChallenge: false,
  rewritesBodies: false,
});
