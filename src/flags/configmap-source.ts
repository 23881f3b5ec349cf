// Kubernetes mode: the feature flags ConfigMap (`connectors-config` in the proxy's namespace)
// watched with a list+watch loop restricted to that one name, so the ServiceAccount needs
// get/list/watch on that ConfigMap alone (deploy/rbac.yaml's Role uses resourceNames).
import type { Logger } from 'pino';
import type { ConfigMap } from '../types';
import type { KubeWatchApi } from '../kube/client';
import { Reflector } from '../sources/reflector';
import type { FeatureFlags } from './feature-flags';

export class ConfigMapFlagSource {
  private readonly reflector: Reflector<ConfigMap>;
  /** Resolves after the first list (the flags then hold the ConfigMap's values, if any). */
  readonly synced: Promise<void>;

  constructor(api: KubeWatchApi, flags: FeatureFlags, namespace: string, name: string, log: Logger) {
    const where = `ConfigMap ${namespace}/${name}`;
    this.reflector = new Reflector<ConfigMap>(api, {
      replace: (items) => {
        const cm = items.find((i) => i.metadata.name === name);
        if (cm === undefined) log.info({ configMap: `${namespace}/${name}` }, 'no feature flags ConfigMap: defaults, CLI flags and environment apply');
        flags.applyConfigMap(cm?.data ?? (cm ? {} : undefined), where);
      },
      upsert: (cm) => { if (cm.metadata.name === name) flags.applyConfigMap(cm.data ?? {}, where); },
      remove: (cm) => { if (cm.metadata.name === name) flags.applyConfigMap(undefined, where); },
    }, log, {
      name: 'configmaps',
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`,
      query: `fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}`,
    });
    this.synced = this.reflector.synced;
  }

  start(): void {
    this.reflector.start();
  }

  stop(): void {
    this.reflector.stop();
  }
}
