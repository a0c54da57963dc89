// The certificate store: ACME account keys, issued certificates, HTTP-01 challenge answers, renewal locks and
// on-demand rate counters, shared by every gateway replica (Redis) or embedded in one process (memory).
// Every record read back is validated: a bad entry is skipped and reported, never served.
import { z } from 'zod';

/** A DNS name a certificate may cover: lowercase labels, optionally `*.` in front (one wildcard label). */
export const CERT_NAME_PATTERN = /^(\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const CertNameSchema = z
  .string()
  .max(253, 'at most 253 characters')
  .regex(CERT_NAME_PATTERN, 'a lowercase DNS name with at least two labels, optionally starting with "*."');

/** Let's Encrypt allows 100 names per certificate. */
export const MAX_NAMES_PER_CERTIFICATE = 100;

/** ACME tokens are base64url (RFC 8555 section 8.1); anything else is never looked up. */
export const CHALLENGE_TOKEN_PATTERN = /^[A-Za-z0-9_-]{16,256}$/;

export const CertificateOriginSchema = z.enum(['admin', 'on-demand']);
export type CertificateOrigin = z.infer<typeof CertificateOriginSchema>;

export const RenewalStateSchema = z.object({
  /** Consecutive failed renewal attempts (0 after a success). */
  failures: z.number().int().nonnegative(),
  lastError: z.string().max(2000).optional(),
  lastAttemptAt: z.iso.datetime({ offset: true }).optional(),
  /** No attempt before this time (backoff, or the CA's Retry-After). */
  nextAttemptAt: z.iso.datetime({ offset: true }).optional(),
});
export type RenewalState = z.infer<typeof RenewalStateSchema>;

export const CertificateRecordSchema = z.object({
  /** The first name; the key under which the certificate is stored, listed, renewed and deleted. */
  id: CertNameSchema,
  names: z.array(CertNameSchema).min(1).max(MAX_NAMES_PER_CERTIFICATE),
  /** Leaf first, then the chain, PEM. */
  certPem: z.string().min(1),
  /** Private key, PEM. Never logged, never in an API answer. */
  keyPem: z.string().min(1),
  notBefore: z.iso.datetime({ offset: true }),
  notAfter: z.iso.datetime({ offset: true }),
  issuedAt: z.iso.datetime({ offset: true }),
  origin: CertificateOriginSchema,
  renewal: RenewalStateSchema.default({ failures: 0 }),
});
export type CertificateRecord = z.infer<typeof CertificateRecordSchema>;

export const AcmeAccountSchema = z.object({
  directoryUrl: z.url(),
  keyPem: z.string().min(1),
  /** Known once registered; a replica that reads a key without it registers (idempotent at the CA). */
  url: z.url().optional(),
  email: z.string().optional(),
  createdAt: z.iso.datetime({ offset: true }),
});
export type AcmeAccount = z.infer<typeof AcmeAccountSchema>;

export interface CertStoreSubscription {
  /** A certificate was written or deleted (by any replica). */
  onChange(id: string): void;
  /** Changes may have been missed (reconnect): re-read everything. */
  onResync(): void;
}

export interface CertStore {
  getAccount(directoryUrl: string): Promise<AcmeAccount | undefined>;
  /** Store the account unless one exists for its directory; returns the stored one (two replicas agree on one key). */
  putAccountIfAbsent(account: AcmeAccount): Promise<AcmeAccount>;
  /** Replace the stored account (e.g. to record its URL after registration). */
  putAccount(account: AcmeAccount): Promise<void>;

  getCertificate(id: string): Promise<CertificateRecord | undefined>;
  listCertificates(): Promise<CertificateRecord[]>;
  /** Store (or replace) a certificate; an id stored again is no longer counted as deleted. */
  putCertificate(record: CertificateRecord): Promise<void>;
  /** Delete a certificate, remembering that it was deleted on purpose (deletedCertificateIds). */
  deleteCertificate(id: string): Promise<boolean>;
  /**
   * Ids deleted on purpose and not stored again since. A reader holding a certificate the store no longer lists
   * tells a deletion (an id here) from the store losing its data (a Redis restarted empty: not here either).
   */
  deletedCertificateIds(): Promise<Set<string>>;
  /**
   * Store `record` back unless the store holds a certificate of that id or the id was deleted on purpose; true
   * when it was stored (and announced). How a reader returns what a store lost without overwriting anything newer.
   */
  restoreCertificate(record: CertificateRecord): Promise<boolean>;

  /** HTTP-01 answers, readable by every replica; they expire by themselves. */
  putChallenge(token: string, keyAuthorization: string, ttlMs: number): Promise<void>;
  getChallenge(token: string): Promise<string | undefined>;
  deleteChallenge(token: string): Promise<void>;

  /** Take a named lock for `ttlMs` unless someone else holds it. */
  tryLock(name: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Release the lock if `owner` still holds it. */
  unlock(name: string, owner: string): Promise<void>;

  /** Count one event in the fixed window of `windowMs` that contains now; returns the count so far. */
  countInWindow(key: string, windowMs: number): Promise<number>;

  subscribe(subscription: CertStoreSubscription): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Redis key names, under the same configurable prefix as the route table. */
export function certKeys(prefix: string) {
  return {
    /** hash: directory URL -> JSON AcmeAccount */
    accounts: `${prefix}tls:accounts`,
    /** hash: certificate id -> JSON CertificateRecord */
    certificates: `${prefix}tls:certs`,
    /** hash: certificate id -> epoch ms of its deletion, until the id is stored again */
    deleted: `${prefix}tls:certs:deleted`,
    /** string with expiry: HTTP-01 key authorization */
    challenge: (token: string) => `${prefix}tls:challenge:${token}`,
    /** string with expiry: lock owner */
    lock: (name: string) => `${prefix}tls:lock:${name}`,
    /** counter with expiry */
    window: (key: string, windowStart: number) => `${prefix}tls:rate:${key}:${windowStart}`,
    /** pub/sub channel: certificate id that changed */
    events: `${prefix}tls:events`,
  };
}

export function parseJson<T>(schema: z.ZodType<T>, json: string): { value?: T; error?: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return { error: 'not JSON' };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) return { error: z.prettifyError(parsed.error) };
  return { value: parsed.data };
}

/** What an API or log may show of a certificate: everything except the private key. */
export function publicView(record: CertificateRecord) {
  const { keyPem: _key, certPem: _cert, ...rest } = record;
  return rest;
}
