// The bearer-token scheme of every admin API (orchestrator /v1, gateway /v1/certificates): one shared secret,
// sent as `Authorization: Bearer <token>`, compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';

/** Shorter tokens are refused at start: a guessable admin token is no token. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

/** What the configured token is kept as: its SHA-256, so every comparison has equal lengths. */
export function adminTokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Constant-time check of an Authorization header against the configured token's digest. */
export function tokenMatches(header: string | undefined, expected: Buffer): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  return m !== null && timingSafeEqual(adminTokenDigest(m[1]!.trim()), expected);
}
