import { describe, expect, it } from 'vitest';
import { MemoryAccessStore } from '../../shared/access-store.ts';
import { BadTokenLimiter, limiterKey, MAX_TRACKED_CLIENTS, PodConnections } from './limits.ts';

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

describe('limiterKey', () => {
  it('counts an IPv4 address alone and an IPv6 address with its /64', () => {
    expect(limiterKey('203.0.113.9')).toBe('203.0.113.9');
    expect(limiterKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(limiterKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(limiterKey('2001:0db8:0001:0002:0000:0000:0000:0001')).toBe('2001:db8:1:2::/64');
    expect(limiterKey('2001:db8::')).toBe('2001:db8:0:0::/64');
    expect(limiterKey('::1')).toBe('0:0:0:0::/64');
    expect(limiterKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(limiterKey('64:ff9b::192.0.2.33')).toBe('64:ff9b:0:0::/64');
    expect(limiterKey('1:2:3:4:5:6:1.2.3.4')).toBe('1:2:3:4::/64');
    expect(limiterKey('not-an-address')).toBe('not-an-address');
    expect(limiterKey('')).toBe('');
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
