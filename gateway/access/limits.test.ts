import { describe, expect, it } from 'vitest';
import { MemoryAccessStore } from '../../shared/access-store.ts';
import { BadTokenLimiter, MAX_TRACKED_CLIENTS, PodConnections } from './limits.ts';

describe('BadTokenLimiter', () => {
  it('refuses as rate limited only once the address had reached the limit, until the window ends', async () => {
    const store = new MemoryAccessStore();
    const l = new BadTokenLimiter(3, 60_000, store);
    expect(await l.record('a', 2, 0)).toEqual({ blockedFor: 0, nowBlocked: false });
    expect(l.blockedFor('a', 0)).toBe(0);
    // The forgery that reaches the limit still gets the ordinary refusal; the next ones are limited.
    expect(await l.record('a', 1, 1000)).toEqual({ blockedFor: 0, nowBlocked: true });
    expect(l.blockedFor('a', 1000)).toBe(59);
    expect(await l.record('a', 1, 2000)).toEqual({ blockedFor: 58, nowBlocked: false });
    expect(l.blockedFor('b', 1000)).toBe(0);
    expect(l.blockedFor('a', 60_000)).toBe(0);
    expect(await l.record('a', 1, 60_001)).toEqual({ blockedFor: 0, nowBlocked: false });
  });

  it('learns a block from the shared count: forgeries other processes saw count too', async () => {
    const store = new MemoryAccessStore();
    const here = new BadTokenLimiter(3, 60_000, store);
    const there = new BadTokenLimiter(3, 60_000, store);
    await there.record('a', 3, 0);
    expect(here.blockedFor('a', 0)).toBe(0); // nothing asked yet: no I/O before a failure
    expect((await here.record('a', 1, 0)).blockedFor).toBe(60);
    expect(here.blockedFor('a', 0)).toBe(60);
  });

  it('keeps memory bounded under a flood of addresses', async () => {
    const l = new BadTokenLimiter(1, 60_000, new MemoryAccessStore());
    for (let i = 0; i < MAX_TRACKED_CLIENTS + 10; i++) await l.record(`c${i}`, 1, 0);
    expect(l.size).toBe(MAX_TRACKED_CLIENTS);
  });
});

describe('PodConnections', () => {
  it('holds at most max slots per pod; release is idempotent', () => {
    const c = new PodConnections();
    const a = c.tryAcquire('p', 2)!;
    const b = c.tryAcquire('p', 2)!;
    expect(c.tryAcquire('p', 2)).toBeUndefined();
    expect(c.tryAcquire('q', 2)).toBeDefined();
    a();
    a();
    expect(c.count('p')).toBe(1);
    expect(c.tryAcquire('p', 2)).toBeDefined();
    b();
    expect(c.tryAcquire('p', undefined)).toBeDefined();
  });
});
