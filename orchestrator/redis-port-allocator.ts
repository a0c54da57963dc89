// Host ports shared by every orchestrator process on one Redis. A SET of free ports (SPOP: O(1), atomic) and a
// HASH port -> "owner|sinceMs". Each operation is one Lua script, so two processes never get the same port.
// The free set is (re)seeded whenever the range marker is missing or different (first use, a new POD_PORT_RANGE,
// Redis lost its data): the allocate script refuses to hand out a port until then, and the seed script first
// claims the ports in use on the host (`inUse`: live pods' labels in Docker) and then fills the set with every
// port that has no owner. After a data loss the owners hash is empty, so without `inUse` a running pod's port
// would be handed out again before the next reconcile claimed it back.
import type { Redis } from 'ioredis';
import { PortsExhaustedError } from '../shared/errors.ts';
import type { PortRange } from './config.ts';
import { HOST_BOUND_OWNER, type PortAllocator, type PortOwner } from './port-allocator.ts';

export function portKeys(prefix: string) {
  return {
    free: `${prefix}ports:free`,
    owners: `${prefix}ports:owners`,
    /** string "<first>-<last>": the range the free set was seeded for */
    seeded: `${prefix}ports:seeded`,
  };
}

/** What the allocate script answers while the free set is not seeded for the range. */
const UNSEEDED = -1;
/** Seeding, then allocating again; a second UNSEEDED means another process keeps changing the range. */
const SEED_ATTEMPTS = 3;

// Is `cur` (an owners value) held by `owner`? Shared by the scripts below.
const HELD_BY = `
local function held_by(cur, owner) return string.sub(cur, 1, #owner + 1) == owner .. '|' end
`;

// KEYS: free, owners, seeded. ARGV: first, last, owner value.
const ALLOCATE = `
if redis.call('GET', KEYS[3]) ~= ARGV[1] .. '-' .. ARGV[2] then return ${UNSEEDED} end
local p = redis.call('SPOP', KEYS[1])
if not p then return false end
redis.call('HSET', KEYS[2], p, ARGV[3])
return p`;

// KEYS: free, owners, seeded. ARGV: first, last, sinceMs, then port, owner pairs in use on the host.
// A live pod's port is claimed even from the host-bound quarantine: the pod is what the probe found bound.
const SEED = `${HELD_BY}
for i = 4, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[2], ARGV[i])
  if not cur or held_by(cur, '${HOST_BOUND_OWNER}') then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1] .. '|' .. ARGV[3])
    redis.call('SREM', KEYS[1], ARGV[i])
  end
end
local range = ARGV[1] .. '-' .. ARGV[2]
if redis.call('GET', KEYS[3]) ~= range then
  redis.call('DEL', KEYS[1])
  for p = tonumber(ARGV[1]), tonumber(ARGV[2]) do
    if redis.call('HEXISTS', KEYS[2], p) == 0 then redis.call('SADD', KEYS[1], p) end
  end
  redis.call('SET', KEYS[3], range)
end
return 1`;

// KEYS: free, owners. ARGV: port, owner, first, last.
const RELEASE = `${HELD_BY}
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur or not held_by(cur, ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local p = tonumber(ARGV[1])
if p >= tonumber(ARGV[3]) and p <= tonumber(ARGV[4]) then redis.call('SADD', KEYS[1], ARGV[1]) end
return 1`;

// KEYS: free, owners. ARGV: port, owner, owner value. The host-bound quarantine gives way (see SEED).
const CLAIM = `${HELD_BY}
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur then
  if held_by(cur, ARGV[2]) then return 1 end
  if not held_by(cur, '${HOST_BOUND_OWNER}') then return 0 end
end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1`;

export interface RedisPortAllocatorOptions {
  prefix?: string;
  now?: () => number;
  /** Ports in use on the host and their owners (live pods), claimed whenever the free set is (re)seeded. */
  inUse?: () => Promise<Iterable<readonly [number, string]>>;
  /** The free set had to be (re)seeded: first use, or Redis lost its data (reconcile now, not at the next interval). */
  onReseed?: () => void;
}

export class RedisPortAllocator implements PortAllocator {
  private readonly redis: Redis;
  private readonly range: PortRange;
  private readonly keys: ReturnType<typeof portKeys>;
  private readonly now: () => number;
  private readonly inUse: () => Promise<Iterable<readonly [number, string]>>;
  private readonly onReseed: () => void;

  constructor(redis: Redis, range: PortRange, options: RedisPortAllocatorOptions = {}) {
    this.redis = redis;
    this.range = range;
    this.keys = portKeys(options.prefix ?? 'podgate:');
    this.now = options.now ?? Date.now;
    this.inUse = options.inUse ?? (async () => []);
    this.onReseed = options.onReseed ?? (() => {});
  }

  async allocate(owner: string): Promise<number> {
    const { free, owners, seeded } = this.keys;
    const { first, last } = this.range;
    for (let attempt = 1; ; attempt++) {
      const port = await this.redis.eval(ALLOCATE, 3, free, owners, seeded, first, last, `${owner}|${this.now()}`);
      if (port === null || port === undefined) throw new PortsExhaustedError(`${first}-${last}`);
      if (Number(port) !== UNSEEDED) return Number(port);
      if (attempt >= SEED_ATTEMPTS) throw new PortsExhaustedError(`the free set of ${first}-${last} keeps being reseeded (another orchestrator with another POD_PORT_RANGE on this host?)`);
      await this.seed();
    }
  }

  private async seed(): Promise<void> {
    const { free, owners, seeded } = this.keys;
    const pairs = [...(await this.inUse())].flatMap(([port, owner]) => [port, owner]);
    await this.redis.eval(SEED, 3, free, owners, seeded, this.range.first, this.range.last, this.now(), ...pairs);
    this.onReseed();
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
