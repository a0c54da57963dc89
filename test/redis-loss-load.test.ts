// Redis stopped without saving and started again empty, under load through a real gateway (real redis-server, real
// HTTP on loopback): no request to a known pod fails. Without an orchestrator the gateway serves its last snapshot
// for as long as the writer's epoch is gone; with one (real Docker/gVisor pod) the orchestrator republishes and
// asserts a new epoch, and the gateway follows the table again from its next re-read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadGatewayConfig, runGateway, type GatewayProcess } from '../gateway/main.ts';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main.ts';
import { removePods, testOrchestratorConfig, testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisRouteStore } from '../shared/redis-route-store.ts';
import type { Route } from '../shared/route.ts';
import { startUpstream, type Upstream } from './support/gateway-harness.ts';
import { startLoad } from './support/load.ts';
import { startRedis, type RedisServer } from './support/redis-server.ts';
import { waitFor } from './support/wait.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
/** Requests answered while Redis is down, and after it came back empty, before the test moves on. */
const REQUESTS_PER_PHASE = 300;
/** Redis losses in a row with an orchestrator running. */
const LOSSES = 3;

async function gatewayOn(redis: RedisServer): Promise<GatewayProcess> {
  const config = loadGatewayConfig({
    HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', ADMIN_PORT: '0', REDIS_URL: redis.url, ACCESS_LOG: 'false',
    // Re-reads often, so the test sees the re-reads of an empty table (and the one after the epoch is back).
    ROUTE_RESYNC_INTERVAL_MS: '500',
  });
  return runGateway(config, { log: logger });
}

describe('Redis restarted empty under load, no orchestrator', () => {
  let redis: RedisServer;
  let upstream: Upstream;
  let gw: GatewayProcess;
  let writer: RedisRouteStore;
  let writerClient: ReturnType<typeof createRedis>;

  beforeAll(async () => {
    [redis, upstream] = await Promise.all([startRedis(), startUpstream()]);
    writerClient = createRedis(redis.url);
    await waitReady(writerClient);
    writer = new RedisRouteStore(writerClient);
    gw = await gatewayOn(redis);
  });
  afterAll(async () => {
    await gw?.stop();
    writerClient?.disconnect();
    await upstream?.close();
    await redis?.stop();
  });

  it('0 failed requests to the known pod; the last snapshot is served while the epoch is gone', async () => {
    const route: Route = {
      slug: 'known', host: '127.0.0.1', port: upstream.port, status: 'running', generation: await writer.nextGeneration(),
      defaultPort: 3000, updatedAt: new Date().toISOString(), access: { default: 'public', ports: {} },
    };
    // A writer keeps its epoch from its first pass on: the gateway learns it with the writer's first route.
    const epoch = await writer.endEpochPass('127.0.0.1', await writer.beginEpochPass('127.0.0.1'));
    expect(await writer.put(route)).toBe(true);
    await waitFor(() => gw.gateway.table.lookup('known') !== undefined && gw.gateway.table.knownEpoch('127.0.0.1') === epoch, { what: 'the route and its epoch' });

    const load = startLoad({ port: gw.gateway.httpPort, host: 'pod-known.localhost' });
    try {
      await waitFor(() => load.done >= REQUESTS_PER_PHASE, { what: 'load before the loss', timeoutMs: 30_000 });
      await redis.kill();
      const down = load.done;
      await waitFor(() => load.done >= down + REQUESTS_PER_PHASE, { what: 'load while Redis is down', timeoutMs: 30_000 });
      await redis.restart();
      // Two complete re-reads of the empty table after the restart (one on reconnect, one periodic).
      const restartedAt = Date.now();
      await waitFor(() => gw.gateway.table.lastSyncAt > restartedAt, { what: 'a re-read of the empty table', timeoutMs: 15_000 });
      const firstSync = gw.gateway.table.lastSyncAt;
      await waitFor(() => gw.gateway.table.lastSyncAt > firstSync, { what: 'another re-read', timeoutMs: 15_000 });
      const back = load.done;
      await waitFor(() => load.done >= back + REQUESTS_PER_PHASE, { what: 'load after the restart', timeoutMs: 30_000 });
    } finally {
      await load.stop();
    }
    expect(load.result.reasons).toEqual({});
    expect(load.result.failed).toBe(0);
    expect(load.result.ok).toBeGreaterThanOrEqual(4 * REQUESTS_PER_PHASE);
    expect(gw.gateway.table.lookup('known')?.generation).toBe(route.generation);
  });
});

describe('Redis restarted empty under load, with an orchestrator running', () => {
  const slug = uniqueSlug('rloss');
  let redis: RedisServer;
  let orch: RunningOrchestrator;
  let gw: GatewayProcess;

  beforeAll(async () => {
    let image: string;
    [redis, image] = await Promise.all([startRedis(), testPodImage()]);
    orch = await startOrchestrator(
      testOrchestratorConfig({ ADMIN_TOKEN: 'redis-loss-load-token-0123', REDIS_URL: redis.url, POD_PORT_RANGE: '38560-38569', POD_IMAGE: image }),
      { logger },
    );
    gw = await gatewayOn(redis);
  }, 120_000);
  afterAll(async () => {
    await gw?.stop();
    await orch?.close();
    await removePods([slug]);
    await redis?.stop();
  });

  it('0 failed requests to the known pod over three losses; the orchestrator republishes and asserts a new epoch', async () => {
    await orch.pods.create({ slug, access: { default: 'public', ports: {} }, services: [{ name: 'terminal', port: 7681 }] });
    const published = (await orch.routes.get(slug))!;
    await waitFor(() => gw.gateway.table.lookup(slug)?.generation === published.generation, { what: 'the route served' });

    const load = startLoad({ port: gw.gateway.httpPort, host: `localhost-7681.pod-${slug}.localhost` }, { connections: 4 });
    try {
      await waitFor(() => load.done >= REQUESTS_PER_PHASE, { what: 'load before the loss', timeoutMs: 60_000 });
      // Who comes back first, the gateway's re-read of the empty table or the orchestrator's republish, is a race:
      // three losses give the gateway its chances to see the empty table.
      for (let loss = 1; loss <= LOSSES; loss++) {
        const before = await orch.routes.get(slug);
        await redis.kill();
        const down = load.done;
        await waitFor(() => load.done >= down + REQUESTS_PER_PHASE, { what: `load while Redis is down (loss ${loss})`, timeoutMs: 60_000 });
        await redis.restart();
        // The orchestrator notices, republishes the route (a new generation) and asserts an epoch (any epoch in the
        // emptied Redis is new).
        await waitFor(async () => (await orch.routes.epochs().catch(() => new Map<string, number>())).has('127.0.0.1'), { what: 'a new epoch', timeoutMs: 20_000 });
        expect((await orch.routes.get(slug))?.generation).toBeGreaterThan(before!.generation);
        // A re-read that began after the new epoch: the gateway follows the table again, and still serves the pod.
        const assertedAt = Date.now();
        await waitFor(() => gw.gateway.table.lastSyncAt > assertedAt, { what: 'a re-read with the new epoch', timeoutMs: 15_000 });
        const back = load.done;
        await waitFor(() => load.done >= back + REQUESTS_PER_PHASE, { what: `load after the republish (loss ${loss})`, timeoutMs: 60_000 });
      }
    } finally {
      await load.stop();
    }
    expect(load.result.reasons).toEqual({});
    expect(load.result.failed).toBe(0);
    expect(gw.gateway.table.lookup(slug)?.generation).toBeGreaterThan(published.generation);
  }, 240_000);
});
