import { describe, expect, it } from 'vitest';
import { MemoryPodActivity } from './pod-activity.ts';
import { runPodActivityContract } from './pod-activity.contract.ts';
import { RedisPodActivity } from './redis-pod-activity.ts';
import { useRedis } from '../test/support/redis-server.ts';
import { waitFor } from '../test/support/wait.ts';

const redisServer = useRedis();

let n = 0;
async function newRedisStore(onInvalid?: (where: string) => void) {
  // A fresh prefix per test: each test owns its keys.
  return new RedisPodActivity(await redisServer.client(), { prefix: `t${++n}:`, onInvalid });
}

runPodActivityContract('memory', async () => new MemoryPodActivity());
runPodActivityContract('redis', () => newRedisStore());

describe('RedisPodActivity specifics', () => {
  it('drops wake messages that are not wake requests, and says where; good ones still arrive', async () => {
    const invalid: string[] = [];
    const store = await newRedisStore((where) => invalid.push(where));
    const woken: string[] = [];
    const off = await store.subscribeWakes({ onWake: (slug) => woken.push(slug) });
    const redis = await redisServer.client();
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
    await (await redisServer.client()).zadd(`t${n}:pods:activity`, 'inf', 'junk');
    await store.touch(['app']);
    const { last } = await store.lastActive(['app', 'junk']);
    expect([...last.keys()]).toEqual(['app']);
    await store.close();
  });
});
