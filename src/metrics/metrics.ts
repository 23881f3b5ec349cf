// Prometheus metrics. Label children are cached per connector so the request path does
// not hash label sets; unknown connectors share one label value so an attacker cannot
// grow the series count by inventing names.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

type CounterChild = ReturnType<Counter<string>['labels']>;
type HistogramChild = ReturnType<Histogram<string>['labels']>;

export class RouteMetrics {
  private readonly byStatus = new Map<number, CounterChild>();
  constructor(
    private readonly owner: ProxyMetrics,
    readonly connector: string,
    readonly className: string,
    readonly duration: HistogramChild,
  ) {}

  done(status: number, seconds: number): void {
    let c = this.byStatus.get(status);
    if (c === undefined) {
      c = this.owner.requests.labels(this.connector, this.className, String(status));
      this.byStatus.set(status, c);
    }
    c.inc();
    this.duration.observe(seconds);
  }

  upstreamError(reason: string): void {
    this.owner.upstreamErrors.labels(this.connector, this.className, reason).inc();
  }
}

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<string>;
  readonly duration: Histogram<string>;
  readonly upstreamErrors: Counter<string>;
  readonly inFlight: Gauge<string>;
  readonly reloads: Counter<string>;
  private readonly routes = new Map<string, RouteMetrics>();

  constructor() {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'connectors_proxy_requests_total', help: 'Requests answered, by connector, class and status code.',
      labelNames: ['connector', 'class', 'code'], registers,
    });
    this.duration = new Histogram({
      name: 'connectors_proxy_request_duration_seconds', help: 'Time from request to response end, by connector and class.',
      labelNames: ['connector', 'class'], registers,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    });
    this.upstreamErrors = new Counter({
      name: 'connectors_proxy_upstream_errors_total', help: 'Upstream failures (connect, timeout, reset), by connector, class and reason.',
      labelNames: ['connector', 'class', 'reason'], registers,
    });
    this.inFlight = new Gauge({ name: 'connectors_proxy_requests_in_flight', help: 'Requests being served now.', registers });
    this.reloads = new Counter({
      name: 'connectors_proxy_config_reloads_total', help: 'Configuration reloads, by source and result.',
      labelNames: ['source', 'result'], registers,
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'connectors_proxy_' });
  }

  /** The cached label children of one connector (or of `unknown`). */
  forRoute(connector: string, className: string): RouteMetrics {
    const id = `${connector}\u0000${className}`;
    let m = this.routes.get(id);
    if (m === undefined) {
      m = new RouteMetrics(this, connector, className, this.duration.labels(connector, className));
      this.routes.set(id, m);
    }
    return m;
  }

  readonly unknown = (): RouteMetrics => this.forRoute('unknown', 'unknown');
}
