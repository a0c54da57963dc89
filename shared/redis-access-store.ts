// Access links and revocations in Redis (keys: accessKeys() in access-store.ts). Revocations are Lua scripts, so
// the write and its event are one atomic step and only one of two concurrent revokers publishes.
import type { Redis } from 'ioredis';
import { ChannelSubscriber } from './redis.ts';
import type { WindowCount } from './fixed-windows.ts';
import {
  accessKeys,
  parseAccessEvent,
  parseAccessLink,
  type AccessLink,
  type AccessStore,
  type AccessSubscription,
  type Revocations,
} from './access-store.ts';

// KEYS: links hash of the pod, revoked zset, events. ARGV: id, expiry ms, now ms, event JSON.
const REVOKE_LINK = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('PUBLISH', KEYS[3], ARGV[4])
return 1`;
// KEYS: not-before hash, links hash of the pod, events. ARGV: pod, now ms. Not-before never moves back.
const REVOKE_POD = `
local nb = tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if cur > nb then nb = cur end
local s = string.format('%.0f', nb)
redis.call('HSET', KEYS[1], ARGV[1], s)
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', KEYS[3], '{"type":"revoke-pod","pod":"' .. ARGV[1] .. '","notBefore":' .. s .. '}')
return s`;

// KEYS: the client's forgery counter. ARGV: n, window ms. The first forgery of a window sets its expiry; a key
// that lost its expiry (written by hand) gets one again, so no address stays counted for ever.
const COUNT_FORGERIES = `
local c = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {c, ttl}`;

export interface RedisAccessStoreOptions {
  prefix?: string;
  /** Told about entries or events that fail validation; they are skipped. */
  onInvalid?: (where: string) => void;
}

export class RedisAccessStore implements AccessStore {
  private readonly redis: Redis;
  private readonly keys: ReturnType<typeof accessKeys>;
  private readonly onInvalid: (where: string) => void;
  private readonly events: ChannelSubscriber;

  constructor(redis: Redis, options: RedisAccessStoreOptions = {}) {
    this.redis = redis;
    this.keys = accessKeys(options.prefix ?? 'podgate:');
    this.onInvalid = options.onInvalid ?? (() => {});
    this.events = new ChannelSubscriber(redis, this.keys.events);
  }

  async sharedSecret(candidate: string): Promise<string> {
    await this.redis.set(this.keys.secret, candidate, 'NX');
    const stored = await this.redis.get(this.keys.secret);
    if (!stored) throw new Error(`${this.keys.secret} vanished right after it was set`);
    return stored;
  }

  async addLink(link: AccessLink): Promise<void> {
    await this.redis.hset(this.keys.links(link.pod), link.id, JSON.stringify(link));
  }

  async listLinks(pod: string, nowMs: number): Promise<AccessLink[]> {
    const key = this.keys.links(pod);
    const all = await this.redis.hgetall(key);
    const live: AccessLink[] = [];
    const dead: string[] = [];
    for (const [id, json] of Object.entries(all)) {
      const link = parseAccessLink(json);
      if (!link || link.id !== id || link.pod !== pod) this.onInvalid(`${key}[${id}]`);
      else if (Date.parse(link.expiresAt) <= nowMs) dead.push(id);
      else live.push(link);
    }
    if (dead.length > 0) await this.redis.hdel(key, ...dead);
    return live.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async revokeLink(pod: string, id: string, nowMs: number): Promise<boolean> {
    const key = this.keys.links(pod);
    const json = await this.redis.hget(key, id);
    const link = json === null ? undefined : parseAccessLink(json);
    if (!link) return false;
    const exp = Date.parse(link.expiresAt);
    if (exp <= nowMs) return false;
    const event = JSON.stringify({ type: 'revoke', pod, id, exp });
    const done = await this.redis.eval(REVOKE_LINK, 3, key, this.keys.revoked, this.keys.events, id, exp, nowMs, event);
    return done === 1;
  }

  async revokePod(pod: string, nowMs: number): Promise<void> {
    await this.redis.eval(REVOKE_POD, 3, this.keys.notBefore, this.keys.links(pod), this.keys.events, pod, Math.floor(nowMs));
  }

  async revocations(nowMs: number): Promise<Revocations> {
    const [ids, notBefore] = await Promise.all([
      this.redis.zrangebyscore(this.keys.revoked, `(${Math.floor(nowMs)}`, '+inf', 'WITHSCORES'),
      this.redis.hgetall(this.keys.notBefore),
    ]);
    const out: Revocations = { ids: new Map(), notBefore: new Map() };
    for (let i = 0; i + 1 < ids.length; i += 2) out.ids.set(ids[i]!, Number(ids[i + 1]));
    for (const [pod, ms] of Object.entries(notBefore)) {
      const n = Number(ms);
      if (Number.isFinite(n)) out.notBefore.set(pod, n);
      else this.onInvalid(`${this.keys.notBefore}[${pod}]`);
    }
    return out;
  }

  subscribe(subscription: AccessSubscription): Promise<() => Promise<void>> {
    return this.events.subscribe({
      onResync: () => subscription.onResync(),
      onMessage: (message) => {
        const event = parseAccessEvent(message);
        if (event) subscription.onEvent(event);
        else this.onInvalid(this.keys.events);
      },
    });
  }

  async countForgeries(client: string, n: number, windowMs: number, _nowMs: number): Promise<WindowCount> {
    // Redis's own clock runs the window (not the caller's): every gateway sharing the store counts into the same one.
    const [count, ttl] = (await this.redis.eval(COUNT_FORGERIES, 1, this.keys.forged(client), Math.floor(n), Math.ceil(windowMs))) as [number, number];
    return { count, resetInMs: Math.max(1, ttl) };
  }

  async close(): Promise<void> {
    this.events.close();
  }
}
