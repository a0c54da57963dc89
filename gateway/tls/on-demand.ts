// On-demand issuance: the first handshake for a pod hostname that no certificate covers starts an issuance in
// the background; that handshake (and any until the certificate is stored) gets the default certificate.
// Guards, because unbounded on-demand issuance is how a proxy burns its CA's rate limits:
//   - only names that parse as pod hostnames under a base domain AND whose pod exists (onDemandVerdict)
//   - single flight per name, and at most `maxConcurrent` issuances in this process
//   - at most `maxPerWindow` attempts at the CA per window across all replicas (a counter in the store), counted
//     only under the issuance lock: a replica that finds another one issuing the name spends nothing
//   - after a failure, the name waits (exponential backoff, at least the CA's Retry-After); a name another
//     replica is issuing waits briefly too, so handshakes meanwhile do not each ask the store
import type { CertStore } from '../../shared/cert-store.ts';
import { CertificateAuthorityError, ConflictError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { CertificateManager } from './manager.ts';
import { onDemandVerdict } from './names.ts';
import { backoffMs, type BackoffSettings } from './renewal-policy.ts';

const RATE_COUNTER = 'on-demand';
/** Remembered names (failures, issuances elsewhere) are bounded so a flood of distinct names cannot grow memory. */
const MAX_REMEMBERED_NAMES = 10_000;
/**
 * How long a name another replica holds the issuance lock for is left to it. Its certificate normally arrives
 * by change event well before; looking again after this only covers a replica that failed or died (its lock
 * is released or expires), for one store round trip per name and period.
 */
const ELSEWHERE_RECHECK_MS = 10_000;

export interface OnDemandOptions {
  store: CertStore;
  manager: CertificateManager;
  baseDomains: readonly string[];
  podExists: (slug: string) => boolean;
  log: Logger;
  maxPerWindow: number;
  windowMs: number;
  maxConcurrent: number;
  failureBackoff: BackoffSettings;
  now?: () => number;
}

export type OnDemandOutcome =
  | 'started'
  | 'pending'
  | 'pending-elsewhere'
  | 'refused:not-a-pod-name'
  | 'refused:unknown-pod'
  | 'refused:backoff'
  | 'refused:busy';

export class OnDemandIssuance {
  private readonly options: OnDemandOptions;
  private readonly pending = new Map<string, Promise<void>>();
  private readonly failures = new Map<string, { count: number; until: number }>();
  /** Names another replica was issuing when this one tried: left to it until the time stored. */
  private readonly elsewhere = new Map<string, number>();
  private readonly now: () => number;

  constructor(options: OnDemandOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Called from the SNI callback for a name no certificate covers. Synchronous, never throws, never waits. */
  request(servername: string): OnDemandOutcome {
    const name = servername.toLowerCase().replace(/\.$/, '');
    const verdict = onDemandVerdict(name, this.options.baseDomains, this.options.podExists);
    if (!verdict.allowed) {
      return verdict.reason === 'pod_not_found' ? 'refused:unknown-pod' : 'refused:not-a-pod-name';
    }
    if (this.pending.has(name)) return 'pending';
    const other = this.elsewhere.get(name);
    if (other !== undefined && this.now() < other) return 'pending-elsewhere';
    const failed = this.failures.get(name);
    if (failed && this.now() < failed.until) return 'refused:backoff';
    if (this.pending.size >= this.options.maxConcurrent) return 'refused:busy';
    const run = this.issue(name).finally(() => this.pending.delete(name));
    this.pending.set(name, run);
    return 'started';
  }

  /** Resolves when every issuance started so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.pending.values()]);
  }

  isPending(name: string): boolean {
    return this.pending.has(name);
  }

  private async issue(name: string): Promise<void> {
    const { store, manager, log, maxPerWindow, windowMs } = this.options;
    let overQuota = false;
    // Runs under the issuance lock, once the store has no unexpired certificate for the name: only attempts
    // that are about to reach the CA count against the window shared by all replicas.
    const admit = async () => {
      overQuota = (await store.countInWindow(RATE_COUNTER, windowMs)) > maxPerWindow;
      if (!overQuota) log.info({ name }, 'on-demand issuance started');
      return !overQuota;
    };
    try {
      const issued = await manager.issueUnlessStored([name], 'on-demand', admit);
      this.elsewhere.delete(name);
      if (overQuota) {
        log.warn({ name, maxPerWindow, windowMs }, 'on-demand issuance refused: rate limit reached');
        this.remember(name, undefined);
        return;
      }
      if (!issued) log.debug({ name }, 'on-demand: another replica has issued it already');
      this.failures.delete(name);
    } catch (err) {
      if (err instanceof ConflictError) {
        // Another replica holds the lock: its certificate reaches this one through the store.
        setBounded(this.elsewhere, name, this.now() + ELSEWHERE_RECHECK_MS);
        return;
      }
      this.elsewhere.delete(name);
      log.warn({ name, err: err instanceof Error ? err.message : String(err) }, 'on-demand issuance failed');
      this.remember(name, err instanceof CertificateAuthorityError ? err.retryAfterSeconds : undefined);
    }
  }

  private remember(name: string, retryAfterSeconds: number | undefined): void {
    const count = (this.failures.get(name)?.count ?? 0) + 1;
    setBounded(this.failures, name, { count, until: this.now() + backoffMs(count, retryAfterSeconds, this.options.failureBackoff) });
  }
}

/** Set `name`, dropping the oldest entry when the map is full. */
function setBounded<T>(map: Map<string, T>, name: string, value: T): void {
  if (!map.has(name) && map.size >= MAX_REMEMBERED_NAMES) map.delete(map.keys().next().value!);
  map.set(name, value);
}
