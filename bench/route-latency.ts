// Route propagation latency: time from a route change written to the shared store (Redis) to the gateway routing
// requests by it. The route alternates between two upstream ports; after each write a probe asks the gateway, over
// one keep-alive connection, which upstream port answers, until it is the new one.
import { Agent, request } from 'node:http';
import type { RouteStore } from '../shared/route-store.ts';
import type { Route } from '../shared/route.ts';
import { PORT_PATH } from './nginx.ts';
import { percentile } from './stats.ts';

export interface RouteLatencyOptions {
  writer: RouteStore;
  gatewayPort: number;
  /** The route to flip; it must exist and point at upstreamPorts[0] before the first change. */
  route: Route;
  /** Host header that names the route's pod. */
  host: string;
  /** Two upstreams answering their own port on PORT_PATH. */
  upstreamPorts: [number, number];
  changes: number;
}

export interface RouteLatencyResult {
  changes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Mean time of one probe request: the resolution of the measurement. */
  probeMs: number;
}

/** A change not seen by then is a failure, not a slow sample. */
const CHANGE_DEADLINE_MS = 5000;

function probe(agent: Agent, port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: PORT_PATH, headers: { host }, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? body : `status ${res.statusCode}`));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function measureRouteLatency(o: RouteLatencyOptions): Promise<RouteLatencyResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const samples: number[] = [];
  let probes = 0;
  let probeTime = 0;
  try {
    for (let i = 1; i <= o.changes; i++) {
      const port = o.upstreamPorts[i % 2]!;
      const route: Route = { ...o.route, port, generation: await o.writer.nextGeneration(), updatedAt: new Date().toISOString() };
      const started = performance.now();
      if (!(await o.writer.put(route))) throw new Error(`route-latency: write ${i} was refused`);
      for (;;) {
        const before = performance.now();
        const answer = await probe(agent, o.gatewayPort, o.host);
        probes++;
        probeTime += performance.now() - before;
        if (answer === String(port)) break;
        if (performance.now() - started > CHANGE_DEADLINE_MS) {
          throw new Error(`route-latency: change ${i} not routed after ${CHANGE_DEADLINE_MS} ms (last answer ${answer})`);
        }
      }
      samples.push(performance.now() - started);
    }
  } finally {
    agent.destroy();
  }
  return {
    changes: samples.length,
    p50Ms: percentile(samples, 50),
    p99Ms: percentile(samples, 99),
    maxMs: Math.max(...samples),
    probeMs: probeTime / probes,
  };
}
