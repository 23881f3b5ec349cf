// `status.proxy.httpAddress.url`: the address a Connector is served at (the docs' Connector
// "Proxy Address"): `http://c-<name>.<ns>.<domain>` for the host resolver, and
// `<base>/namespaces/<ns>/connectors/<name>` for the path resolver, for Connectors whose
// class declares `spec.proxy`. Writes go through a small queue (merge patches of the status
// subresource, a few at a time) and only when the value differs, so the watch event our own
// patch causes ends here. Only the elected leader writes (src/cluster/leader-election.ts);
// a new leader looks at every Connector once and writes what differs. The same writer sets
// `status.api.path` (the Connectors API gateway's relative path, src/gateway/) on Connectors
// whose class declares `spec.api`.
import type { Logger } from 'pino';
import { API_VERSION, objectKey, splitObjectKey, type Connector, type ConnectorClass, type ObjectKey } from '../types';
import { KubeApiError, type KubeApi } from '../kube/client';
import { resolverOf } from '../routes/route-table';
import type { ObjectStore } from '../sources/store';
import { KeyedWorkQueue } from '../util/work-queue';

export interface ProxyAddressOptions {
  /** Host resolver domain. */
  readonly domain: string;
  /** Scheme clients use. */
  readonly proto: 'http' | 'https';
  /** Base of path-form addresses; default the host form's `<proto>://c-<name>.<ns>.<domain>`. */
  readonly publicUrl?: string;
}

/** The proxy address of `c`, or undefined when its class has no proxy capability. */
export function proxyAddress(c: Connector, cls: ConnectorClass | undefined, o: ProxyAddressOptions): string | undefined {
  if (cls?.spec.proxy === undefined || cls.spec.proxy === null) return undefined;
  return addressFor(c, resolverOf(cls), o);
}

/** Where this proxy serves `c`, whether or not its class declares a proxy (rendered configurations). */
export function servedAddress(c: Connector, cls: ConnectorClass, o: ProxyAddressOptions): string {
  return addressFor(c, resolverOf(cls), o);
}

function addressFor(c: Connector, resolver: 'host' | 'path', o: ProxyAddressOptions): string {
  const { name, namespace } = c.metadata;
  // The public URL's port, when it names one, is where the c-<name> hosts are served too.
  const port = o.publicUrl === undefined ? '' : new URL(o.publicUrl).port;
  const host = `${o.proto}://c-${name}.${namespace}.${o.domain}${port ? `:${port}` : ''}`;
  if (resolver === 'host') return host;
  const base = (o.publicUrl ?? host).replace(/\/+$/, '');
  return `${base}/namespaces/${namespace}/connectors/${name}`;
}

/** Where the Connectors API gateway serves every Connector: `<prefix><ns>/<name>/path/<api-path>`. */
export const CONNECTOR_API_PREFIX = '/connectors/v1alpha1/';

/**
 * `status.api.path`: the gateway path of `c` relative to the proxy (the docs' example:
 * `/connectors/v1alpha1/default/gitlab-connector/path`), for Connectors whose class has `spec.api`.
 */
export function connectorApiPath(c: Connector, cls: ConnectorClass | undefined): string | undefined {
  if (cls?.spec.api == null) return undefined;
  return `${CONNECTOR_API_PREFIX}${c.metadata.namespace}/${c.metadata.name}/path`;
}

export interface StatusWriterOptions extends ProxyAddressOptions {
  /** Patches in flight at once (default 4). */
  readonly concurrency?: number;
  /** Writes happen only while this is true (default: always). */
  readonly isLeader?: () => boolean;
}

/**
 * A class's `status.proxy.httpAddress.url` (the CRD's field): spec.proxy.uri when absolute,
 * else the Service spec.proxy.ref names (its namespace defaulting to the proxy's), plus a
 * relative uri. Plain http: the address Pods use in the cluster.
 */
export function classProxyAddress(cls: ConnectorClass, o: { namespace: string; clusterDomain: string }): string | undefined {
  const p = cls.spec.proxy;
  if (p == null) return undefined;
  if (p.uri !== undefined && /^https?:\/\//.test(p.uri)) return p.uri;
  if (!p.ref?.name) return undefined;
  return `http://${p.ref.name}.${p.ref.namespace || o.namespace}.svc.${o.clusterDomain}${p.uri ?? ''}`;
}

export class ProxyAddressWriter {
  /** Patches sent (tests, metrics). */
  patches = 0;
  private readonly queue: KeyedWorkQueue<ObjectKey>;

  constructor(
    private readonly api: KubeApi,
    private readonly index: ObjectStore,
    private readonly log: Logger,
    private readonly opts: StatusWriterOptions,
  ) {
    this.queue = new KeyedWorkQueue((key) => this.reconcile(key), opts.concurrency ?? 4);
  }

  /** Looks at `c` again (later, in the queue): patches its status if the address differs. */
  enqueue(c: Connector): void {
    this.queue.add(objectKey(c.metadata.namespace, c.metadata.name));
  }

  stop(): void {
    this.queue.stop();
  }

  /** Looks at every Connector again (a new leader: what the last one wrote may be stale). */
  resync(): void {
    for (const c of this.index.allConnectors()) this.enqueue(c);
  }

  private async reconcile(key: ObjectKey): Promise<void> {
    if (this.opts.isLeader?.() === false) return;
    const c = this.index.connector(...splitObjectKey(key));
    if (c === undefined) return;
    const cls = this.index.connectorClass(c.spec.connectorClassName);
    const status: { proxy?: { httpAddress: { url: string } } | null; api?: { path: string | null } } = {};
    const want = proxyAddress(c, cls, this.opts);
    const have = c.status?.proxy?.httpAddress?.url;
    // A class that lost its proxy: clear only an address this proxy would have written,
    // never another component's.
    if (want !== have && (want !== undefined || have === addressFor(c, 'host', this.opts) || have === addressFor(c, 'path', this.opts))) {
      status.proxy = want === undefined ? null : { httpAddress: { url: want } };
    }
    const wantApi = connectorApiPath(c, cls);
    const haveApi = c.status?.api?.path;
    if (wantApi !== haveApi && (wantApi !== undefined || haveApi === `${CONNECTOR_API_PREFIX}${c.metadata.namespace}/${c.metadata.name}/path`)) {
      status.api = { path: wantApi ?? null };
    }
    if (status.proxy === undefined && status.api === undefined) return;
    const path = `/apis/${API_VERSION}/namespaces/${encodeURIComponent(c.metadata.namespace)}/connectors/${encodeURIComponent(c.metadata.name)}/status`;
    try {
      this.patches++;
      await this.api.request('PATCH', path, { status }, 'application/merge-patch+json');
      this.log.debug({ connector: key, url: want ?? null, apiPath: wantApi ?? null }, 'proxy address written');
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) return; // deleted meanwhile
      this.log.warn({ connector: key, err: (e as Error).message }, 'proxy address not written: retrying in 5 s');
      setTimeout(() => { if (this.index.connector(c.metadata.namespace, c.metadata.name)) this.enqueue(c); }, 5000).unref();
    }
  }
}
