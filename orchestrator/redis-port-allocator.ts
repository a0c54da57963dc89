// Host ports shared by every orchestrator process on one Redis. A SET of free ports (SPOP: O(1), atomic) and a
// HASH port -> "owner|sinceMs". Each operation is one Lua script, so two processes never get the same port.
// The free set is (re)seeded inside the allocate script whenever the range marker is missing or different
// (first use, a new POD_PORT_RANGE, Redis lost its data): seeding skips every port that has an owner.
import type { Redis } from 'ioredis';
import { PortsExhaustedError } from '../shared/errors.ts';
import type { PortRange } from './config.ts';
import type { PortAllocator, PortOwner } from './port-allocator.ts';

export function portKeys(prefix: string) {
  return {
    free: `${prefix}ports:free`,
    owners: `${prefix}ports:owners`,
    /** string "<first>-<last>": the range the free set was seeded for */
    seeded: `${prefix}ports:seeded`,
  };
}

// KEYS: free, owners, seeded. ARGV: first, last, owner value.
const ALLOCATE = `
local range = ARGV[1] .. '-' .. ARGV[2]
if redis.call('GET', KEYS[3]) ~= range then
  redis.call('DEL', KEYS[1])
  for p = tonumber(ARGV[1]), tonumber(ARGV[2]) do
    if redis.call('HEXISTS', KEYS[2], p) == 0 then redis.call('SADD', KEYS[1], p) end
  end
  redis.call('SET', KEYS[3], range)
end
local p = redis.call('SPOP', KEYS[1])
if not p then return false end
redis.call('HSET', KEYS[2], p, ARGV[3])
return p`;

// KEYS: free, owners. ARGV: port, owner, first, last.
const RELEASE = `
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur or string.sub(cur, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local p = tonumber(ARGV[1])
if p >= tonumber(ARGV[3]) and p <= tonumber(ARGV[4]) then redis.call('SADD', KEYS[1], ARGV[1]) end
return 1`;

// KEYS: free, owners. ARGV: port, owner, owner value.
const CLAIM = `
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur then
  if string.sub(cur, 1, #ARGV[2] + 1) == ARGV[2] .. '|' then return 1 end
  return 0
end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1`;

export class RedisPortAllocator implements PortAllocator {
  private readonly redis: Redis;
  private readonly range: PortRange;
  private readonly keys: ReturnType<typeof portKeys>;
  private readonly now: () => number;

  constructor(redis: Redis, range: PortRange, options: { prefix?: string; now?: () => number } = {}) {
    this.redis = redis;
    this.range = range;
    this.keys = portKeys(options.prefix ?? 'podgate:');
    this.now = options.now ?? Date.now;
  }

  async allocate(owner: string): Promise<number> {
    const { free, owners, seeded } = this.keys;
    const port = await this.redis.eval(ALLOCATE, 3, free, owners, seeded, this.range.first, this.range.last, `${owner}|${this.now()}`);
    if (port === null || port === undefined) throw new PortsExhaustedError(`${this.range.first}-${this.range.last}`);
    return Number(port);
  }

  async release(port: number, owner: string): Promise<boolean> {
    const done = await this.redis.eval(RELEASE, 2, this.keys.free, this.keys.owners, port, owner, this.range.first, this.range.last);
    return done === 1;
  }

  async claim(port: number, owner: string): Promise<boolean> {
    const done = await this.redis.eval(CLAIM, 2, this.keys.free, this.keys.owners, port, owner, `${owner}|${this.now()}`);
    return done === 1;
  }

  async owners(): Promise<Map<number, PortOwner>> {
    const out = new Map<number, PortOwner>();
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.keys.owners, cursor, 'COUNT', 1000);
      cursor = next;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const value = flat[i + 1]!;
        const bar = value.lastIndexOf('|');
        out.set(Number(flat[i]), { owner: value.slice(0, bar), sinceMs: Number(value.slice(bar + 1)) || 0 });
      }
    } while (cursor !== '0');
    return out;
  }
}
