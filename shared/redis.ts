// One place that builds ioredis clients, so every Redis call in podgate has a timeout and fails fast while
// Redis is down instead of queueing forever.
import { Redis, type RedisOptions } from 'ioredis';

/** Every command answers or fails within this time; the request path never waits on Redis anyway. */
export const REDIS_COMMAND_TIMEOUT_MS = 1000;
const MAX_RECONNECT_DELAY_MS = 2000;

export function createRedis(url: string, overrides: RedisOptions = {}): Redis {
  const client = new Redis(url, {
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // Reconnect forever with a capped backoff: Redis coming back must heal every gateway without a restart.
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), MAX_RECONNECT_DELAY_MS),
    ...overrides,
  });
  // Without a listener ioredis prints every connection error; the owners log state changes themselves.
  client.on('error', () => {});
  return client;
}

/** Wait until the client is ready, or throw after `timeoutMs`. */
export function waitReady(client: Redis, timeoutMs = 5000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`Redis not ready after ${timeoutMs} ms (status ${client.status})`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}
