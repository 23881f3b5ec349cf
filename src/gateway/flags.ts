// The two feature flags the Connectors API gateway reads (overview/feature_flags.mdx), from the
// proxy's feature flags (src/flags/: CLI, environment, the watched `connectors-config`
// ConfigMap). The gateway asks on every request, so a ConfigMap edit applies to the next one.
import type { FeatureFlagName, FeatureFlags } from '../flags/feature-flags';

/** What the gateway needs of the flags: one read per request. */
export type GatewayFlags = Pick<FeatureFlags, 'enabled'>;

/** A second SubjectAccessReview on `connectors/apis/<class>[<path template>]` with the method's verb. */
export const APIS_PERMISSIONS: FeatureFlagName = 'enable-connector-apis-permissions';
/** POST, PUT, PATCH and DELETE through the gateway (405 without it). */
export const APIS_WRITE_PASSTHROUGH: FeatureFlagName = 'enable-connector-apis-write-passthrough';
