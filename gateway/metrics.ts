// Prometheus metrics of one gateway process (served on the admin listener).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { WakerMetrics } from './waker.ts';

export interface GatewayMetrics {
  registry: Registry;
  /** podgate_http_requests_total and podgate_http_request_duration_seconds, for every request. */
  requests: RequestMetrics;
  websocketsOpen: Gauge;
  websocketsTotal: Counter;
  /** Sleep and wake (waker.ts, activity.ts). */
  wake: WakerMetrics;
  activityFlushFailures: Counter;
}

export function createMetrics(source: { routeCount: () => number; lastSyncAt: () => number; wakeWaiting?: () => number }): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'podgate_' });
  const requests = new RequestMetrics(registry);
  const websocketsOpen = new Gauge({ name: 'podgate_websockets_open', help: 'WebSocket connections open now', registers: [registry] });
  const websocketsTotal = new Counter({ name: 'podgate_websockets_total', help: 'WebSocket connections proxied', registers: [registry] });
  new Gauge({
    name: 'podgate_route_table_size',
    help: 'Routes in the in-memory snapshot',
    registers: [registry],
    aggregator: 'max', // every worker holds the whole table: summing would count it once per worker
    collect() {
      this.set(source.routeCount());
    },
  });
  new Gauge({
    name: 'podgate_route_table_sync_age_seconds',
    help: 'Seconds since the last complete re-read of the route table (-1 before the first)',
    registers: [registry],
    aggregator: 'max',
    collect() {
      const at = source.lastSyncAt();
      this.set(at ? (Date.now() - at) / 1000 : -1);
    },
  });
  const wakeRequests = new Counter({
    name: 'podgate_wake_requests_total',
    help: 'Wake requests published for sleeping pods (the first of a wake and its repeats while requests wait)',
    registers: [registry],
  });
  const wakeHeld = new Counter({
    name: 'podgate_wake_held_requests_total',
    help: 'Requests for sleeping pods, by how their wait ended: woken, gone (stopped or deleted), failed (the pod started and fell back asleep), timeout, page (a browser got the waking page), client_closed, shutdown, full (not held: WAKE_MAX_WAITING reached)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const wakeWait = new Histogram({
    name: 'podgate_wake_wait_seconds',
    help: 'Time a request was held for a sleeping pod, by how the wait ended',
    labelNames: ['outcome'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 30, 60],
    registers: [registry],
  });
  new Gauge({
    name: 'podgate_wake_waiting',
    help: 'Requests held now for sleeping pods',
    registers: [registry],
    collect() {
      this.set(source.wakeWaiting?.() ?? 0);
    },
  });
  const activityFlushFailures = new Counter({
    name: 'podgate_activity_flush_failures_total',
    help: 'Pod activity reports the activity store did not take (carried to the next flush)',
    registers: [registry],
  });
  const wake: WakerMetrics = {
    wakeRequested: () => wakeRequests.inc(),
    settled(outcome, seconds) {
      wakeHeld.inc({ outcome });
      if (outcome !== 'full') wakeWait.observe({ outcome }, seconds);
    },
  };
  return { registry, requests, websocketsOpen, websocketsTotal, wake, activityFlushFailures };
}

const DURATION_NAME = 'podgate_http_request_duration_seconds';
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** One status class's podgate_http_request_duration_seconds: a count per bucket (the last is +Inf), sum and count. */
interface Durations {
  labels: { status_class: string };
  buckets: number[];
  sum: number;
  count: number;
}

/**
 * The two metrics every request updates, kept in plain numbers: prom-client's inc() and observe() sort, validate
 * and join the labels on every call, the largest share of the gateway's own work per request after the header rules
 * (BENCHMARKS.md). A scrape shows the same metrics, names, labels and buckets: the request counter is a prom-client
 * Counter topped up from these counts when scraped (its collect hook), the duration histogram an object that answers
 * the registry as a prom-client Histogram does, so the cluster's aggregation sums it the same way.
 */
export class RequestMetrics {
  /** Requests since the last scrape, by pod, then status. The pods are resolved slugs or '-', never a client's word. */
  private readonly pending = new Map<string, Map<number, number>>();
  /** By status class: 1 for 1xx ... 5 for 5xx. */
  private readonly durations: (Durations | undefined)[] = [];

  constructor(registry: Registry) {
    const pending = this.pending;
    new Counter({
      name: 'podgate_http_requests_total',
      help: 'HTTP requests answered, by status and pod ("-" when no pod was resolved)',
      labelNames: ['status', 'pod'] as const,
      registers: [registry],
      collect() {
        for (const [pod, byStatus] of pending) for (const [status, n] of byStatus) this.inc({ status: String(status), pod }, n);
        pending.clear();
      },
    });
    registry.registerMetric(new DurationHistogram(this.durations) as unknown as Metric);
  }

  /** One request answered (status 100-599) for `pod` in `seconds`. */
  record(status: number, pod: string, seconds: number): void {
    let byStatus = this.pending.get(pod);
    if (byStatus === undefined) this.pending.set(pod, (byStatus = new Map()));
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    const cls = Math.floor(status / 100);
    let d = this.durations[cls];
    if (d === undefined) this.durations[cls] = d = { labels: { status_class: `${cls}xx` }, buckets: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    d.buckets[i]!++;
    d.sum += seconds;
    d.count++;
  }
}

interface HistogramValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

/** podgate_http_request_duration_seconds as the registry reads a metric (prom-client's Histogram get()). */
class DurationHistogram {
  readonly name = DURATION_NAME;
  readonly help = 'Time from request to the end of the response';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly durations: (Durations | undefined)[];

  constructor(durations: (Durations | undefined)[]) {
    this.durations = durations;
  }

  async get(): Promise<{ name: string; help: string; type: string; values: HistogramValue[]; aggregator: string }> {
    const values: HistogramValue[] = [];
    for (const d of this.durations) {
      if (d === undefined) continue;
      let cumulative = 0;
      for (let i = 0; i <= DURATION_BUCKETS.length; i++) {
        cumulative += d.buckets[i]!;
        values.push({ labels: { le: i < DURATION_BUCKETS.length ? DURATION_BUCKETS[i]! : '+Inf', ...d.labels }, value: cumulative, metricName: `${DURATION_NAME}_bucket` });
      }
      values.push({ labels: d.labels, value: d.sum, metricName: `${DURATION_NAME}_sum` });
      values.push({ labels: d.labels, value: d.count, metricName: `${DURATION_NAME}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.durations.length = 0;
  }
}
