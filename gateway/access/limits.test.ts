import { describe, expect, it } from 'vitest';
import { BadTokenLimiter, MAX_TRACKED_CLIENTS, PodConnections } from './limits.ts';

describe('BadTokenLimiter', () => {
  it('blocks after the limit until the window ends', () => {
    const l = new BadTokenLimiter(3, 60_000);
    expect(l.record('a', 2, 0)).toBe(false);
    expect(l.blockedFor('a', 0)).toBe(0);
    expect(l.record('a', 1, 1000)).toBe(true);
    expect(l.blockedFor('a', 1000)).toBe(59);
    expect(l.blockedFor('b', 1000)).toBe(0);
    expect(l.blockedFor('a', 60_000)).toBe(0);
    expect(l.record('a', 1, 60_001)).toBe(false);
  });

  it('keeps memory bounded under a flood of addresses', () => {
    const l = new BadTokenLimiter(3, 60_000);
    for (let i = 0; i < MAX_TRACKED_CLIENTS + 10; i++) l.record(`c${i}`, 1, 0);
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
