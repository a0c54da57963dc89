// Two small in-memory counters of one gateway process: forged tokens per client address (a guesser is slowed
// down), and connections in flight per pod (one runaway pod cannot take the whole host).

/** Clients remembered at most; beyond this the oldest entry is forgotten (memory stays bounded under a flood). */
export const MAX_TRACKED_CLIENTS = 100_000;

interface Window {
  startedAt: number;
  failures: number;
}

/** Fixed-window count of forged tokens per client: `limit` per `windowMs`, then blocked until the window ends. */
export class BadTokenLimiter {
  private readonly windows = new Map<string, Window>();
  private readonly limit: number;
  private readonly windowMs: number;

  constructor(limit: number, windowMs: number) {
    this.limit = limit;
    this.windowMs = windowMs;
  }

  private current(client: string, nowMs: number): Window | undefined {
    const w = this.windows.get(client);
    if (w && nowMs - w.startedAt >= this.windowMs) {
      this.windows.delete(client);
      return undefined;
    }
    return w;
  }

  /** Seconds until the client may try again, or 0 when it is not blocked. */
  blockedFor(client: string, nowMs: number): number {
    const w = this.current(client, nowMs);
    if (!w || w.failures < this.limit) return 0;
    return Math.max(1, Math.ceil((w.startedAt + this.windowMs - nowMs) / 1000));
  }

  /** Count `n` forged tokens; true when this made the client blocked. */
  record(client: string, n: number, nowMs: number): boolean {
    if (n <= 0) return false;
    let w = this.current(client, nowMs);
    if (!w) {
      if (this.windows.size >= MAX_TRACKED_CLIENTS) this.windows.delete(this.windows.keys().next().value!);
      w = { startedAt: nowMs, failures: 0 };
      this.windows.set(client, w);
    }
    const before = w.failures;
    w.failures += n;
    return before < this.limit && w.failures >= this.limit;
  }

  get size(): number {
    return this.windows.size;
  }
}

/** Connections in flight per pod: HTTP requests until their response closes, WebSockets until the socket closes. */
export class PodConnections {
  private readonly open = new Map<string, number>();

  /** Take a slot unless `max` are in use; the caller must call the returned release exactly once. */
  tryAcquire(slug: string, max: number | undefined): (() => void) | undefined {
    const n = this.open.get(slug) ?? 0;
    if (max !== undefined && n >= max) return undefined;
    this.open.set(slug, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(slug) ?? 1) - 1;
      if (left <= 0) this.open.delete(slug);
      else this.open.set(slug, left);
    };
  }

  count(slug: string): number {
    return this.open.get(slug) ?? 0;
  }
}
