// The feature flags the Connectors API gateway reads, by the docs' `connectors-config`
// ConfigMap keys (overview/feature_flags.mdx). The gateway asks on every request, so a
// source that changes while the proxy runs (the ConfigMap) drops in for `fixedFlags`.

export interface FeatureFlags {
  /** True when the flag `key` (a `connectors-config` key) is on now. */
  enabled(key: string): boolean;
}

/** A second SubjectAccessReview on `connectors/apis/<class>[<path template>]` with the method's verb. */
export const APIS_PERMISSIONS = 'enable-connector-apis-permissions';
/** POST, PUT, PATCH and DELETE through the gateway (405 without it). */
export const APIS_WRITE_PASSTHROUGH = 'enable-connector-apis-write-passthrough';

/** Flags fixed for the life of the process: the command line (`--enable-...`) or `PROXY_ENABLE_...`. */
export function fixedFlags(on: Readonly<Record<string, boolean>>): FeatureFlags {
  const set = new Set(Object.keys(on).filter((k) => on[k] === true));
  return { enabled: (key) => set.has(key) };
}
