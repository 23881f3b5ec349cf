// Every way into the proxy's listeners, in one table, tried in order. A row names the way
// and when a request takes it; src/server/proxy-server.ts gives each way its handler (the
// proxying ways all go through the one pipeline, src/server/pipeline.ts). The operations
// listener (metrics, health, status) is apart, on its own port: src/server/ops-server.ts.
import type { IncomingMessage } from 'node:http';
import { CONNECTOR_API_PREFIX } from '../gateway/path';
import { isRegistryBase } from '../oci/registry-base';
import { CONFIGURATIONS_PREFIX } from './configurations';
import type { Resolver } from './resolve';

export type WayName = 'connect' | 'forward' | 'host-form' | 'configurations' | 'ca-certificate' | 'registry-base' | 'gateway' | 'path-form';

interface Row {
  readonly way: WayName;
  readonly when: (req: IncomingMessage, url: string, resolver: Resolver) => boolean;
}

const TABLE: readonly Row[] = [
  // `CONNECT host:port`: the HTTPS forward proxy (https_proxy).
  { way: 'connect', when: (req) => req.method === 'CONNECT' },
  // Absolute-form `GET http://tool/path`: the forward proxy (http_proxy).
  { way: 'forward', when: (_req, url) => url.charCodeAt(0) !== 47 /* / */ },
  // Host `c-<name>.<ns>.<domain>`: the reverse proxy, host form; every path is the tool's.
  { way: 'host-form', when: (req, _url, resolver) => req.headers.host !== undefined && resolver.connectorHost(req.headers.host) !== undefined },
  // `/configurations/files?connectors=...` and `/configurations/namespaces/<ns>/connectors/<name>[/...]`: rendered client files.
  { way: 'configurations', when: (_req, url) => url.startsWith(CONFIGURATIONS_PREFIX) },
  // `/ca.crt`: the proxy CA's certificate, which https_proxy clients trust.
  { way: 'ca-certificate', when: (_req, url) => url === '/ca.crt' || url.startsWith('/ca.crt?') },
  // `/v2/`: the registry version check of OCI clients (the proxy answers as a registry).
  { way: 'registry-base', when: (_req, url) => isRegistryBase(url) },
  // `/connectors/v1alpha1/<ns>/<name>/path/<api-path>`: the Connectors API gateway (src/gateway/).
  { way: 'gateway', when: (_req, url) => url.startsWith(CONNECTOR_API_PREFIX) },
  // `/namespaces/<ns>/connectors/<name>/...` and `/v2/namespaces/...`: the reverse proxy, path form.
  { way: 'path-form', when: () => true },
];

export class Router {
  constructor(private readonly resolver: Resolver) {}

  /** The way `req` takes. */
  wayOf(req: IncomingMessage): WayName {
    const url = req.url ?? '/';
    for (const row of TABLE) if (row.when(req, url, this.resolver)) return row.way;
    return 'path-form';
  }
}
