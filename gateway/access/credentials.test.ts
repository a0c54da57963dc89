import { describe, expect, it } from 'vitest';
import { accessCookie, presentedTokens, redactTarget, redactTokens, stripCredentialHeaders, withoutTokenParam } from './credentials.ts';

describe('credentials', () => {
  it('finds tokens in the query, the header and every cookie of our name, in that order', () => {
    const found = presentedTokens(
      { 'x-podgate-token': ' H ', cookie: 'a=1; podgate_access=C1; podgate_access="C2"; b' },
      '/p?x=1&podgate_token=Q%2B&y',
    );
    expect(found).toEqual([
      { source: 'query', token: 'Q+' },
      { source: 'header', token: 'H' },
      { source: 'cookie', token: 'C1' },
      { source: 'cookie', token: 'C2' },
    ]);
    expect(presentedTokens({}, '/')).toEqual([]);
  });

  it('removes the token parameter and nothing else', () => {
    expect(withoutTokenParam('/a?podgate_token=T')).toBe('/a');
    expect(withoutTokenParam('/a?x=1&podgate_token=T&y=%20&z')).toBe('/a?x=1&y=%20&z');
    expect(withoutTokenParam('/a?podgate%5Ftoken=T&k=v')).toBe('/a?k=v');
    expect(withoutTokenParam('/a?x=podgate_token')).toBe('/a?x=podgate_token');
    expect(withoutTokenParam('/plain')).toBe('/plain');
  });

  it('strips the gateway cookie and header, keeping the pod’s own cookies as they were', () => {
    const headers: Record<string, string | undefined> = { cookie: 'a=1;podgate_access=T;  b="x y"', 'x-podgate-token': 'T' };
    stripCredentialHeaders(headers);
    expect(headers).toEqual({ cookie: 'a=1; b="x y"' });
    const only: Record<string, string | undefined> = { cookie: 'podgate_access=T' };
    stripCredentialHeaders(only);
    expect(only).toEqual({});
  });

  it('builds a host-only cookie, Secure only under TLS', () => {
    expect(accessCookie('T', 60.9, false)).toBe('podgate_access=T; Path=/; Max-Age=60; HttpOnly; SameSite=Lax');
    expect(accessCookie('T', 60, true)).toMatch(/; Secure$/);
    expect(accessCookie('T', 60, true)).not.toMatch(/Domain/i);
  });

  it('redacts every token parameter value and anything token-shaped from what is logged', () => {
    const token = 'pg1.eyJwIjoiYXBwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
    expect(redactTarget(`/a?x=1&podgate_token=${token}&y=2`)).toBe('/a?x=1&podgate_token=redacted&y=2');
    expect(redactTarget('/a?podgate%5Ftoken=x&podgate_token=y')).toBe('/a?podgate%5Ftoken=redacted&podgate_token=redacted');
    expect(redactTarget(`/p/${token}/q?other=${token}`)).toBe('/p/pg1.redacted/q?other=pg1.redacted');
    expect(redactTarget(`/a?next=${encodeURIComponent(`/b?podgate_token=${token}`)}`)).not.toContain('c2lnbmF0dXJl');
    expect(redactTarget('/a?podgate_token')).toBe('/a?podgate_token');
    expect(redactTarget('/plain?x=podgate_token')).toBe('/plain?x=podgate_token');
    expect(redactTokens(`PG1%2Eabc%2Edef and ${token}`)).toBe('pg1.redacted and pg1.redacted');
  });
});
