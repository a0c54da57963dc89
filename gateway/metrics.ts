// Prometheus metrics of one gateway process (served on the admin listener).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { WakerMetrics } from './waker.ts';

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<'status' | 'pod'>;
  duration: Histogram<'status_class'>;
  websocketsOpen: Gauge;
  websocketsTotal: Counter;
  /** Sleep and wake (waker.ts, activity.ts). */
  wake: WakerMetrics;
  activityFlushFailures: Counter;
}

export function createMetrics(source: { routeCount: () => number; lastSyncAt: () => number; wakeWaiting?: () => number }): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'podgate_' });
  const requests = new Counter({
    name: 'podgate_http_requests_total',
    help: 'HTTP requests answered, by status and pod ("-" when no pod was resolved)',
    labelNames: ['status', 'pod'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'podgate_http_request_duration_seconds',
    help: 'Time from request to the end of the response',
    labelNames: ['status_class'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
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
  return { registry, requests, duration, websocketsOpen, websocketsTotal, wake, activityFlushFailures };
}
