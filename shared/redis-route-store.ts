// The shared route table in Redis (see README "Route-table contract"). Writes are Lua scripts, so the
// generation check, the write and the change event are one atomic step.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ChannelSubscriber } from './redis.ts';
import { parseRoute, parseRouteEvent, routeKeys, type Route, type RouteEvent } from './route.ts';
import type { RouteStore, RouteSubscription } from './route-store.ts';

// Held generation of a slug: the stored route's, else its tombstone's, else -1.
const HELD = `
local held = -1
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, decoded = pcall(cjson.decode, cur)
  if ok and type(decoded) == 'table' and tonumber(decoded.generation) then held = tonumber(decoded.generation) end
else
  local t = redis.call('HGET', KEYS[2], ARGV[1])
  if t then held = tonumber(t) end
end
`;
// KEYS: routes, tombstones, events. ARGV: slug, generation, route JSON, event JSON.
const PUT = `${HELD}
if tonumber(ARGV[2]) <= held then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[4])
return 1`;
// KEYS: routes, tombstones, events. ARGV: slug, generation, event JSON.
const DELETE = `${HELD}
if held > tonumber(ARGV[2]) then return 0 end
if held == tonumber(ARGV[2]) and not cur then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PUBLISH', KEYS[3], ARGV[3])
return 1`;
// KEYS: generation counter. Microseconds of Redis' clock, or last + 1: increases even if the data was lost.
const GENERATION = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local g = math.max(now, last + 1)
redis.call('SET', KEYS[1], string.format('%.0f', g))
`;
const NEXT_GENERATION = `${GENERATION}
return string.format('%.0f', g)`;
// KEYS: generation counter, epochs, pass token. ARGV: host, token.
// Nil when the token is gone (data lost during the pass); else the host's new epoch.
const END_EPOCH_PASS = `
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return false end
redis.call('DEL', KEYS[3])
${GENERATION}
redis.call('HSET', KEYS[2], ARGV[1], string.format('%.0f', g))
return string.format('%.0f', g)`;
/** A pass of a writer that died never ends: its token goes away by itself. */
const EPOCH_PASS_TTL_SECONDS = 600;

const SCAN_BATCH = 1000;

export interface RedisRouteStoreOptions {
  prefix?: string;
  /** Told about entries that fail validation; they are skipped, never served. */
  onInvalid?: (where: string, error: string) => void;
}

export class RedisRouteStore implements RouteStore {
  private readonly keys: ReturnType<typeof routeKeys>;
  private readonly onInvalid: (where: string, error: string) => void;
  private readonly events: ChannelSubscriber;
  private readonly redis: Redis;

  constructor(redis: Redis, options: RedisRouteStoreOptions = {}) {
    this.redis = redis;
    this.keys = routeKeys(options.prefix ?? 'podgate:');
    this.onInvalid = options.onInvalid ?? (() => {});
    this.events = new ChannelSubscriber(redis, this.keys.events);
  }

  async get(slug: string): Promise<Route | undefined> {
    const json = await this.redis.hget(this.keys.routes, slug);
    if (json === null) return undefined;
    const { route, error } = parseRoute(json);
    if (error) this.onInvalid(`${this.keys.routes}[${slug}]`, error);
    return route;
  }

  async *scan(): AsyncIterable<Route[]> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.keys.routes, cursor, 'COUNT', SCAN_BATCH);
      cursor = next;
      const batch: Route[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const { route, error } = parseRoute(flat[i + 1]!);
        if (route && route.slug === flat[i]) batch.push(route);
        else this.onInvalid(`${this.keys.routes}[${flat[i]}]`, error ?? 'slug does not match its field');
      }
      if (batch.length > 0) yield batch;
    } while (cursor !== '0');
  }

  async put(route: Route): Promise<boolean> {
    const event: RouteEvent = { type: 'put', route };
    const { routes, tombstones, events } = this.keys;
    const done = await this.redis.eval(
      PUT, 3, routes, tombstones, events,
      route.slug, route.generation, JSON.stringify(route), JSON.stringify(event),
    );
    return done === 1;
  }

  async delete(slug: string, generation: number): Promise<boolean> {
    const event: RouteEvent = { type: 'delete', slug, generation };
    const { routes, tombstones, events } = this.keys;
    const done = await this.redis.eval(DELETE, 3, routes, tombstones, events, slug, generation, JSON.stringify(event));
    return done === 1;
  }

  async nextGeneration(): Promise<number> {
    return Number(await this.redis.eval(NEXT_GENERATION, 1, this.keys.generation));
  }

  async epochs(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const [host, value] of Object.entries(await this.redis.hgetall(this.keys.epochs))) {
      const epoch = Number(value);
      if (Number.isSafeInteger(epoch) && epoch >= 0) out.set(host, epoch);
      else this.onInvalid(`${this.keys.epochs}[${host}]`, 'not an epoch (a non-negative integer)');
    }
    return out;
  }

  async beginEpochPass(host: string): Promise<string> {
    const token = randomUUID();
    await this.redis.set(this.keys.epochPass(host), token, 'EX', EPOCH_PASS_TTL_SECONDS);
    return token;
  }

  async endEpochPass(host: string, token: string): Promise<number | undefined> {
    const { generation, epochs, epochPass } = this.keys;
    const epoch = await this.redis.eval(END_EPOCH_PASS, 3, generation, epochs, epochPass(host), host, token);
    return epoch === null ? undefined : Number(epoch);
  }

  subscribe(subscription: RouteSubscription): Promise<() => Promise<void>> {
    return this.events.subscribe({
      onResync: () => subscription.onResync(),
      onMessage: (message) => {
        const { event, error } = parseRouteEvent(message);
        if (event) subscription.onEvent(event);
        else this.onInvalid(this.keys.events, error ?? 'invalid event');
      },
    });
  }

  async close(): Promise<void> {
    this.events.close();
  }
}
