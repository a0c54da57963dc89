// Pod activity and wake requests in Redis (keys: activityKeys() in pod-activity.ts). Times are the Redis server's
// clock, read inside the same script, so gateways and orchestrators on hosts whose clocks differ still agree on
// how long a pod has been idle.
import type { Redis } from 'ioredis';
import { activityKeys, parseWakeRequest, type PodActivityStore, type WakeSubscription } from './pod-activity.ts';
import { ChannelSubscriber } from './redis.ts';

// KEYS: activity zset. ARGV: slugs. ZADD GT: a time never moves back (Redis >= 6.2).
const TOUCH = `
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV do redis.call('ZADD', KEYS[1], 'GT', ms, ARGV[i]) end
return ms`;

// KEYS: activity zset. ARGV: slugs. Returns {now ms, score or false per slug}.
const LAST_ACTIVE = `
local t = redis.call('TIME')
local out = { tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) }
for i = 1, #ARGV do out[i + 1] = redis.call('ZSCORE', KEYS[1], ARGV[i]) end
return out`;

export interface RedisPodActivityOptions {
  prefix?: string;
  /** Told about wake messages that fail validation; they are dropped. */
  onInvalid?: (where: string) => void;
}

export class RedisPodActivity implements PodActivityStore {
  private readonly redis: Redis;
  private readonly keys: ReturnType<typeof activityKeys>;
  private readonly onInvalid: (where: string) => void;
  private readonly wakes: ChannelSubscriber;

  constructor(redis: Redis, options: RedisPodActivityOptions = {}) {
    this.redis = redis;
    this.keys = activityKeys(options.prefix ?? 'podgate:');
    this.onInvalid = options.onInvalid ?? (() => {});
    this.wakes = new ChannelSubscriber(redis, this.keys.wakes);
  }

  async touch(slugs: readonly string[]): Promise<void> {
    if (slugs.length === 0) return;
    await this.redis.eval(TOUCH, 1, this.keys.activity, ...slugs);
  }

  async lastActive(slugs: readonly string[]): Promise<{ nowMs: number; last: Map<string, number> }> {
    const [nowMs, ...scores] = (await this.redis.eval(LAST_ACTIVE, 1, this.keys.activity, ...slugs)) as [number, ...(string | null)[]];
    const last = new Map<string, number>();
    slugs.forEach((slug, i) => {
      const score = scores[i];
      // A Lua false arrives as null; a score someone wrote by hand that is not a number is no activity.
      const ms = score === null || score === undefined ? NaN : Number(score);
      if (Number.isFinite(ms)) last.set(slug, ms);
    });
    return { nowMs: Number(nowMs), last };
  }

  async forget(slug: string): Promise<void> {
    await this.redis.zrem(this.keys.activity, slug);
  }

  async requestWake(slug: string): Promise<void> {
    await this.redis.publish(this.keys.wakes, JSON.stringify({ slug }));
  }

  subscribeWakes(subscription: WakeSubscription): Promise<() => Promise<void>> {
    return this.wakes.subscribe({
      onResync: () => subscription.onResync?.(),
      onMessage: (message) => {
        const request = parseWakeRequest(message);
        if (request) subscription.onWake(request.slug);
        else this.onInvalid(this.keys.wakes);
      },
    });
  }

  async close(): Promise<void> {
    this.wakes.close();
  }
}
