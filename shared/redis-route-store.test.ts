import { describe, expect, it } from 'vitest';
import { RedisRouteStore } from './redis-route-store.ts';
import { route, runRouteStoreContract } from './route-store.contract.ts';
import { useRedis } from '../test/support/redis-server.ts';
import { waitFor } from '../test/support/wait.ts';

const redisServer = useRedis();

let n = 0;
async function newStore(onInvalid?: (where: string, error: string) => void) {
  const redis = await redisServer.client();
  // A fresh prefix per test: each test owns its keys.
  return new RedisRouteStore(redis, { prefix: `t${++n}:`, onInvalid });
}

runRouteStoreContract('redis', () => newStore());

describe('RedisRouteStore specifics', () => {
  it('skips entries other tools wrote badly, and says where', async () => {
    const invalid: string[] = [];
    const store = await newStore((where) => invalid.push(where));
    const redis = await redisServer.client();
    await store.put(route('good', 1));
    await redis.hset(`t${n}:routes`, 'bad', '{"slug":"bad","port":"x"}', 'notjson', '{', 'mismatch', JSON.stringify(route('other', 1)));
    expect(await store.get('bad')).toBeUndefined();
    const slugs: string[] = [];
    for await (const batch of store.scan()) slugs.push(...batch.map((r) => r.slug));
    expect(slugs).toEqual(['good']);
    expect(invalid.sort()).toEqual([`t${n}:routes[bad]`, `t${n}:routes[bad]`, `t${n}:routes[mismatch]`, `t${n}:routes[notjson]`]);
  });

  it('subscribes while Redis is down without waiting for it, and hears events once it is back', async () => {
    const store = await newStore();
    const writerClient = await redisServer.client();
    const writer = new RedisRouteStore(writerClient, { prefix: `t${n}:` });
    await redisServer.server.kill();
    const events: string[] = [];
    let resyncs = 0;
    // Resolves although Redis is down (the gateway starts meanwhile); the subscription is made when it answers.
    const off = await store.subscribe({ onEvent: (e) => events.push(e.type === 'put' ? e.route.slug : e.slug), onResync: () => resyncs++ });
    await redisServer.server.restart();
    // Told to re-read (what was published before the subscription is missed), then hears what comes after.
    await waitFor(() => resyncs > 0, { what: 'a resync once subscribed', timeoutMs: 15_000 });
    // The writer reconnects on its own schedule: a put before it has would fail (no offline queue), not be missed.
    await waitFor(() => writerClient.status === 'ready', { what: 'the writer reconnected', timeoutMs: 15_000 });
    await waitFor(async () => {
      await writer.put(route(`late${events.length}`, Date.now()));
      return events.length > 0;
    }, { what: 'an event published after Redis came back', timeoutMs: 15_000, intervalMs: 200 });
    await off();
    await store.close();
    await writer.close();
  });

  it('asks subscribers to resync after Redis comes back', async () => {
    const store = await newStore();
    let resyncs = 0;
    await store.subscribe({ onEvent: () => {}, onResync: () => resyncs++ });
    await redisServer.server.restart();
    await waitFor(() => resyncs > 0, { what: 'resync after restart', timeoutMs: 15_000 });
    await store.close();
  });

  it('a pass during which Redis lost its data asserts no epoch, and the next pass renews it', async () => {
    const store = await newStore();
    const held = await store.endEpochPass('10.0.0.1', await store.beginEpochPass('10.0.0.1'));
    const token = await store.beginEpochPass('10.0.0.1');
    const raw = await redisServer.client();
    await raw.flushall();
    expect(await store.endEpochPass('10.0.0.1', token)).toBeUndefined();
    expect(await store.epochs()).toEqual(new Map());
    const renewed = await store.endEpochPass('10.0.0.1', await store.beginEpochPass('10.0.0.1'));
    expect(renewed).toBeGreaterThan(held!);
    await raw.hset(`t${n}:routes:epochs`, 'bad', 'x');
    expect([...(await store.epochs()).keys()]).toEqual(['10.0.0.1']);
  });

  it('keeps generations increasing after Redis lost its data', async () => {
    const store = await newStore();
    const before = await store.nextGeneration();
    await redisServer.server.restart();
    await waitFor(async () => {
      try {
        return (await store.nextGeneration()) > before;
      } catch {
        return false;
      }
    }, { what: 'a higher generation after data loss', timeoutMs: 15_000 });
  });
});
