// The certificate store in Redis: every gateway replica serves the same certificates and answers the same
// HTTP-01 challenges, and a restart issues nothing new. Keys are listed in certKeys().
import type { Redis } from 'ioredis';
import { ChannelSubscriber } from './redis.ts';
import {
  AcmeAccountSchema,
  CertificateRecordSchema,
  certKeys,
  parseJson,
  type AcmeAccount,
  type CertificateRecord,
  type CertStore,
  type CertStoreSubscription,
} from './cert-store.ts';

// KEYS: lock. ARGV: owner. Delete only our own lock (it may have expired and been taken by another replica).
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
// KEYS: counter. ARGV: ttl ms. Count and set the expiry of a new window in one step.
const COUNT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;
// KEYS: accounts hash. ARGV: directory URL, account JSON. HSETNX then read back: one round trip, one winner.
/** Stores a certificate back unless one of its id exists or it was deleted on purpose; announces it when stored. */
const RESTORE_CERTIFICATE = `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('PUBLISH', KEYS[3], ARGV[1])
return 1
`;

const PUT_ACCOUNT_IF_ABSENT = `
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])`;

export interface RedisCertStoreOptions {
  prefix?: string;
  /** Told about entries that fail validation; they are skipped, never served. */
  onInvalid?: (where: string, error: string) => void;
}

export class RedisCertStore implements CertStore {
  private readonly redis: Redis;
  private readonly keys: ReturnType<typeof certKeys>;
  private readonly onInvalid: (where: string, error: string) => void;
  private readonly events: ChannelSubscriber;

  constructor(redis: Redis, options: RedisCertStoreOptions = {}) {
    this.redis = redis;
    this.keys = certKeys(options.prefix ?? 'podgate:');
    this.onInvalid = options.onInvalid ?? (() => {});
    this.events = new ChannelSubscriber(redis, this.keys.events);
  }

  async getAccount(directoryUrl: string): Promise<AcmeAccount | undefined> {
    const json = await this.redis.hget(this.keys.accounts, directoryUrl);
    return json === null ? undefined : this.parseAccount(json, directoryUrl);
  }

  async putAccountIfAbsent(account: AcmeAccount): Promise<AcmeAccount> {
    const json = String(
      await this.redis.eval(PUT_ACCOUNT_IF_ABSENT, 1, this.keys.accounts, account.directoryUrl, JSON.stringify(account)),
    );
    const held = this.parseAccount(json, account.directoryUrl);
    if (!held) throw new Error(`the stored ACME account for ${account.directoryUrl} is invalid; delete ${this.keys.accounts}`);
    return held;
  }

  async putAccount(account: AcmeAccount): Promise<void> {
    await this.redis.hset(this.keys.accounts, account.directoryUrl, JSON.stringify(account));
  }

  async getCertificate(id: string): Promise<CertificateRecord | undefined> {
    const json = await this.redis.hget(this.keys.certificates, id);
    return json === null ? undefined : this.parseCertificate(json, id);
  }

  async listCertificates(): Promise<CertificateRecord[]> {
    const all = await this.redis.hgetall(this.keys.certificates);
    const out: CertificateRecord[] = [];
    for (const [id, json] of Object.entries(all)) {
      const record = this.parseCertificate(json, id);
      if (record) out.push(record);
    }
    return out;
  }

  async putCertificate(record: CertificateRecord): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys.certificates, record.id, JSON.stringify(record))
      .hdel(this.keys.deleted, record.id)
      .publish(this.keys.events, record.id)
      .exec();
  }

  async deleteCertificate(id: string): Promise<boolean> {
    const result = await this.redis
      .multi()
      .hdel(this.keys.certificates, id)
      .hset(this.keys.deleted, id, String(Date.now()))
      .publish(this.keys.events, id)
      .exec();
    return result?.[0]?.[1] === 1;
  }

  async deletedCertificateIds(): Promise<Set<string>> {
    return new Set(await this.redis.hkeys(this.keys.deleted));
  }

  async restoreCertificate(record: CertificateRecord): Promise<boolean> {
    const keys = [this.keys.certificates, this.keys.deleted, this.keys.events];
    return Number(await this.redis.eval(RESTORE_CERTIFICATE, keys.length, ...keys, record.id, JSON.stringify(record))) === 1;
  }

  async putChallenge(token: string, keyAuthorization: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.keys.challenge(token), keyAuthorization, 'PX', ttlMs);
  }

  async getChallenge(token: string): Promise<string | undefined> {
    return (await this.redis.get(this.keys.challenge(token))) ?? undefined;
  }

  async deleteChallenge(token: string): Promise<void> {
    await this.redis.del(this.keys.challenge(token));
  }

  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.keys.lock(name), owner, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async unlock(name: string, owner: string): Promise<void> {
    await this.redis.eval(UNLOCK, 1, this.keys.lock(name), owner);
  }

  async countInWindow(key: string, windowMs: number): Promise<number> {
    const start = Math.floor(Date.now() / windowMs) * windowMs;
    // Expire a little after the window ends so clock skew between replicas cannot reset a live window.
    return Number(await this.redis.eval(COUNT, 1, this.keys.window(key, start), windowMs * 2));
  }

  subscribe(subscription: CertStoreSubscription): Promise<() => Promise<void>> {
    return this.events.subscribe({ onResync: () => subscription.onResync(), onMessage: (id) => subscription.onChange(id) });
  }

  async close(): Promise<void> {
    this.events.close();
  }

  private parseAccount(json: string, directoryUrl: string): AcmeAccount | undefined {
    const { value, error } = parseJson(AcmeAccountSchema, json);
    if (error) this.onInvalid(`${this.keys.accounts}[${directoryUrl}]`, error);
    return value;
  }

  private parseCertificate(json: string, id: string): CertificateRecord | undefined {
    const { value, error } = parseJson(CertificateRecordSchema, json);
    if (value && value.id === id) return value;
    this.onInvalid(`${this.keys.certificates}[${id}]`, error ?? 'id does not match its field');
    return undefined;
  }
}
