// How OCI registry responses reach the client through the proxy. The proxy is the registry
// to the client: the registry's own challenge (a token realm the client has no credentials
// for) is replaced by the proxy's; manifests are content-addressed, so bodies are never
// rewritten; and in the path form the Connector's prefix sits inside the repository name
// (`/v2/namespaces/<ns>/connectors/<name>/<repo>/...` is the registry's `/v2/<repo>/...`).
import { rewriteLocation, startsWithUrl, type LocationRewrite } from '../http/headers';
import type { ResponseProfile } from '../http/profile';

/** How the OCI path form starts: registry clients put the Connector inside the repository name. */
export const REGISTRY_PATH_PREFIX = '/v2/namespaces/';
/** The part of the path the registry and the path form share. */
const REGISTRY_API = '/v2';

/**
 * `Location` (upload sessions) and `Link` (paging) of a registry. In the path form the
 * registry's `/v2` is part of the public prefix, and distribution, which honours
 * X-Forwarded-Host, writes the proxy's own origin without the path-form prefix
 * (`http://<proxy>/v2/<repo>/blobs/uploads/<uuid>`): both end up under the prefix.
 */
export function rewriteRegistryLocation(value: string, rw: LocationRewrite): string {
  if (!rw.publicPath.startsWith(REGISTRY_PATH_PREFIX)) return rewriteLocation(value, rw);
  const out = rewriteLocation(value, {
    upstreamBase: rw.upstreamBase + REGISTRY_API, upstreamPath: rw.upstreamPath + REGISTRY_API,
    publicBase: rw.publicBase, publicPath: rw.publicPath,
  });
  if (out !== value || startsWithUrl(value, rw.publicBase)) return out;
  const origin = rw.publicBase.slice(0, rw.publicBase.length - rw.publicPath.length);
  if (!startsWithUrl(value, origin)) return value;
  const rest = value.slice(origin.length);
  return rest.startsWith(REGISTRY_API + '/') ? rw.publicBase + rest.slice(REGISTRY_API.length) : value;
}

export const REGISTRY_PROFILE: ResponseProfile = Object.freeze({
  name: 'oci',
  rewriteLocation: rewriteRegistryLocation,
  hidesChallenge: true,
  rewritesBodies: false,
});
