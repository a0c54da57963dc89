// Two limits of the access guard: forged tokens per client address (a guesser is slowed down), and connections in
// flight per pod (one runaway pod cannot take the whole host).
//
// The forged-token limiter only ever sees failed requests: the guard asks it after a request's tokens were all
// refused, so a valid token or cookie, and any public port, pass whatever the address's count (a page that makes
// its visitors' browsers send forged tokens cannot lock them out). The count lives in the access store, shared by
// every worker and replica on one Redis; each process remembers which addresses are blocked, so a blocked
// guesser is answered from memory without another store round trip. While the store is unreachable, counting
// goes on in this process's memory.
import { isIPv6 } from 'node:net';
import { MAX_COUNTED_CLIENTS, type AccessStore } from '../../shared/access-store.ts';
import { FixedWindows } from '../../shared/fixed-windows.ts';

/** Clients remembered at most; beyond this the oldest entry is forgotten (memory stays bounded under a flood). */
export const MAX_TRACKED_CLIENTS = MAX_COUNTED_CLIENTS;

/** The eight 16-bit groups of an IPv6 address (zone dropped, an IPv4 tail folded in); undefined for anything else. */
function ipv6Groups(address: string): number[] | undefined {
  if (!isIPv6(address)) return undefined;
  let a = address.split('%')[0]!;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, v4.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? undefined : tail ? tail.split(':') : [];
  const groups = t === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.length === 8 ? groups.map((g) => parseInt(g, 16)) : undefined;
}

/**
 * Whose forgeries count together: an IPv4 address, or an IPv6 /64 (one subscriber's network: a guesser there has
 * 2^64 addresses to rotate through). Anything else (a name a trusted proxy reported) counts as it is.
 */
export function limiterKey(address: string): string {
  const groups = ipv6Groups(address);
  return groups ? `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64` : address;
}

export interface ForgeryVerdict {
  /** Seconds until the address may try again; 0 when this request is answered as an ordinary refusal. */
  blockedFor: number;
  /** This request's forgeries reached the limit (the moment worth one warning). */
  nowBlocked: boolean;
}

/** `limit` forged tokens per `windowMs` per address; beyond that, its forged tokens are answered with 429. */
export class BadTokenLimiter {
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly counter: Pick<AccessStore, 'countForgeries'>;
  private readonly onCounterError: (err: unknown) => void;
  /** Address -> end of its block (epoch ms), as learnt from the counts this process saw. */
  private readonly blocked = new Map<string, number>();
  private readonly fallback = new FixedWindows(MAX_TRACKED_CLIENTS);

  constructor(limit: number, windowMs: number, counter: Pick<AccessStore, 'countForgeries'>, onCounterError: (err: unknown) => void = () => {}) {
    this.limit = limit;
    this.windowMs = windowMs;
    this.counter = counter;
    this.onCounterError = onCounterError;
  }

  /** Seconds the address is known (to this process) to be blocked for; 0 when it is not. No I/O. */
  blockedFor(client: string, nowMs: number): number {
    const until = this.blocked.get(client);
    if (until === undefined) return 0;
    if (until <= nowMs) {
      this.blocked.delete(client);
      return 0;
    }
    return Math.max(1, Math.ceil((until - nowMs) / 1000));
  }

  /**
   * Count `n` forged tokens of one refused request. The request is rate limited when the address had already
   * reached the limit before it (so the first `limit` forgeries get the ordinary refusal). Never rejects.
   */
  async record(client: string, n: number, nowMs: number): Promise<ForgeryVerdict> {
    let count: number;
    let resetInMs: number;
    try {
      ({ count, resetInMs } = await this.counter.countForgeries(client, n, this.windowMs, nowMs));
    } catch (err) {
      this.onCounterError(err);
      ({ count, resetInMs } = this.fallback.add(client, n, this.windowMs, nowMs));
    }
    if (count < this.limit) return { blockedFor: 0, nowBlocked: false };
    if (this.blocked.size >= MAX_TRACKED_CLIENTS && !this.blocked.has(client)) this.blocked.delete(this.blocked.keys().next().value!);
    this.blocked.set(client, nowMs + resetInMs);
    if (count - n >= this.limit) return { blockedFor: this.blockedFor(client, nowMs), nowBlocked: false };
    return { blockedFor: 0, nowBlocked: true };
  }

  /** Addresses known to be blocked. */
  get size(): number {
    return this.blocked.size;
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
