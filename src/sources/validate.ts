// The one validator of both sources. Files mode runs the per-object checks on load (a config
// error names file, document, object and field, e.g. `spec.auth.types[1].secretType`);
// Kubernetes mode gets whatever the API server admitted (deploy/crds carries the same rules as
// x-kubernetes-validations where a rule can run at admission, but objects stored before a rule
// existed, and rules that need the ConnectorClass, reach the proxy anyway), so both modes run
// the same checks again where a route is built (validateConnector): a Connector that fails
// them is not served and ConnectorClassReady says why, the reason naming the field.
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
  readonly fields: Array<{ field: string; msg: string }> = [];
  get list(): string[] {
    return this.fields.map((f) => `${f.field}: ${f.msg}`);
  }
  add(field: string, msg: string): void {
    this.fields.push({ field, msg });
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
  // The docs' display-only classes (name and annotations) have no spec: the CRD defaults it to {}.
  const spec = e.obj(doc, 'spec', 'spec') ?? {};
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
  const api = e.obj(spec, 'api', 'spec.api');
  const liveness = e.obj(spec, 'livenessProbe', 'spec.livenessProbe');
  if (liveness) checkProbe(e, liveness, 'spec.livenessProbe', api !== undefined);
  e.arr(spec, 'authProbes', 'spec.authProbes').forEach((p, i) => {
    const f = `spec.authProbes[${i}]`;
    if (!isObj(p)) { e.add(f, 'must be a mapping'); return; }
    e.str(p, 'authName', `${f}.authName`);
    checkParams(e, e.arr(p, 'params', `${f}.params`), `${f}.params`);
    const probe = e.obj(p, 'probe', `${f}.probe`);
    if (probe) checkProbe(e, probe, `${f}.probe`, api !== undefined);
  });
  const confNames = new Set<string>();
  e.arr(spec, 'configurations', 'spec.configurations').forEach((c, i) => {
    const f = `spec.configurations[${i}]`;
    if (!isObj(c)) { e.add(f, 'must be a mapping'); return; }
    const name = e.str(c, 'name', `${f}.name`);
    if (name !== undefined) {
      if (confNames.has(name)) e.add(`${f}.name`, `duplicate configuration name "${name}"`);
      confNames.add(name);
    }
    checkParams(e, e.arr(c, 'params', `${f}.params`), `${f}.params`);
    const data = e.obj(c, 'data', `${f}.data`);
    if (data) for (const [k, v] of Object.entries(data)) if (typeof v !== 'string') e.add(`${f}.data[${JSON.stringify(k)}]`, 'must be a string (a template)');
  });
}

function checkProbe(e: FieldErrors, probe: Obj, field: string, hasApi: boolean): void {
  const http = e.obj(probe, 'http', `${field}.http`);
  if (http) {
    const f = `${field}.http`;
    if (http.path !== undefined && typeof http.path !== 'string') e.add(`${f}.path`, 'must be a string');
    const host = e.str(http, 'host', `${f}.host`, false);
    if (host !== undefined && !/^[^/?#@\s]+$/.test(host)) e.add(`${f}.host`, `must be a host[:port], got ${JSON.stringify(host)}`);
    if (http.scheme !== undefined && http.scheme !== 'http' && http.scheme !== 'https') e.add(`${f}.scheme`, `must be http or https, got ${JSON.stringify(http.scheme)}`);
    if (http.method !== undefined && http.method !== 'GET' && http.method !== 'POST') e.add(`${f}.method`, `must be GET or POST, got ${JSON.stringify(http.method)}`);
    if (http.disableRedirect !== undefined && typeof http.disableRedirect !== 'boolean') e.add(`${f}.disableRedirect`, 'must be true or false');
    const headers = http.httpHeaders;
    if (Array.isArray(headers)) {
      headers.forEach((h, i) => {
        if (!isObj(h) || typeof h.name !== 'string' || h.name === '') e.add(`${f}.httpHeaders[${i}]`, 'must be {name, value}');
      });
    } else if (headers !== undefined && headers !== null && !isObj(headers)) e.add(`${f}.httpHeaders`, 'must be a list of {name, value} or a mapping');
    const response = e.obj(http, 'response', `${f}.response`);
    if (response) e.str(response, 'cel', `${f}.response.cel`, false);
  }
  const api = e.obj(probe, 'api', `${field}.api`);
  if (api) {
    if (api.path !== undefined && typeof api.path !== 'string') e.add(`${field}.api.path`, 'must be a string');
    if (!hasApi) e.add(`${field}.api`, 'needs spec.api (the ConnectorClass API it calls)');
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
    .forEach((x, i) => {
      const bad = x.value && checkHttpUrl(x.value);
      if (bad) e.add(`spec.addressExtensions[${i}].value`, bad);
      else if (x.value !== '' && x.value === address) e.add(`spec.addressExtensions[${i}].value`, 'must not repeat spec.address');
    });
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
  if (out.kind === 'ConnectorClass' && out.spec == null) out.spec = {};
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

/** Why a Connector cannot be served, with the field that says so. */
export interface FieldProblem {
  /** `spec.addressExtensions[1].name`, or `ConnectorClass <name>: spec.auth.types[0].params`. */
  readonly field: string;
  /** A condition reason naming the field: `InvalidAddressExtensionsName`, `InvalidConnectorClassAuthTypesParams`. */
  readonly reason: string;
  /** One sentence naming object and field. */
  readonly message: string;
}

function reasonFor(field: string, prefix = 'Invalid'): string {
  const words = field.replace(/\[[^\]]*\]/g, '').split('.').filter((w) => w !== '' && w !== 'spec' && w !== 'metadata');
  return prefix + words.map((w) => w.replace(/[^A-Za-z0-9]/g, '')).map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}

const classProblems = new WeakMap<ConnectorClass, FieldProblem | null>();
const connectorProblems = new WeakMap<Connector, { cls: ConnectorClass | undefined; problem: FieldProblem | null }>();

/** The first problem of a class's own fields (files mode refuses such a class on load). */
export function classProblem(cls: ConnectorClass): FieldProblem | undefined {
  let p = classProblems.get(cls);
  if (p === undefined) {
    const e = new FieldErrors();
    checkConnectorClass(e, cls as unknown as Obj);
    const first = e.fields[0];
    p = first === undefined ? null : {
      field: `ConnectorClass ${cls.metadata.name}: ${first.field}`,
      reason: reasonFor(first.field, 'InvalidConnectorClass'),
      message: `ConnectorClass "${cls.metadata.name}": ${first.field}: ${first.msg}`,
    };
    classProblems.set(cls, p);
  }
  return p ?? undefined;
}

/**
 * The first problem of a Connector: its own fields (as files mode checks them on load), its
 * class's fields, and the class's contract (address extensions: each one without a default is
 * required, undeclared names are refused). Cached per object pair; objects are replaced on change.
 */
export function connectorProblem(c: Connector, cls: ConnectorClass | undefined): FieldProblem | undefined {
  const cached = connectorProblems.get(c);
  if (cached !== undefined && cached.cls === cls) return cached.problem ?? undefined;
  const problem = computeConnectorProblem(c, cls) ?? null;
  connectorProblems.set(c, { cls, problem });
  return problem ?? undefined;
}

function computeConnectorProblem(c: Connector, cls: ConnectorClass | undefined): FieldProblem | undefined {
  const e = new FieldErrors();
  checkConnector(e, c as unknown as Obj);
  const where = `Connector ${c.metadata.namespace}/${c.metadata.name}`;
  const own = e.fields[0];
  if (own !== undefined) return { field: own.field, reason: reasonFor(own.field), message: `${where}: ${own.field}: ${own.msg}` };
  if (cls === undefined) return undefined;
  const bad = classProblem(cls);
  if (bad !== undefined) return bad;
  const declared = cls.spec.addressExtensions ?? [];
  const given = c.spec.addressExtensions ?? [];
  for (const [i, x] of given.entries()) {
    if (!declared.some((d) => d.name === x.name)) {
      const field = `spec.addressExtensions[${i}].name`;
      const known = declared.map((d) => d.name).join(', ') || 'none';
      return { field, reason: reasonFor(field), message: `${where}: ${field}: ConnectorClass "${cls.metadata.name}" declares no address extension "${x.name}" (declared: ${known})` };
    }
  }
  for (const d of declared) {
    if (d.default === undefined && !given.some((x) => x.name === d.name)) {
      const field = 'spec.addressExtensions';
      return { field, reason: reasonFor(field, 'Missing'), message: `${where}: ${field}: ConnectorClass "${cls.metadata.name}" requires address extension "${d.name}" (it has no default)` };
    }
  }
  return undefined;
}

/**
 * Why the proxy does not serve `c`, or undefined: an invalid field (connectorProblem), or a
 * class without `spec.proxy`. The docs give such a class "no Proxy capability" (connector.mdx:
 * no proxy address; connectorclass.mdx: ProxyReady reason NonProxy), so its Secret is never
 * injected for a client; its configurations still render.
 */
export function validateConnector(c: Connector, cls: ConnectorClass | undefined): string | undefined {
  const problem = connectorProblem(c, cls);
  if (problem !== undefined) return problem.message;
  if (cls !== undefined && cls.spec.proxy == null) {
    return `ConnectorClass "${cls.metadata.name}" has no proxy capability (spec.proxy is not set), so the proxy does not serve its Connectors: add spec.proxy (e.g. \`proxy: {}\`) to the class`;
  }
  return undefined;
}

export type { ConnectorClass, Connector, Secret };
