// The operations listener, apart from proxy traffic: Prometheus metrics, liveness and
// readiness. Kept on its own port so tool traffic can never reach it and vice versa.
import { createServer, type Server } from 'node:http';
import type { ProxyMetrics } from '../metrics/metrics';

export interface Readiness {
  /** Undefined when ready, else why not. */
  notReadyReason(): string | undefined;
}

export function createOpsServer(metrics: ProxyMetrics, readiness: Readiness, status?: () => unknown): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const why = readiness.notReadyReason();
      if (why === undefined) res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
      else res.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready: ${why}\n`);
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end('metrics unavailable\n'),
      );
    } else if (path === '/status' && status !== undefined) {
      // Conditions of every Connector and ConnectorClass (embedded mode has no API server to show them).
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(status(), null, 2)}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz or /status\n');
    }
  });
}
