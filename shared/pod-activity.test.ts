import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryPodActivity } from './pod-activity.ts';
import { runPodActivityContract } from './pod-activity.contract.ts';
import { createRedis, waitReady } from './redis.ts';
import { RedisPodActivity } from './redis-pod-activity.ts';
import { startRedis, type RedisServer } from '../test/support/redis-server.ts';
import { waitFor } from '../test/support/wait.ts';

let server: RedisServer;
beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server?.stop();
});

let n = 0;
const clients: ReturnType<typeof createRedis>[] = [];
async function newRedisStore(onInvalid?: (where: string) => void) {
  const redis = createRedis(server.url);
  clients.push(redis);
  await waitReady(redis);
  return new RedisPodActivity(redis, { prefix: `t${++n}:`, onInvalid });
}
afterAll(() => clients.forEach((c) => c.disconnect()));

runPodActivityContract('memory', async () => new MemoryPodActivity());
runPodActivityContract('redis', () => newRedisStore());

describe('RedisPodActivity specifics', () => {
  it('drops wake messages that are not wake requests, and says where; good ones still arrive', async () => {
    const invalid: string[] = [];
    const store = await newRedisStore((where) => invalid.push(where));
    const woken: string[] = [];
    const off = await store.subscribeWakes({ onWake: (slug) => woken.push(slug) });
    const redis = clients.at(-1)!;
    for (const junk of ['not json', '{"slug":"Bad Slug"}', '{"slug":"app","extra":1}', '[]']) await redis.publish(`t${n}:pods:wake`, junk);
    await store.requestWake('app');
    await waitFor(() => woken.length === 1, { what: 'the valid wake' });
    expect(woken).toEqual(['app']);
    expect(invalid).toEqual(Array(4).fill(`t${n}:pods:wake`));
    await off();
    await store.close();
  });

  it('ignores a score written by hand that is not a time', async () => {
    const store = await newRedisStore();
    await clients.at(-1)!.zadd(`t${n}:pods:activity`, 'inf', 'junk');
    await store.touch(['app']);
    const { last } = await store.lastActive(['app', 'junk']);
    expect([...last.keys()]).toEqual(['app']);
    await store.close();
  });
});
