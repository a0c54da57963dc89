// Redis behind Sentinel (Debian's redis-server and redis-sentinel: a master, a replica, three sentinels on
// loopback), a real gateway and a real orchestrator with a gVisor pod, every component connecting through
// REDIS_SENTINELS. The master is SIGKILLed under load and Sentinel promotes the replica: no request to the known
// pod fails, the gateway's subscriptions come back (a route change and a revocation made after the failover reach
// it within 2 s, with periodic re-reads far away), a link minted before still opens the pod, and the orchestrator
// creates a pod after it.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadGatewayConfig, runGateway, type GatewayProcess } from '../gateway/main.ts';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main.ts';
import { removePods, testOrchestratorConfig, testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { TOKEN_HEADER } from '../shared/access-token.ts';
import { createRedis, waitReady, type RedisConnection } from '../shared/redis.ts';
import { startLoad } from './support/load.ts';
import { SENTINEL_MASTER_NAME, startSentinels, type SentinelDeployment } from './support/redis-sentinel.ts';
import { waitFor } from './support/wait.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const ADMIN_TOKEN = 'redis-failover-token-0123456789';
/** The bound for a change made after the failover to be served. */
const CHANGE_DEADLINE_MS = 2000;
const REQUESTS_PER_PHASE = 300;
const TERMINAL = 7681;
// Protected like a real deployment: the data nodes and the sentinels each have a password.
const DATA_PASSWORD = 'failover-data-pass-0123';
const SENTINEL_PASSWORD = 'failover-sentinel-pass-0123';
const REDIS_URL = `redis://:${DATA_PASSWORD}@${SENTINEL_MASTER_NAME}`;

let redis: SentinelDeployment;
let orch: RunningOrchestrator;
let gw: GatewayProcess;
const slugs: string[] = [];

beforeAll(async () => {
  let image: string;
  [redis, image] = await Promise.all([startSentinels({ password: DATA_PASSWORD, sentinelPassword: SENTINEL_PASSWORD }), testPodImage()]);
  const sentinelEnv = { REDIS_URL, REDIS_SENTINELS: redis.sentinelsSetting, REDIS_SENTINEL_NAME: SENTINEL_MASTER_NAME, REDIS_SENTINEL_PASSWORD: SENTINEL_PASSWORD };
  orch = await startOrchestrator(
    testOrchestratorConfig({ ADMIN_TOKEN, ...sentinelEnv, POD_PORT_RANGE: '38570-38579', POD_IMAGE: image }),
    { logger },
  );
  gw = await runGateway(
    loadGatewayConfig({
      HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', ADMIN_PORT: '0', ACCESS_LOG: 'false', ...sentinelEnv,
      // Far beyond the test: what reaches the gateway after the failover comes through its subscriptions (or the
      // re-read after its reconnect), not a periodic re-read.
      ROUTE_RESYNC_INTERVAL_MS: '600000', ACCESS_RESYNC_INTERVAL_MS: '600000',
    }),
    { log: logger },
  );
}, 180_000);
afterAll(async () => {
  await gw?.stop();
  await orch?.close();
  await removePods(slugs);
  await redis?.stop();
});

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://127.0.0.1:${orch.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: res.status === 204 ? null : await res.json() };
}

/** One request through the gateway (node:http: fetch cannot set Host). */
function statusOf(slug: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: gw.gateway.httpPort, path: '/', agent: false, timeout: 10_000,
        headers: { host: `localhost-${TERMINAL}.pod-${slug}.localhost`, ...(token ? { [TOKEN_HEADER]: token } : {}) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('Redis failover through Sentinel', () => {
  it('a wrong master name, sentinel password or data password is a configuration error naming its setting', async () => {
    const sentinels = redis.sentinelPorts.map((port) => ({ host: '127.0.0.1', port }));
    const cases: [RedisConnection, string, RegExp][] = [
      [{ url: REDIS_URL, sentinel: { sentinels, name: 'elsewhere', password: SENTINEL_PASSWORD } }, 'REDIS_SENTINEL_NAME', /the sentinels monitor no master of that name/],
      [{ url: REDIS_URL, sentinel: { sentinels, name: SENTINEL_MASTER_NAME, password: 'wrong-sentinel-password' } }, 'REDIS_SENTINEL_PASSWORD', /a sentinel refused the credentials/],
      [{ url: REDIS_URL, sentinel: { sentinels, name: SENTINEL_MASTER_NAME } }, 'REDIS_SENTINEL_PASSWORD', /a sentinel refused the credentials/],
      [{ url: `redis://:wrong@${SENTINEL_MASTER_NAME}`, sentinel: { sentinels, name: SENTINEL_MASTER_NAME, password: SENTINEL_PASSWORD } }, 'REDIS_URL', /refused the user name or password/],
    ];
    for (const [target, variable, message] of cases) {
      const c = createRedis(target);
      try {
        await expect(waitReady(c)).rejects.toMatchObject({ variable, message: expect.stringMatching(message) });
      } finally {
        c.disconnect();
      }
    }
    const ok = createRedis({ url: REDIS_URL, sentinel: { sentinels, name: SENTINEL_MASTER_NAME, password: SENTINEL_PASSWORD } });
    try {
      await waitReady(ok);
      expect(await ok.ping()).toBe('PONG');
    } finally {
      ok.disconnect();
    }
  });

  it('the master is killed under load: 0 failed requests, changes after it are served, the orchestrator creates a pod', async () => {
    const slug = uniqueSlug('fo');
    slugs.push(slug);
    await orch.pods.create({ slug, services: [{ name: 'terminal', port: TERMINAL }] }); // private
    const kept = await api('POST', `/v1/pods/${slug}/links`, { port: TERMINAL });
    const doomed = await api('POST', `/v1/pods/${slug}/links`, { port: TERMINAL });
    expect([kept.status, doomed.status]).toEqual([201, 201]);
    await waitFor(async () => (await statusOf(slug, kept.json.token)) === 200, { what: 'the pod served with its link' });
    expect(await statusOf(slug)).toBe(401);
    // Replication is asynchronous: what the test relies on is on the replica before the master dies.
    const master = createRedis(redis.master.url);
    await waitReady(master);
    expect(await master.call('WAIT', '1', '5000')).toBe(1);
    master.disconnect();

    const load = startLoad({ port: gw.gateway.httpPort, host: `localhost-${TERMINAL}.pod-${slug}.localhost`, headers: { [TOKEN_HEADER]: kept.json.token } }, { connections: 4 });
    try {
      await waitFor(() => load.done >= REQUESTS_PER_PHASE, { what: 'load before the failover', timeoutMs: 60_000 });
      // A create under way while the master dies completes, or fails saying Redis is unavailable: never silently.
      const during = uniqueSlug('fod');
      slugs.push(during);
      const creating = orch.pods.create({ slug: during, services: [{ name: 'terminal', port: TERMINAL }] }).then(
        (pod) => ({ ok: true as const, status: pod.status }),
        (err: Error) => ({ ok: false as const, message: err.message }),
      );
      await redis.failover();
      expect(await redis.masterPort()).toBe(redis.replica.port);
      const outcome = await creating;
      if (outcome.ok) expect(outcome.status).toBe('running');
      else expect(outcome.message).toMatch(/Redis is unavailable/);
      console.log(`a create during the failover: ${JSON.stringify(outcome)}`);

      // The orchestrator creates a pod after the failover (its connection follows Sentinel to the new master).
      const second = uniqueSlug('fo2');
      slugs.push(second);
      await waitFor(() => orch.routes.nextGeneration().then(() => true, () => false), { what: 'the orchestrator reaching the new master', timeoutMs: 30_000 });
      await expect(orch.pods.create({ slug: second, access: { default: 'public', ports: {} }, services: [{ name: 'terminal', port: TERMINAL }] })).resolves.toMatchObject({ status: 'running' });
      await waitFor(async () => (await statusOf(second)) === 200, { what: 'the new pod served', timeoutMs: 10_000 });

      // A route changed after the failover is served within 2 s: the port is made public.
      const put = await api('PUT', `/v1/pods/${slug}/access`, { default: 'private', ports: { [String(TERMINAL)]: 'public' } });
      expect(put.status).toBe(200);
      await waitFor(async () => (await statusOf(slug)) === 200, { what: 'the changed route served', timeoutMs: CHANGE_DEADLINE_MS });
      // The policy was changed back to private for the revocation check below to mean something.
      expect((await api('PUT', `/v1/pods/${slug}/access`, { default: 'private', ports: {} })).status).toBe(200);
      await waitFor(async () => (await statusOf(slug)) === 401, { what: 'the route private again', timeoutMs: CHANGE_DEADLINE_MS });

      // A link revoked after the failover is refused within 2 s; the one minted before keeps working (the load).
      expect(await statusOf(slug, doomed.json.token)).toBe(200);
      expect((await api('DELETE', `/v1/pods/${slug}/links/${doomed.json.id}`)).status).toBe(204);
      await waitFor(async () => (await statusOf(slug, doomed.json.token)) === 401, { what: 'the revoked link refused', timeoutMs: CHANGE_DEADLINE_MS });

      const after = load.done;
      await waitFor(() => load.done >= after + REQUESTS_PER_PHASE, { what: 'load after the failover', timeoutMs: 60_000 });
    } finally {
      await load.stop();
    }
    expect(load.result.reasons).toEqual({});
    expect(load.result.failed).toBe(0);
    expect(await statusOf(slug, kept.json.token)).toBe(200);
  }, 240_000);
});
