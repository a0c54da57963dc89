// Waking sleeping pods: an admitted request for a pod whose route says `sleeping` is held here until the route
// table shows the pod `running` (the handler then proxies it to the new route), the route goes away or stops, or
// its deadline passes. One wake per pod per process is in flight, whatever the number of requests held for it: the
// first one publishes a wake request (shared/pod-activity.ts), and it is published again every WAKE_REPEAT_MS while
// requests wait and the pod still sleeps, since pub/sub loses messages while a subscriber reconnects. The route
// table's change listener ends the wait: nothing polls.
//
// A wake outlives the requests that asked for it until the pod runs, is gone, or nobody asked for WAKE_TIMEOUT_MS:
// a browser that got the "waking up" page comes back while the route says `starting`, and that request is held
// too (isWaking()) instead of getting a bare 503. Held requests are bounded per process (WAKE_MAX_WAITING).
import type { Logger } from '../shared/log.ts';
import type { PodActivityStore } from '../shared/pod-activity.ts';
import type { Route } from '../shared/route.ts';
import type { RouteListener } from './route-table.ts';

/** How often a wake request is published again while requests wait for a sleeping pod. */
export const WAKE_REPEAT_MS = 2000;

export type WakeOutcome =
  /** The pod runs: proxy to this route. */
  | { kind: 'woken'; route: Route }
  /** The route stopped or was deleted while the request waited. */
  | { kind: 'gone' }
  /** The pod started and fell back asleep: its wake failed (the orchestrator says why in the pod's log). */
  | { kind: 'failed' }
  | { kind: 'timeout' }
  /** A browser's wait reached WAKE_PAGE_AFTER_MS: it gets the page that retries by itself. */
  | { kind: 'page' }
  /** WAKE_MAX_WAITING requests are held already: this one was not. */
  | { kind: 'full' }
  /** The gateway is shutting down. */
  | { kind: 'shutdown' }
  /** The client went away (cancel()). */
  | { kind: 'client_closed' };

export type WakeOutcomeKind = WakeOutcome['kind'];

export interface Held {
  readonly outcome: Promise<WakeOutcome>;
  /** The client went away: stop waiting (no-op once settled). */
  cancel(): void;
}

export interface WakerMetrics {
  /** A wake request was published (first or repeated). */
  wakeRequested(): void;
  /** A held request settled after `seconds`. */
  settled(outcome: WakeOutcomeKind, seconds: number): void;
}

export interface WakerOptions {
  timeoutMs: number;
  maxWaiting: number;
  repeatMs?: number;
  log: Logger;
  metrics?: WakerMetrics;
}

export interface WakerDeps {
  lookup: (slug: string) => Route | undefined;
  onRouteChange: (listener: RouteListener) => () => void;
  activity: Pick<PodActivityStore, 'requestWake'>;
}

interface Waiter {
  settle(outcome: WakeOutcome): void;
}

interface Wake {
  readonly waiters: Set<Waiter>;
  /** The route said `starting` since the wake began: `sleeping` again then means the start failed. */
  started: boolean;
  repeat: NodeJS.Timeout | undefined;
  /** Forgets the wake once nobody asked for it for WAKE_TIMEOUT_MS. */
  expiry: NodeJS.Timeout | undefined;
}

/** Where a held request stands once the pod's route is `route` (undefined: keep waiting). */
export function routeVerdict(route: Route | undefined): WakeOutcome | undefined {
  if (!route) return { kind: 'gone' };
  if (route.status === 'running') return { kind: 'woken', route };
  if (route.status === 'sleeping' || route.status === 'starting') return undefined;
  return { kind: 'gone' };
}

export class Waker {
  private readonly deps: WakerDeps;
  private readonly options: Required<Omit<WakerOptions, 'metrics'>> & Pick<WakerOptions, 'metrics'>;
  private readonly wakes = new Map<string, Wake>();
  private waitingCount = 0;
  private unsubscribe: (() => void) | undefined;
  private closed = false;
  /** The wake channel's failure was logged (once until a publish works again). */
  private failing = false;

  constructor(deps: WakerDeps, options: WakerOptions) {
    this.deps = deps;
    this.options = { ...options, repeatMs: options.repeatMs ?? WAKE_REPEAT_MS };
    this.unsubscribe = deps.onRouteChange((slug, route) => this.changed(slug, route));
  }

  /** Requests held now. */
  get waiting(): number {
    return this.waitingCount;
  }

  /** This process is waking `slug` (asked for it, and the pod neither runs yet nor is gone). */
  isWaking(slug: string): boolean {
    return this.wakes.has(slug);
  }

  /**
   * Hold a request for `slug` (whose route is sleeping, or starting while this process wakes it) until it runs.
   * `pageAfterMs`: a browser's navigation, answered with the waking page after that long.
   */
  hold(slug: string, options: { pageAfterMs?: number | undefined } = {}): Held {
    if (this.closed) return settledHeld({ kind: 'shutdown' });
    const now = routeVerdict(this.deps.lookup(slug));
    if (now) return settledHeld(now);
    if (this.waitingCount >= this.options.maxWaiting) {
      this.options.metrics?.settled('full', 0);
      return settledHeld({ kind: 'full' });
    }
    const wake = this.wakes.get(slug) ?? this.begin(slug);
    const started = performance.now();
    let resolve!: (outcome: WakeOutcome) => void;
    const outcome = new Promise<WakeOutcome>((r) => (resolve = r));
    const timers: NodeJS.Timeout[] = [];
    let settled = false;
    const waiter: Waiter = {
      settle: (result) => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        this.waitingCount--;
        if (wake.waiters.delete(waiter) && wake.waiters.size === 0) this.idle(slug, wake);
        this.options.metrics?.settled(result.kind, (performance.now() - started) / 1000);
        resolve(result);
      },
    };
    timers.push(setTimeout(() => waiter.settle({ kind: 'timeout' }), this.options.timeoutMs));
    if (options.pageAfterMs !== undefined && options.pageAfterMs < this.options.timeoutMs) {
      timers.push(setTimeout(() => waiter.settle({ kind: 'page' }), options.pageAfterMs));
    }
    wake.waiters.add(waiter);
    this.waitingCount++;
    clearTimeout(wake.expiry);
    wake.expiry = undefined;
    if (!wake.repeat) {
      wake.repeat = setInterval(() => {
        if (this.deps.lookup(slug)?.status === 'sleeping') this.publish(slug);
      }, this.options.repeatMs);
    }
    return { outcome, cancel: () => waiter.settle({ kind: 'client_closed' }) };
  }

  /** Settle every held request (shutdown) and stop listening. */
  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const slug of [...this.wakes.keys()]) this.end(slug, { kind: 'shutdown' });
  }

  private begin(slug: string): Wake {
    const wake: Wake = { waiters: new Set(), started: this.deps.lookup(slug)?.status === 'starting', repeat: undefined, expiry: undefined };
    this.wakes.set(slug, wake);
    if (this.deps.lookup(slug)?.status === 'sleeping') this.publish(slug);
    return wake;
  }

  /** Nobody waits for this wake now: stop repeating it, and forget it unless someone asks again in time. */
  private idle(slug: string, wake: Wake): void {
    clearInterval(wake.repeat);
    wake.repeat = undefined;
    if (this.wakes.get(slug) !== wake) return;
    wake.expiry = setTimeout(() => {
      if (this.wakes.get(slug) === wake && wake.waiters.size === 0) this.wakes.delete(slug);
    }, this.options.timeoutMs);
    wake.expiry.unref();
  }

  private changed(slug: string, route: Route | undefined): void {
    const wake = this.wakes.get(slug);
    if (!wake) return;
    const verdict = routeVerdict(route);
    if (verdict) this.end(slug, verdict);
    else if (route?.status === 'starting') wake.started = true;
    else if (route?.status === 'sleeping' && wake.started) this.end(slug, { kind: 'failed' });
  }

  private end(slug: string, outcome: WakeOutcome): void {
    const wake = this.wakes.get(slug);
    if (!wake) return;
    this.wakes.delete(slug);
    clearInterval(wake.repeat);
    clearTimeout(wake.expiry);
    for (const waiter of [...wake.waiters]) waiter.settle(outcome);
  }

  private publish(slug: string): void {
    this.options.metrics?.wakeRequested();
    this.deps.activity.requestWake(slug).then(
      () => {
        if (this.failing) this.options.log.info('wake requests are published again');
        this.failing = false;
      },
      (err: unknown) => {
        // Held requests keep waiting: the request is published again while they do, and they time out at worst.
        if (!this.failing) this.options.log.warn({ err: String(err), pod: slug }, 'wake request could not be published; retrying while requests wait');
        this.failing = true;
      },
    );
  }
}

function settledHeld(outcome: WakeOutcome): Held {
  return { outcome: Promise.resolve(outcome), cancel: () => {} };
}
