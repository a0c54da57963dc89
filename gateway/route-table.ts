// The gateway's in-memory snapshot of the route table. The request path only ever calls lookup(): it never
// waits on Redis. The snapshot is loaded at start, patched by change events, and fully re-read after every
// reconnect and periodically (pub/sub drops messages while disconnected), and it keeps serving while the
// store is down.
import type { Logger } from '../shared/log.ts';
import { epochVerdict, type Route, type RouteEvent } from '../shared/route.ts';
import type { RouteStore } from '../shared/route-store.ts';
import { RetryBackoff } from './retry-backoff.ts';

export interface RouteTableOptions {
  /** Full re-read period; bounds how long a missed event can go unnoticed. */
  resyncIntervalMs: number;
  log: Logger;
  /** Told when a slug's route is replaced or removed, so per-generation resources can be retired. */
  onChange?: (slug: string, previous: Route | undefined, next: Route | undefined) => void;
}

export type RouteListener = (slug: string, route: Route | undefined) => void;

interface Entry {
  route: Route | undefined; // undefined: deleted at `generation`
  generation: number;
  /** Value of `changes` when this entry was written: tells a resync which entries it may have missed. */
  stamp: number;
}

export class RouteTable {
  private readonly entries = new Map<string, Entry>();
  private readonly store: RouteStore;
  private readonly options: RouteTableOptions;
  private changes = 0;
  private liveRoutes = 0;
  private unsubscribe: (() => Promise<void>) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<boolean> | undefined;
  private resyncWanted = false;
  private readonly retry: RetryBackoff;
  private closed = false;
  /** The epochs read under way for a put of a writer host without a known epoch. */
  private learning: Promise<void> | undefined;
  /** Highest epoch seen per writer host: a lower one, or none, means Redis lost or rolled back its data. */
  private readonly epochs = new Map<string, number>();
  /** Writer hosts whose missing routes are being served on (logged once per loss). */
  private readonly keptHosts = new Set<string>();
  /** Told of every change of a slug's entry (waker.ts waits for a pod's route to turn running this way). */
  private readonly listeners = new Set<RouteListener>();
  /** Time of the last complete re-read (ms since epoch), 0 before the first. */
  lastSyncAt = 0;

  constructor(store: RouteStore, options: RouteTableOptions) {
    this.store = store;
    this.options = options;
    this.retry = new RetryBackoff(options.resyncIntervalMs);
  }

  /** Subscribe, then load everything. Resolves even if the store is down (the timer retries). */
  async start(): Promise<void> {
    try {
      this.unsubscribe = await this.store.subscribe({
        onEvent: (event) => this.apply(event),
        onResync: () => void this.resync(),
      });
    } catch (err) {
      this.options.log.warn({ err: String(err) }, 'route events subscription failed; relying on periodic resync');
    }
    await this.resync();
    this.timer = setInterval(() => void this.resync(), this.options.resyncIntervalMs);
    this.timer.unref();
  }

  lookup(slug: string): Route | undefined {
    return this.entries.get(slug)?.route;
  }

  /**
   * Call `listener` with a slug's new route (undefined: deleted) every time the snapshot takes a newer generation of
   * it, from an event or a re-read. Returns the way to stop listening.
   */
  onRouteChange(listener: RouteListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.liveRoutes;
  }

  get ready(): boolean {
    return this.lastSyncAt > 0;
  }

  /** Apply one change event; an older generation than the one held never wins. */
  apply(event: RouteEvent): void {
    if (event.type === 'put') {
      this.set(event.route.slug, event.route, event.route.generation);
      // A writer this gateway has no epoch of yet: learn it now rather than at the next re-read, or a loss before
      // that re-read would look like the deletion of every route of that writer.
      if (!this.epochs.has(event.route.host)) this.learnEpochs();
    } else this.set(event.slug, undefined, event.generation);
  }

  /** The highest epoch seen of `host`'s writer (undefined: none yet). */
  knownEpoch(host: string): number | undefined {
    return this.epochs.get(host);
  }

  /** Read the writers' epochs (one read at a time); a value read is one seen: the known epochs only ever rise. */
  private learnEpochs(): void {
    if (this.learning || this.closed) return;
    this.learning = this.store.epochs().then(
      (epochs) => {
        for (const [host, epoch] of epochs) if (epoch > (this.epochs.get(host) ?? -1)) this.epochs.set(host, epoch);
      },
      () => {}, // Redis down: the next re-read learns them
    ).finally(() => (this.learning = undefined));
  }

  /**
   * Re-read the whole table. Entries the store no longer has are dropped, unless an event touched them while the
   * scan ran (the scan may have missed a very recent change); newer generations are taken, older ones ignored.
   */
  resync(): Promise<boolean> {
    if (this.syncing) {
      this.resyncWanted = true;
      return this.syncing;
    }
    this.syncing = this.scan().then((ok) => {
      this.syncing = undefined;
      if (this.closed) return ok;
      if (this.resyncWanted) {
        this.resyncWanted = false;
        void this.resync();
      } else if (ok) {
        this.retry.reset();
      } else {
        // Redis down, or not connected yet at start: ready as soon as it answers, not one interval later.
        this.retry.schedule(() => void this.resync());
      }
      return ok;
    });
    return this.syncing;
  }

  private async scan(): Promise<boolean> {
    const startStamp = this.changes;
    const seen = new Set<string>();
    let before: Map<string, number>;
    let after: Map<string, number>;
    try {
      // Epochs read on both sides of the scan: a loss (or a republish) during the scan shows as a difference.
      before = await this.store.epochs();
      for await (const batch of this.store.scan()) {
        for (const route of batch) {
          seen.add(route.slug);
          const held = this.entries.get(route.slug);
          // A lower generation never wins, on a re-read either: a store restored from an old snapshot would
          // otherwise send traffic to host ports freed since (and maybe handed to other pods). Writers' generations
          // keep increasing even after the store lost its data (see shared/redis-route-store.ts), so the
          // republished routes of live pods always win.
          if (held && held.generation >= route.generation) continue;
          this.replace(route.slug, route, route.generation);
        }
      }
      after = await this.store.epochs();
    } catch (err) {
      this.options.log.warn({ err: String(err) }, 'route table resync failed; serving the last snapshot');
      return false;
    }
    const verdicts = new Map<string, 'follow' | 'keep'>();
    const verdict = (host: string) => {
      let v = verdicts.get(host);
      if (!v) {
        v = epochVerdict(this.epochs.get(host), before.get(host), after.get(host));
        verdicts.set(host, v);
      }
      return v;
    };
    const kept = new Map<string, number>();
    for (const [slug, entry] of this.entries) {
      if (!seen.has(slug) && entry.stamp <= startStamp && entry.route) {
        // Gone from the table: deleted, unless its writer's epoch says the table lost it (then served on until the
        // writer has republished and asserted its epoch again; deletions are followed from that re-read on).
        if (verdict(entry.route.host) === 'follow') this.replace(slug, undefined, entry.generation);
        else kept.set(entry.route.host, (kept.get(entry.route.host) ?? 0) + 1);
      } else if (!entry.route && entry.stamp <= startStamp) this.entries.delete(slug); // forget old tombstones
    }
    for (const [host, epoch] of before) {
      if (verdict(host) === 'follow' && after.get(host) === epoch) this.epochs.set(host, epoch);
    }
    this.reportKept(kept, before, after);
    this.lastSyncAt = Date.now();
    return true;
  }

  private reportKept(kept: Map<string, number>, before: Map<string, number>, after: Map<string, number>): void {
    for (const [host, routes] of kept) {
      if (this.keptHosts.has(host)) continue;
      this.keptHosts.add(host);
      this.options.log.warn(
        { host, routes, epoch: after.get(host) ?? before.get(host) ?? null, highestSeen: this.epochs.get(host) },
        'routes of this writer are missing and its epoch is gone, older or changed during the re-read (Redis lost or rolled back its data, or the writer was republishing): serving them from the last snapshot until a re-read sees its epoch settled',
      );
    }
    for (const host of this.keptHosts) {
      if (kept.has(host)) continue;
      this.keptHosts.delete(host);
      this.options.log.info({ host, epoch: this.epochs.get(host) }, 'the writer\'s epoch is settled again; following the route table for its routes');
    }
  }

  private set(slug: string, route: Route | undefined, generation: number): void {
    const held = this.entries.get(slug);
    if (held && held.generation >= generation) return;
    this.replace(slug, route, generation);
  }

  private replace(slug: string, route: Route | undefined, generation: number): void {
    const previous = this.entries.get(slug)?.route;
    if (previous && !route) this.liveRoutes--;
    if (!previous && route) this.liveRoutes++;
    this.entries.set(slug, { route, generation, stamp: ++this.changes });
    if (previous && previous.generation !== route?.generation) this.options.onChange?.(slug, previous, route);
    if (previous || route) {
      for (const listener of this.listeners) {
        try {
          listener(slug, route);
        } catch (err) {
          // A listener's bug must not break the snapshot (a re-read would stop half-way).
          this.options.log.error({ err: String(err), slug }, 'route change listener failed');
        }
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.retry.cancel();
    await this.unsubscribe?.();
  }
}
