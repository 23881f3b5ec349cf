// Command line and environment: every flag has an environment variable, named in --help.
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FLAG_DEFINITIONS, flagEnvVar, parseFlagValue, type ExplicitFlag, type FeatureFlagName } from './flags/feature-flags';
import { CA_BUNDLE_FILE, CA_CERT_FILE, DEFAULT_CA_SECRET } from './tls/ca-names';

/** Where scripts/install-opa.sh puts things; shared by fresh clones on one machine. */
const CACHE = process.env.CONNECTORS_PROXY_CACHE ?? join(homedir(), '.cache', 'connectors-proxy');
export const OPA_VERSION = 'v1.22.2';

function defaultOpa(): string {
  const built = join(CACHE, 'opa', OPA_VERSION, 'opa');
  return existsSync(built) ? built : 'opa';
}

export interface ProxyConfig {
  listen: { host: string; port: number };
  opsListen: { host: string; port: number };
  source: 'files' | 'kubernetes';
  manifests: string;
  tokens: string;
  kubernetes: {
    /** undefined: in-cluster, then $KUBECONFIG (every file, merged as kubectl does), then ~/.kube/config. */
    kubeconfig?: string;
    /** Kubeconfig context; undefined: its current-context. */
    context?: string;
    tokenAudiences: string[];
    authCacheTtlMs: number;
    authNegativeCacheTtlMs: number;
    authCacheMaxEntries: number;
    /** Status, the c-<name> Services and the leader Lease: written only when true. */
    writeStatus: boolean;
    /** The proxy's own Service in `namespace`: where the c-<name> ExternalName Services point. */
    proxyService: string;
    /** The cluster's DNS domain (`cluster.local`): the ExternalName target and the names Pods use. */
    clusterDomain: string;
    /** Leader election: the Lease's duration (renew deadline 2/3 of it, retries every 2/15, at most 2 s). */
    leaderLeaseSeconds: number;
    /** The feature flags ConfigMap in `namespace`. */
    featureFlagsConfigMap: string;
  };
  /** Feature flags given on the command line or in the environment (they win over the ConfigMap). */
  featureFlags: Partial<Record<FeatureFlagName, ExplicitFlag>>;
  /** Base URL clients use to reach the proxy (status addresses, rendered configurations). */
  publicUrl?: string;
  probes: { enabled: boolean; intervalMs: number; concurrency: number; timeoutMs: number };
  domain: string;
  proto: 'http' | 'https';
  logLevel: string;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  upstreamKeepAliveMs: number;
  clientKeepAliveMs: number;
  clientHeadersTimeoutMs: number;
  /** Longest silence on a client connection while a request is open; 0 = none. */
  clientIdleTimeoutMs: number;
  maxHeaderSize: number;
  /** Longest request target (→ 414). */
  maxUrlLength: number;
  /** Admission control (issue 19): undefined = derived from the container's memory limit; 0 = no cap. */
  maxConcurrentExchanges: number | undefined;
  maxClientConnections: number | undefined;
  shutdownGraceMs: number;
  watch: boolean;
  opaBin: string;
  policyCacheDir: string;
  maxBodyInjectionBytes: number;
  /** Let a Connector's secretRef name a Secret in another namespace. */
  allowCrossNamespaceSecrets: boolean;
  namespace: string;
  /** Optional HTTPS listener serving the same proxy; certificate and key reloaded on change. */
  tls?: { listen: { host: string; port: number }; certFile: string; keyFile: string };
  /**
   * The forward proxy's CA for TLS interception (src/tls/proxy-ca.ts): the Secret `secretName`
   * in `namespace` (kubernetes source), else `certFile`/`keyFile`, else generated into `dir`.
   */
  proxyCa: { secretName: string; certFile?: string; keyFile?: string; dir: string };
}

function hostPort(value: string): { host: string; port: number } {
  const m = /^(?:\[?([^\]]*)\]?:)?(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`expected [host:]port, got "${value}"`);
  return { host: m[1] || '0.0.0.0', port };
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a whole number >= 0, got "${value}"`);
  return n;
}

function list(value: string): string[] {
  return value.split(',').map((v) => v.trim()).filter((v) => v !== '');
}

function bool(value: string): boolean {
  const v = parseFlagValue(value);
  if (v === undefined) throw new InvalidArgumentError(`expected true or false, got "${value}"`);
  return v;
}

function dnsName(value: string): string {
  const v = value.toLowerCase().replace(/^\.+|\.+$/g, '');
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(v)) throw new InvalidArgumentError(`expected a DNS name, got "${value}"`);
  return v;
}

function httpUrl(value: string): string {
  let u: URL;
  try { u = new URL(value); } catch { throw new InvalidArgumentError(`expected an http(s) URL, got "${value}"`); }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError(`expected an http(s) URL, got "${value}"`);
  return value.replace(/\/+$/, '');
}

export function buildCli(): Command {
  const opt = (flags: string, desc: string, env: string) => new Option(flags, `${desc}`).env(env);
  const cli = new Command('connectors-proxy')
    .description('Authenticating reverse proxy for Kubernetes Connectors: clients authenticate with their ServiceAccount token, the proxy injects the tool credentials.')
    .addOption(opt('--listen <[host:]port>', 'proxy listener', 'PROXY_LISTEN').default(hostPort('8080'), '0.0.0.0:8080').argParser(hostPort))
    .addOption(opt('--ops-listen <[host:]port>', 'metrics, /healthz and /readyz listener', 'PROXY_OPS_LISTEN').default(hostPort('9090'), '0.0.0.0:9090').argParser(hostPort))
    .addOption(opt('--source <kind>', 'where Connectors and client identities come from: files (manifests + token file) or kubernetes (watch + TokenReview/SubjectAccessReview)', 'PROXY_SOURCE').choices(['files', 'kubernetes']).default('files'))
    .addOption(opt('--manifests <dir>', 'folder of ConnectorClass, Connector and Secret YAML (files source)', 'PROXY_MANIFESTS').default('examples/embedded'))
    .addOption(opt('--tokens <file>', 'static token file: token → user and allowed connectors (files source)', 'PROXY_TOKENS').default('examples/tokens.yaml'))
    .addOption(opt('--kubeconfig <file>', 'kubeconfig of the API server (kubernetes source); default: in-cluster, then $KUBECONFIG (all its files, merged as kubectl does), then ~/.kube/config', 'PROXY_KUBECONFIG'))
    .addOption(opt('--context <name>', 'kubeconfig context to use (default: its current-context); implies a kubeconfig, not the in-cluster config', 'PROXY_CONTEXT'))
    .addOption(opt('--token-audiences <list>', 'comma-separated audiences a client token must have (TokenReview); default: the API server\'s own', 'PROXY_TOKEN_AUDIENCES').default([], 'none').argParser(list))
    .addOption(opt('--auth-cache-ttl-ms <ms>', 'how long an allowed token/Connector decision is reused', 'PROXY_AUTH_CACHE_TTL_MS').default(30_000).argParser(positiveInt))
    .addOption(opt('--auth-negative-cache-ttl-ms <ms>', 'how long a 401/403 decision is reused', 'PROXY_AUTH_NEGATIVE_CACHE_TTL_MS').default(5_000).argParser(positiveInt))
    .addOption(opt('--auth-cache-max-entries <n>', 'bound of the decision cache and of the token-review cache (least recently used go first)', 'PROXY_AUTH_CACHE_MAX_ENTRIES').default(10_000).argParser(positiveInt))
    .addOption(opt('--no-write-status', 'write nothing to the API server (kubernetes source): no status (proxy address, conditions), no c-<name> Services, no leader Lease', 'PROXY_NO_WRITE_STATUS'))
    .addOption(opt('--proxy-service <name>', 'the proxy\'s own Service in --namespace (deploy/service.yaml): the c-<name> Services of Connectors point at it', 'PROXY_PROXY_SERVICE').default('connectors-proxy-service'))
    .addOption(opt('--cluster-domain <domain>', 'the cluster\'s DNS domain: target of the c-<name> ExternalName Services, and c-<name>.<ns>.svc.<cluster-domain> is served; default: --domain without its leading "svc.", else cluster.local', 'PROXY_CLUSTER_DOMAIN').argParser(dnsName))
    .addOption(opt('--leader-lease-seconds <s>', 'leader election Lease duration: one replica writes Services and status; another takes over within this long after it dies', 'PROXY_LEADER_LEASE_SECONDS').default(15).argParser(positiveInt))
    .addOption(opt('--feature-flags-configmap <name>', 'the ConfigMap in --namespace holding the feature flags (watched; an explicit flag or environment variable wins)', 'PROXY_FEATURE_FLAGS_CONFIGMAP').default('connectors-config'))
    .addOption(opt('--public-url <url>', 'URL clients reach the proxy at: base of path-form addresses (and port of host-form ones) in status and configurations; default http://c-<name>.<namespace>.<domain>', 'PROXY_PUBLIC_URL').argParser(httpUrl))
    .addOption(opt('--no-probes', 'do not run liveness/auth probes nor compute Connector and ConnectorClass conditions', 'PROXY_NO_PROBES'))
    .addOption(opt('--probe-interval-ms <ms>', 'how often each Connector and ConnectorClass is checked (±10% jitter); changes are checked at once', 'PROXY_PROBE_INTERVAL_MS').default(60_000).argParser(positiveInt))
    .addOption(opt('--probe-concurrency <n>', 'checks running at once', 'PROXY_PROBE_CONCURRENCY').default(8).argParser(positiveInt))
    .addOption(opt('--probe-timeout-ms <ms>', 'time a probed tool has to answer', 'PROXY_PROBE_TIMEOUT_MS').default(10_000).argParser(positiveInt))
    .addOption(opt('--domain <domain>', 'host resolver domain: c-<name>.<namespace>.<domain>', 'PROXY_DOMAIN').default('svc.cluster.local'))
    .addOption(opt('--proto <http|https>', 'scheme clients use to reach the proxy (X-Forwarded-Proto, rewritten Location)', 'PROXY_PROTO').choices(['http', 'https']).default('http'))
    .addOption(opt('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'PROXY_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .addOption(opt('--connect-timeout-ms <ms>', 'upstream connect timeout (→ 504)', 'PROXY_CONNECT_TIMEOUT_MS').default(10_000).argParser(positiveInt))
    .addOption(opt('--headers-timeout-ms <ms>', 'upstream time to response headers (→ 504)', 'PROXY_HEADERS_TIMEOUT_MS').default(120_000).argParser(positiveInt))
    .addOption(opt('--body-idle-timeout-ms <ms>', 'longest pause in an upstream response body; 0 = none', 'PROXY_BODY_IDLE_TIMEOUT_MS').default(300_000).argParser(positiveInt))
    .addOption(opt('--upstream-keepalive-ms <ms>', 'how long idle upstream connections are kept', 'PROXY_UPSTREAM_KEEPALIVE_MS').default(30_000).argParser(positiveInt))
    .addOption(opt('--client-keepalive-ms <ms>', 'how long idle client connections are kept', 'PROXY_CLIENT_KEEPALIVE_MS').default(65_000).argParser(positiveInt))
    .addOption(opt('--client-headers-timeout-ms <ms>', 'time a client has to send request headers (slowloris guard)', 'PROXY_CLIENT_HEADERS_TIMEOUT_MS').default(30_000).argParser(positiveInt))
    .addOption(opt('--client-idle-timeout-ms <ms>', 'longest silence on a client connection while a request is open (a stalled upload, a client that stops reading); Upgrade sessions are exempt; 0 = none', 'PROXY_CLIENT_IDLE_TIMEOUT_MS').default(300_000).argParser(positiveInt))
    .addOption(opt('--max-header-size <bytes>', 'largest request header block (→ 431)', 'PROXY_MAX_HEADER_SIZE').default(32 * 1024).argParser(positiveInt))
    .addOption(opt('--max-url-length <chars>', 'longest request target (→ 414)', 'PROXY_MAX_URL_LENGTH').default(8 * 1024).argParser(positiveInt))
    .addOption(opt('--max-concurrent-exchanges <n>', 'requests relayed at once (Upgrade sessions and CONNECT tunnels included); beyond it 503 with Retry-After before any upstream work; 0 = no cap; default: derived from the container\'s memory limit', 'PROXY_MAX_CONCURRENT_EXCHANGES').argParser(positiveInt))
    .addOption(opt('--max-client-connections <n>', 'open client connections; a connection beyond it gets 503 with Retry-After on its first request and is closed; 0 = no cap; default: derived from the container\'s memory limit', 'PROXY_MAX_CLIENT_CONNECTIONS').argParser(positiveInt))
    .addOption(opt('--shutdown-grace-ms <ms>', 'on SIGTERM, how long in-flight requests may finish', 'PROXY_SHUTDOWN_GRACE_MS').default(30_000).argParser(positiveInt))
    .addOption(opt('--no-watch', 'do not reload manifests and tokens on change', 'PROXY_NO_WATCH'))
    .addOption(opt('--opa <path>', `OPA binary that compiles Rego policies to wasm (scripts/install-opa.sh builds ${OPA_VERSION})`, 'PROXY_OPA').default(defaultOpa()))
    .addOption(opt('--policy-cache-dir <dir>', 'where compiled policies are kept across restarts', 'PROXY_POLICY_CACHE_DIR').default(join(CACHE, 'policies')))
    .addOption(opt('--max-body-injection-bytes <bytes>', 'largest request body a Rego `body` generator may rewrite (→ 413)', 'PROXY_MAX_BODY_INJECTION_BYTES').default(1024 * 1024).argParser(positiveInt))
    .addOption(opt('--allow-cross-namespace-secrets', 'let spec.auth.secretRef.namespace name another namespace than the Connector\'s (off: whoever may create Connectors in one namespace could have the proxy inject another namespace\'s credentials)', 'PROXY_ALLOW_CROSS_NAMESPACE_SECRETS'))
    .addOption(opt('--namespace <ns>', 'the proxy\'s own namespace, where global CA Secrets are read (in a Pod: set from the downward API); embedded mode reads them from the manifests', 'PROXY_NAMESPACE').default(process.env.POD_NAMESPACE || 'connectors-system', '$POD_NAMESPACE, else connectors-system'))
    .addOption(opt('--tls-listen <[host:]port>', 'also serve the proxy over HTTPS here (needs --tls-cert and --tls-key)', 'PROXY_TLS_LISTEN').argParser(hostPort))
    .addOption(opt('--tls-cert <file>', 'PEM certificate (chain) of the HTTPS listener; reloaded when it changes', 'PROXY_TLS_CERT'))
    .addOption(opt('--tls-key <file>', 'PEM private key of the HTTPS listener; reloaded when it changes', 'PROXY_TLS_KEY'))
    // The proxy CA (forward-proxy TLS interception); its key is never logged nor served.
    .addOption(opt('--proxy-ca-secret <name>', 'kubernetes.io/tls Secret in --namespace holding the proxy CA (kubernetes source); created with a new CA when absent, edits are picked up', 'PROXY_CA_SECRET').default(DEFAULT_CA_SECRET))
    .addOption(opt('--proxy-ca-cert <file>', 'PEM certificate of the proxy CA, instead of the Secret or a generated one (needs --proxy-ca-key); reloaded when it changes', 'PROXY_CA_CERT'))
    .addOption(opt('--proxy-ca-key <file>', 'PEM private key of the proxy CA (may be the same file as --proxy-ca-cert)', 'PROXY_CA_KEY'))
    .addOption(opt('--proxy-ca-dir <dir>', `files source without --proxy-ca-cert: where the proxy CA is generated once (${CA_BUNDLE_FILE}, key and certificate) and reused; ${CA_CERT_FILE} next to it is the certificate for clients`, 'PROXY_CA_DIR').default(join(CACHE, 'proxy-ca')));
  // Feature flags: `--<key>` alone is true, `--<key>=false` false; given here or in the
  // environment they win over the connectors-config ConfigMap.
  for (const d of FLAG_DEFINITIONS) {
    cli.addOption(opt(`--${d.key} [true|false]`, `feature flag (also key ${d.key} of the feature flags ConfigMap, default ${d.default}): ${d.description}`, flagEnvVar(d.key)).argParser(bool));
  }
  return cli;
}

export function parseConfig(argv: string[]): ProxyConfig {
  const cli = buildCli();
  cli.parse(argv, { from: 'user' });
  const o = cli.opts();
  const tlsGiven = [o.tlsListen, o.tlsCert, o.tlsKey].filter((v) => v !== undefined).length;
  if (tlsGiven !== 0 && tlsGiven !== 3) cli.error('error: --tls-listen, --tls-cert and --tls-key go together (PROXY_TLS_LISTEN, PROXY_TLS_CERT, PROXY_TLS_KEY)');
  if ((o.proxyCaCert === undefined) !== (o.proxyCaKey === undefined)) cli.error('error: --proxy-ca-cert and --proxy-ca-key go together (PROXY_CA_CERT, PROXY_CA_KEY)');
  if (o.leaderLeaseSeconds < 2) cli.error('error: --leader-lease-seconds must be at least 2');
  const featureFlags: Partial<Record<FeatureFlagName, ExplicitFlag>> = {};
  for (const d of FLAG_DEFINITIONS) {
    const name = d.key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const source = cli.getOptionValueSource(name);
    if (o[name] !== undefined && (source === 'cli' || source === 'env')) featureFlags[d.key] = { value: o[name] === true, origin: source === 'cli' ? 'cli' : 'env' };
  }
  const domain: string = o.domain;
  return {
    listen: o.listen, opsListen: o.opsListen, source: o.source, manifests: o.manifests, tokens: o.tokens,
    domain, proto: o.proto, logLevel: o.logLevel,
    connectTimeoutMs: o.connectTimeoutMs, headersTimeoutMs: o.headersTimeoutMs, bodyIdleTimeoutMs: o.bodyIdleTimeoutMs,
    upstreamKeepAliveMs: o.upstreamKeepaliveMs, clientKeepAliveMs: o.clientKeepaliveMs,
    clientHeadersTimeoutMs: o.clientHeadersTimeoutMs, clientIdleTimeoutMs: o.clientIdleTimeoutMs,
    maxHeaderSize: o.maxHeaderSize, maxUrlLength: o.maxUrlLength, shutdownGraceMs: o.shutdownGraceMs,
    maxConcurrentExchanges: o.maxConcurrentExchanges, maxClientConnections: o.maxClientConnections,
    watch: o.watch !== false,
    kubernetes: {
      kubeconfig: o.kubeconfig, context: o.context, tokenAudiences: o.tokenAudiences,
      authCacheTtlMs: o.authCacheTtlMs, authNegativeCacheTtlMs: o.authNegativeCacheTtlMs, authCacheMaxEntries: o.authCacheMaxEntries,
      writeStatus: o.writeStatus !== false,
      proxyService: o.proxyService,
      clusterDomain: o.clusterDomain ?? (domain.startsWith('svc.') ? domain.slice(4) : 'cluster.local'),
      leaderLeaseSeconds: o.leaderLeaseSeconds,
      featureFlagsConfigMap: o.featureFlagsConfigmap,
    },
    featureFlags,
    publicUrl: o.publicUrl,
    probes: { enabled: o.probes !== false, intervalMs: o.probeIntervalMs, concurrency: o.probeConcurrency, timeoutMs: o.probeTimeoutMs },
    opaBin: o.opa, policyCacheDir: o.policyCacheDir, maxBodyInjectionBytes: o.maxBodyInjectionBytes,
    allowCrossNamespaceSecrets: o.allowCrossNamespaceSecrets === true, namespace: o.namespace,
    tls: tlsGiven === 3 ? { listen: o.tlsListen, certFile: o.tlsCert, keyFile: o.tlsKey } : undefined,
    proxyCa: { secretName: o.proxyCaSecret, certFile: o.proxyCaCert, keyFile: o.proxyCaKey, dir: o.proxyCaDir },
  };
}
