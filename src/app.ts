// Wires the parts together for one process: source → index, authenticator, upstream
// agent, proxy and ops listeners. `main.ts` is only the CLI around this.
import { createServer, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { basename, dirname } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from 'pino';
import type { ProxyConfig } from './config';
import { StaticTokenAuthenticator } from './auth/static-tokens';
import type { ClientAuthenticator } from './auth/authenticator';
import { KubeAuthenticator } from './auth/kube-authenticator';
import { KubeClient, loadKubeClientConfig } from './kube/client';
import { KubeSource } from './sources/kubernetes';
import { ProxyAddressWriter, proxyAddress } from './status/proxy-address';
import { MEMORY_SINK, StatusProber, type StatusSink } from './status/prober';
import { KubeStatusSink } from './status/kube-status-sink';
import { ConnectorIndex } from './sources/connector-index';
import { FileSource, watchPath } from './sources/files';
import { ProxyMetrics } from './metrics/metrics';
import { ProxyServer } from './server/proxy-server';
import { createOpsServer } from './server/ops-server';
import { TlsReloader } from './server/tls';
import { Resolver } from './server/resolve';
import { UpstreamPools } from './server/upstream-pools';
import { PARSED_HEADER_FIELDS } from './server/limits';
import { warnInsecureConnectors } from './tls/insecure-warning';
import { PolicyCompiler } from './rego/compiler';
import { PolicyStore } from './rego/policy-store';
import type { FSWatcher } from 'node:fs';

export interface RunningProxy {
  readonly proxyPort: number;
  readonly opsPort: number;
  /** The HTTPS listener's port, when --tls-listen is set. */
  readonly tlsPort: number | undefined;
  readonly index: ConnectorIndex;
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
  const index = new ConnectorIndex({
    policies: new PolicyStore(compiler, log), maxBodyBytes: cfg.maxBodyInjectionBytes,
    trust: { enabled: cfg.customCaCerts, namespace: cfg.namespace },
    dispatcher: (origin, trust) => pools.get(origin, trust),
    allowCrossNamespaceSecrets: cfg.allowCrossNamespaceSecrets,
  });
  warnInsecureConnectors(index, log);
  metrics.gaugeFrom('connectors_proxy_index_objects', 'Objects held in memory, by kind (ConnectorClasses, Connectors, and the Secrets they reference).', 'kind',
    () => index.counts());
  const source = cfg.source === 'kubernetes' ? kubernetesSource(cfg, index, metrics, log) : fileSource(cfg, index, metrics, log);
  const auth = source.auth;
  const addressOptions = { domain: cfg.domain, proto: cfg.proto, publicUrl: cfg.publicUrl };
  const prober = cfg.probes.enabled
    ? new StatusProber(index, source.statusSink, log, {
      intervalMs: cfg.probes.intervalMs, concurrency: Math.max(1, cfg.probes.concurrency), timeoutMs: cfg.probes.timeoutMs,
      proxyAddress: (c, cls) => proxyAddress(c, cls, addressOptions),
      dispatcherFor: (c) => {
        const r = index.route(c.metadata.namespace, c.metadata.name);
        return r && pools.get(r.upstream.origin, r.trust);
      },
    })
    : undefined;

  proxy = new ProxyServer({
    index, resolver: new Resolver(cfg.domain), auth, pools, metrics, log,
    timeouts: { headersMs: cfg.headersTimeoutMs, bodyIdleMs: cfg.bodyIdleTimeoutMs },
    proto: cfg.proto,
    address: addressOptions,
    limits: { maxUrlLength: cfg.maxUrlLength },
  });
  const serverOptions: ServerOptions = {
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
  const server = createServer(serverOptions);
  // The HTTPS listener serves the same handlers; a bad certificate or key at start is fatal.
  const tls = cfg.tls && new TlsReloader(cfg.tls.certFile, cfg.tls.keyFile, log, (ok) => metrics.reloads.labels('tls', ok ? 'ok' : 'error').inc());
  const tlsServer = tls && createHttpsServer({ ...serverOptions, ...tls.secureContext });
  const servers = tlsServer ? [server, tlsServer] : [server];
  const active = proxy;
  for (const s of servers) {
    // A stalled upload or a client that stopped reading is cut (no 'timeout' listener:
    // Node destroys the socket); Upgrade sessions drop this timer when they start.
    s.timeout = cfg.clientIdleTimeoutMs;
    // One more than the limit, so that "too many" is seen and refused (limits.ts).
    s.maxHeadersCount = PARSED_HEADER_FIELDS;
    s.on('request', proxy.handleRequest);
    s.on('checkContinue', proxy.handleRequest);
    s.on('upgrade', proxy.handleUpgrade);
    s.on('connect', proxy.handleUpgrade); // refused with 405: no tunnelling
  }

  let draining = false;
  const ops = createOpsServer(metrics, {
    notReadyReason: () => (draining ? 'shutting down' : index.ready ? undefined : 'connectors not loaded yet'),
  }, prober && (() => ({ items: prober.snapshot() })));
  const proxyPort = await listen(server, cfg.listen.host, cfg.listen.port);
  const tlsPort = tlsServer && cfg.tls ? await listen(tlsServer, cfg.tls.listen.host, cfg.tls.listen.port) : undefined;
  if (tlsServer) tls.watch(tlsServer);
  const opsPort = await listen(ops, cfg.opsListen.host, cfg.opsListen.port);
  // After listening: a class whose spec.proxy names this proxy must find it up.
  prober?.start();
  log.info({
    proxy: `${cfg.listen.host}:${proxyPort}`, ops: `${cfg.opsListen.host}:${opsPort}`, domain: cfg.domain,
    ...(cfg.tls ? { tls: `${cfg.tls.listen.host}:${tlsPort}` } : {}),
    // What the entrypoint (or NODE_OPTIONS) made of the container's memory limit.
    heapLimitMiB: Math.round(getHeapStatistics().heap_size_limit / 1048576),
  }, 'connectors-proxy listening');

  return {
    proxyPort, opsPort, tlsPort, index,
    async shutdown() {
      draining = true;
      source.stop();
      prober?.stop();
      tls?.stop();
      const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      for (const s of servers) s.closeIdleConnections();
      const deadline = Date.now() + cfg.shutdownGraceMs;
      while (active.activeRequests > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const s of servers) s.closeAllConnections();
      await closed;
      await new Promise<void>((resolve) => ops.close(() => resolve()));
      await pools.close();
      await source.close();
    },
  };
}

/** Where Connectors and client identities come from, and how to stop it. */
interface Source {
  readonly auth: ClientAuthenticator;
  /** Where computed conditions go. */
  readonly statusSink: StatusSink;
  /** Stops watching (no more index changes). */
  stop(): void;
  /** Releases connections (after the proxy drained). */
  close(): Promise<void>;
}

/** Embedded mode: a folder of manifests and a static token file, both reloaded on change. */
function fileSource(cfg: ProxyConfig, index: ConnectorIndex, metrics: ProxyMetrics, log: Logger): Source {
  const files = new FileSource(cfg.manifests, index, log);
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
 * Kubernetes mode: list+watch into the index (ready after the first sync), TokenReview +
 * SubjectAccessReview for clients, and the Connectors' proxy address written to status.
 */
function kubernetesSource(cfg: ProxyConfig, index: ConnectorIndex, metrics: ProxyMetrics, log: Logger): Source {
  const k = cfg.kubernetes;
  const client = new KubeClient(loadKubeClientConfig(k.kubeconfig), { connections: 16 });
  log.info({ server: client.config.server }, 'using the Kubernetes API server');
  const auth = new KubeAuthenticator(client, {
    audiences: k.tokenAudiences,
    proxyPermission: k.connectorProxyPermissions,
    positiveTtlMs: k.authCacheTtlMs,
    negativeTtlMs: k.authNegativeCacheTtlMs,
    maxEntries: k.authCacheMaxEntries,
    onError: (err) => log.warn({ err: err.message }, 'token check failed: answering 503'),
  });
  const writer = k.writeStatus
    ? new ProxyAddressWriter(client, index, log, { domain: cfg.domain, proto: cfg.proto, publicUrl: cfg.publicUrl })
    : undefined;
  const restarts = metrics.counter('connectors_proxy_kube_watch_restarts_total', 'Restarts of a Kubernetes list+watch loop, by resource and reason (closed, gone = 410 relist, error).', ['resource', 'reason']);
  const watcher = new KubeSource(client, index, log, {
    caNamespace: cfg.customCaCerts ? cfg.namespace : undefined,
    allowCrossNamespaceSecrets: cfg.allowCrossNamespaceSecrets,
    onConnector: writer && ((c) => writer.enqueue(c)),
    onRestart: (resource, reason) => restarts.labels(resource, reason).inc(),
  });
  metrics.addCounterFrom('connectors_proxy_kube_requests_total', 'Requests sent to the Kubernetes API server (lists, watches, reviews, status patches).', () => client.requests);
  watcher.start().catch((err: Error) => log.error({ err: err.message }, 'Kubernetes sync failed'));
  return {
    auth,
    statusSink: k.writeStatus ? new KubeStatusSink(client, log) : MEMORY_SINK,
    stop() {
      watcher.stop();
      writer?.stop();
    },
    close: () => client.destroy(),
  };
}
