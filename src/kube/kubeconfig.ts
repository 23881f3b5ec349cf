// Where the API server is and how to trust and authenticate to it: a kubeconfig (one file, or
// the `KUBECONFIG` list merged as kubectl merges it), or the in-cluster ServiceAccount.
// Supported: current-context or a chosen context; certificate-authority(-data),
// insecure-skip-tls-verify, tls-server-name, proxy-url (http/https); client certificates,
// token, tokenFile, username/password and exec credential plugins. Anything else a user or
// cluster entry says (auth-provider, impersonation, an unknown field) is refused with the
// file and field named: silently sending other credentials than the user meant would turn
// into confusing 401/403s later.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { KubeConfigError } from './errors';
import { EXEC_API_VERSIONS, type ExecApiVersion, type ExecConfig } from './exec-credentials';

/** Where the API server is and how to talk to it; PEM texts, not paths. */
export interface KubeClientConfig {
  /** `https://host:port`, possibly with a path prefix. */
  readonly server: string;
  /** PEM of the CA(s) that sign the API server's certificate; undefined: the system's. */
  readonly ca?: string;
  /** Client certificate and key (PEM) for certificate authentication. */
  readonly cert?: string;
  readonly key?: string;
  readonly insecureSkipTlsVerify: boolean;
  /** SNI and the name checked in the server certificate, when not the server's host. */
  readonly tlsServerName?: string;
  /** Bearer token, if any; read per request so a rotated token file is picked up. */
  readonly token?: TokenSource;
  /** HTTP Basic credentials (kubeconfig username/password). */
  readonly basicAuth?: { readonly username: string; readonly password: string };
  /** An exec credential plugin: token or client certificate from a command. */
  readonly exec?: ExecConfig;
  /** An http(s) proxy to reach the API server through (kubeconfig proxy-url). */
  readonly proxyUrl?: string;
  /** Which kubeconfig file(s) and context this came from (logs). */
  readonly origin?: string;
}

export interface TokenSource {
  /** The current token ('' when none). */
  current(): string;
}

export class StaticToken implements TokenSource {
  constructor(private readonly token: string) {}
  current(): string { return this.token; }
}

/**
 * A token file re-read when it changes: bound ServiceAccount tokens are rotated by the
 * kubelet (an atomic swap of the projected volume's `..data` link), so a token read once
 * expires within the hour. One stat per request; requests happen only on cache misses.
 */
export class FileToken implements TokenSource {
  private token = '';
  private stamp = '';

  constructor(readonly file: string) {
    this.current();
  }

  current(): string {
    let st;
    try {
      st = statSync(this.file);
    } catch (e) {
      // Keep the last token: a projected volume is briefly missing during its swap.
      if (this.stamp !== '') return this.token;
      throw new KubeConfigError(`${this.file}: cannot read the token file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    if (stamp !== this.stamp) {
      this.token = readFileSync(this.file, 'utf8').trim();
      this.stamp = stamp;
    }
    return this.token;
  }
}

export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The in-cluster config, or undefined when KUBERNETES_SERVICE_HOST/PORT are not set. */
export function inClusterConfig(env: NodeJS.ProcessEnv = process.env, dir = IN_CLUSTER_DIR): KubeClientConfig | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return undefined;
  const caFile = join(dir, 'ca.crt');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readText(caFile, `${caFile}`),
    insecureSkipTlsVerify: false,
    token: new FileToken(join(dir, 'token')),
    origin: `in-cluster (${dir})`,
  };
}

type Fields = Record<string, unknown>;

/** One named entry of a kubeconfig list, with the file it came from (relative paths are relative to it). */
interface Entry { readonly body: Fields; readonly file: string }

interface Merged {
  readonly files: readonly string[];
  readonly clusters: Map<string, Entry>;
  readonly users: Map<string, Entry>;
  readonly contexts: Map<string, Entry>;
  currentContext?: { name: string; file: string };
}

const CLUSTER_FIELDS = new Set(['server', 'certificate-authority', 'certificate-authority-data', 'insecure-skip-tls-verify', 'tls-server-name', 'proxy-url', 'disable-compression', 'extensions']);
const USER_FIELDS = new Set(['client-certificate', 'client-certificate-data', 'client-key', 'client-key-data', 'token', 'tokenFile', 'token-file', 'username', 'password', 'exec', 'extensions']);
const CONTEXT_FIELDS = new Set(['cluster', 'user', 'namespace', 'extensions']);
const EXEC_FIELDS = new Set(['apiVersion', 'command', 'args', 'env', 'installHint', 'provideClusterInfo', 'interactiveMode']);
const REFUSED: Record<string, string> = {
  'auth-provider': 'auth-provider plugins are not supported (kubectl dropped them too): use an exec credential plugin (gke-gcloud-auth-plugin, kubelogin, aws eks get-token), a token or a client certificate',
  as: 'impersonation is not supported: give the proxy credentials of its own (its ServiceAccount needs the RBAC of deploy/rbac.yaml)',
  'as-uid': 'impersonation is not supported: give the proxy credentials of its own',
  'as-groups': 'impersonation is not supported: give the proxy credentials of its own',
  'as-user-extra': 'impersonation is not supported: give the proxy credentials of its own',
};

function readKubeconfigFile(file: string): Fields {
  const text = readText(file, file);
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new KubeConfigError(`${file}: not valid YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new KubeConfigError(`${file}: not a kubeconfig (expected a mapping)`);
  return doc as Fields;
}

/** kubectl's merge: the first file to define a cluster, user or context name (or current-context) wins. */
function merge(files: readonly string[]): Merged {
  const m: Merged = { files, clusters: new Map(), users: new Map(), contexts: new Map() };
  for (const file of files) {
    const doc = readKubeconfigFile(file);
    for (const list of ['clusters', 'users', 'contexts'] as const) {
      const entries = doc[list];
      if (entries === undefined || entries === null) continue;
      if (!Array.isArray(entries)) throw new KubeConfigError(`${file}: ${list}: must be a list`);
      const key = list.slice(0, -1); // clusters → cluster
      entries.forEach((e: unknown, i) => {
        const named = e as Fields | null;
        if (named === null || typeof named !== 'object' || typeof named.name !== 'string' || named.name === '') {
          throw new KubeConfigError(`${file}: ${list}[${i}].name: must be a non-empty string`);
        }
        const body = named[key] ?? {};
        if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new KubeConfigError(`${file}: ${list}[${named.name}].${key}: must be a mapping`);
        if (!m[list].has(named.name)) m[list].set(named.name, { body: body as Fields, file });
      });
    }
    const cc = doc['current-context'];
    if (m.currentContext === undefined && typeof cc === 'string' && cc !== '') m.currentContext = { name: cc, file };
  }
  return m;
}

/** Reads one kubeconfig file: its current context, or `context`. */
export function loadKubeconfig(file: string, context?: string): KubeClientConfig {
  return loadKubeconfigFiles([file], context, false);
}

/**
 * Merges kubeconfig files as kubectl does and resolves the context (`context`, else the
 * merged current-context). With `skipMissing` (the `KUBECONFIG` list) files that do not exist
 * are skipped, as kubectl skips them; at least one must exist.
 */
export function loadKubeconfigFiles(files: readonly string[], context?: string, skipMissing = true): KubeClientConfig {
  const unique = [...new Set(files.filter((f) => f !== ''))];
  const present = skipMissing ? unique.filter((f) => existsSync(f)) : unique;
  if (present.length === 0) throw new KubeConfigError(`${unique.join(delimiter) || '(no file)'}: no kubeconfig file exists`);
  const m = merge(present);
  const all = present.join(delimiter);
  const ctxName = context ?? m.currentContext?.name;
  if (ctxName === undefined) throw new KubeConfigError(`${all}: current-context: not set (or choose one with --context)`);
  const ctxEntry = m.contexts.get(ctxName);
  if (ctxEntry === undefined) {
    throw new KubeConfigError(`${context !== undefined ? `${all}: --context` : `${m.currentContext!.file}: current-context`}: contexts: no entry named "${ctxName}"`);
  }
  const at = (e: Entry, list: string, name: string, field: string): string => `${e.file}: ${list}[${name}].${field}`;
  const ctx = ctxEntry.body;
  for (const f of Object.keys(ctx)) if (!CONTEXT_FIELDS.has(f)) throw new KubeConfigError(`${at(ctxEntry, 'contexts', ctxName, f)}: unknown field`);
  if (typeof ctx.cluster !== 'string' || ctx.cluster === '') throw new KubeConfigError(`${at(ctxEntry, 'contexts', ctxName, 'cluster')}: must be a string`);
  const clusterEntry = m.clusters.get(ctx.cluster);
  if (clusterEntry === undefined) throw new KubeConfigError(`${ctxEntry.file}: clusters: no entry named "${ctx.cluster}" (contexts[${ctxName}].cluster)`);
  const clusterName = ctx.cluster;
  const cluster = clusterEntry.body;
  // A context without a user is valid (anonymous, or TLS only).
  const userName = typeof ctx.user === 'string' ? ctx.user : '';
  let userEntry: Entry = { body: {}, file: ctxEntry.file };
  if (userName !== '') {
    const found = m.users.get(userName);
    if (found === undefined) throw new KubeConfigError(`${ctxEntry.file}: users: no entry named "${userName}" (contexts[${ctxName}].user)`);
    userEntry = found;
  }
  const user = userEntry.body;
  const cAt = (field: string): string => at(clusterEntry, 'clusters', clusterName, field);
  const uAt = (field: string): string => at(userEntry, 'users', userName, field);

  for (const f of Object.keys(cluster)) if (!CLUSTER_FIELDS.has(f)) throw new KubeConfigError(`${cAt(f)}: unknown field: not supported`);
  for (const f of Object.keys(user)) {
    if (REFUSED[f] !== undefined) throw new KubeConfigError(`${uAt(f)}: not supported: ${REFUSED[f]}`);
    if (!USER_FIELDS.has(f)) throw new KubeConfigError(`${uAt(f)}: unknown field: not supported`);
  }

  const server = cluster.server;
  if (typeof server !== 'string' || !/^https?:\/\//.test(server)) throw new KubeConfigError(`${cAt('server')}: must be an http or https URL`);
  const pem = (e: Entry, body: Fields, where: (f: string) => string, field: string): string | undefined => {
    const data = body[`${field}-data`];
    if (data !== undefined && data !== '' && data !== null) {
      if (typeof data !== 'string') throw new KubeConfigError(`${where(`${field}-data`)}: must be base64 text`);
      return Buffer.from(data, 'base64').toString('utf8');
    }
    const path = body[field];
    if (path === undefined || path === '' || path === null) return undefined;
    if (typeof path !== 'string') throw new KubeConfigError(`${where(field)}: must be a file path`);
    return readText(relativeTo(e, path), where(field));
  };
  const str = (body: Fields, where: (f: string) => string, field: string): string | undefined => {
    const v = body[field];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw new KubeConfigError(`${where(field)}: must be a string`);
    return v;
  };

  const ca = pem(clusterEntry, cluster, cAt, 'certificate-authority');
  const cert = pem(userEntry, user, uAt, 'client-certificate');
  const key = pem(userEntry, user, uAt, 'client-key');
  if ((cert === undefined) !== (key === undefined)) throw new KubeConfigError(`${uAt('client-key')}: client-certificate and client-key go together`);

  const tlsServerName = str(cluster, cAt, 'tls-server-name');
  const proxyUrl = str(cluster, cAt, 'proxy-url');
  if (proxyUrl !== undefined) {
    let p: URL;
    try { p = new URL(proxyUrl); } catch { throw new KubeConfigError(`${cAt('proxy-url')}: not a URL`); }
    if (p.protocol !== 'http:' && p.protocol !== 'https:') {
      throw new KubeConfigError(`${cAt('proxy-url')}: ${p.protocol.replace(/:$/, '')} proxies are not supported: use an http or https proxy (CONNECT)`);
    }
  }
  const insecure = cluster['insecure-skip-tls-verify'];
  if (insecure !== undefined && insecure !== null && typeof insecure !== 'boolean') throw new KubeConfigError(`${cAt('insecure-skip-tls-verify')}: must be true or false`);

  const tokenText = str(user, uAt, 'token');
  const tokenFileField = user.tokenFile !== undefined ? 'tokenFile' : 'token-file';
  const tokenFile = str(user, uAt, tokenFileField);
  const username = str(user, uAt, 'username');
  const password = str(user, uAt, 'password');
  if ((username === undefined) !== (password === undefined)) throw new KubeConfigError(`${uAt(username === undefined ? 'username' : 'password')}: username and password go together`);
  const methods = [tokenText ?? tokenFile, username, user.exec].filter((x) => x !== undefined && x !== null);
  if (methods.length > 1) throw new KubeConfigError(`${uAt('exec')}: give one of token/tokenFile, username/password or exec, not several`);

  let token: TokenSource | undefined;
  if (tokenText !== undefined) token = new StaticToken(tokenText);
  else if (tokenFile !== undefined) token = new FileToken(relativeTo(userEntry, tokenFile));

  const exec = user.exec === undefined || user.exec === null ? undefined : execConfig(user.exec, userEntry, uAt('exec'), {
    server,
    ...(ca !== undefined ? { 'certificate-authority-data': Buffer.from(ca).toString('base64') } : {}),
    ...(insecure === true ? { 'insecure-skip-tls-verify': true } : {}),
    ...(tlsServerName !== undefined ? { 'tls-server-name': tlsServerName } : {}),
    ...(proxyUrl !== undefined ? { 'proxy-url': proxyUrl } : {}),
  });

  return {
    server, ca, cert, key,
    insecureSkipTlsVerify: insecure === true,
    tlsServerName,
    token,
    basicAuth: username !== undefined ? { username, password: password! } : undefined,
    exec,
    proxyUrl,
    origin: `${all} (context ${ctxName})`,
  };
}

function execConfig(raw: unknown, e: Entry, where: string, cluster: Fields): ExecConfig {
  if (typeof raw !== 'object' || Array.isArray(raw) || raw === null) throw new KubeConfigError(`${where}: must be a mapping`);
  const x = raw as Fields;
  for (const f of Object.keys(x)) if (!EXEC_FIELDS.has(f)) throw new KubeConfigError(`${where}.${f}: unknown field: not supported`);
  if (!EXEC_API_VERSIONS.includes(x.apiVersion as ExecApiVersion)) {
    throw new KubeConfigError(`${where}.apiVersion: ${JSON.stringify(x.apiVersion)} is not supported: use ${EXEC_API_VERSIONS.join(' or ')}`);
  }
  if (typeof x.command !== 'string' || x.command === '') throw new KubeConfigError(`${where}.command: must be a non-empty string`);
  const args = x.args ?? [];
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new KubeConfigError(`${where}.args: must be a list of strings`);
  const env = x.env ?? [];
  if (!Array.isArray(env) || env.some((v: Fields) => v === null || typeof v !== 'object' || typeof v.name !== 'string' || typeof v.value !== 'string')) {
    throw new KubeConfigError(`${where}.env: must be a list of {name, value} strings`);
  }
  if (x.interactiveMode === 'Always') throw new KubeConfigError(`${where}.interactiveMode: Always needs a terminal; the proxy has none (use Never or IfAvailable)`);
  if (x.interactiveMode !== undefined && x.interactiveMode !== 'Never' && x.interactiveMode !== 'IfAvailable') {
    throw new KubeConfigError(`${where}.interactiveMode: must be Never, IfAvailable or Always`);
  }
  // As kubectl: a command with a slash is relative to the kubeconfig's folder; a bare name is looked up in PATH.
  const command = x.command.includes('/') ? relativeTo(e, x.command) : x.command;
  return {
    apiVersion: x.apiVersion as ExecApiVersion,
    command,
    args: args as string[],
    env: env as Array<{ name: string; value: string }>,
    installHint: typeof x.installHint === 'string' ? x.installHint : undefined,
    cluster: x.provideClusterInfo === true ? cluster : undefined,
    where,
  };
}

function relativeTo(e: Entry, path: string): string {
  return isAbsolute(path) ? path : join(dirname(resolve(e.file)), path);
}

/**
 * `kubeconfig` (with `context`) when given; else in-cluster when running in a Pod and no
 * context is asked for; else every file of `$KUBECONFIG`, merged, or `~/.kube/config`.
 */
export function loadKubeClientConfig(kubeconfig?: string, env: NodeJS.ProcessEnv = process.env, context?: string): KubeClientConfig {
  if (kubeconfig) return loadKubeconfigFiles([kubeconfig], context, false);
  if (context === undefined) {
    const inCluster = inClusterConfig(env);
    if (inCluster) return inCluster;
  }
  const list = (env.KUBECONFIG ?? '').split(delimiter).filter((p) => p !== '');
  return list.length > 0 ? loadKubeconfigFiles(list, context, true) : loadKubeconfigFiles([join(homedir(), '.kube', 'config')], context, false);
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new KubeConfigError(`${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
