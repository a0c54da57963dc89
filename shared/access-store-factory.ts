// Builds the access store named by the configuration: Redis when REDIS_URL is set, the embedded one otherwise.
import { MemoryAccessStore, type AccessStore } from './access-store.ts';
import type { Logger } from './log.ts';
import { createRedis } from './redis.ts';
import { RedisAccessStore } from './redis-access-store.ts';

export function createAccessStore(redisUrl: string | undefined, prefix: string, log: Logger): AccessStore {
  if (!redisUrl) return new MemoryAccessStore();
  const redis = createRedis(redisUrl);
  const store = new RedisAccessStore(redis, {
    prefix,
    onInvalid: (where) => log.warn({ where }, 'invalid access-store entry skipped'),
  });
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    redis.disconnect();
  };
  return store;
}
