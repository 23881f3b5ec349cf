// The configurations endpoint on the proxy port (SPEC §8), authenticated like proxy traffic:
//   GET /configurations/namespaces/<ns>/connectors/<name>                 → JSON, every configuration
//   GET /configurations/namespaces/<ns>/connectors/<name>/<config>/<file> → the file itself
// Only on the proxy's own host names: on a `c-<name>.<ns>.<domain>` host every path is the tool's.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { tokenFromAuthorization } from '../auth/client-token';
import type { ObjectStore } from '../sources/store';
import { settle } from '../util/maybe';
import type { Admissions } from './admission';
import { renderConfigurations } from '../templates/configurations';
import { TemplateError } from '../templates';
import { servedAddress, type ProxyAddressOptions } from '../status/proxy-address';
import { sendError } from './errors';

export const CONFIGURATIONS_PREFIX = '/configurations/';
const PATH = /^\/configurations\/namespaces\/([a-z0-9][a-z0-9-]{0,62})\/connectors\/([a-z0-9][a-z0-9.-]{0,252})(?:\/([^/]+)(?:\/([^/]+))?)?\/?$/;

export interface ConfigurationsDeps {
  readonly store: ObjectStore;
  readonly admissions: Admissions;
  readonly address: ProxyAddressOptions;
  readonly log: Logger;
}

export function serveConfigurations(req: IncomingMessage, res: ServerResponse, deps: ConfigurationsDeps): void {
  const path = (req.url ?? '/').split('?')[0]!;
  const m = PATH.exec(path);
  if (m === null) return sendError(res, 404, 'expected /configurations/namespaces/<namespace>/connectors/<name>[/<configuration>/<file>]');
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'configurations are read with GET', { allow: 'GET, HEAD' });
  const [, namespace, name, configName, fileName] = m as unknown as [string, string, string, string | undefined, string | undefined];
  let file: string | undefined;
  try {
    file = fileName === undefined ? undefined : decodeURIComponent(fileName);
  } catch {
    return sendError(res, 400, 'bad percent-encoding in the file name');
  }
  const token = tokenFromAuthorization(req.headers.authorization);
  settle(deps.admissions.connector(token, { namespace, name }), (d) => {
    if (!d.admitted) return sendError(res, d.status, d.message, d.headers);
    const c = deps.store.connector(namespace, name);
    if (c === undefined) return sendError(res, deps.store.ready ? 404 : 503, deps.store.ready ? `connector ${namespace}/${name} not found` : 'connectors are not loaded yet; try again');
    const cls = deps.store.connectorClass(c.spec.connectorClassName);
    if (cls === undefined) return sendError(res, 502, `connector ${namespace}/${name}: ConnectorClass "${c.spec.connectorClassName}" not found`);
    let rendered;
    try {
      rendered = renderConfigurations(cls, c, servedAddress(c, cls, deps.address), token!, configName);
    } catch (e) {
      // Names class, field and position; never rendered text (it holds the token).
      const why = e instanceof TemplateError ? e.message : 'rendering failed';
      deps.log.warn({ connector: `${namespace}/${name}`, err: why }, 'configuration not rendered');
      return sendError(res, 502, `connector ${namespace}/${name}: ${why}`);
    }
    deps.log.info({ connector: `${namespace}/${name}`, user: d.user, configuration: configName, file }, 'configurations rendered');
    const headers = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
    if (configName === undefined) {
      res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(`${JSON.stringify({ configurations: rendered }, null, 2)}\n`);
      return;
    }
    const conf = rendered[0];
    if (conf === undefined) return sendError(res, 404, `ConnectorClass "${cls.metadata.name}" has no configuration "${configName}"`);
    if (file === undefined) {
      res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(`${JSON.stringify(conf, null, 2)}\n`);
      return;
    }
    const text = conf.data[file];
    if (text === undefined) return sendError(res, 404, `configuration "${configName}" of ConnectorClass "${cls.metadata.name}" has no file "${file}"`);
    res.writeHead(200, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(req.method === 'HEAD' ? undefined : text);
  }, () => undefined);
}
