import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AccessTokens, MAX_TOKEN_LENGTH, newLinkId, tokenCovers, type AccessClaims } from './access-token.ts';

const SECRET = 'k'.repeat(40);
const NOW = Date.parse('2030-01-01T00:00:00Z');
const tokens = new AccessTokens([SECRET]);

function claims(extra: Partial<AccessClaims> = {}): AccessClaims {
  return { pod: 'myapp', port: undefined, exp: NOW / 1000 + 3600, id: newLinkId(), iat: NOW, ...extra };
}

describe('access tokens', () => {
  it('round-trips the claims', () => {
    const c = claims({ port: 3000 });
    expect(tokens.verify(tokens.mint(c), NOW)).toEqual({ ok: true, claims: c });
    const pod = claims();
    expect(tokens.verify(tokens.mint(pod), NOW)).toEqual({ ok: true, claims: pod });
  });

  it('rejects expired tokens (expiry is exclusive)', () => {
    const t = tokens.mint(claims({ exp: NOW / 1000 + 10 }));
    expect(tokens.verify(t, NOW + 9_999).ok).toBe(true);
    expect(tokens.verify(t, NOW + 10_000)).toEqual({ ok: false, reason: 'expired' });
  });

  it('rejects a token signed with another secret, and accepts an old secret during rotation', () => {
    const other = new AccessTokens(['o'.repeat(40)]);
    const t = other.mint(claims());
    expect(tokens.verify(t, NOW)).toEqual({ ok: false, reason: 'bad_signature' });
    expect(new AccessTokens([SECRET, 'o'.repeat(40)]).verify(t, NOW).ok).toBe(true);
  });

  it('rejects a changed payload (another pod, another port, a later expiry)', () => {
    const t = tokens.mint(claims({ port: 3000 }));
    const [prefix, payload, sig] = t.split('.') as [string, string, string];
    const decoded = JSON.parse(Buffer.from(payload, 'base64url').toString());
    for (const change of [{ p: 'other' }, { o: 8080 }, { e: decoded.e + 1 }]) {
      const forged = Buffer.from(JSON.stringify({ ...decoded, ...change })).toString('base64url');
      expect(tokens.verify(`${prefix}.${forged}.${sig}`, NOW)).toEqual({ ok: false, reason: 'bad_signature' });
    }
  });

  it('rejects truncated, padded, re-encoded and malformed tokens', () => {
    const t = tokens.mint(claims());
    const sig = t.split('.')[2]!;
    // The last base64url character has spare bits: flipping them must not give a second valid spelling.
    const last = sig.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = alphabet[alphabet.indexOf(last) ^ 1]!;
    const bad = [
      t.slice(0, -1),
      t.slice(0, -10),
      t.slice(0, t.lastIndexOf('.')),
      `${t.slice(0, -1)}${twin}`,
      `${t}=`,
      `${t}.x`,
      `x${t}`,
      t.replace(/^pg1/, 'pg2'),
      '',
      '...',
      'pg1..',
      'not a token',
      `pg1.${'A'.repeat(MAX_TOKEN_LENGTH)}.${sig}`,
    ];
    for (const b of bad) expect(tokens.verify(b, NOW).ok, b).toBe(false);
  });

  it('rejects a correctly signed payload that is not a valid claim set', () => {
    // Someone holding the secret writes garbage: still never accepted.
    const payload = Buffer.from(JSON.stringify({ p: 'UPPER', e: 1, i: 'x', t: 0 })).toString('base64url');
    const sig = createHmac('sha256', SECRET).update(`pg1.${payload}`).digest('base64url');
    expect(tokens.verify(`pg1.${payload}.${sig}`, NOW)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('covers the pod (any port) or exactly its one port', () => {
    expect(tokenCovers(claims(), 'myapp', 8080)).toBe(true);
    expect(tokenCovers(claims(), 'other', 8080)).toBe(false);
    expect(tokenCovers(claims({ port: 3000 }), 'myapp', 3000)).toBe(true);
    expect(tokenCovers(claims({ port: 3000 }), 'myapp', 8080)).toBe(false);
  });

  it('refuses short secrets', () => {
    expect(() => new AccessTokens(['short'])).toThrow(/at least 32/);
    expect(() => new AccessTokens([])).toThrow();
  });
});
