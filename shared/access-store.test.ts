import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAccessStore } from './access-store.ts';
import { link, runAccessStoreContract } from './access-store.contract.ts';
import { createRedis, waitReady } from './redis.ts';
import { RedisAccessStore } from './redis-access-store.ts';
import { startRedis, type RedisServer } from '../test/support/redis-server.ts';

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
  // A fresh prefix per test: each test owns its keys.
  return new RedisAccessStore(redis, { prefix: `t${++n}:`, onInvalid });
}
afterAll(() => clients.forEach((c) => c.disconnect()));

runAccessStoreContract('memory', async () => new MemoryAccessStore());
runAccessStoreContract('redis', () => newRedisStore());

describe('RedisAccessStore specifics', () => {
  it('skips links other tools wrote badly, and says where', async () => {
    const invalid: string[] = [];
    const store = await newRedisStore((where) => invalid.push(where));
    const good = link('app', { expiresAt: '2999-01-01T00:00:00Z' });
    await store.addLink(good);
    await clients.at(-1)!.hset(`t${n}:access:links:app`, 'junk', '{"id":"junk"}');
    expect(await store.listLinks('app', Date.now())).toEqual([good]);
    expect(invalid).toEqual([`t${n}:access:links:app[junk]`]);
    await store.close();
  });

  it('shares forgery counts between processes, and never keeps a counter without an expiry', async () => {
    const a = await newRedisStore();
    const prefix = `t${n}:`;
    const redis = createRedis(server.url);
    clients.push(redis);
    await waitReady(redis);
    const b = new RedisAccessStore(redis, { prefix });
    await a.countForgeries('192.0.2.1', 4, 60_000, Date.now());
    expect((await b.countForgeries('192.0.2.1', 1, 60_000, Date.now())).count).toBe(5);
    const key = `${prefix}access:forged:192.0.2.1`;
    expect(await redis.pttl(key)).toBeGreaterThan(0);
    await redis.persist(key);
    expect((await a.countForgeries('192.0.2.1', 1, 60_000, Date.now())).count).toBe(6);
    expect(await redis.pttl(key)).toBeGreaterThan(0);
    await Promise.all([a.close(), b.close()]);
  });
});
