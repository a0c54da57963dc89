import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.ts';

const source = { routeCount: () => 0, lastSyncAt: () => 0 };
/** Answers of every kind: statuses across classes, durations in every bucket, on either side of each bound. */
const REQUESTS: [number, string, number][] = [
  [200, 'a', 0.0004], [200, 'a', 0.001], [200, 'b', 0.0011], [404, '-', 0.003], [499, 'a', 0.7], [502, 'b', 12],
  [101, 'a', 0.02], [200, 'a', 61], [301, 'b', 0.0025], [503, 'a', 2.5], [200, 'a', 30],
];

/** The same requests counted by prom-client itself, as the gateway did before (the reference). */
async function reference(requests: [number, string, number][]): Promise<Registry> {
  const registry = new Registry();
  const counter = new Counter({ name: 'podgate_http_requests_total', help: 'HTTP requests answered, by status and pod ("-" when no pod was resolved)', labelNames: ['status', 'pod'], registers: [registry] });
  const histogram = new Histogram({
    name: 'podgate_http_request_duration_seconds',
    help: 'Time from request to the end of the response',
    labelNames: ['status_class'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  for (const [status, pod, seconds] of requests) {
    counter.inc({ status: String(status), pod });
    histogram.observe({ status_class: `${Math.floor(status / 100)}xx` }, seconds);
  }
  return registry;
}

/** One metric's lines, in a stable order (prom-client orders label sets by first use, which both keep). */
function lines(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.includes(name)).sort();
}

describe('request metrics', () => {
  it('scrape exactly as prom-client counting each request itself did', async () => {
    const metrics = createMetrics(source);
    for (const [status, pod, seconds] of REQUESTS) metrics.requests.record(status, pod, seconds);
    const ours = await metrics.registry.metrics();
    const theirs = await (await reference(REQUESTS)).metrics();
    for (const name of ['podgate_http_requests_total', 'podgate_http_request_duration_seconds']) {
      expect(lines(ours, name).length).toBeGreaterThan(2);
      expect(lines(ours, name)).toEqual(lines(theirs, name));
    }
  });

  it('count on across scrapes: requests between two scrapes are added, never lost or counted twice', async () => {
    const metrics = createMetrics(source);
    const half = REQUESTS.length >> 1;
    for (const [status, pod, seconds] of REQUESTS.slice(0, half)) metrics.requests.record(status, pod, seconds);
    await metrics.registry.metrics();
    for (const [status, pod, seconds] of REQUESTS.slice(half)) metrics.requests.record(status, pod, seconds);
    const theirs = await (await reference(REQUESTS)).metrics();
    const ours = await metrics.registry.metrics();
    expect(lines(ours, 'podgate_http_requests_total')).toEqual(lines(theirs, 'podgate_http_requests_total'));
    expect(lines(ours, 'podgate_http_request_duration_seconds')).toEqual(lines(theirs, 'podgate_http_request_duration_seconds'));
    expect(lines(await metrics.registry.metrics(), 'podgate_http_requests_total')).toEqual(lines(theirs, 'podgate_http_requests_total'));
  });

  it('sum across workers as the cluster aggregates them', async () => {
    const workers = [createMetrics(source), createMetrics(source)];
    REQUESTS.forEach(([status, pod, seconds], i) => workers[i % 2]!.requests.record(status, pod, seconds));
    const aggregated = AggregatorRegistry.aggregate(await Promise.all(workers.map((w) => w.registry.getMetricsAsJSON())));
    const theirs = await (await reference(REQUESTS)).metrics();
    const ours = await aggregated.metrics();
    expect(lines(ours, 'podgate_http_request_duration_seconds')).toEqual(lines(theirs, 'podgate_http_request_duration_seconds'));
    expect(lines(ours, 'podgate_http_requests_total')).toEqual(lines(theirs, 'podgate_http_requests_total'));
  });
});
