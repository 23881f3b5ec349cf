// The errors of the Kubernetes client (re-exported by client.ts), in their own module so the
// kubeconfig and credential-plugin modules can throw them without an import cycle.

/** A kubeconfig or in-cluster setting that cannot be used; names the file and the field. */
export class KubeConfigError extends Error {
  override readonly name: string = 'KubeConfigError';
}

/** The API server answered with a non-2xx status. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly status: number,
    /** The Status object's `reason` (e.g. `Forbidden`, `NotFound`), or the HTTP status text. */
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** The API server could not be reached or did not answer in time. */
export class KubeUnavailableError extends Error {
  override readonly name: string = 'KubeUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * No credentials for the API server right now: an exec credential plugin failed or printed
 * something unusable. A kind of "unavailable": callers answer 503 and retry, as for an outage.
 */
export class KubeCredentialError extends KubeUnavailableError {
  override readonly name = 'KubeCredentialError';
}
