// On-demand issuance: the first handshake for a pod hostname that no certificate covers starts an issuance in
// the background; that handshake (and any until the certificate is stored) gets the default certificate.
// Guards, because unbounded on-demand issuance is how a proxy burns its CA's rate limits:
//   - only names that parse as pod hostnames under a base domain, whose pod exists AND whose in-pod port the pod
//     declares (onDemandVerdict): a client cannot walk localhost-1...65535 of a known slug
//   - single flight per name, and at most `maxConcurrent` issuances in this process
//   - at most `maxPerPod` attempts per pod and `maxPerWindow` attempts in all, per window across all replicas
//     (counters in the store), counted only under the issuance lock: a replica that finds another one issuing
//     the name spends nothing; a pod over its own cap spends nothing of the shared window
//   - after a failure, the name waits (exponential backoff, at least the CA's Retry-After); a name another
//     replica is issuing waits briefly too, so handshakes meanwhile do not each ask the store
import type { CertStore } from '../../shared/cert-store.ts';
import { CertificateAuthorityError, ConflictError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { CertificateManager } from './manager.ts';
import { onDemandVerdict, type PodLookup } from './names.ts';
import { backoffMs, type BackoffSettings } from './renewal-policy.ts';

const RATE_COUNTER = 'on-demand';
/** Per-pod counter key in the store; slugs are DNS labels, so the key is unambiguous. */
const podCounter = (slug: string) => `on-demand:pod:${slug}`;
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
  lookupPod: PodLookup;
  log: Logger;
  maxPerWindow: number;
  /** Attempts at the CA per pod per window, across replicas (the pod's share of `maxPerWindow`). */
  maxPerPod: number;
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
  | 'refused:undeclared-port'
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
    const verdict = onDemandVerdict(name, this.options.baseDomains, this.options.lookupPod);
    if (!verdict.allowed) {
      if (verdict.reason === 'pod_not_found') return 'refused:unknown-pod';
      return verdict.reason === 'port_not_declared' ? 'refused:undeclared-port' : 'refused:not-a-pod-name';
    }
    if (this.pending.has(name)) return 'pending';
    const other = this.elsewhere.get(name);
    if (other !== undefined && this.now() < other) return 'pending-elsewhere';
    const failed = this.failures.get(name);
    if (failed && this.now() < failed.until) return 'refused:backoff';
    if (this.pending.size >= this.options.maxConcurrent) return 'refused:busy';
    const run = this.issue(name, verdict.slug).finally(() => this.pending.delete(name));
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

  private async issue(name: string, slug: string): Promise<void> {
    const { store, manager, log, maxPerWindow, maxPerPod, windowMs } = this.options;
    let refusedBy: 'pod' | 'window' | undefined;
    // Runs under the issuance lock, once the store has no unexpired certificate for the name: only attempts
    // that are about to reach the CA count against the windows shared by all replicas. The pod's own window
    // comes first, so one pod's handshakes cannot use up the window every pod shares.
    const admit = async () => {
      if ((await store.countInWindow(podCounter(slug), windowMs)) > maxPerPod) refusedBy = 'pod';
      else if ((await store.countInWindow(RATE_COUNTER, windowMs)) > maxPerWindow) refusedBy = 'window';
      if (!refusedBy) log.info({ name }, 'on-demand issuance started');
      return !refusedBy;
    };
    try {
      const issued = await manager.issueUnlessStored([name], 'on-demand', admit);
      this.elsewhere.delete(name);
      if (refusedBy === 'pod') {
        log.warn({ name, slug, maxPerPod, windowMs }, 'on-demand issuance refused: the pod reached its limit');
        this.remember(name, undefined);
        return;
      }
      if (refusedBy === 'window') {
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
