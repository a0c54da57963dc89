// On-demand issuance: the first handshake for a pod hostname that no certificate covers starts an issuance in
// the background; that handshake (and any until the certificate is stored) gets the default certificate.
// Guards, because unbounded on-demand issuance is how a proxy burns its CA's rate limits:
//   - only names that parse as pod hostnames under a base domain AND whose pod exists (onDemandVerdict)
//   - single flight per name, and at most `maxConcurrent` issuances in this process
//   - at most `maxPerWindow` issuances per window across all replicas (a counter in the store)
//   - after a failure, the name waits (exponential backoff, at least the CA's Retry-After)
import type { CertStore } from '../../shared/cert-store.ts';
import { CertificateAuthorityError, ConflictError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { CertificateManager } from './manager.ts';
import { onDemandVerdict } from './names.ts';
import { backoffMs, type BackoffSettings } from './renewal-policy.ts';

const RATE_COUNTER = 'on-demand';
/** Remembered failures are bounded so a flood of distinct names cannot grow memory. */
const MAX_REMEMBERED_FAILURES = 10_000;

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
  | 'refused:not-a-pod-name'
  | 'refused:unknown-pod'
  | 'refused:backoff'
  | 'refused:busy';

export class OnDemandIssuance {
  private readonly options: OnDemandOptions;
  private readonly pending = new Map<string, Promise<void>>();
  private readonly failures = new Map<string, { count: number; until: number }>();
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
    try {
      const count = await store.countInWindow(RATE_COUNTER, windowMs);
      if (count > maxPerWindow) {
        log.warn({ name, maxPerWindow, windowMs }, 'on-demand issuance refused: rate limit reached');
        this.remember(name, undefined);
        return;
      }
      log.info({ name }, 'on-demand issuance started');
      await manager.issue([name], 'on-demand');
      this.failures.delete(name);
    } catch (err) {
      if (err instanceof ConflictError) return; // another replica is issuing it; the store will tell us
      log.warn({ name, err: err instanceof Error ? err.message : String(err) }, 'on-demand issuance failed');
      this.remember(name, err instanceof CertificateAuthorityError ? err.retryAfterSeconds : undefined);
    }
  }

  private remember(name: string, retryAfterSeconds: number | undefined): void {
    const count = (this.failures.get(name)?.count ?? 0) + 1;
    if (this.failures.size >= MAX_REMEMBERED_FAILURES) this.failures.delete(this.failures.keys().next().value!);
    this.failures.set(name, { count, until: this.now() + backoffMs(count, retryAfterSeconds, this.options.failureBackoff) });
  }
}
