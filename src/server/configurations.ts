// The configurations endpoint on the proxy port (SPEC §8, connectors_csi.mdx), authenticated
// like proxy traffic. What the docs' CSI driver mounts for a volume, with its volume attributes
// as query parameters:
//   GET /configurations/files?connectors=<ns>/<name>,<name>&namespace=<default ns>
//       &configuration.names=<configuration>,!<file>&configuration.params=<JSON>
//     → {"files": {"<file>": "<content>", ...}}: built-in files and the selected configurations
//   GET /configurations/files/<file>?<the same>      → that one file
// and one Connector's class configurations, each kept apart:
//   GET /configurations/namespaces/<ns>/connectors/<name>[/<configuration>[/<file>]]
// Only on the proxy's own host names: on a `c-<name>.<ns>.<domain>` host every path is the tool's.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { tokenFromAuthorization } from '../auth/client-token';
import type { ObjectStore } from '../sources/store';
import { allMaybe, settle, type MaybePromise } from '../util/maybe';
import type { Admissions, Refusal } from './admission';
import {
  MountError, parseParams, parseSelection, renderClassConfigurations, renderMount, type RenderContext, type RenderTarget,
} from '../templates/configurations';
import { TemplateError } from '../templates';
import { proxyAddress, type ProxyAddressOptions } from '../status/proxy-address';
import type { Connector, ConnectorClass } from '../types';
import { sendError } from './errors';

export const CONFIGURATIONS_PREFIX = '/configurations/';
const PATH = /^\/configurations\/namespaces\/([a-z0-9][a-z0-9-]{0,62})\/connectors\/([a-z0-9][a-z0-9.-]{0,252})(?:\/([^/]+)(?:\/([^/]+))?)?\/?$/;
const FILES = /^\/configurations\/files(?:\/([^/]+))?\/?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
/** As the forward proxy: a volume names a handful of Connectors, not hundreds. */
const MAX_CONNECTORS = 16;

export interface ConfigurationsDeps {
  readonly store: ObjectStore;
  readonly admissions: Admissions;
  readonly address: ProxyAddressOptions;
  readonly log: Logger;
  /**
   * The proxy CA (PEM) that https_proxy clients trust: `.context.proxy.caCert` and the `ca.crt`
   * files. Undefined while it is not loaded: the CA files are left out, the field renders ''.
   */
  readonly proxyCaPem?: () => string | undefined;
}

const HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

/**
 * The forward proxy's base URL: `--public-url`'s origin, else the host-form address of the
 * first Connector (c-<name>.<ns>.<domain>, which reaches the proxy wherever the address does).
 */
export function forwardProxyBase(first: Connector, o: ProxyAddressOptions): string {
  if (o.publicUrl !== undefined) return new URL(o.publicUrl).origin;
  return `${o.proto}://c-${first.metadata.name}.${first.metadata.namespace}.${o.domain}`;
}

function target(c: Connector, cls: ConnectorClass, o: ProxyAddressOptions): RenderTarget {
  return { connector: c, cls, proxyAddress: proxyAddress(c, cls, o) };
}

type Decision = Refusal | { readonly admitted: true; readonly user: string };

/** Every Connector must allow the token; the first refusal answers. */
function checkAll(deps: ConfigurationsDeps, token: string | undefined, refs: ReadonlyArray<{ namespace: string; name: string }>, done: (d: Decision) => void): void {
  const decisions: Array<MaybePromise<Decision>> = refs.map((r) => deps.admissions.connector(token, r));
  const first = (all: Decision[]): void => done(all.find((d) => !d.admitted) ?? all[0]!);
  settle(allMaybe(decisions), first,
    () => done({ admitted: false, status: 503, message: 'cannot check the token now; try again' }));
}

/** The Connector and its class, ready to render; else the status and message saying why not. */
function renderTarget(deps: ConfigurationsDeps, r: { namespace: string; name: string }): RenderTarget | { readonly status: number; readonly message: string } {
  const c = deps.store.connector(r.namespace, r.name);
  if (c === undefined) return deps.store.ready ? { status: 404, message: `connector ${r.namespace}/${r.name} not found` } : { status: 503, message: 'connectors are not loaded yet; try again' };
  const cls = deps.store.connectorClass(c.spec.connectorClassName);
  if (cls === undefined) return { status: 502, message: `connector ${r.namespace}/${r.name}: ConnectorClass "${c.spec.connectorClassName}" not found` };
  return target(c, cls, deps.address);
}

function sendJson(res: ServerResponse, value: unknown): void {
  res.writeHead(200, { ...HEADERS, 'content-type': 'application/json' }).end(`${JSON.stringify(value, null, 2)}\n`);
}

function refused(res: ServerResponse, d: Refusal): void {
  sendError(res, d.status, d.message, d.headers as Record<string, string> | undefined);
}

function renderFailed(res: ServerResponse, deps: ConfigurationsDeps, who: string, e: unknown): void {
  // Names class, field and position; never rendered text (it holds the token).
  const why = e instanceof TemplateError ? e.message : 'rendering failed';
  deps.log.warn({ connector: who, err: why }, 'configuration not rendered');
  sendError(res, 502, `${who}: ${why}`);
}

export function serveConfigurations(req: IncomingMessage, res: ServerResponse, deps: ConfigurationsDeps): void {
  const [path, query = ''] = (req.url ?? '/').split('?', 2) as [string, string?];
  const files = FILES.exec(path);
  const m = files === null ? PATH.exec(path) : null;
  if (files === null && m === null) {
    return sendError(res, 404, 'expected /configurations/files?connectors=<ns>/<name>,...[&configuration.names=...] or /configurations/namespaces/<namespace>/connectors/<name>[/<configuration>/<file>]');
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'configurations are read with GET', { allow: 'GET, HEAD' });
  const token = tokenFromAuthorization(req.headers.authorization);
  if (files !== null) return serveMount(req, res, deps, token, files[1], new URLSearchParams(query));
  const [, namespace, name, configName, fileName] = m as unknown as [string, string, string, string | undefined, string | undefined];
  let file: string | undefined;
  try {
    file = fileName === undefined ? undefined : decodeURIComponent(fileName);
  } catch {
    return sendError(res, 400, 'bad percent-encoding in the file name');
  }
  checkAll(deps, token, [{ namespace, name }], (d) => {
    if (!d.admitted) return refused(res, d);
    const t = renderTarget(deps, { namespace, name });
    if ('status' in t) return sendError(res, t.status, t.message);
    const cls = t.cls;
    const ctx: RenderContext = { token: token!, caPem: deps.proxyCaPem?.(), forwardProxy: forwardProxyBase(t.connector, deps.address), params: {} };
    let rendered;
    try {
      rendered = renderClassConfigurations([t], ctx, configName === undefined ? undefined : new Set([configName]));
    } catch (e) {
      return renderFailed(res, deps, `connector ${namespace}/${name}`, e);
    }
    deps.log.info({ connector: `${namespace}/${name}`, user: d.user, configuration: configName, file }, 'configurations rendered');
    if (configName === undefined) return sendJson(res, { configurations: rendered });
    const conf = rendered[0];
    if (conf === undefined) return sendError(res, 404, `ConnectorClass "${cls.metadata.name}" has no configuration "${configName}"`);
    if (file === undefined) return sendJson(res, conf);
    const text = conf.data[file];
    if (text === undefined) return sendError(res, 404, `configuration "${configName}" of ConnectorClass "${cls.metadata.name}" has no file "${file}"`);
    sendFile(req, res, text);
  });
}

function sendFile(req: IncomingMessage, res: ServerResponse, text: string): void {
  res.writeHead(200, { ...HEADERS, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(req.method === 'HEAD' ? undefined : text);
}

/** The CSI volume: `connectors`, `namespace` (for bare names), `configuration.names`, `configuration.params`. */
function serveMount(req: IncomingMessage, res: ServerResponse, deps: ConfigurationsDeps, token: string | undefined, rawFile: string | undefined, q: URLSearchParams): void {
  let file: string | undefined;
  let selection;
  let params;
  const refs: Array<{ namespace: string; name: string }> = [];
  try {
    file = rawFile === undefined ? undefined : decodeURIComponent(rawFile);
    selection = parseSelection(q.get('configuration.names') ?? undefined);
    params = parseParams(q.get('configuration.params') ?? undefined);
    const defaultNs = q.get('namespace') ?? undefined;
    if (defaultNs !== undefined && !NAMESPACE.test(defaultNs)) throw new MountError(`namespace: "${defaultNs}" is not a valid namespace`);
    for (const raw of (q.get('connectors') ?? '').split(',')) {
      const entry = raw.trim();
      if (entry === '') continue;
      const slash = entry.indexOf('/');
      const namespace = slash < 0 ? defaultNs : entry.slice(0, slash);
      const name = slash < 0 ? entry : entry.slice(slash + 1);
      if (namespace === undefined) throw new MountError(`connectors: "${entry}" has no namespace: write <namespace>/<name> or pass namespace=`);
      if (!NAMESPACE.test(namespace) || !NAME.test(name)) throw new MountError(`connectors: "${entry}" is not <namespace>/<name>`);
      if (!refs.some((r) => r.namespace === namespace && r.name === name)) refs.push({ namespace, name });
    }
    if (refs.length === 0) throw new MountError('connectors: name at least one Connector (<namespace>/<name>, comma-separated)');
    if (refs.length > MAX_CONNECTORS) throw new MountError(`connectors: at most ${MAX_CONNECTORS} Connectors`);
  } catch (e) {
    return sendError(res, 400, e instanceof MountError ? e.message : 'bad percent-encoding in the file name');
  }
  // The token is checked for every Connector first: a caller learns nothing about the others.
  checkAll(deps, token, refs, (d) => {
    if (!d.admitted) return refused(res, d);
    const targets: RenderTarget[] = [];
    for (const r of refs) {
      const t = renderTarget(deps, r);
      if ('status' in t) return sendError(res, t.status, t.message);
      targets.push(t);
    }
    const ctx: RenderContext = { token: token!, caPem: deps.proxyCaPem?.(), forwardProxy: forwardProxyBase(targets[0]!.connector, deps.address), params: params! };
    const who = refs.map((r) => `${r.namespace}/${r.name}`).join(',');
    let out: Record<string, string>;
    try {
      out = renderMount(targets, selection!, ctx, deps.address.domain);
    } catch (e) {
      if (e instanceof MountError) return sendError(res, 404, e.message);
      return renderFailed(res, deps, `connectors ${who}`, e);
    }
    deps.log.info({ connector: who, user: d.user, configurations: selection!.include, file }, 'configurations rendered');
    if (file === undefined) return sendJson(res, { files: out });
    const text = out[file];
    if (text === undefined) return sendError(res, 404, `no file "${file}" in this mount`);
    sendFile(req, res, text);
  });
}
