// The dashboard's pure defences: session expiry and bounds, CSRF token comparison, the cross-site verdict and the
// sign-in limiter, on an injected clock.
import { describe, expect, it } from 'vitest';
import { crossSiteRefusal, ownOrigin, SIGN_IN_FAILURES_PER_CLIENT, SIGN_IN_FAILURES_TOTAL, SIGN_IN_WINDOW_MS, SignInLimiter } from './guard.ts';
import { csrfMatches, SessionStore } from './sessions.ts';

describe('SessionStore', () => {
  it('ends a session at its expiry and on delete', () => {
    let now = 1_000;
    const store = new SessionStore({ ttlMs: 100, now: () => now });
    const a = store.create();
    expect(store.get(a.id)).toBe(a);
    now += 99;
    expect(store.get(a.id)).toBe(a);
    now += 1;
    expect(store.get(a.id)).toBeUndefined();
    const b = store.create();
    store.delete(b.id);
    expect(store.get(b.id)).toBeUndefined();
    expect(store.get(undefined)).toBeUndefined();
  });

  it('keeps at most `max` sessions, forgetting the one that expires first', () => {
    let now = 0;
    const store = new SessionStore({ max: 3, now: () => now++ });
    const [a, b, c, d] = [store.create(), store.create(), store.create(), store.create()];
    expect(store.size).toBe(3);
    expect(store.get(a.id)).toBeUndefined();
    for (const s of [b, c, d]) expect(store.get(s.id)).toBe(s);
  });

  it('makes a fresh random id and CSRF token per session and compares tokens exactly', () => {
    const store = new SessionStore();
    const a = store.create();
    const b = store.create();
    expect(a.id).not.toBe(b.id);
    expect(a.csrf).not.toBe(a.id);
    expect(csrfMatches(a, a.csrf)).toBe(true);
    for (const wrong of [b.csrf, a.csrf.slice(1), `${a.csrf}x`, '', undefined, 42]) expect(csrfMatches(a, wrong)).toBe(false);
  });
});

describe('crossSiteRefusal', () => {
  const own = 'http://127.0.0.1:9000';
  it('lets same-origin requests and clients without browser headers through', () => {
    expect(crossSiteRefusal({ secFetchSite: 'same-origin', origin: own }, own)).toBeUndefined();
    expect(crossSiteRefusal({ secFetchSite: undefined, origin: own }, own)).toBeUndefined();
    expect(crossSiteRefusal({ secFetchSite: undefined, origin: undefined }, own)).toBeUndefined();
  });
  it('refuses other sites, sibling sites, user-typed navigations and opaque origins', () => {
    for (const secFetchSite of ['cross-site', 'same-site', 'none']) expect(crossSiteRefusal({ secFetchSite, origin: own }, own)).toContain(secFetchSite);
    for (const origin of ['null', 'http://127.0.0.1:9001', 'https://127.0.0.1:9000', 'http://localhost:9000']) {
      expect(crossSiteRefusal({ secFetchSite: undefined, origin }, own)).toBe('Origin is not this dashboard');
    }
  });
  it('knows its own origin behind a TLS proxy', () => {
    expect(ownOrigin('http://127.0.0.1:9000/ui', '127.0.0.1:9000', undefined)).toBe(own);
    expect(ownOrigin('http://127.0.0.1:9000/ui', 'admin.example', 'https')).toBe('https://admin.example');
    expect(ownOrigin('http://127.0.0.1:9000/ui', undefined, 'HTTPS, http')).toBe('https://127.0.0.1:9000');
  });
});

describe('SignInLimiter', () => {
  it('blocks a client after its failures until the window ends', () => {
    let now = 0;
    const limiter = new SignInLimiter(() => now);
    for (let i = 0; i < SIGN_IN_FAILURES_PER_CLIENT; i++) {
      expect(limiter.blockedFor('a')).toBe(0);
      limiter.failed('a');
    }
    expect(limiter.blockedFor('a')).toBe(SIGN_IN_WINDOW_MS / 1000);
    expect(limiter.blockedFor('b')).toBe(0);
    now += SIGN_IN_WINDOW_MS;
    expect(limiter.blockedFor('a')).toBe(0);
  });
  it('blocks everyone once failures from all clients reach the total', () => {
    const limiter = new SignInLimiter(() => 0);
    for (let i = 0; i < SIGN_IN_FAILURES_TOTAL; i++) limiter.failed(`client-${i}`);
    expect(limiter.blockedFor('new-client')).toBeGreaterThan(0);
  });
});
