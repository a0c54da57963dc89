// Fixed-window counters per key, in the memory of one process, with a bounded number of keys: what the embedded
// access store counts forged tokens with, and what a gateway falls back to while the shared store is unreachable.

export interface WindowCount {
  /** The key's count in its current window, this addition included. */
  count: number;
  /** Milliseconds until the window ends and the count starts again from zero. */
  resetInMs: number;
}

interface Window {
  startedAt: number;
  count: number;
}

export class FixedWindows {
  private readonly windows = new Map<string, Window>();
  private readonly maxKeys: number;

  /** Beyond `maxKeys` the oldest key is forgotten, so a flood of distinct keys cannot grow the map. */
  constructor(maxKeys: number) {
    this.maxKeys = maxKeys;
  }

  add(key: string, n: number, windowMs: number, nowMs: number): WindowCount {
    let w = this.windows.get(key);
    if (w && nowMs - w.startedAt >= windowMs) {
      this.windows.delete(key);
      w = undefined;
    }
    if (!w) {
      if (this.windows.size >= this.maxKeys) this.windows.delete(this.windows.keys().next().value!);
      w = { startedAt: nowMs, count: 0 };
      this.windows.set(key, w);
    }
    w.count += n;
    return { count: w.count, resetInMs: Math.max(1, w.startedAt + windowMs - nowMs) };
  }

  get size(): number {
    return this.windows.size;
  }
}
