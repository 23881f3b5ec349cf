// The files the docs' CSI driver mounts (connectors_csi.mdx), rendered for a caller's token:
// ConnectorClass `spec.configurations` and the built-in files, for one or several Connectors.
//
// Template data (connectors_csi.mdx "Available Variables", Go templates with sprig):
//   .connector       the Connector as JSON, `status.proxyAddress` = where the proxy serves it
//                    ('' when its class has no spec.proxy); also `name`/`namespace` at the top,
//                    as the docs' multi-Connector example reads them (`{{ .name }}`)
//   .connectors      every requested Connector of the class being rendered, same shape
//   .connectorclass  the class as JSON (with its status), plus `proxyAddress`: the forward
//                    proxy's URL (no credentials)
//   .context.token   the caller's own token
//   .context.proxy.caCert  the CA PEM clients need to trust the proxy ('' when none)
//   .configurations  the configuration's declared param defaults, overlaid with the caller's
//                    `configuration.params[<configuration name>]`
// Each template text is compiled once per class object.
import type { Connector, ConnectorClass, ConfigurationSpec } from '../types';
import { TemplateError } from './index';
import { classTemplate } from './class-templates';

export interface RenderedConfiguration {
  readonly name: string;
  readonly data: Record<string, string>;
}

/** A Connector to render for, with its class and the addresses the proxy gives it. */
export interface RenderTarget {
  readonly connector: Connector;
  readonly cls: ConnectorClass;
  /** `status.proxyAddress`: where the proxy serves it; undefined when its class has no spec.proxy. */
  readonly proxyAddress: string | undefined;
}

export interface RenderContext {
  readonly token: string;
  /** The CA clients trust the proxy with (PEM); undefined when there is none. */
  readonly caPem: string | undefined;
  /** The forward proxy's base URL for these Connectors (`.connectorclass.proxyAddress`, built-in files). */
  readonly forwardProxy: string;
  /** `configuration.params`: values per configuration name. */
  readonly params: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/** A request the mount rules refuse (unknown configuration names, a bad selector): the caller's mistake. */
export class MountError extends Error {}

function connectorData(t: RenderTarget): Record<string, unknown> {
  const c = t.connector;
  return { ...c, name: c.metadata.name, namespace: c.metadata.namespace, status: { ...c.status, proxyAddress: t.proxyAddress ?? '' } };
}

function paramsFor(conf: ConfigurationSpec, given: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of conf.params ?? []) if (p.default !== undefined) out[p.name] = p.default;
  return { ...out, ...given };
}

/** What a configuration's templates see (the docs' "Available Variables"), for `targets` of one class. */
export function configurationData(targets: readonly RenderTarget[], ctx: RenderContext, conf: ConfigurationSpec): Record<string, unknown> {
  const connectors = targets.map(connectorData);
  return {
    connector: connectors[0], connectors,
    connectorclass: { ...targets[0]?.cls, proxyAddress: ctx.forwardProxy },
    context: { token: ctx.token, proxy: { caCert: ctx.caPem ?? '' } },
    configurations: paramsFor(conf, ctx.params[conf.name]),
  };
}

/**
 * Renders configurations of one class for `targets` (Connectors of that class, in request
 * order; `.connector` is the first). `only` limits it to some configuration names. Throws
 * TemplateError naming the class, the field and the position; never rendered text.
 */
export function renderClassConfigurations(targets: readonly RenderTarget[], ctx: RenderContext, only?: ReadonlySet<string>): RenderedConfiguration[] {
  const first = targets[0];
  if (first === undefined) return [];
  const cls = first.cls;
  const out: RenderedConfiguration[] = [];
  (cls.spec.configurations ?? []).forEach((conf, i) => {
    if (only !== undefined && !only.has(conf.name)) return;
    const data = configurationData(targets, ctx, conf);
    const files: Record<string, string> = {};
    for (const [file, text] of Object.entries(conf.data ?? {})) {
      try {
        files[file] = classTemplate(cls, `spec.configurations[${i}].data[${JSON.stringify(file)}]`, text).render(data);
      } catch (e) {
        throw e instanceof TemplateError ? withoutToken(e, ctx.token) : e;
      }
    }
    out.push({ name: conf.name, data: files });
  });
  return out;
}

/** `configuration.names`: configurations to include and files to leave out (`!<file>`). */
export interface Selection {
  readonly include: readonly string[];
  readonly exclude: ReadonlySet<string>;
}

export function parseSelection(names: string | undefined): Selection {
  const include: string[] = [];
  const exclude = new Set<string>();
  for (const raw of (names ?? '').split(',')) {
    const n = raw.trim();
    if (n === '') continue;
    if (n.startsWith('!')) {
      const file = n.slice(1).trim();
      if (file === '') throw new MountError('configuration.names: "!" must be followed by a file name');
      exclude.add(file);
    } else if (!include.includes(n)) include.push(n);
  }
  return { include, exclude };
}

/** `configuration.params`: a JSON object keyed by configuration name, each an object. */
export function parseParams(json: string | undefined): Record<string, Record<string, unknown>> {
  if (json === undefined || json.trim() === '') return {};
  let v: unknown;
  try { v = JSON.parse(json); } catch { throw new MountError('configuration.params: not valid JSON (expected {"<configuration>": {"<param>": "<value>"}})'); }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new MountError('configuration.params: must be a JSON object keyed by configuration name');
  for (const [k, p] of Object.entries(v)) {
    if (p === null || typeof p !== 'object' || Array.isArray(p)) throw new MountError(`configuration.params["${k}"]: must be an object of parameters`);
  }
  return v as Record<string, Record<string, unknown>>;
}

/** Names that stay off the forward proxy (`no_proxy`): the loopback and the cluster's own. */
function noProxy(domain: string, targets: readonly string[]): string {
  const entries = ['localhost', '127.0.0.1', '::1', `.${domain}`, '.svc', 'kubernetes.default', 'kubernetes.default.svc'];
  // An entry that covers a listed tool would send it around the proxy, without credentials.
  const covers = (entry: string, host: string): boolean => {
    const e = entry.replace(/^\./, '');
    return host === e || host.endsWith(`.${e}`);
  };
  return entries.filter((e, i) => entries.indexOf(e) === i && !targets.some((h) => covers(e, h))).join(',');
}

/** The forward-proxy URL: `<scheme>://<ns>%2F<name>,...:<token>@<host[:port]>` listing every given Connector. */
export function forwardProxyUrl(base: string, connectors: readonly Connector[], token: string): string {
  const u = new URL(base);
  const user = connectors.map((c) => `${c.metadata.namespace}%2F${c.metadata.name}`).join(',');
  return `${u.protocol}//${user}:${encodeURIComponent(token)}@${u.host}`;
}

/**
 * The built-in files (connectors_csi.mdx "Built-in Configurations") for `targets`: `.env`,
 * `http.proxy`, `https.proxy` (one proxy URL listing every Connector with proxy capability),
 * `context.token`, `ca.crt` with its aliases `ca.cert` and `context.proxy.caCert` (the proxy
 * CA, for Connectors the proxy serves), and `connector.status.proxyAddress` (of the last Connector, as the docs say).
 */
export function builtinFiles(targets: readonly RenderTarget[], ctx: RenderContext, domain: string): Record<string, string> {
  const files: Record<string, string> = { 'context.token': ctx.token };
  const served = targets.filter((t) => t.proxyAddress !== undefined);
  if (served.length > 0) {
    const url = forwardProxyUrl(ctx.forwardProxy, served.map((t) => t.connector), ctx.token);
    const hosts = served.flatMap((t) => [t.connector.spec.address, ...(t.connector.spec.addressExtensions ?? []).map((x) => x.value)])
      .flatMap((a) => { try { return [new URL(a).hostname.replace(/^\[|\]$/g, '')]; } catch { return []; } });
    const none = noProxy(domain, hosts);
    files['http.proxy'] = url;
    files['https.proxy'] = url;
    files['.env'] = ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'].map((k) => `${k}=${url}\n`).join('') + `no_proxy=${none}\nNO_PROXY=${none}\n`;
    files['connector.status.proxyAddress'] = served[served.length - 1]!.proxyAddress!;
    // The CA that https_proxy clients trust: only where the proxy serves (and so intercepts).
    if (ctx.caPem !== undefined && ctx.caPem !== '') {
      for (const name of ['ca.crt', 'ca.cert', 'context.proxy.caCert']) files[name] = ctx.caPem;
    }
  }
  return files;
}

/**
 * What the CSI driver mounts for one volume: the built-in files, then the selected
 * configurations of each class (in the order classes first appear among the Connectors; a
 * later class's file of the same name wins, and a configuration's file wins over a built-in),
 * then the exclusions. With configuration names given and none found, it fails.
 */
export function renderMount(targets: readonly RenderTarget[], selection: Selection, ctx: RenderContext, domain: string): Record<string, string> {
  const files: Record<string, string> = builtinFiles(targets, ctx, domain);
  const byClass = new Map<string, RenderTarget[]>();
  for (const t of targets) {
    const list = byClass.get(t.cls.metadata.name);
    if (list === undefined) byClass.set(t.cls.metadata.name, [t]);
    else list.push(t);
  }
  const wanted = new Set(selection.include);
  let found = 0;
  for (const group of byClass.values()) {
    const rendered = renderClassConfigurations(group, ctx, wanted);
    const byName = new Map(rendered.map((r) => [r.name, r.data]));
    for (const name of selection.include) {
      const data = byName.get(name);
      if (data === undefined) continue;
      found++;
      Object.assign(files, data);
    }
  }
  if (selection.include.length > 0 && found === 0) {
    const classes = [...byClass.keys()].map((n) => `"${n}"`).join(', ');
    throw new MountError(`configuration.names: none of ${selection.include.map((n) => `"${n}"`).join(', ')} is a configuration of ConnectorClass ${classes}`);
  }
  for (const f of selection.exclude) delete files[f];
  return files;
}

/**
 * What a template function says when it fails (sprig's `fail`, `required`) is the template's
 * own text, which may be the token: hidden, as it is and base64-encoded (as in `:<token>`).
 */
function withoutToken(e: TemplateError, token: string): TemplateError {
  if (token === '') return e;
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const detail = [b64(`:${token}`), b64(token), token].reduce((m, v) => m.split(v).join('***'), e.detail);
  return detail === e.detail ? e : new TemplateError(e.kind, e.templateName, e.line, e.column, detail);
}
