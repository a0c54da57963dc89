import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { useRedis } from '../test/support/redis-server.ts';
import { RedisPortAllocator, portKeys } from './redis-port-allocator.ts';
import { runPortAllocatorContract } from './port-allocator.contract.ts';
import { HOST_BOUND_OWNER } from './port-allocator.ts';
import { PortsExhaustedError } from '../shared/errors.ts';

const redisServer = useRedis();

const client = () => redisServer.client();

let n = 0;
runPortAllocatorContract('redis', async (range) => new RedisPortAllocator(await client(), range, { prefix: `pa${++n}:` }));

describe('RedisPortAllocator across processes', () => {
  it('two orchestrators allocating 50 ports each at once never get the same port', async () => {
    const prefix = `race${++n}:`;
    const range = { first: 30000, last: 39999 };
    // Two connections, as two orchestrator processes would have.
    const a = new RedisPortAllocator(await client(), range, { prefix });
    const b = new RedisPortAllocator(await client(), range, { prefix });
    const got = await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => a.allocate(`a${i}`)),
      ...Array.from({ length: 50 }, (_, i) => b.allocate(`b${i}`)),
    ]);
    expect(new Set(got).size).toBe(100);
    expect((await a.owners()).size).toBe(100);
  });

  it('two real processes allocating 50 ports each at once never get the same port', async () => {
    const prefix = `procs${++n}:`;
    const allocator = fileURLToPath(new URL('./redis-port-allocator.ts', import.meta.url));
    const redisModule = fileURLToPath(new URL('../shared/redis.ts', import.meta.url));
    // Each child is a separate Node process with its own connection, as two orchestrators would be.
    const script = `
      const { RedisPortAllocator } = await import(${JSON.stringify(allocator)});
      const { createRedis, waitReady } = await import(${JSON.stringify(redisModule)});
      const redis = createRedis(process.env.URL);
      await waitReady(redis);
      const a = new RedisPortAllocator(redis, { first: 30000, last: 39999 }, { prefix: process.env.PREFIX });
      const ports = await Promise.all(Array.from({ length: 50 }, (_, i) => a.allocate('p' + process.pid + '-' + i)));
      console.log(JSON.stringify(ports));
      redis.disconnect();`;
    const run = () =>
      promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, URL: redisServer.server.url, PREFIX: prefix }, timeout: 30_000 });
    const [one, two] = await Promise.all([run(), run()]);
    const ports = [...(JSON.parse(one.stdout) as number[]), ...(JSON.parse(two.stdout) as number[])];
    expect(ports).toHaveLength(100);
    expect(new Set(ports).size).toBe(100);
  });

  it('after Redis lost its data, claimed ports are not handed out again', async () => {
    const prefix = `loss${++n}:`;
    const redis = await client();
    const range = { first: 31000, last: 31002 };
    const a = new RedisPortAllocator(redis, range, { prefix });
    const p = await a.allocate('pod');
    const keys = portKeys(prefix);
    await redis.del(keys.free, keys.owners, keys.seeded);
    // Reconcile finds the container in Docker and claims its port back.
    expect(await a.claim(p, 'pod')).toBe(true);
    const others = [await a.allocate('x'), await a.allocate('y')];
    expect(others).not.toContain(p);
  });

  it('after Redis lost its data, ports in use on the host are never handed out, even before reconcile', async () => {
    const prefix = `inuse${++n}:`;
    const redis = await client();
    const range = { first: 31000, last: 31000 };
    const live = new Map<number, string>();
    let reseeds = 0;
    const a = new RedisPortAllocator(redis, range, { prefix, inUse: async () => live, onReseed: () => reseeds++ });
    const p = await a.allocate('pod');
    live.set(p, 'pod');
    await redis.flushall();
    // The only port of the range belongs to a running pod: nothing is left for anyone else.
    await expect(a.allocate('other')).rejects.toBeInstanceOf(PortsExhaustedError);
    expect((await a.owners()).get(p)?.owner).toBe('pod');
    expect(reseeds).toBe(2);
    // A port the probe found bound and quarantined before the loss is taken over by its live pod on reseed too.
    await redis.flushall();
    await a.claim(p, HOST_BOUND_OWNER);
    await expect(a.allocate('other')).rejects.toBeInstanceOf(PortsExhaustedError);
    expect((await a.owners()).get(p)?.owner).toBe('pod');
  });

  it('seeds the free set once, in O(range), not per allocation', async () => {
    const prefix = `seed${++n}:`;
    const redis = await client();
    const a = new RedisPortAllocator(redis, { first: 30000, last: 39999 }, { prefix });
    await a.allocate('one');
    expect(await redis.scard(portKeys(prefix).free)).toBe(9999);
    await a.allocate('two');
    expect(await redis.scard(portKeys(prefix).free)).toBe(9998);
  });
});
