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

export interface ChannelHandlers {
  onMessage(message: string): void;
  /** The connection came back after a loss: messages published meanwhile are gone, re-read the state. */
  onResync(): void;
}

/**
 * Subscriptions to one pub/sub channel, each on a connection of its own (a subscribed connection can do nothing
 * else). The connection queues commands while offline so ioredis can re-subscribe by itself after a reconnect.
 */
export class ChannelSubscriber {
  private readonly redis: Redis;
  private readonly channel: string;
  private readonly connections = new Set<Redis>();

  constructor(redis: Redis, channel: string) {
    this.redis = redis;
    this.channel = channel;
  }

  async subscribe(handlers: ChannelHandlers): Promise<() => Promise<void>> {
    const sub = this.redis.duplicate({ enableOfflineQueue: true });
    sub.on('error', () => {});
    this.connections.add(sub);
    let lost = false;
    let closed = false;
    sub.on('close', () => {
      lost = true;
    });
    sub.on('ready', () => {
      if (lost) {
        lost = false;
        handlers.onResync();
      }
    });
    sub.on('message', (channel: string, message: string) => {
      // Messages already buffered when the subscription is closed must not reach the handlers.
      if (!closed && channel === this.channel) handlers.onMessage(message);
    });
    await sub.subscribe(this.channel);
    return async () => {
      closed = true;
      this.connections.delete(sub);
      sub.disconnect();
    };
  }

  close(): void {
    for (const sub of this.connections) sub.disconnect();
    this.connections.clear();
  }
}
