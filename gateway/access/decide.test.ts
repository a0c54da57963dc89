import { describe, expect, it } from 'vitest';
import type { Route } from '../../shared/route.ts';
import { decide, isPreflight, visibilityOf, type DecisionInput, type TokenCheck } from './decide.ts';

const NOW = 1_900_000_000_000;
const route = (access?: Route['access']): Route => ({
  slug: 'app', host: '127.0.0.1', port: 30001, status: 'running', generation: 1, defaultPort: 3000,
  updatedAt: new Date(NOW).toISOString(), access,
});
const valid: TokenCheck = { ok: true, claims: { pod: 'app', port: undefined, exp: NOW / 1000 + 100, id: 'abcdefgh', iat: NOW } };
const input = (extra: Partial<DecisionInput>): DecisionInput => ({
  visibility: 'private', preflight: false, navigable: true, presented: [], conceal: false, foreignOrigin: false,
  check: () => ({ ok: false, reason: 'bad_signature' }), nowMs: NOW, ...extra,
});

describe('visibility', () => {
  it('is private without a policy, else the port entry, else the default', () => {
    expect(visibilityOf(route(), 3000)).toBe('private');
    const r = route({ default: 'private', ports: { '3000': 'public' } });
    expect(visibilityOf(r, 3000)).toBe('public');
    expect(visibilityOf(r, 8080)).toBe('private');
    expect(visibilityOf(route({ default: 'public', ports: { '22': 'private' } }), 22)).toBe('private');
  });
});

describe('preflight', () => {
  it('needs OPTIONS, Origin, Access-Control-Request-Method and no body', () => {
    const h = { origin: 'http://a', 'access-control-request-method': 'PUT' };
    expect(isPreflight('OPTIONS', h)).toBe(true);
    expect(isPreflight('OPTIONS', { ...h, 'content-length': '0' })).toBe(true);
    expect(isPreflight('GET', h)).toBe(false);
    expect(isPreflight('OPTIONS', { origin: 'http://a' })).toBe(false);
    expect(isPreflight('OPTIONS', { ...h, 'content-length': '5' })).toBe(false);
    expect(isPreflight('OPTIONS', { ...h, 'transfer-encoding': 'chunked' })).toBe(false);
  });
});

describe('decide', () => {
  it('lets public ports and preflights through without looking at tokens', () => {
    expect(decide(input({ visibility: 'public' }))).toEqual({ allow: true, via: 'public' });
    expect(decide(input({ visibility: 'public', presented: [{ source: 'header', token: 'x' }] }))).toEqual({ allow: true, via: 'public' });
    expect(decide(input({ preflight: true }))).toEqual({ allow: true, via: 'preflight' });
  });

  it('under concealment, answers preflights to private ports itself; public ports still reach the pod', () => {
    expect(decide(input({ preflight: true, conceal: true }))).toEqual({ allow: false, reason: 'preflight' });
    expect(decide(input({ preflight: true, conceal: true, presented: [{ source: 'header', token: 'h' }], check: () => valid }))).toEqual({
      allow: false,
      reason: 'preflight',
    });
    expect(decide(input({ visibility: 'public', preflight: true, conceal: true }))).toEqual({ allow: true, via: 'public' });
  });

  it('refuses without credentials; never decides a rate limit itself (the guard asks the limiter after this)', () => {
    expect(decide(input({}))).toMatchObject({ allow: false, reason: 'no_credentials' });
    expect(decide(input({ presented: [{ source: 'header', token: 't' }] }))).toEqual({ allow: false, reason: 'rejected', forged: 1, staleCookie: false });
  });

  it('redeems a valid link token on a navigation, for the rest of its lifetime', () => {
    const d = decide(input({ presented: [{ source: 'query', token: 'q' }], check: () => valid }));
    expect(d).toEqual({ allow: true, via: 'token', redeem: { token: 'q', maxAgeSeconds: 100 } });
    expect(decide(input({ navigable: false, presented: [{ source: 'query', token: 'q' }], check: () => valid }))).toEqual({ allow: true, via: 'token' });
  });

  it('accepts any valid credential, counts forgeries but not merely expired or revoked tokens, flags stale cookies', () => {
    const checks: Record<string, TokenCheck> = {
      forged: { ok: false, reason: 'bad_signature' },
      junk: { ok: false, reason: 'malformed' },
      old: { ok: false, reason: 'expired' },
      gone: { ok: false, reason: 'revoked' },
      good: valid,
    };
    const check = (t: string) => checks[t]!;
    const refused = decide(input({
      presented: [{ source: 'header', token: 'forged' }, { source: 'query', token: 'junk' }, { source: 'cookie', token: 'old' }, { source: 'cookie', token: 'gone' }],
      check,
    }));
    expect(refused).toEqual({ allow: false, reason: 'rejected', forged: 2, staleCookie: true });
    expect(decide(input({ presented: [{ source: 'cookie', token: 'forged' }, { source: 'cookie', token: 'good' }], check }))).toEqual({ allow: true, via: 'token' });
  });

  it('on a public port, still turns a link into a cookie and reloads without it (or just reloads)', () => {
    const link = [{ source: 'query' as const, token: 'q' }];
    expect(decide(input({ visibility: 'public', presented: link, check: () => valid }))).toEqual({
      allow: true, via: 'public', reload: true, redeem: { token: 'q', maxAgeSeconds: 100 },
    });
    expect(decide(input({ visibility: 'public', presented: link }))).toEqual({ allow: true, via: 'public', reload: true });
    expect(decide(input({ visibility: 'public', presented: link, navigable: false }))).toEqual({ allow: true, via: 'public' });
  });

  it('ignores cookies on requests from another pod or site (sibling pods are the same site), not header tokens', () => {
    const cookie = [{ source: 'cookie' as const, token: 'c' }];
    expect(decide(input({ foreignOrigin: true, presented: cookie, check: () => valid }))).toMatchObject({ allow: false, reason: 'no_credentials' });
    const both = [...cookie, { source: 'header' as const, token: 'h' }];
    expect(decide(input({ foreignOrigin: true, presented: both, check: () => valid }))).toEqual({ allow: true, via: 'token' });
    expect(decide(input({ foreignOrigin: false, presented: cookie, check: () => valid }))).toEqual({ allow: true, via: 'token' });
  });
});
