// Writes computed conditions to the API server: a merge patch of the status subresource
// (conditions replace the list as a whole; a Connector's `status.proxy` is left to
// ProxyAddressWriter; a class's `status.api` and `status.proxy` addresses are written here),
// then the Warning Events the change raised (CACertSecretNotFound, InvalidCACert), as
// `kubectl describe connector` shows them.
import type { Logger } from 'pino';
import { API_VERSION } from '../types';
import { KubeApiError, type KubeApi } from '../kube/client';
import type { ObjectStatus, StatusEvent, StatusSink } from './prober';

export class KubeStatusSink implements StatusSink {
  /** Patches sent (tests, metrics). */
  patches = 0;

  /** `isLeader`: only the elected replica writes (src/cluster/leader-election.ts). */
  constructor(private readonly api: KubeApi, private readonly log: Logger, private readonly isLeader: () => boolean = () => true) {}

  async write(s: ObjectStatus): Promise<boolean> {
    if (!this.isLeader()) return false; // tried again if this replica leads again
    const name = encodeURIComponent(s.name);
    const path = s.kind === 'ConnectorClass'
      ? `/apis/${API_VERSION}/connectorclasses/${name}/status`
      : `/apis/${API_VERSION}/namespaces/${encodeURIComponent(s.namespace!)}/connectors/${name}/status`;
    const status: Record<string, unknown> = { conditions: s.conditions };
    if (s.kind === 'ConnectorClass') {
      status.api = s.apiUrl === undefined ? null : { address: { url: s.apiUrl } };
      status.proxy = s.proxyUrl === undefined ? null : { httpAddress: { url: s.proxyUrl } };
    }
    try {
      this.patches++;
      await this.api.request('PATCH', path, { status }, 'application/merge-patch+json');
      for (const ev of s.events ?? []) await this.record(s, ev);
      return true;
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) return true; // deleted meanwhile
      // The next round of checks writes again.
      this.log.warn({ object: s.namespace ? `${s.namespace}/${s.name}` : s.name, kind: s.kind, err: (e as Error).message }, 'status not written');
      return false;
    }
  }

  /** A core/v1 Event on the object; a failure is logged, the status write stands. */
  private async record(s: ObjectStatus, ev: StatusEvent): Promise<void> {
    const namespace = s.namespace ?? 'default';
    const now = new Date().toISOString();
    const event = {
      apiVersion: 'v1', kind: 'Event',
      metadata: { generateName: `${s.name}.`, namespace },
      involvedObject: { apiVersion: API_VERSION, kind: s.kind, name: s.name, namespace: s.namespace, uid: s.uid },
      type: ev.type, reason: ev.reason, message: ev.message,
      source: { component: 'connectors-proxy' }, reportingComponent: 'connectors-proxy',
      firstTimestamp: now, lastTimestamp: now, count: 1,
    };
    try {
      await this.api.request('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, event);
    } catch (e) {
      this.log.warn({ object: `${namespace}/${s.name}`, reason: ev.reason, err: (e as Error).message }, 'event not recorded');
    }
  }
}
