// The conditions of Connectors and ConnectorClasses (SPEC §2, the docs' "Status Information"),
// computed from the index and from probes. Probes run with the Connector's own credentials
// (rendered auth-probe headers), never a client's token; nothing here logs what it sends.
import type { Dispatcher } from 'undici';
import { X509Certificate } from 'node:crypto';
import type { Condition, Connector, ConnectorClass, HttpProbe, NameValue, Probe, Secret } from '../types';
import { TemplateError } from '../templates';
import { classTemplate } from '../templates/class-templates';
import { crossNamespaceMessage, decodeSecret, resolveAuth } from '../sources/auth-resolution';
import type { ObjectStore } from '../sources/store';
import { classProblem, connectorProblem } from '../sources/validate';
import { caCertificatesOf } from '../tls/ca-trust';
import { celSyntaxError, evaluateResponseCel } from './cel';
import { pluginHeaders } from '../http/plugin-headers';
import { describeUrl, probe, type ProbeOutcome } from './probe';

export interface CheckOptions {
  readonly timeoutMs: number;
  /** The proxy address this proxy serves `c` at (for ProxyServiceReady), if its class has a proxy. */
  readonly proxyAddress: (c: Connector, cls: ConnectorClass) => string | undefined;
  /** How a Connector's tool is reached with its CA trust (caCertSecretRef, global CA Secrets). */
  readonly dispatcherFor?: (c: Connector) => Dispatcher | undefined;
  /** Kubernetes mode: ProxyServiceReady from the Connector's `c-<name>` Service (src/cluster/connector-services.ts). */
  readonly proxyServiceCondition?: (c: Connector, cls: ConnectorClass) => Condition;
  /** Kubernetes mode: ProxyReady of a class whose spec.proxy names a Service; undefined: probe the address. */
  readonly classProxyCondition?: (cls: ConnectorClass) => Condition | undefined;
  /** The class's `status.proxy.httpAddress.url`, from spec.proxy. */
  readonly classProxyAddress?: (cls: ConnectorClass) => string | undefined;
  /** --allow-cross-namespace-secrets: a secretRef to another namespace is used (SecretReady). */
  readonly allowCrossNamespaceSecrets?: boolean;
  /** The enable-custom-ca-certs flag (it may change at run time): Connectors get the informational CACertReady condition. */
  readonly customCaCerts?: () => boolean;
}

type Status = Condition['status'];
const cond = (type: string, status: Status, reason = '', message = ''): Condition => ({ type, status, reason, message });

/** Ready from the others: all True → True, any False → False, else Unknown. */
export function readyCondition(others: readonly Condition[]): Condition {
  const failed = others.filter((c) => c.status === 'False');
  if (failed.length > 0) return cond('Ready', 'False', 'NotReady', failed.map((c) => `${c.type}: ${c.message || c.reason}`).join('; '));
  if (others.some((c) => c.status !== 'True')) return cond('Ready', 'Unknown', 'Checking', `waiting for ${others.filter((c) => c.status !== 'True').map((c) => c.type).join(', ')}`);
  return cond('Ready', 'True');
}


/** Go field names, as the controller's templates see the Connector (`.Connector.Spec.Auth.Params`). */
export function goConnector(c: Connector): Record<string, unknown> {
  const params = (list: readonly NameValue[] | undefined): unknown[] =>
    (list ?? []).map((p) => ({ Name: p.name, Value: { Type: 'string', StringVal: String(p.value ?? '') } }));
  const meta = { Name: c.metadata.name, Namespace: c.metadata.namespace, Labels: c.metadata.labels ?? {}, Annotations: c.metadata.annotations ?? {} };
  return {
    ...meta,
    ObjectMeta: meta,
    Spec: {
      ConnectorClassName: c.spec.connectorClassName,
      Address: c.spec.address,
      AddressExtensions: (c.spec.addressExtensions ?? []).map((e) => ({ Name: e.name, Value: e.value })),
      Params: params(c.spec.params),
      Auth: {
        Name: c.spec.auth?.name ?? '',
        SecretRef: c.spec.auth?.secretRef ? { Name: c.spec.auth.secretRef.name, Namespace: c.spec.auth.secretRef.namespace ?? '' } : null,
        Params: params(c.spec.auth?.params),
      },
    },
  };
}

export function goSecret(s: Secret): Record<string, unknown> {
  const data = Object.fromEntries(decodeSecret(s));
  return { Name: s.metadata.name, Namespace: s.metadata.namespace, Type: s.type ?? 'Opaque', Data: data, StringData: data };
}

interface AuthSetup {
  readonly authName?: string;
  readonly secret?: Secret;
  /** SecretReady. */
  readonly condition: Condition;
}

function authSetup(c: Connector, cls: ConnectorClass, index: ObjectStore, allowCrossNamespace: boolean): AuthSetup {
  const auth = resolveAuth(c, cls, (ns, name) => index.secret(ns, name), allowCrossNamespace);
  switch (auth.kind) {
    case 'none': return { condition: cond('SecretReady', 'True', 'NonAuth', 'the ConnectorClass defines no auth types') };
    case 'unknown-type': return { condition: cond('SecretReady', 'False', 'InvalidAuthType', `ConnectorClass "${cls.metadata.name}" has no auth type "${auth.wanted}"`) };
    case 'ambiguous': return { condition: cond('SecretReady', 'False', 'InvalidAuthType', `set spec.auth.name to one of ${auth.names.join(', ')}`) };
    case 'no-secret': {
      const name = auth.authType.name;
      return auth.authType.optional
        ? { authName: name, condition: cond('SecretReady', 'True', 'SecretOptional', `auth type "${name}" is optional and no Secret is set`) }
        : { authName: name, condition: cond('SecretReady', 'False', 'SecretRequired', `auth type "${name}" requires spec.auth.secretRef`) };
    }
    case 'secret-not-found': return { authName: auth.authType.name, condition: cond('SecretReady', 'False', 'SecretNotFound', `Secret ${auth.secretKey} not found`) };
    case 'cross-namespace': return { authName: auth.authType.name, condition: cond('SecretReady', 'False', 'SecretCrossNamespace', crossNamespaceMessage(auth.secretKey)) };
    default: break;
  }
  const { authType: type, secret, secretKey } = auth;
  if (type.secretType && secret.type && type.secretType !== secret.type && type.secretType !== 'Opaque') {
    return { authName: type.name, secret, condition: cond('SecretReady', 'False', 'SecretTypeMismatch', `Secret ${secretKey} has type ${secret.type}, auth type "${type.name}" needs ${type.secretType}`) };
  }
  if (auth.kind === 'missing-keys') return { authName: type.name, secret, condition: cond('SecretReady', 'False', 'SecretInvalid', `Secret ${secretKey} lacks key(s) ${auth.missing.join(', ')}`) };
  return { authName: type.name, secret, condition: cond('SecretReady', 'True') };
}

/**
 * The probe's URL: the address's origin (its scheme and host replaced by `http.scheme` and
 * `http.host` when set) plus the rendered path; the address's path prefix is not used, as documented.
 */
function probeUrl(address: string, path: string, http: HttpProbe): string {
  const u = new URL(address);
  const origin = `${http.scheme ?? u.protocol.slice(0, -1)}://${http.host ?? u.host}`;
  return new URL(path.startsWith('/') ? path : `/${path}`, origin).href;
}

function headerList(h: HttpProbe['httpHeaders']): Array<[string, string]> {
  if (h === undefined || h === null) return [];
  if (Array.isArray(h)) return h.map((e) => [e.name, e.value ?? '']);
  return Object.entries(h).map(([k, v]) => [k, String(v ?? '')]);
}

function outcomeCondition(type: string, method: string, o: ProbeOutcome, authFailure: boolean, cel?: { expr: string; field: string }): Condition {
  const what = describeUrl(method, o.url);
  if (o.kind === 'error') return cond(type, 'False', 'ProbeFailed', `${what}: ${o.message}`);
  if (cel !== undefined) {
    // The expression decides, whatever the status (SonarQube answers 200 with {"valid": false}).
    const r = evaluateResponseCel(cel.expr, { statusCode: o.status, headers: o.headers ?? {}, body: o.body ?? '' });
    if ('error' in r) return cond(type, 'False', 'ProbeFailed', `${what} answered ${o.status}; ${cel.field} failed: ${r.error}`);
    if (r.ok) return cond(type, 'True', '', `${what} answered ${o.status}; ${cel.field} is true`);
    if (authFailure && (o.status === 401 || o.status === 403)) return cond(type, 'False', 'Unauthorized', `${what} answered ${o.status}: the tool rejected the Connector's credentials`);
    return cond(type, 'False', authFailure ? 'Unauthorized' : 'ProbeFailed', `${what} answered ${o.status}; ${cel.field} is false`);
  }
  if (o.status >= 200 && o.status < 300) return cond(type, 'True', '', `${what} answered ${o.status}`);
  if (authFailure && (o.status === 401 || o.status === 403)) return cond(type, 'False', 'Unauthorized', `${what} answered ${o.status}: the tool rejected the Connector's credentials`);
  return cond(type, 'False', 'ProbeFailed', `${what} answered ${o.status}`);
}

/** All conditions of a Connector, probing the tool now. */
export async function connectorConditions(c: Connector, index: ObjectStore, o: CheckOptions): Promise<Condition[]> {
  const cls = index.connectorClass(c.spec.connectorClassName);
  if (cls === undefined) {
    const others = [
      cond('ConnectorClassReady', 'False', 'ConnectorClassNotFound', `ConnectorClass "${c.spec.connectorClassName}" not found`),
      ...['SecretReady', 'LivenessReady', 'AuthReady', 'ProxyServiceReady'].map((t) => cond(t, 'Unknown', 'ConnectorClassNotReady', 'waiting for the ConnectorClass')),
    ];
    return [...others, readyCondition(others)];
  }
  // What both sources refuse (src/sources/validate.ts): not served, nothing probed.
  const problem = connectorProblem(c, cls);
  if (problem !== undefined) {
    const others = [
      cond('ConnectorClassReady', 'False', problem.reason, problem.message),
      ...['SecretReady', 'LivenessReady', 'AuthReady', 'ProxyServiceReady'].map((t) => cond(t, 'Unknown', 'ConnectorInvalid', `not checked: ${problem.field} is invalid`)),
    ];
    return [...others, ...caCertCondition(c, index, o), readyCondition(others)];
  }
  const classReady = cond('ConnectorClassReady', 'True');
  const auth = authSetup(c, cls, index, o.allowCrossNamespaceSecrets === true);

  const liveness = cls.spec.livenessProbe;
  const livenessP: Promise<Condition> = liveness?.http == null && liveness?.api == null
    ? Promise.resolve(cond('LivenessReady', 'True', 'NonLivenessProbe', 'the ConnectorClass defines no liveness probe'))
    : runProbe('LivenessReady', c, cls, liveness!, 'spec.livenessProbe', undefined, o, false);

  const authProbe = (cls.spec.authProbes ?? []).find((p) => p.authName === auth.authName);
  let authP: Promise<Condition>;
  if (authProbe?.probe?.http == null && authProbe?.probe?.api == null) authP = Promise.resolve(cond('AuthReady', 'True', 'NonAuthProbe', 'the ConnectorClass defines no auth probe for this auth type'));
  else if (auth.condition.status !== 'True') authP = Promise.resolve(cond('AuthReady', 'False', 'SecretNotReady', auth.condition.message));
  else {
    const i = (cls.spec.authProbes ?? []).indexOf(authProbe!);
    authP = runProbe('AuthReady', c, cls, authProbe!.probe!, `spec.authProbes[${i}].probe`, auth.secret, o, true);
  }

  const address = cls.spec.proxy == null ? undefined : o.proxyAddress(c, cls);
  const proxy = cls.spec.proxy == null
    ? cond('ProxyServiceReady', 'True', 'NonProxy', 'the ConnectorClass defines no proxy')
    : o.proxyServiceCondition?.(c, cls)
      ?? (address !== undefined ? cond('ProxyServiceReady', 'True', '', `served at ${address}`) : cond('ProxyServiceReady', 'False', 'NoAddress', 'no proxy address'));
  const others = [classReady, auth.condition, await livenessP, await authP, proxy];
  return [...others, ...caCertCondition(c, index, o), readyCondition(others)];
}

/**
 * CACertReady (connector.mdx): informational (severity Info, not part of Ready) and present
 * only with --enable-custom-ca-certs. Valid / NoCACert / SecretNotFound / InvalidPEM.
 */
function caCertCondition(c: Connector, index: ObjectStore, o: CheckOptions): Condition[] {
  if (o.customCaCerts?.() !== true) return [];
  const info = (status: Condition['status'], reason: string, message: string): Condition[] => [{ ...cond('CACertReady', status, reason, message), severity: 'Info' }];
  const name = c.spec.caCertSecretRef?.name;
  if (name === undefined || name === '') return info('True', 'NoCACert', 'spec.caCertSecretRef is not set; the connector uses only the global CA pool');
  const secret = index.secret(c.metadata.namespace, name);
  if (secret === undefined) return info('False', 'SecretNotFound', `Secret "${name}" (spec.caCertSecretRef) not found in namespace "${c.metadata.namespace}"`);
  const valid = caCertificatesOf(secret).filter((pem) => {
    try { new X509Certificate(pem); return true; } catch { return false; }
  });
  if (valid.length === 0) return info('False', 'InvalidPEM', `Secret "${name}" (spec.caCertSecretRef) holds no valid PEM-encoded certificate (keys ending in .crt or .pem, or values with a PEM header)`);
  return info('True', 'Valid', `CA certificate loaded from secret "${name}"`);
}

async function runProbe(type: string, c: Connector, cls: ConnectorClass, spec: Probe, field: string, secret: Secret | undefined, o: CheckOptions, authFailure: boolean): Promise<Condition> {
  if (spec.http == null) return runApiProbe(type, c, cls, spec, field, secret, o, authFailure);
  const http = spec.http;
  field = `${field}.http`;
  const data = { Connector: goConnector(c), Secret: secret === undefined ? null : goSecret(secret) };
  let path: string;
  let headers: Record<string, string>;
  try {
    path = classTemplate(cls, `${field}.path`, http.path ?? '/').render(data);
    headers = renderHeaders(cls, http.httpHeaders, field, data);
  } catch (e) {
    // TemplateError names class, field and position; an execution error may also carry what a
    // function said (sprig's `fail`, `required`), which a template can make a Secret value.
    return cond(type, 'False', 'InvalidProbe', redact(e instanceof TemplateError || e instanceof Error ? e.message : String(e), secret));
  }
  const expr = http.response?.cel;
  const celField = `ConnectorClass ${cls.metadata.name}, ${field}.response.cel`;
  if (expr !== undefined && expr !== '') {
    const bad = celSyntaxError(expr);
    if (bad !== undefined) return cond(type, 'False', 'InvalidProbe', `${celField}: ${bad}`);
  }
  const method = http.method === 'POST' ? 'POST' : 'GET';
  let url: string;
  try {
    url = probeUrl(c.spec.address, path, http);
  } catch {
    return cond(type, 'False', 'InvalidProbe', `${field}: the rendered path, host and scheme do not make a URL with spec.address`);
  }
  // A probe to another host than the address's (http.host) is not the Connector's tool: default trust.
  const sameOrigin = new URL(url).origin === new URL(c.spec.address).origin;
  const outcome = await probe({
    url, method, headers, disableRedirect: http.disableRedirect === true, timeoutMs: o.timeoutMs,
    dispatcher: sameOrigin ? o.dispatcherFor?.(c) : undefined, keepBody: expr !== undefined && expr !== '',
  });
  const result = outcomeCondition(type, method, outcome, authFailure, expr ? { expr, field: `${field}.response.cel` } : undefined);
  // A path template may put a Secret value in the URL: never into a status message.
  return { ...result, message: redact(result.message ?? '', secret) };
}

function renderHeaders(cls: ConnectorClass, list: HttpProbe['httpHeaders'], field: string, data: unknown): Record<string, string> {
  const headers: Record<string, string> = {};
  headerList(list).forEach(([name, value], i) => {
    const v = classTemplate(cls, `${field}.httpHeaders[${Array.isArray(list) ? i : name}]`, value).render(data).trim();
    if (/[\r\n\0]/.test(v) || /[\r\n\0:]/.test(name)) throw new Error(`${field}.httpHeaders: header "${name}" would contain a line break or NUL`);
    if (v !== '') headers[name] = v;
  });
  return headers;
}

/**
 * A probe through the ConnectorClass API (connectorclass.mdx, connectorclass_api_spec.mdx):
 * GET `<status.api.address.url><path>` with the Connector as the API expects it, X-Plugin-Meta
 * (`{"baseURL": <address>}`) and, for an auth probe, X-Plugin-Auth (the Secret type) and
 * X-Plugin-Secret (the Secret's data). 2xx: True; 401/403: Unauthorized.
 */
async function runApiProbe(type: string, c: Connector, cls: ConnectorClass, spec: Probe, field: string, secret: Secret | undefined, o: CheckOptions, authFailure: boolean): Promise<Condition> {
  field = `${field}.api`;
  const base = serviceAddress(cls.spec.api);
  if (base === undefined) return cond(type, 'False', 'InvalidProbe', `ConnectorClass ${cls.metadata.name}, ${field}: needs spec.api (a Service ref or an absolute uri)`);
  const data = { Connector: goConnector(c), Secret: secret === undefined ? null : goSecret(secret) };
  let path: string;
  try {
    path = classTemplate(cls, `${field}.path`, spec.api?.path ?? '/').render(data);
  } catch (e) {
    return cond(type, 'False', 'InvalidProbe', redact(e instanceof Error ? e.message : String(e), secret));
  }
  // What the gateway sends the class API (X-Plugin-Meta; an auth probe also X-Plugin-Auth and -Secret).
  const flat = pluginHeaders(c, authFailure ? secret : undefined);
  const headers: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) headers[flat[i]!] = flat[i + 1]!;
  const url = base.replace(/\/+$/, '') + (path.startsWith('/') ? path : `/${path}`);
  const outcome = await probe({ url, method: 'GET', headers, timeoutMs: o.timeoutMs });
  const result = outcomeCondition(type, 'GET', outcome, authFailure);
  return { ...result, message: redact(result.message ?? '', secret) };
}

/**
 * `message` without the Secret's values (the username aside) as they are or base64-encoded,
 * nor its Basic credential: status conditions are readable by anyone who can read the Connector.
 */
function redact(message: string, secret: Secret | undefined): string {
  if (secret === undefined) return message;
  const data = decodeSecret(secret);
  const hidden: string[] = [];
  for (const [k, v] of data) if (k !== 'username' && v.length >= 4) hidden.push(v, Buffer.from(v).toString('base64'));
  const user = data.get('username');
  const password = data.get('password');
  if (user !== undefined && password !== undefined) hidden.push(Buffer.from(`${user}:${password}`).toString('base64'));
  // Longest first, so a value inside another one does not leave the rest of it behind.
  return hidden.sort((a, b) => b.length - a.length).reduce((m, v) => m.split(v).join('***'), message);
}

/** `status.api.address.url` from `spec.api` as the docs resolve it; undefined without one. */
export function serviceAddress(spec: { ref?: { name: string; namespace?: string }; uri?: string } | undefined): string | undefined {
  if (spec == null) return undefined;
  if (spec.uri !== undefined && /^https?:\/\//.test(spec.uri)) return spec.uri;
  if (spec.ref?.name) return `https://${spec.ref.name}.${spec.ref.namespace ?? 'default'}.svc${spec.uri ?? ''}`;
  return undefined;
}

/** A ConnectorClass's conditions: APIReady and ProxyReady (reachability, or the Service in Kubernetes mode), Ready. */
export async function classConditions(cls: ConnectorClass, o: Pick<CheckOptions, 'timeoutMs' | 'classProxyCondition' | 'classProxyAddress'>): Promise<{ conditions: Condition[]; apiUrl?: string; proxyUrl?: string }> {
  const reach = async (type: string, none: string, spec: { ref?: { name: string; namespace?: string }; uri?: string } | undefined, field: string): Promise<Condition> => {
    if (spec == null) return cond(type, 'True', none, `the ConnectorClass defines no ${field}`);
    const url = serviceAddress(spec);
    if (url === undefined) return cond(type, 'False', 'InvalidAddress', `${field}: set ref (a Service) or an absolute uri`);
    // The docs: only whether the address answers at all, not what it answers.
    const out = await probe({ url, timeoutMs: o.timeoutMs, disableRedirect: true });
    return out.kind === 'error' ? cond(type, 'False', 'Unreachable', `${describeUrl('GET', url)}: ${out.message}`) : cond(type, 'True', '', `${url} answered ${out.status}`);
  };
  const proxy = cls.spec.proxy;
  // spec.proxy without ref or uri (e.g. only an authExtractor): this proxy serves the class.
  const ownProxy = proxy != null && proxy.ref == null && (proxy.uri === undefined || proxy.uri === '');
  const proxyReady = (proxy == null ? undefined : o.classProxyCondition?.(cls))
    ?? (ownProxy ? cond('ProxyReady', 'True', '', 'served by this proxy (spec.proxy names no other service)') : reach('ProxyReady', 'NonProxy', proxy, 'spec.proxy'));
  const others = await Promise.all([reach('APIReady', 'NonAPI', cls.spec.api, 'spec.api'), proxyReady]);
  const bad = classProblem(cls);
  const ready = bad === undefined ? readyCondition(others) : cond('Ready', 'False', bad.reason, bad.message);
  return { conditions: [...others, ready], apiUrl: serviceAddress(cls.spec.api), proxyUrl: o.classProxyAddress?.(cls) };
}
