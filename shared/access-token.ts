// Access tokens for private pod services. Minted by the orchestrator's admin API, verified by
// every gateway with the same secret; no per-request lookup.
//
// Format: `pg1.<payload>.<signature>`
//   payload   = base64url(JSON { p: pod slug, o?: in-pod port, e: expiry (epoch seconds), i: link id, t: issued-at (epoch ms) })
//   signature = base64url(HMAC-SHA256(secret, "pg1.<payload>"))
// The version prefix is covered by the signature, so a future format can never be confused with this one.
// Verification recomputes the HMAC and compares in constant time before the payload is even parsed, so forged,
// truncated or altered tokens are rejected without looking at their content. Expiry is checked here; revocation
// (by link id, or every link of a pod issued before a time) is checked by the caller against the revocation list.
//
// Secrets: ACCESS_SECRET (comma list: the first signs, all verify, for rotation). When unset, the process that
// starts first stores a random one in the access store (Redis SET NX) and every other process reads it, so a
// multi-process deployment works with zero configuration; the embedded store keeps one per process.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { PortSchema, SlugSchema } from './route.ts';

export const TOKEN_PREFIX = 'pg1';
/** Where clients present tokens (gateway/access/credentials.ts); links are minted with the query parameter. */
export const ACCESS_COOKIE = 'podgate_access';
export const TOKEN_HEADER = 'x-podgate-token';
export const TOKEN_QUERY = 'podgate_token';
/** Far above any real token (about 200 characters), so a huge header or cookie is rejected before any work. */
export const MAX_TOKEN_LENGTH = 512;
export const MIN_SECRET_LENGTH = 32;
const SIGNATURE_BYTES = 32;
const LINK_ID_BYTES = 12;
const GENERATED_SECRET_BYTES = 32;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface AccessClaims {
  /** Pod slug the token opens. */
  pod: string;
  /** In-pod port it is limited to; undefined opens every private port of the pod. */
  port: number | undefined;
  /** Expiry, epoch seconds. */
  exp: number;
  /** Link id: what revocation names. */
  id: string;
  /** Issued at, epoch milliseconds: compared with the pod's "revoke everything before" time. */
  iat: number;
}

export const LinkIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, 'a link id');

const PayloadSchema = z.strictObject({
  p: SlugSchema,
  o: PortSchema.optional(),
  e: z.number().int().positive(),
  i: LinkIdSchema,
  t: z.number().int().nonnegative(),
});

export type VerifyFailure = 'malformed' | 'bad_signature' | 'expired';
export type VerifyResult = { ok: true; claims: AccessClaims } | { ok: false; reason: VerifyFailure };

export function newLinkId(): string {
  return randomBytes(LINK_ID_BYTES).toString('base64url');
}

/** A random secret for stores that must generate one (see the header comment). */
export function generateSecret(): string {
  return randomBytes(GENERATED_SECRET_BYTES).toString('base64url');
}

function sign(secret: string, signed: string): Buffer {
  return createHmac('sha256', secret).update(signed).digest();
}

export class AccessTokens {
  private readonly secrets: readonly string[];

  /** `secrets[0]` signs; every one verifies (rotation: put the new one first, drop the old one later). */
  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('AccessTokens needs at least one secret');
    for (const s of secrets) {
      if (s.length < MIN_SECRET_LENGTH) throw new Error(`access secrets must be at least ${MIN_SECRET_LENGTH} characters`);
    }
    this.secrets = secrets;
  }

  mint(claims: AccessClaims): string {
    const payload: z.input<typeof PayloadSchema> = { p: claims.pod, e: claims.exp, i: claims.id, t: claims.iat };
    if (claims.port !== undefined) payload.o = claims.port;
    const signed = `${TOKEN_PREFIX}.${Buffer.from(JSON.stringify(PayloadSchema.parse(payload))).toString('base64url')}`;
    return `${signed}.${sign(this.secrets[0]!, signed).toString('base64url')}`;
  }

  /** Check signature, shape and expiry (`nowMs`). Never throws. */
  verify(token: string, nowMs: number): VerifyResult {
    if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: 'malformed' };
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== TOKEN_PREFIX || !BASE64URL.test(parts[1]!) || !BASE64URL.test(parts[2]!)) {
      return { ok: false, reason: 'malformed' };
    }
    const given = Buffer.from(parts[2]!, 'base64url');
    // A truncated signature has the wrong length: rejected here, timingSafeEqual needs equal lengths anyway.
    // Only the canonical encoding: base64url's last character carries spare bits that would let one signature
    // be written several ways.
    if (given.length !== SIGNATURE_BYTES || given.toString('base64url') !== parts[2]) return { ok: false, reason: 'bad_signature' };
    const signed = `${parts[0]}.${parts[1]}`;
    if (!this.secrets.some((secret) => timingSafeEqual(sign(secret, signed), given))) return { ok: false, reason: 'bad_signature' };
    let raw: unknown;
    try {
      raw = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    const parsed = PayloadSchema.safeParse(raw);
    if (!parsed.success) return { ok: false, reason: 'malformed' };
    const p = parsed.data;
    if (p.e * 1000 <= nowMs) return { ok: false, reason: 'expired' };
    return { ok: true, claims: { pod: p.p, port: p.o, exp: p.e, id: p.i, iat: p.t } };
  }
}

/** Does a verified token open `podPort` of `slug`? */
export function tokenCovers(claims: AccessClaims, slug: string, podPort: number): boolean {
  return claims.pod === slug && (claims.port === undefined || claims.port === podPort);
}
