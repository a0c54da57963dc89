// The I/O side of sleep and wake (README "Sleep and wake"): a loop that reads the pods' activity from the store and
// puts idle ones to sleep (the decision is idle.ts), and the subscription to the gateways' wake requests. Every stop
// and start goes through PodService under the pod's lock, so a wake that arrives while its pod is falling asleep runs
// after the sleep (and wakes it), and an admin stop during a wake runs after the wake (and stops it).
import type { Logger } from 'pino';
import { FixedWindows } from '../shared/fixed-windows.ts';
import type { PodActivityStore } from '../shared/pod-activity.ts';
import { idleCheckIntervalMs, MIN_IDLE_TIMEOUT_MS, podsToSleep, type IdleCandidate } from './idle.ts';
import type { OrchestratorMetrics } from './metrics.ts';
import type { PodRecord, PodService, PodTable } from './pods.ts';

/** Pods whose wake counts are kept at once; beyond it the oldest window is forgotten (fixed-windows.ts). */
const MAX_WAKE_WINDOWS = 10_000;

export interface SleepWakeDeps {
  pods: PodService;
  table: PodTable;
  activity: PodActivityStore;
  logger: Logger;
  /** POD_WAKE_LIMIT wakes asked by gateways per pod per POD_WAKE_WINDOW. */
  wakeLimit: { count: number; windowMs: number };
  metrics?: OrchestratorMetrics | undefined;
  now?: () => number;
}

export class SleepWake {
  private readonly d: SleepWakeDeps;
  private readonly now: () => number;
  private readonly windows = new FixedWindows(MAX_WAKE_WINDOWS);
  /** Pods with a wake under way (queued on their lock or starting): every further request for them is the same wake. */
  private readonly waking = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<unknown> | undefined;
  private unsubscribe: (() => Promise<void>) | undefined;
  private activityDown = false;
  private closed = false;

  constructor(deps: SleepWakeDeps) {
    this.d = deps;
    this.now = deps.now ?? Date.now;
  }

  /** Slugs whose wake (asked by a gateway) is under way: queued behind another operation on the pod, or starting. */
  get wakesUnderWay(): ReadonlySet<string> {
    return this.waking;
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.d.activity.subscribeWakes({
      onWake: (slug) => this.onWake(slug),
      // Gateways repeat their requests while they wait: nothing to catch up on.
      onResync: () => this.d.logger.debug('wake subscription resynced'),
    });
    this.schedule();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.unsubscribe?.();
    await this.checking?.catch(() => {});
  }

  private schedule(): void {
    if (this.closed) return;
    const timeouts = [...this.d.table.records.values()].map((r) => this.d.pods.idleTimeoutMs(r));
    // Without any timeout there is nothing to read; looking again this often notices a new pod's timeout in time.
    const delay = idleCheckIntervalMs(timeouts) ?? MIN_IDLE_TIMEOUT_MS;
    this.timer = setTimeout(() => {
      const pass = this.checkIdle().catch((err: unknown) => this.d.logger.warn({ err: String(err) }, 'idle check failed'));
      this.checking = pass;
      void pass.finally(() => this.schedule());
    }, delay);
    this.timer.unref();
  }

  /**
   * One look for idle pods, putting them to sleep one after another; what it put to sleep. The store unreachable:
   * nothing sleeps (no activity data is no proof of idleness).
   */
  async checkIdle(): Promise<string[]> {
    const { table, pods, activity, logger } = this.d;
    const running: PodRecord[] = [];
    for (const r of table.records.values()) {
      if (r.state !== 'running') r.runningSinceMs = undefined;
      else if (!table.locks.busy(r.slug) && pods.idleTimeoutMs(r) !== undefined) running.push(r);
    }
    if (running.length === 0) return [];
    let read: Awaited<ReturnType<PodActivityStore['lastActive']>>;
    try {
      read = await activity.lastActive(running.map((r) => r.slug));
    } catch (err) {
      if (!this.activityDown) logger.warn({ err: String(err) }, 'pod activity unreadable: no pod goes to sleep until it is back');
      this.activityDown = true;
      return [];
    }
    if (this.activityDown) logger.info('pod activity readable again');
    this.activityDown = false;
    const candidates: IdleCandidate[] = running.map((r) => {
      r.runningSinceMs ??= read.nowMs;
      return { slug: r.slug, idleTimeoutMs: pods.idleTimeoutMs(r), runningSinceMs: r.runningSinceMs };
    });
    const slept: string[] = [];
    for (const { slug, idleMs } of podsToSleep(read.nowMs, candidates, read.last)) {
      if (this.closed) break;
      try {
        const done = await pods.sleep(slug, { by: 'idle', idleMs, stillIdle: () => this.stillIdle(slug) });
        if (done) slept.push(slug);
      } catch (err) {
        logger.warn({ slug, err: String(err) }, 'idle pod not put to sleep');
      }
    }
    return slept;
  }

  /** Read again right before the stop (under the pod's lock): a request may have come since the check. */
  private async stillIdle(slug: string): Promise<boolean> {
    const r = this.d.table.records.get(slug);
    if (!r || r.state !== 'running' || r.runningSinceMs === undefined) return false;
    try {
      const read = await this.d.activity.lastActive([slug]);
      return podsToSleep(read.nowMs, [{ slug, idleTimeoutMs: this.d.pods.idleTimeoutMs(r), runningSinceMs: r.runningSinceMs }], read.last).length > 0;
    } catch {
      return false;
    }
  }

  /**
   * A gateway asks for a wake. Not ours, not asleep (or falling asleep), or already being woken: nothing to do. The
   * pod's state is judged again under its lock, where the wake limit is counted: only wakes that start a pod count.
   */
  private onWake(slug: string): void {
    const { table, pods, logger } = this.d;
    if (this.closed || this.waking.has(slug)) return;
    const record = table.records.get(slug);
    // `stopping`: maybe its sleep's container stop, after which this wake runs (an admin stop's leaves it stopped).
    if (!record || (record.state !== 'sleeping' && record.state !== 'stopping')) return;
    const askedAt = this.now();
    this.waking.add(slug);
    void pods
      .wake(slug, 'request', askedAt, () => this.admit(slug))
      .catch((err: unknown) => logger.warn({ slug, err: String(err) }, 'wake failed'))
      .finally(() => this.waking.delete(slug));
  }

  /** POD_WAKE_LIMIT: may this pod be woken by a request once more in this window? A refusal is said once per window. */
  private admit(slug: string): boolean {
    const { pods, logger, metrics, wakeLimit } = this.d;
    const now = this.now();
    const { count, resetInMs } = this.windows.add(slug, 1, wakeLimit.windowMs, now);
    if (count <= wakeLimit.count) return true;
    // Once per window: the asker repeats every few seconds while it waits.
    if (count === wakeLimit.count + 1) {
      const note = `wake refused: ${wakeLimit.count} wakes within ${Math.round(wakeLimit.windowMs / 1000)} s (POD_WAKE_LIMIT, POD_WAKE_WINDOW); wakeable again in ${Math.ceil(resetInMs / 1000)} s`;
      logger.warn({ slug, limit: wakeLimit.count, windowMs: wakeLimit.windowMs, resetInMs }, 'wake refused: the pod woke too often');
      metrics?.wakes.inc({ reason: 'request', outcome: 'refused' });
      void pods.logEvent(slug, 'wake refused', note, now);
    }
    return false;
  }
}
