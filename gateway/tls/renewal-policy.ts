// Pure renewal decisions: when a certificate is due, how long to back off after a failure, how to show it.
import type { CertificateRecord } from '../../shared/cert-store.ts';

/** Renew at about two thirds of the lifetime (Let's Encrypt's advice: 60 days into 90). */
export const RENEW_AT_FRACTION = 2 / 3;

export interface BackoffSettings {
  minMs: number;
  maxMs: number;
}

/** Let's Encrypt's guidance is to back off for minutes, growing to hours, never hammering. */
export const DEFAULT_RENEWAL_BACKOFF: BackoffSettings = { minMs: 5 * 60_000, maxMs: 12 * 3_600_000 };

export function renewalDueAt(record: CertificateRecord, fraction = RENEW_AT_FRACTION): number {
  const from = Date.parse(record.notBefore);
  return from + fraction * (Date.parse(record.notAfter) - from);
}

/** Due for renewal now: past the renewal point, and not inside a backoff after a failure. */
export function isRenewalDue(record: CertificateRecord, now: number, fraction = RENEW_AT_FRACTION): boolean {
  if (now < renewalDueAt(record, fraction)) return false;
  const next = record.renewal.nextAttemptAt;
  return next === undefined || now >= Date.parse(next);
}

/**
 * Delay before the next attempt after `failures` consecutive failures: exponential from minMs, capped at maxMs,
 * but never shorter than the CA's Retry-After (a rate-limited CA asks for exactly this).
 */
export function backoffMs(failures: number, retryAfterSeconds: number | undefined, settings: BackoffSettings): number {
  const exponential = Math.min(settings.maxMs, settings.minMs * 2 ** Math.max(0, failures - 1));
  return Math.max(exponential, (retryAfterSeconds ?? 0) * 1000);
}

export type CertificateStatus = 'valid' | 'renewal-due' | 'renewal-failing' | 'expired';

export function certificateStatus(record: CertificateRecord, now: number, fraction = RENEW_AT_FRACTION): CertificateStatus {
  if (now >= Date.parse(record.notAfter)) return 'expired';
  if (record.renewal.failures > 0) return 'renewal-failing';
  if (now >= renewalDueAt(record, fraction)) return 'renewal-due';
  return 'valid';
}
