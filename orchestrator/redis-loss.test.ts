// An orchestrator whose Redis loses its data (FLUSHALL, or a restart without persistence), against a real
// redis-server and real Docker: the live pod's route comes back and its port is claimed without waiting for the
// periodic reconcile (RECONCILE_INTERVAL is an hour here), and the port is never handed to a new pod meanwhile.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { PortsExhaustedError } from '../shared/errors.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import { startRedis, type RedisServer } from '../test/support/redis-server.ts';
import { waitFor } from '../test/support/wait.ts';
import type { OrchestratorConfig } from './config.ts';
import { startOrchestrator, type RunningOrchestrator } from './main.ts';
import { portKeys } from './redis-port-allocator.ts';
import { removePods, testOrchestratorConfig, testPodImage, uniqueSlug } from '../test/support/orchestrator.ts';

const PREFIX = `loss${process.pid}:`;
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const slugs = new Set<string>();
let redis: RedisServer;
let config: OrchestratorConfig;
let orch: RunningOrchestrator;

beforeAll(async () => {
  let image: string;
  [redis, image] = await Promise.all([startRedis(), testPodImage()]);
  config = testOrchestratorConfig({
    ADMIN_TOKEN: 'loss-test-token-0123456789',
    REDIS_URL: redis.url,
    REDIS_PREFIX: PREFIX,
    // One port: a second pod can only get it if the first pod's port is handed out again.
    POD_PORT_RANGE: '38550-38550',
    POD_IMAGE: image,
  });
  orch = await startOrchestrator(config, { logger });
});
afterAll(async () => {
  await orch?.close();
  await removePods(slugs);
  await redis?.stop();
});

async function portOwner(port: number): Promise<string | null> {
  const c = createRedis(redis.url);
  try {
    await waitReady(c);
    return await c.hget(portKeys(`${PREFIX}host:127.0.0.1:`).owners, String(port));
  } finally {
    c.disconnect();
  }
}

describe('Redis data loss', () => {
  const s = uniqueSlug('loss');
  slugs.add(s);
  const sameOwner = new RegExp(`^${s}\\|`);

  beforeAll(async () => {
    const pod = await orch.pods.create({ slug: s });
    expect(pod).toMatchObject({ status: 'running', hostPort: 38550 });
    // A fresh orchestrator adopts the pod: no Docker event of its creation is left to cause a pass, so only
    // noticing the loss can bring the route back below.
    await orch.close();
    orch = await startOrchestrator(config, { logger });
  });

  it('FLUSHALL: the route comes back and the port is claimed without waiting for the periodic reconcile', async () => {
    const c = createRedis(redis.url);
    await waitReady(c);
    try {
      await c.flushall();
      await waitFor(async () => (await orch.routes.get(s))?.status === 'running', { timeoutMs: 15_000, what: 'route republished after FLUSHALL' });
      expect(await portOwner(38550)).toMatch(sameOwner);

      // A create right after the loss must not get the live pod's port (the bind probe would quarantine it, and
      // the pod could not claim it back for HOST_BOUND_QUARANTINE_MS).
      await c.flushall();
    } finally {
      c.disconnect();
    }
    const other = uniqueSlug('other');
    slugs.add(other);
    await expect(orch.pods.create({ slug: other })).rejects.toBeInstanceOf(PortsExhaustedError);
    expect(await portOwner(38550)).toMatch(sameOwner);
  });

  it('a Redis restart without persistence: the same, once it answers again', async () => {
    await redis.restart();
    await waitFor(async () => (await orch.routes.get(s).catch(() => undefined))?.status === 'running', { timeoutMs: 15_000, what: 'route republished after a restart' });
    expect(await portOwner(38550)).toMatch(sameOwner);
  });
});
