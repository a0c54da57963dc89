// Issue, renew, delete and list certificates. One issuance per certificate at a time: in this process (single
// flight) and across replicas (a lock in the store). A failed renewal keeps the old certificate and records
// the failure on it, so it shows in logs and in the list.
import {
  publicView,
  type CertificateOrigin,
  type CertificateRecord,
  type CertStore,
} from '../../shared/cert-store.ts';
import { CertificateAuthorityError, ConflictError, NotFoundError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { CertificateIssuer } from './acme.ts';
import { normaliseCertNames } from './names.ts';
import {
  backoffMs,
  certificateStatus,
  DEFAULT_RENEWAL_BACKOFF,
  isRenewalDue,
  RENEW_AT_FRACTION,
  renewalDueAt,
  type BackoffSettings,
} from './renewal-policy.ts';

/** Longer than any issuance takes (each CA request times out after 30 s); a crashed holder frees it by expiry. */
const ISSUE_LOCK_TTL_MS = 10 * 60_000;
const MAX_ERROR_LENGTH = 500;

export interface CertificateManagerOptions {
  store: CertStore;
  issuer: CertificateIssuer;
  baseDomains: readonly string[];
  log: Logger;
  /** Identifies this replica as a lock owner. */
  owner: string;
  renewAtFraction?: number;
  backoff?: BackoffSettings;
  now?: () => number;
}

export type CertificateView = ReturnType<typeof publicView> & { status: string; renewAt: string };

export class CertificateManager {
  private readonly options: CertificateManagerOptions;
  private readonly inFlight = new Map<string, Promise<CertificateRecord | undefined>>();
  private readonly now: () => number;

  constructor(options: CertificateManagerOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** What the API and CLI show: no private key, no PEM, plus the status and the renewal time. */
  view(record: CertificateRecord): CertificateView {
    const fraction = this.options.renewAtFraction ?? RENEW_AT_FRACTION;
    return {
      ...publicView(record),
      status: certificateStatus(record, this.now(), fraction),
      renewAt: new Date(renewalDueAt(record, fraction)).toISOString(),
    };
  }

  async list(): Promise<CertificateRecord[]> {
    return (await this.options.store.listCertificates()).sort((a, b) => a.id.localeCompare(b.id));
  }

  async get(id: string): Promise<CertificateRecord> {
    const record = await this.options.store.getCertificate(id);
    if (!record) throw new NotFoundError(`no certificate ${JSON.stringify(id)}`);
    return record;
  }

  /**
   * Issue a certificate for `namesInput` (validated here: the first name becomes its id) and store it.
   * @throws ValidationError, ConflictError (already being issued elsewhere), CertificateAuthorityError
   */
  async issue(namesInput: unknown, origin: CertificateOrigin = 'admin'): Promise<CertificateRecord> {
    const names = normaliseCertNames(namesInput, this.options.baseDomains);
    const record = await this.once(names[0]!, () => this.issueNow(names, origin));
    // Undefined only when this call joined a run for the same id that had nothing to do (a renewal not due,
    // an on-demand issuance that found the certificate stored): nothing was issued for this caller.
    if (!record) throw new ConflictError(`certificate ${names[0]} was being renewed or issued at the same time; try again`);
    return record;
  }

  /**
   * Issuance for on-demand: under the lock, first re-read the store (another replica may have stored an
   * unexpired certificate for this id since this process looked; its change event can still be on the way),
   * then ask `admit` (the caller's quota). A replica that loses the race for the lock, or finds the work done,
   * so spends none of the quota and never reaches the CA.
   * @returns the new record, or undefined when an unexpired one was stored already or `admit` said no
   * @throws ValidationError, ConflictError (another replica holds the lock), CertificateAuthorityError
   */
  async issueUnlessStored(
    namesInput: unknown,
    origin: CertificateOrigin,
    admit: () => Promise<boolean>,
  ): Promise<CertificateRecord | undefined> {
    const names = normaliseCertNames(namesInput, this.options.baseDomains);
    return this.once(names[0]!, async () => {
      const held = await this.options.store.getCertificate(names[0]!);
      if (held && this.now() < Date.parse(held.notAfter) && names.every((n) => held.names.includes(n))) return undefined;
      if (!(await admit())) return undefined;
      return this.issueNow(names, origin);
    });
  }

  /** Renew now (admin). A failure is recorded on the certificate, which keeps being served. */
  async renew(id: string): Promise<CertificateRecord> {
    return (await this.once(id, () => this.renewNow(id, undefined)))!;
  }

  /**
   * Renew if due (background renewal). Returns undefined when not due or when another replica holds the lock.
   * Never throws for CA failures: they are recorded and logged.
   */
  async renewIfDue(id: string): Promise<CertificateRecord | undefined> {
    try {
      return await this.once(id, () => this.renewNow(id, this.now()));
    } catch (err) {
      if (err instanceof ConflictError || err instanceof NotFoundError || err instanceof CertificateAuthorityError) {
        return undefined;
      }
      throw err;
    }
  }

  async delete(id: string): Promise<void> {
    if (!(await this.options.store.deleteCertificate(id))) throw new NotFoundError(`no certificate ${JSON.stringify(id)}`);
    this.options.log.info({ id }, 'certificate deleted');
  }

  /** One run per id in this process; a second caller shares the first one's result. */
  private once(id: string, run: () => Promise<CertificateRecord | undefined>): Promise<CertificateRecord | undefined> {
    let pending = this.inFlight.get(id);
    if (!pending) {
      pending = this.locked(id, run).finally(() => this.inFlight.delete(id));
      this.inFlight.set(id, pending);
    }
    return pending;
  }

  private async locked<T>(id: string, run: () => Promise<T>): Promise<T> {
    const { store, owner } = this.options;
    const lock = `cert:${id}`;
    if (!(await store.tryLock(lock, owner, ISSUE_LOCK_TTL_MS))) {
      throw new ConflictError(`certificate ${id} is being issued or renewed by another gateway replica; try again shortly`);
    }
    try {
      return await run();
    } finally {
      await store.unlock(lock, owner).catch(() => {}); // it expires by itself
    }
  }

  private async issueNow(names: string[], origin: CertificateOrigin): Promise<CertificateRecord> {
    const issued = await this.options.issuer.issue(names);
    const record: CertificateRecord = {
      id: names[0]!,
      names,
      certPem: issued.certPem,
      keyPem: issued.keyPem,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      issuedAt: new Date(this.now()).toISOString(),
      origin,
      renewal: { failures: 0 },
    };
    await this.options.store.putCertificate(record);
    this.options.log.info({ id: record.id, names, notAfter: record.notAfter, origin }, 'certificate issued');
    return record;
  }

  /** With `dueAt` (background), re-checks under the lock that it is still due: another replica may have renewed. */
  private async renewNow(id: string, dueAt: number | undefined): Promise<CertificateRecord | undefined> {
    const record = await this.get(id);
    if (dueAt !== undefined && !isRenewalDue(record, dueAt, this.options.renewAtFraction)) return undefined;
    try {
      return await this.issueNow(record.names, record.origin);
    } catch (err) {
      await this.recordFailure(record, err);
      throw err;
    }
  }

  private async recordFailure(record: CertificateRecord, err: unknown): Promise<void> {
    const now = this.now();
    const failures = record.renewal.failures + 1;
    const retryAfter = err instanceof CertificateAuthorityError ? err.retryAfterSeconds : undefined;
    const delay = backoffMs(failures, retryAfter, this.options.backoff ?? DEFAULT_RENEWAL_BACKOFF);
    const message = (err instanceof Error ? err.message : String(err)).slice(0, MAX_ERROR_LENGTH);
    const updated: CertificateRecord = {
      ...record,
      renewal: {
        failures,
        lastError: message,
        lastAttemptAt: new Date(now).toISOString(),
        nextAttemptAt: new Date(now + delay).toISOString(),
      },
    };
    // Re-read first: if the certificate was deleted meanwhile, a failure record must not bring it back.
    if (await this.options.store.getCertificate(record.id)) await this.options.store.putCertificate(updated);
    this.options.log.warn(
      {
        id: record.id,
        failures,
        error: message,
        rateLimited: err instanceof CertificateAuthorityError && err.rateLimited,
        nextAttemptAt: updated.renewal.nextAttemptAt,
        notAfter: record.notAfter,
      },
      'certificate renewal failed; still serving the current certificate',
    );
  }
}
