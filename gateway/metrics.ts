// Prometheus metrics of one gateway process (served on the admin listener).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<'status' | 'pod'>;
  duration: Histogram<'status_class'>;
  websocketsOpen: Gauge;
  websocketsTotal: Counter;
}

export function createMetrics(source: { routeCount: () => number; lastSyncAt: () => number }): GatewayMetrics {
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
  return { registry, requests, duration, websocketsOpen, websocketsTotal };
}
