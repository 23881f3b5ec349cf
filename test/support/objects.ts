// Resource objects for in-process tests (the same shapes the manifests and the API server give).
import { API_VERSION, type Connector, type ConnectorClass, type Secret } from '../../src/types';

/** A class with proxy capability (`spec.proxy: {}`, so its Connectors are served) unless `spec` says `proxy: undefined`. */
export function connectorClass(name: string, spec: ConnectorClass['spec'], annotations?: Record<string, string>): ConnectorClass {
  return { apiVersion: API_VERSION, kind: 'ConnectorClass', metadata: { name, ...(annotations ? { annotations } : {}) }, spec: { proxy: {}, ...spec } };
}

export function connector(namespace: string, name: string, spec: Connector['spec']): Connector {
  return { apiVersion: API_VERSION, kind: 'Connector', metadata: { namespace, name }, spec };
}

export function secret(namespace: string, name: string, type: string, values: Record<string, string>, labels?: Record<string, string>): Secret {
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) data[k] = Buffer.from(v).toString('base64');
  return { apiVersion: 'v1', kind: 'Secret', metadata: { namespace, name, ...(labels ? { labels } : {}) }, type, data };
}

/** A basic-auth class; `path` makes it use the path resolver. */
export function basicClass(name: string, path = false): ConnectorClass {
  return connectorClass(name, { auth: { types: [{ name: 'basic', secretType: 'kubernetes.io/basic-auth' }] } },
    path ? { 'connectors.cpaas.io/proxy-resolver': 'path' } : undefined);
}

/** A Connector of `className` at `address` using Secret `secretName` of its namespace. */
export function basicConnector(namespace: string, name: string, className: string, address: string, secretName: string): Connector {
  return connector(namespace, name, { connectorClassName: className, address, auth: { name: 'basic', secretRef: { name: secretName } } });
}

/** A controllable clock for expiry tests. */
export class FakeClock {
  constructor(public t = 1_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}
