// Pod activity as this process sees it, reported to the activity store (shared/pod-activity.ts) so orchestrators
// can put idle pods to sleep. The request path only adds a slug to a set or counts a WebSocket: the store is
// written once per ACTIVITY_FLUSH_MS with every pod served since the last flush plus every pod holding a WebSocket
// open, never once per request. Only admitted, proxied traffic counts (the handler calls served() after the access
// check), so a stranger's refused requests cannot keep a pod awake. A store failure costs the activity of one
// period at most (its slugs are carried to the next flush) and is logged once per outage; requests never wait on it.
import type { Logger } from '../shared/log.ts';
import type { PodActivityStore } from '../shared/pod-activity.ts';

export interface ActivityReporterOptions {
  flushIntervalMs: number;
  log: Logger;
  /** Told of every failed flush (a metric). */
  onFlushFailure?: () => void;
}

export class ActivityReporter {
  private readonly store: PodActivityStore;
  private readonly options: ActivityReporterOptions;
  /** Pods served since the last flush. */
  private served = new Set<string>();
  /** Open WebSockets per pod. */
  private readonly sockets = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** The store's outage was logged (once until a flush works again). */
  private failing = false;

  constructor(store: PodActivityStore, options: ActivityReporterOptions) {
    this.store = store;
    this.options = options;
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.timer.unref();
  }

  /** An admitted request was proxied to `slug`. */
  touch(slug: string): void {
    this.served.add(slug);
  }

  /** A WebSocket to `slug` opened; the function returned closes it (idempotent). */
  openWebSocket(slug: string): () => void {
    this.served.add(slug);
    this.sockets.set(slug, (this.sockets.get(slug) ?? 0) + 1);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      const left = (this.sockets.get(slug) ?? 1) - 1;
      if (left > 0) this.sockets.set(slug, left);
      else this.sockets.delete(slug);
    };
  }

  /** Write what was seen since the last flush (one store call); a flush under way is waited for, not doubled. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    const slugs = new Set([...this.served, ...this.sockets.keys()]);
    this.served = new Set();
    if (slugs.size === 0) return Promise.resolve();
    this.flushing = this.store.touch([...slugs]).then(
      () => {
        if (this.failing) this.options.log.info('pod activity is reported again');
        this.failing = false;
      },
      (err: unknown) => {
        // Carried to the next flush: the pods were active in this period whatever the store says.
        for (const slug of slugs) this.served.add(slug);
        this.options.onFlushFailure?.();
        if (!this.failing) this.options.log.warn({ err: String(err), pods: slugs.size }, 'pod activity could not be reported; retrying every flush (idle pods may be put to sleep meanwhile)');
        this.failing = true;
      },
    ).finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /** Stop the timer and write what is left (shutdown). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flushing;
    await this.flush();
  }
}
