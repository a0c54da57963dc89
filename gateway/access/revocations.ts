// The gateway's in-memory copy of the revocations (shared/access-store.ts): pushed by events, re-read every
// ACCESS_RESYNC_INTERVAL_MS in case an event was lost, so a revocation reaches every replica within seconds.
// Revocations only ever grow (until the revoked token expires anyway), so a re-read is merged, never replaces:
// an event that raced with the read cannot be lost. Until the first read succeeds no token is accepted.
import type { AccessEvent, AccessStore } from '../../shared/access-store.ts';
import type { Logger } from '../../shared/log.ts';
import { followStore, type Following } from '../follow-store.ts';
import { RetryBackoff } from '../retry-backoff.ts';

export interface RevocationListOptions {
  resyncIntervalMs: number;
  log: Logger;
  now?: () => number;
}

export class RevocationList {
  private readonly store: AccessStore;
  private readonly options: RevocationListOptions;
  private readonly now: () => number;
  private readonly ids = new Map<string, number>();
  private readonly notBefore = new Map<string, number>();
  private following: Following | undefined;
  private loaded = false;
  private failing = false;
  private closed = false;
  private readonly retry: RetryBackoff;

  constructor(store: AccessStore, options: RevocationListOptions) {
    this.store = store;
    this.options = options;
    this.now = options.now ?? Date.now;
    this.retry = new RetryBackoff(options.resyncIntervalMs);
  }

  /** Subscribe, then read everything. Resolves even if the store is down (the timer retries). */
  async start(): Promise<void> {
    this.following = await followStore({
      subscribe: () => this.store.subscribe({ onEvent: (event) => this.apply(event), onResync: () => void this.resync() }),
      resync: () => this.resync(),
      intervalMs: this.options.resyncIntervalMs,
      onSubscribeFailed: (err) => this.options.log.warn({ err: String(err) }, 'access revocation events unavailable; relying on periodic re-read'),
    });
  }

  /** False until the revocations were read once: tokens are not trusted before that. */
  get ready(): boolean {
    return this.loaded;
  }

  isRevoked(claims: { id: string; pod: string; iat: number }): boolean {
    return this.ids.has(claims.id) || claims.iat < (this.notBefore.get(claims.pod) ?? 0);
  }

  apply(event: AccessEvent): void {
    if (event.type === 'revoke') this.ids.set(event.id, event.exp);
    else this.notBefore.set(event.pod, Math.max(event.notBefore, this.notBefore.get(event.pod) ?? 0));
  }

  async resync(): Promise<void> {
    try {
      const now = this.now();
      const read = await this.store.revocations(now);
      for (const [id, exp] of read.ids) this.ids.set(id, exp);
      for (const [pod, nb] of read.notBefore) this.notBefore.set(pod, Math.max(nb, this.notBefore.get(pod) ?? 0));
      // An expired token fails its own check; forgetting it keeps the set small.
      for (const [id, exp] of this.ids) if (exp <= now) this.ids.delete(id);
      if (this.failing) this.options.log.info('access revocations readable again');
      this.failing = false;
      this.loaded = true;
      this.retry.reset();
    } catch (err) {
      if (!this.failing) this.options.log.warn({ err: String(err) }, 'cannot read access revocations; keeping the last copy');
      this.failing = true;
      // Until the first read no token is accepted: catch up as soon as Redis answers, not one interval later.
      if (!this.closed) this.retry.schedule(() => void this.resync());
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.retry.cancel();
    await this.following?.stop();
  }
}
