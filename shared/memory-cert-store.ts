// Embedded certificate store for a single gateway process (no REDIS_URL). Same semantics as the Redis store;
// its contents are lost on restart, so a restarted single-process gateway issues again (the README says so).
import type { AcmeAccount, CertificateRecord, CertStore, CertStoreSubscription } from './cert-store.ts';

interface Expiring {
  value: string;
  expiresAt: number;
}

export class MemoryCertStore implements CertStore {
  private readonly accounts = new Map<string, AcmeAccount>();
  private readonly certificates = new Map<string, CertificateRecord>();
  /** Ids deleted on purpose and not stored again since. */
  private readonly deleted = new Set<string>();
  private readonly challenges = new Map<string, Expiring>();
  private readonly locks = new Map<string, Expiring>();
  private readonly windows = new Map<string, Expiring>();
  private readonly subscribers = new Set<CertStoreSubscription>();
  private readonly now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
  }

  async getAccount(directoryUrl: string): Promise<AcmeAccount | undefined> {
    return this.accounts.get(directoryUrl);
  }

  async putAccountIfAbsent(account: AcmeAccount): Promise<AcmeAccount> {
    const held = this.accounts.get(account.directoryUrl);
    if (held) return held;
    this.accounts.set(account.directoryUrl, account);
    return account;
  }

  async putAccount(account: AcmeAccount): Promise<void> {
    this.accounts.set(account.directoryUrl, account);
  }

  async getCertificate(id: string): Promise<CertificateRecord | undefined> {
    return this.certificates.get(id);
  }

  async listCertificates(): Promise<CertificateRecord[]> {
    return [...this.certificates.values()];
  }

  async putCertificate(record: CertificateRecord): Promise<void> {
    this.certificates.set(record.id, record);
    this.deleted.delete(record.id);
    this.publish(record.id);
  }

  async deleteCertificate(id: string): Promise<boolean> {
    const existed = this.certificates.delete(id);
    this.deleted.add(id);
    if (existed) this.publish(id);
    return existed;
  }

  async deletedCertificateIds(): Promise<Set<string>> {
    return new Set(this.deleted);
  }

  async restoreCertificate(record: CertificateRecord): Promise<boolean> {
    if (this.deleted.has(record.id) || this.certificates.has(record.id)) return false;
    this.certificates.set(record.id, record);
    this.publish(record.id);
    return true;
  }

  async putChallenge(token: string, keyAuthorization: string, ttlMs: number): Promise<void> {
    this.sweep(this.challenges);
    this.challenges.set(token, { value: keyAuthorization, expiresAt: this.now() + ttlMs });
  }

  async getChallenge(token: string): Promise<string | undefined> {
    return this.live(this.challenges, token);
  }

  async deleteChallenge(token: string): Promise<void> {
    this.challenges.delete(token);
  }

  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    if (this.live(this.locks, name) !== undefined) return false;
    this.locks.set(name, { value: owner, expiresAt: this.now() + ttlMs });
    return true;
  }

  async unlock(name: string, owner: string): Promise<void> {
    if (this.live(this.locks, name) === owner) this.locks.delete(name);
  }

  async countInWindow(key: string, windowMs: number): Promise<number> {
    this.sweep(this.windows);
    const start = Math.floor(this.now() / windowMs) * windowMs;
    const id = `${key}:${start}`;
    const count = Number(this.live(this.windows, id) ?? '0') + 1;
    this.windows.set(id, { value: String(count), expiresAt: start + windowMs });
    return count;
  }

  async subscribe(subscription: CertStoreSubscription): Promise<() => Promise<void>> {
    this.subscribers.add(subscription);
    return async () => {
      this.subscribers.delete(subscription);
    };
  }

  async close(): Promise<void> {
    this.subscribers.clear();
  }

  /** The value if present and not expired; expired entries are dropped on the way (bounded memory). */
  private live(map: Map<string, Expiring>, key: string): string | undefined {
    const entry = map.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      map.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Drop expired entries, so keys nobody reads again do not pile up. */
  private sweep(map: Map<string, Expiring>): void {
    const now = this.now();
    for (const [key, entry] of map) if (entry.expiresAt <= now) map.delete(key);
  }

  private publish(id: string): void {
    // Asynchronous like pub/sub: a writer never runs reader code on its own stack.
    for (const s of this.subscribers) queueMicrotask(() => s.onChange(id));
  }
}
