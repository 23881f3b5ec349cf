// The resources the proxy reads, in one place (SPEC section 2). Field names follow the
// Kubernetes objects exactly so that YAML manifests and API objects map 1:1.

export const API_GROUP = 'connectors.alauda.io';
export const API_VERSION = `${API_GROUP}/v1alpha1`;
export const RESOLVER_ANNOTATION = 'connectors.cpaas.io/proxy-resolver';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  /** `Info` for conditions that do not count towards Ready (CACertReady). */
  severity?: string;
}

export interface ParamSpec {
  name: string;
  type: string;
  default?: string;
  description?: string;
}

export interface NameValue {
  name: string;
  value: string;
}

export interface RegoSource {
  rego: string;
}

export interface AuthTypeSpec {
  name: string;
  secretType: string;
  optional?: boolean;
  params?: ParamSpec[];
  generator?: RegoSource;
}

export interface HttpProbe {
  path?: string;
  /** Replaces the address's host (and port) when set. */
  host?: string;
  /** Replaces the address's scheme when set. */
  scheme?: 'http' | 'https';
  httpHeaders?: Record<string, string> | NameValue[];
  method?: 'GET' | 'POST';
  disableRedirect?: boolean;
  /** A CEL expression over `response`; the probe passes when it is true (default: a 2xx status). */
  response?: { cel?: string };
}

/** A probe through the ConnectorClass API: `path` is appended to `status.api.address.url`. */
export interface ApiProbe {
  path?: string;
}

export interface Probe {
  http?: HttpProbe;
  api?: ApiProbe;
}

export interface ConfigurationSpec {
  name: string;
  /** Caller-supplied values (`configuration.params`), seen as `.configurations.<name>`. */
  params?: ParamSpec[];
  data?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ServiceRef {
  kind?: string;
  name: string;
  namespace?: string;
}

/**
 * `spec.api.openapi`: an OpenAPI 3.0 document. The Connectors API gateway reads
 * `paths[<template>].<method>` with the extensions `x-provider-type` (`api` | `proxy`) and
 * `x-openapi-address`; everything else is carried for clients (dynamic forms). Unvalidated
 * input: src/gateway/openapi.ts checks the shape.
 */
export interface OpenApiDocument {
  openapi?: string;
  paths?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface ConnectorClassSpec {
  address?: { type: string };
  addressExtensions?: ParamSpec[];
  params?: ParamSpec[];
  auth?: { types: AuthTypeSpec[] };
  livenessProbe?: Probe;
  authProbes?: { authName: string; params?: ParamSpec[]; probe?: Probe }[];
  api?: { ref?: ServiceRef; uri?: string; openapi?: OpenApiDocument };
  proxy?: { ref?: ServiceRef; uri?: string; authExtractor?: RegoSource };
  configurations?: ConfigurationSpec[];
}

export interface ConnectorClass {
  apiVersion: string;
  kind: 'ConnectorClass';
  metadata: ObjectMeta;
  /** Optional: the docs' metadata-only classes (display annotations) have none. */
  spec: ConnectorClassSpec;
  status?: {
    conditions?: Condition[];
    api?: { address?: { url?: string } };
    proxy?: { httpAddress?: { url?: string } };
  };
}

export interface SecretRef {
  name: string;
  namespace?: string;
}

export interface ConnectorSpec {
  connectorClassName: string;
  address: string;
  addressExtensions?: NameValue[];
  params?: NameValue[];
  auth?: { name?: string; secretRef?: SecretRef; params?: NameValue[] };
  caCertSecretRef?: { name: string };
}

export interface Connector {
  apiVersion: string;
  kind: 'Connector';
  metadata: ObjectMeta & { namespace: string };
  spec: ConnectorSpec;
  status?: {
    proxy?: { httpAddress?: { url: string } };
    api?: { path?: string };
    conditions?: Condition[];
  };
}

export interface Secret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: ObjectMeta & { namespace: string };
  type?: string;
  /** base64-encoded values, as the API server stores them */
  data?: Record<string, string>;
  /** plain values; only in manifests, merged into data on load */
  stringData?: Record<string, string>;
}

export type Resource = ConnectorClass | Connector | Secret;

/** `namespace/name`: the key every index uses. */
export type ObjectKey = string;
export function objectKey(namespace: string, name: string): ObjectKey {
  return `${namespace}/${name}`;
}

/** `[namespace, name]` of an ObjectKey. */
export function splitObjectKey(key: ObjectKey): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

export const SecretTypes = {
  basicAuth: 'kubernetes.io/basic-auth',
  sshAuth: 'kubernetes.io/ssh-auth',
  bearerToken: 'connectors.cpaas.io/bearer-token',
  registryToken: 'cpaas.io/distribution-registry-token',
  /** OAuth2 client credentials grant (src/inject/oauth2.ts): clientID, clientSecret, optional tokenURL/scopes/audience. */
  oauth2ClientCredentials: 'connectors.cpaas.io/oauth2-client-credentials',
  opaque: 'Opaque',
} as const;

// ---- Kubernetes objects the proxy manages or reads besides the three above (issue 17) ----

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ServicePort {
  name?: string;
  port: number;
  protocol?: string;
  targetPort?: number | string;
}

/** core/v1 Service: only the fields the proxy reads or writes. */
export interface KubeService {
  apiVersion?: 'v1';
  kind?: 'Service';
  metadata: ObjectMeta & { namespace: string; ownerReferences?: OwnerReference[] };
  spec?: {
    type?: string;
    externalName?: string;
    selector?: Record<string, string>;
    ports?: ServicePort[];
    clusterIP?: string;
  };
}

/** coordination.k8s.io/v1 Lease (leader election). Times are MicroTime (RFC 3339, 6 fraction digits). */
export interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: ObjectMeta & { namespace: string };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** core/v1 ConfigMap (the `connectors-config` feature flags). */
export interface ConfigMap {
  apiVersion?: 'v1';
  kind?: 'ConfigMap';
  metadata: ObjectMeta & { namespace: string };
  data?: Record<string, string>;
}
