// Prometheus metrics. The request path only bumps plain numbers in a per-connector record;
// the exposition format is produced at scrape time. (prom-client's labelled children hash
// their label set on every inc/observe, which cost more than the rest of the bookkeeping.)
// Unknown connectors share one record so invented names cannot grow the series count. The
// `way` label (reverse, forward, gateway: a handful of fixed names) tells Connectors API
// traffic apart from proxy traffic.
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';

/** Upper bounds (seconds) of the latency histogram's buckets. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

export class RouteMetrics {
  readonly requests = new Map<number, number>();
  readonly upstreamErrors = new Map<string, number>();
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  durationSum = 0;
  durationCount = 0;

  constructor(readonly connector: string, readonly className: string, readonly way: string) {}

  done(status: number, seconds: number): void {
    this.requests.set(status, (this.requests.get(status) ?? 0) + 1);
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    this.buckets[i]!++;
    this.durationSum += seconds;
    this.durationCount++;
  }

  upstreamError(reason: string): void {
    this.upstreamErrors.set(reason, (this.upstreamErrors.get(reason) ?? 0) + 1);
  }
}

type Labels = Record<string, string | number>;
interface Sample { value: number; labels: Labels; metricName?: string }

/** A metric whose samples are computed at scrape time, in prom-client's registry format. */
class ScrapedMetric {
  readonly aggregator = 'sum';
  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'histogram', private readonly samples: () => Sample[]) {}
  get(): { name: string; help: string; type: string; aggregator: string; values: Sample[] } {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples() };
  }
}

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly reloads: Counter<string>;
  /** way → connector → its current series (two lookups, no key built per request). */
  private readonly byWay = new Map<string, Map<string, RouteMetrics>>();
  /** Every series ever started, by connector, class and way (a Connector may change class). */
  private readonly series = new Map<string, RouteMetrics>();

  constructor(inFlight: () => number) {
    const registers = [this.registry];
    const register = (m: ScrapedMetric): void => this.registry.registerMetric(m as unknown as Metric);
    register(new ScrapedMetric('connectors_proxy_requests_total', 'Requests answered, by connector, class, way in and status code.', 'counter',
      () => [...this.series.values()].flatMap((r) => [...r.requests].map(([code, value]) => ({ value, labels: { connector: r.connector, class: r.className, way: r.way, code } })))));
    register(new ScrapedMetric('connectors_proxy_request_duration_seconds', 'Time from request to response end, by connector, class and way in.', 'histogram',
      () => [...this.series.values()].flatMap((r) => histogramSamples('connectors_proxy_request_duration_seconds', r))));
    register(new ScrapedMetric('connectors_proxy_upstream_errors_total', 'Upstream failures (connect, timeout, reset), by connector, class, way in and reason.', 'counter',
      () => [...this.series.values()].flatMap((r) => [...r.upstreamErrors].map(([reason, value]) => ({ value, labels: { connector: r.connector, class: r.className, way: r.way, reason } })))));
    new Gauge({
      name: 'connectors_proxy_requests_in_flight', help: 'Requests being served now.', registers,
      collect() { this.set(inFlight()); },
    });
    this.reloads = new Counter({
      name: 'connectors_proxy_config_reloads_total', help: 'Configuration reloads, by source and result.',
      labelNames: ['source', 'result'], registers,
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'connectors_proxy_' });
  }

  /** The record of requests for no known Connector, by way in. */
  unknownRoute(way: string): RouteMetrics {
    return this.forRoute('unknown', 'unknown', way);
  }

  /** A counter whose value lives elsewhere (e.g. the policy compiler's run count). */
  addCounterFrom(name: string, help: string, read: () => number): void {
    this.registry.registerMetric(new ScrapedMetric(name, help, 'counter', () => [{ value: read(), labels: {} }]) as unknown as Metric);
  }

  /** A gauge read at scrape time, one series per key of what `read` returns (label `label`). */
  gaugeFrom(name: string, help: string, label: string, read: () => Record<string, number>): void {
    new Gauge({
      name, help, labelNames: [label], registers: [this.registry],
      collect() {
        for (const [k, v] of Object.entries(read())) this.labels(k).set(v);
      },
    });
  }

  /** A counter with labels, registered here (e.g. the Kubernetes watcher's restarts). */
  counter(name: string, help: string, labelNames: readonly string[]): Counter<string> {
    return new Counter({ name, help, labelNames: [...labelNames], registers: [this.registry] });
  }

  /** The record of one connector and way in; created on its first request. */
  forRoute(connector: string, className: string, way: string): RouteMetrics {
    let byConnector = this.byWay.get(way);
    if (byConnector === undefined) this.byWay.set(way, byConnector = new Map());
    let m = byConnector.get(connector);
    if (m !== undefined && m.className === className) return m;
    // First request, or the Connector moved to another class: a new series.
    const key = `${connector}\u0000${className}\u0000${way}`;
    m = this.series.get(key);
    if (m === undefined) {
      m = new RouteMetrics(connector, className, way);
      this.series.set(key, m);
    }
    byConnector.set(connector, m);
    return m;
  }
}

function histogramSamples(name: string, r: RouteMetrics): Sample[] {
  const labels = { connector: r.connector, class: r.className, way: r.way };
  const out: Sample[] = [];
  let cumulative = 0;
  DURATION_BUCKETS.forEach((le, i) => {
    cumulative += r.buckets[i]!;
    out.push({ metricName: `${name}_bucket`, value: cumulative, labels: { le, ...labels } });
  });
  out.push({ metricName: `${name}_bucket`, value: r.durationCount, labels: { le: '+Inf', ...labels } });
  out.push({ metricName: `${name}_sum`, value: r.durationSum, labels });
  out.push({ metricName: `${name}_count`, value: r.durationCount, labels });
  return out;
}
