// Structural checks for manifests: a config error must name the file, the object and the
// field, so every failure carries a path such as `spec.auth.types[1].secretType`.
import {
  API_VERSION, RESOLVER_ANNOTATION, type AuthTypeSpec, type Connector, type ConnectorClass,
  type NameValue, type ParamSpec, type Resource, type Secret,
} from '../types';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Collects field errors for one object, so a user sees all of them at once. */
class FieldErrors {
  readonly list: string[] = [];
  add(field: string, msg: string): void {
    this.list.push(`${field}: ${msg}`);
  }
  str(o: Obj, key: string, field: string, required = true): string | undefined {
    const v = o[key];
    if (v === undefined || v === null) {
      if (required) this.add(field, 'is required');
      return undefined;
    }
    if (typeof v !== 'string' || (required && v === '')) {
      this.add(field, `must be a non-empty string, got ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  }
  arr(o: Obj, key: string, field: string): unknown[] {
    const v = o[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.add(field, 'must be a list');
      return [];
    }
    return v;
  }
  obj(o: Obj, key: string, field: string, required = false): Obj | undefined {
    const v = o[key];
    if (v === undefined || v === null) {
      if (required) this.add(field, 'is required');
      return undefined;
    }
    if (!isObj(v)) {
      this.add(field, 'must be a mapping');
      return undefined;
    }
    return v;
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function checkParams(e: FieldErrors, list: unknown[], field: string): ParamSpec[] {
  return list.map((p, i) => {
    const f = `${field}[${i}]`;
    if (!isObj(p)) { e.add(f, 'must be a mapping'); return { name: '', type: 'string' }; }
    return { ...p, name: e.str(p, 'name', `${f}.name`) ?? '', type: (p.type as string) ?? 'string' } as ParamSpec;
  });
}

function checkNameValues(e: FieldErrors, list: unknown[], field: string): NameValue[] {
  const seen = new Set<string>();
  return list.map((p, i) => {
    const f = `${field}[${i}]`;
    if (!isObj(p)) { e.add(f, 'must be a mapping'); return { name: '', value: '' }; }
    const name = e.str(p, 'name', `${f}.name`) ?? '';
    if (seen.has(name)) e.add(`${f}.name`, `duplicate name "${name}"`);
    seen.add(name);
    const value = p.value;
    if (typeof value !== 'string') e.add(`${f}.value`, 'must be a string');
    return { name, value: typeof value === 'string' ? value : '' };
  });
}

export function checkHttpUrl(value: string): string | undefined {
  let u: URL;
  try { u = new URL(value); } catch { return `must be an absolute URL, got "${value}"`; }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `must be an http or https URL, got "${value}"`;
  if (u.username || u.password) return 'must not carry credentials (put them in the Secret)';
  if (u.search || u.hash) return 'must not carry a query or fragment';
  return undefined;
}

function checkMeta(e: FieldErrors, doc: Obj, namespaced: boolean, defaultNamespace: string): { name: string; namespace: string } {
  const meta = e.obj(doc, 'metadata', 'metadata', true) ?? {};
  const name = e.str(meta, 'name', 'metadata.name') ?? '';
  if (name && !DNS_SUBDOMAIN.test(name)) e.add('metadata.name', `"${name}" is not a valid Kubernetes name`);
  let namespace = '';
  if (namespaced) {
    namespace = e.str(meta, 'namespace', 'metadata.namespace', false) ?? defaultNamespace;
    if (!DNS_LABEL.test(namespace)) e.add('metadata.namespace', `"${namespace}" is not a valid namespace`);
  }
  for (const k of ['labels', 'annotations']) {
    const m = e.obj(meta, k, `metadata.${k}`);
    if (m) for (const [mk, mv] of Object.entries(m)) if (typeof mv !== 'string') e.add(`metadata.${k}.${mk}`, 'must be a string');
  }
  return { name, namespace };
}

function checkConnectorClass(e: FieldErrors, doc: Obj): void {
  const spec = e.obj(doc, 'spec', 'spec', true) ?? {};
  const annotations = (isObj(doc.metadata) && isObj(doc.metadata.annotations)) ? doc.metadata.annotations : {};
  const resolver = annotations[RESOLVER_ANNOTATION];
  if (resolver !== undefined && resolver !== 'host' && resolver !== 'path') {
    e.add(`metadata.annotations["${RESOLVER_ANNOTATION}"]`, `must be "host" or "path", got ${JSON.stringify(resolver)}`);
  }
  checkParams(e, e.arr(spec, 'params', 'spec.params'), 'spec.params');
  checkParams(e, e.arr(spec, 'addressExtensions', 'spec.addressExtensions'), 'spec.addressExtensions');
  const auth = e.obj(spec, 'auth', 'spec.auth');
  if (!auth) return;
  const names = new Set<string>();
  e.arr(auth, 'types', 'spec.auth.types').forEach((t, i) => {
    const f = `spec.auth.types[${i}]`;
    if (!isObj(t)) { e.add(f, 'must be a mapping'); return; }
    const name = e.str(t, 'name', `${f}.name`);
    if (name !== undefined) {
      if (names.has(name)) e.add(`${f}.name`, `duplicate auth type name "${name}"`);
      names.add(name);
    }
    const secretType = e.str(t, 'secretType', `${f}.secretType`);
    const params = checkParams(e, e.arr(t, 'params', `${f}.params`), `${f}.params`);
    if (t.optional !== undefined && typeof t.optional !== 'boolean') e.add(`${f}.optional`, 'must be true or false');
    const gen = e.obj(t, 'generator', `${f}.generator`);
    if (gen) e.str(gen, 'rego', `${f}.generator.rego`);
    // Opaque and custom types have no fixed keys, so the class must say which it needs.
    if (secretType && !gen && !KNOWN_SECRET_KEYS[secretType] && params.length === 0) {
      e.add(`${f}.params`, `secretType "${secretType}" has no fixed keys: declare the Secret keys it needs in params`);
    }
  });
  const proxy = e.obj(spec, 'proxy', 'spec.proxy');
  if (proxy) {
    const ex = e.obj(proxy, 'authExtractor', 'spec.proxy.authExtractor');
    if (ex) e.str(ex, 'rego', 'spec.proxy.authExtractor.rego');
  }
}

/** Keys a Secret of a built-in type must carry (SPEC section 2). */
export const KNOWN_SECRET_KEYS: Record<string, readonly string[]> = {
  'kubernetes.io/basic-auth': ['username', 'password'],
  'connectors.cpaas.io/oauth2-client-credentials': ['clientID', 'clientSecret'],
  'kubernetes.io/ssh-auth': ['ssh-privatekey'],
  'connectors.cpaas.io/bearer-token': ['token'],
  'cpaas.io/distribution-registry-token': ['username', 'password'],
};

/** The keys a Secret must have for an auth type: the type's fixed keys plus declared params. */
export function requiredSecretKeys(authType: AuthTypeSpec): string[] {
  const keys = new Set(KNOWN_SECRET_KEYS[authType.secretType] ?? []);
  for (const p of authType.params ?? []) keys.add(p.name);
  return [...keys];
}

function checkConnector(e: FieldErrors, doc: Obj): void {
  const spec = e.obj(doc, 'spec', 'spec', true) ?? {};
  e.str(spec, 'connectorClassName', 'spec.connectorClassName');
  const address = e.str(spec, 'address', 'spec.address');
  if (address !== undefined) {
    const bad = checkHttpUrl(address);
    if (bad) e.add('spec.address', bad);
  }
  checkNameValues(e, e.arr(spec, 'addressExtensions', 'spec.addressExtensions'), 'spec.addressExtensions')
    .forEach((x, i) => { const bad = x.value && checkHttpUrl(x.value); if (bad) e.add(`spec.addressExtensions[${i}].value`, bad); });
  checkNameValues(e, e.arr(spec, 'params', 'spec.params'), 'spec.params');
  const auth = e.obj(spec, 'auth', 'spec.auth');
  if (auth) {
    e.str(auth, 'name', 'spec.auth.name', false);
    const ref = e.obj(auth, 'secretRef', 'spec.auth.secretRef');
    if (ref) {
      e.str(ref, 'name', 'spec.auth.secretRef.name');
      e.str(ref, 'namespace', 'spec.auth.secretRef.namespace', false);
    }
    checkNameValues(e, e.arr(auth, 'params', 'spec.auth.params'), 'spec.auth.params');
  }
  const ca = e.obj(spec, 'caCertSecretRef', 'spec.caCertSecretRef');
  if (ca) e.str(ca, 'name', 'spec.caCertSecretRef.name');
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function checkSecret(e: FieldErrors, doc: Obj): void {
  if (doc.type !== undefined && typeof doc.type !== 'string') e.add('type', 'must be a string');
  const data = e.obj(doc, 'data', 'data');
  if (data) {
    for (const [k, v] of Object.entries(data)) {
      if (typeof v !== 'string' || v.length % 4 !== 0 || !BASE64.test(v)) e.add(`data.${k}`, 'must be base64 (use stringData for plain text)');
    }
  }
  const sd = e.obj(doc, 'stringData', 'stringData');
  if (sd) for (const [k, v] of Object.entries(sd)) if (typeof v !== 'string') e.add(`stringData.${k}`, 'must be a string');
}

/**
 * Checks one parsed object and returns it typed. `where` names its origin for messages,
 * e.g. `examples/embedded/demo.yaml (document 2)`.
 */
export function validateResource(doc: unknown, where: string, defaultNamespace = 'default'): Resource {
  if (!isObj(doc)) throw new ConfigError(`${where}: expected a Kubernetes object (a mapping with apiVersion and kind)`);
  const e = new FieldErrors();
  const kind = doc.kind;
  const apiVersion = doc.apiVersion;
  let expectedApi: string;
  switch (kind) {
    case 'ConnectorClass': case 'Connector': expectedApi = API_VERSION; break;
    case 'Secret': expectedApi = 'v1'; break;
    default:
      throw new ConfigError(`${where}: kind: must be ConnectorClass, Connector or Secret, got ${JSON.stringify(kind)}`);
  }
  if (apiVersion !== expectedApi) e.add('apiVersion', `must be "${expectedApi}" for kind ${kind}, got ${JSON.stringify(apiVersion)}`);
  const { name, namespace } = checkMeta(e, doc, kind !== 'ConnectorClass', defaultNamespace);
  if (kind === 'ConnectorClass') checkConnectorClass(e, doc);
  else if (kind === 'Connector') checkConnector(e, doc);
  else checkSecret(e, doc);
  const label = kind === 'ConnectorClass' ? `ConnectorClass ${name || '?'}` : `${kind} ${namespace}/${name || '?'}`;
  if (e.list.length > 0) throw new ConfigError(`${where}: ${label}: ${e.list.join('; ')}`);

  const meta = { ...(doc.metadata as Obj), name } as Obj;
  if (kind !== 'ConnectorClass') meta.namespace = namespace;
  const out = { ...doc, metadata: meta } as unknown as Resource;
  if (out.kind === 'Secret') normalizeSecret(out);
  return out;
}

/** Folds stringData into data (as the API server does) so readers only see `data`. */
function normalizeSecret(s: Secret): void {
  if (!s.stringData) return;
  const data = { ...(s.data ?? {}) };
  for (const [k, v] of Object.entries(s.stringData)) data[k] = Buffer.from(v, 'utf8').toString('base64');
  s.data = data;
  delete s.stringData;
}

export type { ConnectorClass, Connector, Secret };
