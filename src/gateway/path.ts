// The gateway's request target: `/connectors/v1alpha1/<namespace>/<connector>/path/<api-path>`
// (connector_api.mdx), where `<api-path>` is the tool's own API path or a custom API path.
import { CONNECTOR_API_PREFIX } from '../status/proxy-address';

export { CONNECTOR_API_PREFIX };

export interface GatewayPath {
  readonly namespace: string;
  readonly name: string;
  /** The API path without its query, starting with `/` (`/` for `.../path` itself). */
  readonly apiPath: string;
  /** `''` or `?...`, passed on unchanged. */
  readonly query: string;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const PATH = 'path';
const NOT_AN_API_PATH = Object.freeze({ error: `not a Connectors API path: use ${CONNECTOR_API_PREFIX}<namespace>/<connector>/path/<api-path>` });

/** Splits a gateway request target; `url` starts with CONNECTOR_API_PREFIX (the router's row). */
export function parseGatewayPath(url: string): GatewayPath | { readonly error: string } {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q);
  const start = CONNECTOR_API_PREFIX.length;
  const nsEnd = path.indexOf('/', start);
  if (nsEnd < 0) return NOT_AN_API_PATH;
  const nameEnd = path.indexOf('/', nsEnd + 1);
  if (nameEnd < 0) return NOT_AN_API_PATH;
  const namespace = path.slice(start, nsEnd);
  const name = path.slice(nsEnd + 1, nameEnd);
  if (!NAMESPACE.test(namespace) || !NAME.test(name)) return NOT_AN_API_PATH;
  const rest = path.slice(nameEnd + 1);
  if (rest !== PATH && !rest.startsWith(PATH + '/')) return NOT_AN_API_PATH;
  const apiPath = rest.length > PATH.length ? rest.slice(PATH.length) : '/';
  return { namespace, name, apiPath, query };
}
