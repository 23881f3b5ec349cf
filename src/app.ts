// Wires the parts together for one process: source → index, authenticator, upstream
// agent, proxy and ops listeners. `main.ts` is only the CLI around this.
import { createServer, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { basename, dirname } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from 'pino';
import { AccessLog } from './log';
import type { ProxyConfig } from './config';
import { StaticTokenAuthenticator } from './auth/static-tokens';
import type { ClientAuthenticator } from './auth/authenticator';
import { KubeAuthenticator } from './auth/kube-authenticator';
import { KubeClient, loadKubeClientConfig, replicaIdentity } from './kube/client';
import { KubeSource } from './sources/kubernetes';
import { ProxyAddressWriter, classProxyAddress, proxyAddress } from './status/proxy-address';
import { MEMORY_SINK, StatusProber, type ProberOptions, type StatusSink } from './status/prober';
import { KubeStatusSink } from './status/kube-status-sink';
import { ObjectStore } from './sources/store';
import { RouteTable } from './routes/route-table';
import { FileSource, watchPath } from './sources/files';
import { ProxyMetrics } from './metrics/metrics';
import { ProxyServer } from './server/proxy-server';
import { createOpsServer } from './server/ops-server';
import { TlsReloader } from './server/tls';
import { Resolver } from './server/resolve';
import { UpstreamPools } from './server/upstream-pools';
import { PARSED_HEADER_FIELDS } from './server/limits';
import { capacityDefaults, cgroupMemoryLimit } from './server/capacity';
import { warnInsecureConnectors } from './sources/insecure-warning';
import { PolicyCompiler } from './rego/compiler';
import { PolicyStore } from './rego/policy-store';
import type { FSWatcher } from 'node:fs';
import { hostname } from 'node:os';
import { FeatureFlags } from './flags/feature-flags';
import { createProxyCa, type ProxyCa } from './tls/proxy-ca';
import { LeafCertificates } from './tls/leaf-certs';
import type { KubeWatchApi } from './kube/client';
import { ConfigMapFlagSource } from './flags/configmap-source';
import { LeaderElector } from './cluster/leader-election';
import { ConnectorServices, podHostSuffixes } from './cluster/connector-services';

/** The leader election Lease in the proxy's namespace (deploy/rbac.yaml grants exactly this name). */
export const LEADER_LEASE = 'connectors-proxy-leader';

export interface RunningProxy {
  readonly proxyPort: number;
  readonly opsPort: number;
  /** The HTTPS listener's port, when --tls-listen is set. */
  readonly tlsPort: number | undefined;
  readonly store: ObjectStore;
  readonly routes: RouteTable;
  /** Stops accepting, lets in-flight requests finish (up to the grace period), closes all. */
  shutdown(): Promise<void>;
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startProxy(cfg: ProxyConfig, log: Logger): Promise<RunningProxy> {
  let proxy: ProxyServer | undefined;
  const metrics = new ProxyMetrics(() => proxy?.activeRequests ?? 0);
  const compiler = new PolicyCompiler({ opaBin: cfg.opaBin, cacheDir: cfg.policyCacheDir });
  metrics.addCounterFrom('connectors_proxy_policy_compilations_total', 'Runs of the OPA compiler (cache misses).', () => compiler.compilerRuns);
  const pools = new UpstreamPools({
    connect: { timeout: cfg.connectTimeoutMs },
    keepAliveTimeout: cfg.upstreamKeepAliveMs,
    keepAliveMaxTimeout: Math.max(cfg.upstreamKeepAliveMs, 1000),
  });
  // Feature flags (issue 17): CLI/env explicit values; in Kubernetes mode the ConfigMap too.
  const flags = new FeatureFlags(cfg.featureFlags, log);
  const store = new ObjectStore();
  const routes = new RouteTable(store, {
    policies: new PolicyStore(compiler, log), maxBodyBytes: cfg.maxBodyInjectionBytes,
    trust: { enabled: () => flags.enabled('enable-custom-ca-certs'), namespace: cfg.namespace },
    dispatcher: (origin, trust) => pools.get(origin, trust),
    allowCrossNamespaceSecrets: cfg.allowCrossNamespaceSecrets,
  });
  // Routes hold the trust they were built with: rebuild them when custom CAs are turned on or off.
  flags.onChange((name) => { if (name === 'enable-custom-ca-certs') routes.invalidateAll(); });
  warnInsecureConnectors(store, log);
  metrics.gaugeFrom('connectors_proxy_index_objects', 'Objects held in memory, by kind (ConnectorClasses, Connectors, and the Secrets they reference).', 'kind',
    () => store.counts());
  const source = cfg.source === 'kubernetes' ? kubernetesSource(cfg, store, metrics, log, flags) : fileSource(cfg, store, metrics, log);
  const auth = source.auth;
  // The CA that intercepts https_proxy traffic to Connector origins (issue 16): a Secret in
  // Kubernetes mode (created by the first replica), files or a generated one otherwise.
  const proxyCa: ProxyCa = createProxyCa(cfg, { log, kube: source.kube, onReload: (ok) => metrics.reloads.labels('proxy-ca', ok ? 'ok' : 'error').inc() });
  // Given files must be usable at start (like --tls-cert); a Secret may come later (CONNECT answers 503 until then).
  if (cfg.proxyCa.certFile !== undefined || cfg.source !== 'kubernetes') await proxyCa.ready;
  else proxyCa.ready.catch((err: Error) => log.error({ err: err.message }, 'proxy CA not loaded: CONNECT to Connector origins answers 503'));
  const leaves = new LeafCertificates(proxyCa);
  const addressOptions = { domain: cfg.domain, proto: cfg.proto, publicUrl: cfg.publicUrl };
  const prober = cfg.probes.enabled
    ? new StatusProber(store, source.statusSink, log, {
      intervalMs: cfg.probes.intervalMs, concurrency: Math.max(1, cfg.probes.concurrency), timeoutMs: cfg.probes.timeoutMs,
      customCaCerts: () => flags.enabled('enable-custom-ca-certs'),
      proxyAddress: (c, cls) => proxyAddress(c, cls, addressOptions),
      dispatcherFor: (c) => {
        const r = routes.route(c.metadata.namespace, c.metadata.name);
        return r && pools.get(r.upstream.origin, r.trust);
      },
      allowCrossNamespaceSecrets: cfg.allowCrossNamespaceSecrets,
      ...source.checks,
    })
    : undefined;
  // In Kubernetes mode only the leader probes and writes status; every replica serves.
  let listening = false;
  let probing = false;
  const runProber = (): void => {
    const want = prober !== undefined && listening && (source.leader === undefined || source.leader.isLeader);
    if (want === probing) return;
    probing = want;
    if (want) prober!.start();
    else prober!.stop();
  };
  source.leader?.onChange(runProber);

  const accessLog = new AccessLog(log);
  // Caps left unset are derived from the container's memory limit (bench/README.md, "Concurrent streams").
  const memoryLimit = cfg.maxConcurrentExchanges === undefined || cfg.maxClientConnections === undefined ? cgroupMemoryLimit() : undefined;
  const derived = capacityDefaults(memoryLimit?.bytes);
  const capacity = {
    maxExchanges: cfg.maxConcurrentExchanges ?? derived.maxConcurrentExchanges,
    maxConnections: cfg.maxClientConnections ?? derived.maxClientConnections,
  };
  const serverOptions: ServerOptions = serverOptionsOf(cfg);
  const shed = metrics.counter('connectors_proxy_shed_total', 'Requests answered 503 by admission control, by cap (exchanges in flight, client connections).', ['reason']);
  proxy = new ProxyServer({
    // Kubernetes mode: also the names Pods use for c-<name> (c-<name>.<ns>, .svc, .svc.<cluster domain>).
    store, routes, resolver: new Resolver(cfg.domain, cfg.source === 'kubernetes' ? podHostSuffixes(cfg.domain, cfg.kubernetes.clusterDomain) : []),
    auth, pools, metrics, log, accessLog,
    timeouts: { headersMs: cfg.headersTimeoutMs, bodyIdleMs: cfg.bodyIdleTimeoutMs },
    proto: cfg.proto,
    address: addressOptions,
    limits: { maxUrlLength: cfg.maxUrlLength },
    capacity,
    onShed: (reason) => shed.labels(reason).inc(),
    flags,
    caCertPem: () => proxyCa.caCertPem(),
    connect: {
      certificates: leaves,
      tunnels: () => flags.enabled('enable-connect-tunnels'),
      tunnelsFlag: 'enable-connect-tunnels=false',
      connectTimeoutMs: cfg.connectTimeoutMs,
      serverOptions,
    },
  });
  const server = createServer(serverOptions);
  // The HTTPS listener serves the same handlers; a bad certificate or key at start is fatal.
  const tls = cfg.tls && new TlsReloader(cfg.tls.certFile, cfg.tls.keyFile, log, (ok) => metrics.reloads.labels('tls', ok ? 'ok' : 'error').inc());
  const tlsServer = tls && createHttpsServer({ ...serverOptions, ...tls.secureContext });
  const servers = tlsServer ? [server, tlsServer] : [server];
  const active = proxy;
  // The server that parses the requests inside intercepted tunnels has the same limits. A
  // stalled upload or a client that stopped reading is cut (no 'timeout' listener: Node
  // destroys the socket); Upgrade sessions drop this timer when they start. One more header
  // field than the limit is parsed, so that "too many" is seen and refused (limits.ts).
  const intercept = proxy.interceptServer;
  for (const s of intercept ? [...servers, intercept] : servers) {
    s.timeout = cfg.clientIdleTimeoutMs;
    s.maxHeadersCount = PARSED_HEADER_FIELDS;
  }
  metrics.gaugeFrom('connectors_proxy_client_connections', 'Client connections open now, and the cap (0: none).', 'kind',
    () => ({ open: proxy!.shedder.connections, cap: capacity.maxConnections }));
  for (const s of servers) {
    // The socket a request arrives on: the TLS one on the HTTPS listener.
    s.on(s === tlsServer ? 'secureConnection' : 'connection', proxy.shedder.onConnection);
    s.on('request', proxy.handleRequest);
    s.on('checkContinue', proxy.handleRequest);
    s.on('upgrade', proxy.handleUpgrade);
    s.on('connect', proxy.handleConnect);
  }

  let draining = false;
  const ops = createOpsServer(metrics, {
    notReadyReason: () => (draining ? 'shutting down' : store.ready ? undefined : 'connectors not loaded yet'),
  }, () => ({ items: prober?.snapshot() ?? [], featureFlags: flags.snapshot(), ...(source.leader ? { leader: source.leader.state() } : {}) }));
  const proxyPort = await listen(server, cfg.listen.host, cfg.listen.port);
  const tlsPort = tlsServer && cfg.tls ? await listen(tlsServer, cfg.tls.listen.host, cfg.tls.listen.port) : undefined;
  if (tlsServer) tls.watch(tlsServer);
  const opsPort = await listen(ops, cfg.opsListen.host, cfg.opsListen.port);
  // After listening: a class whose spec.proxy names this proxy must find it up.
  listening = true;
  runProber();
  log.info({
    proxy: `${cfg.listen.host}:${proxyPort}`, ops: `${cfg.opsListen.host}:${opsPort}`, domain: cfg.domain,
    ...(cfg.tls ? { tls: `${cfg.tls.listen.host}:${tlsPort}` } : {}),
    // What the entrypoint (or NODE_OPTIONS) made of the container's memory limit.
    heapLimitMiB: Math.round(getHeapStatistics().heap_size_limit / 1048576),
    // The admission caps in force and, when derived, the limit they came from.
    maxConcurrentExchanges: capacity.maxExchanges, maxClientConnections: capacity.maxConnections,
    ...(memoryLimit ? { memoryLimitMiB: Math.round(memoryLimit.bytes / 1048576), memoryLimitFile: memoryLimit.file } : {}),
  }, 'connectors-proxy listening');

  return {
    proxyPort, opsPort, tlsPort, store, routes,
    async shutdown() {
      draining = true;
      source.stop();
      listening = false;
      runProber();
      tls?.stop();
      const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      for (const s of servers) s.closeIdleConnections();
      const deadline = Date.now() + cfg.shutdownGraceMs;
      // Plain CONNECT tunnels may carry a transfer (their bytes are opaque): they wait like requests.
      while ((active.activeRequests > 0 || active.openTunnels > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const s of servers) s.closeAllConnections();
      active.closeDetached();
      intercept?.closeAllConnections();
      proxyCa.stop();
      leaves.close();
      await closed;
      accessLog.flush();
      await new Promise<void>((resolve) => ops.close(() => resolve()));
      await pools.close();
      await source.close();
    },
  };
}

/** The HTTP server options of every listener (and of the server inside intercepted tunnels). */
function serverOptionsOf(cfg: ProxyConfig): ServerOptions {
  return {
    maxHeaderSize: cfg.maxHeaderSize,
    keepAliveTimeout: cfg.clientKeepAliveMs,
    headersTimeout: cfg.clientHeadersTimeoutMs,
    // Long git pushes and image uploads must not be cut by a whole-request deadline;
    // idle clients are bounded by the headers timeout and keep-alive timeout instead.
    requestTimeout: 0,
    // How often the headers timeout is checked (Node's default, 30 s, would let a
    // slowloris client hold a socket up to 30 s past --client-headers-timeout-ms).
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(cfg.clientHeadersTimeoutMs / 4))),
  };
}

/** Where Connectors and client identities come from, and how to stop it. */
interface Source {
  readonly auth: ClientAuthenticator;
  /** Where computed conditions go. */
  readonly statusSink: StatusSink;
  /** Kubernetes mode: the leader election (only the leader probes and writes). */
  readonly leader?: LeaderElector;
  /** Kubernetes mode: the API client (the proxy CA's Secret is read and created through it). */
  readonly kube?: KubeWatchApi;
  /** Kubernetes mode: what the conditions learn from the c-<name> Services. */
  readonly checks?: Partial<ProberOptions>;
  /** Stops watching (no more index changes). */
  stop(): void;
  /** Releases connections (after the proxy drained). */
  close(): Promise<void>;
}

/** Embedded mode: a folder of manifests and a static token file, both reloaded on change. */
function fileSource(cfg: ProxyConfig, store: ObjectStore, metrics: ProxyMetrics, log: Logger): Source {
  const files = new FileSource(cfg.manifests, store, log);
  files.start(cfg.watch);
  const auth = new StaticTokenAuthenticator(cfg.tokens);
  const tokenCount = auth.load();
  log.info({ file: cfg.tokens, tokens: tokenCount }, 'token file loaded');
  const watchers: FSWatcher[] = [];
  if (cfg.watch) {
    // Only the token file (or a Kubernetes volume's `..data` swap), not its neighbours: a
    // log file written next to it must not reload the tokens on every line.
    const tokenFile = basename(cfg.tokens);
    const isTokenFile = (name: string): boolean => name === tokenFile || name.startsWith('..');
    watchers.push(watchPath(dirname(cfg.tokens), false, () => {
      try {
        log.info({ file: cfg.tokens, tokens: auth.load() }, 'token file reloaded');
        metrics.reloads.labels('tokens', 'ok').inc();
      } catch (err) {
        metrics.reloads.labels('tokens', 'error').inc();
        log.error({ err: (err as Error).message }, 'token file not reloaded: keeping the last good tokens');
      }
    }, 150, isTokenFile));
  }
  return {
    auth,
    statusSink: MEMORY_SINK,
    stop() {
      files.stop();
      for (const w of watchers) w.close();
    },
    close: async () => {},
  };
}

/**
 * Kubernetes mode: list+watch into the store (ready after the first sync), TokenReview +
 * SubjectAccessReview for clients, the feature flags ConfigMap, and, on the elected leader
 * only, the Connectors' proxy address, conditions and c-<name> Services written.
 */
function kubernetesSource(cfg: ProxyConfig, store: ObjectStore, metrics: ProxyMetrics, log: Logger, flags: FeatureFlags): Source {
  const k = cfg.kubernetes;
  const identity = replicaIdentity(hostname());
  // The identity in the User-Agent tells replicas apart in the API server's audit log.
  const client = new KubeClient(loadKubeClientConfig(k.kubeconfig, process.env, k.context), { connections: 16, userAgent: `connectors-proxy/${identity}` });
  log.info({ server: client.config.server, config: client.config.origin, identity }, 'using the Kubernetes API server');
  const auth = new KubeAuthenticator(client, {
    audiences: k.tokenAudiences,
    proxyPermission: () => flags.enabled('enable-connector-proxy-permissions'),
    positiveTtlMs: k.authCacheTtlMs,
    negativeTtlMs: k.authNegativeCacheTtlMs,
    maxEntries: k.authCacheMaxEntries,
    onError: (err) => log.warn({ err: err.message }, 'token check failed: answering 503'),
  });
  const flagSource = new ConfigMapFlagSource(client, flags, cfg.namespace, k.featureFlagsConfigMap, log);

  // One writer among replicas (issue 17): Services, proxy addresses and conditions.
  const leader = k.writeStatus
    ? new LeaderElector(client, { namespace: cfg.namespace, name: LEADER_LEASE, identity, leaseDurationSeconds: k.leaderLeaseSeconds }, log)
    : undefined;
  const isLeader = (): boolean => leader?.isLeader === true;
  const writer = leader && new ProxyAddressWriter(client, store, log, { domain: cfg.domain, proto: cfg.proto, publicUrl: cfg.publicUrl, isLeader });
  const target = { namespace: cfg.namespace, proxyService: k.proxyService, clusterDomain: k.clusterDomain };
  const services = leader && new ConnectorServices(client, store, log, { ...target, isLeader });
  leader?.onChange((leading) => {
    if (leading) writer?.resync();
    services?.leaderChanged(leading);
  });
  metrics.gaugeFrom('connectors_proxy_leader', 'Whether this replica is the elected writer of Services and status (1) or not (0).', 'lease', () => ({ [LEADER_LEASE]: isLeader() ? 1 : 0 }));
  metrics.gaugeFrom('connectors_proxy_service_writes', 'Writes of c-<name> Services by this replica, by verb.', 'verb', () => ({ ...(services?.writes ?? {}) }));

  const restarts = metrics.counter('connectors_proxy_kube_watch_restarts_total', 'Restarts of a Kubernetes list+watch loop, by resource and reason (closed, gone = 410 relist, error).', ['resource', 'reason']);
  const watcher = new KubeSource(client, store, log, {
    // Global CA Secrets are kept whether or not enable-custom-ca-certs is on: it may be turned on at run time.
    caNamespace: cfg.namespace,
    allowCrossNamespaceSecrets: cfg.allowCrossNamespaceSecrets,
    onConnector: writer && ((c) => writer.enqueue(c)),
    onRestart: (resource, reason) => restarts.labels(resource, reason).inc(),
  });
  metrics.addCounterFrom('connectors_proxy_kube_requests_total', 'Requests sent to the Kubernetes API server (lists, watches, reviews, status patches).', () => client.requests);
  // The flags first: a request must never be served before enable-connector-proxy-permissions is known.
  flagSource.start();
  services?.start();
  flagSource.synced
    .then(() => watcher.start())
    .then(() => leader?.start())
    .catch((err: Error) => log.error({ err: err.message }, 'Kubernetes sync failed'));
  let released: Promise<void> | undefined;
  return {
    auth,
    kube: client,
    statusSink: k.writeStatus ? new KubeStatusSink(client, log, isLeader) : MEMORY_SINK,
    leader,
    checks: services ? {
      proxyServiceCondition: (c, cls) => services.connectorCondition(c, cls),
      classProxyCondition: (cls) => services.classCondition(cls),
      classProxyAddress: (cls) => classProxyAddress(cls, target),
      fingerprint: (o) => (o.kind === 'Connector' ? services.version(o, store.connectorClass(o.spec.connectorClassName)) : services.classVersion(o)),
    } : {
      // --no-write-status: no Services are kept, so none can be said to exist.
      proxyServiceCondition: () => ({ type: 'ProxyServiceReady', status: 'Unknown', reason: 'ServicesNotManaged', message: 'this proxy runs with --no-write-status: it keeps no c-<name> Services' }),
    },
    stop() {
      watcher.stop();
      flagSource.stop();
      writer?.stop();
      services?.stop();
      // Released at once, so another replica takes over while this one drains.
      released = leader?.stop();
    },
    close: async () => {
      await released;
      await client.destroy();
    },
  };
}
