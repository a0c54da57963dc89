// Redis without persistence forgets everything when it restarts, and FLUSHALL forgets it without a restart.
// Either way gateways lose the routes of live pods, and the port pool their ports, until the next reconcile, which
// may be RECONCILE_INTERVAL (30 s) away. This watch notices both at once: the orchestrator's own connection coming
// back after a loss (whatever happened meanwhile), or a marker key of this process gone from Redis.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/** How often the marker is checked: one small script a second. */
export const LOSS_CHECK_MS = 1000;
/** Far longer than a check interval; a crashed process's marker expires by itself. */
const MARKER_TTL_SECONDS = 60;

// KEYS: marker. ARGV: ttl. Whether it was there; there again for the next check either way.
const CHECK = `
local had = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return had`;

export interface RedisLossWatchOptions {
  /** Key prefix; the marker is `<prefix><random id>`, one per process (each must notice a loss itself). */
  prefix: string;
  /** Redis came back after a disconnect, or lost its data. */
  onLoss: (why: 'reconnected' | 'data lost') => void;
  checkMs?: number;
}

export class RedisLossWatch {
  private readonly redis: Redis;
  private readonly key: string;
  private readonly onLoss: RedisLossWatchOptions['onLoss'];
  private readonly checkMs: number;
  private timer: NodeJS.Timeout | undefined;
  private lost = false;
  private closed = false;
  private readonly onClose = () => {
    this.lost = true;
  };
  private readonly onReady = () => {
    if (!this.lost || this.closed) return;
    this.lost = false;
    this.onLoss('reconnected');
  };

  constructor(redis: Redis, options: RedisLossWatchOptions) {
    this.redis = redis;
    this.key = `${options.prefix}${randomUUID()}`;
    this.onLoss = options.onLoss;
    this.checkMs = options.checkMs ?? LOSS_CHECK_MS;
  }

  /** Write the marker and watch from now on. Redis down at this moment costs one needless reconcile, no failure. */
  async start(): Promise<void> {
    await this.redis.eval(CHECK, 1, this.key, MARKER_TTL_SECONDS).catch(() => {});
    this.redis.on('close', this.onClose);
    this.redis.on('ready', this.onReady);
    this.timer = setInterval(() => void this.check(), this.checkMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    try {
      const had = await this.redis.eval(CHECK, 1, this.key, MARKER_TTL_SECONDS);
      if (had === 0 && !this.closed) this.onLoss('data lost');
    } catch {
      // Redis is down: its coming back is the reconnect above.
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.redis.off('close', this.onClose);
    this.redis.off('ready', this.onReady);
    await this.redis.del(this.key).catch(() => {});
  }
}
