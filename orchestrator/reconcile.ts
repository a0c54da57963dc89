// Level-triggered reconcile: Docker is the source of truth. On start, on Docker events, when the route store
// lost events (Redis restarted) and periodically, re-list every pod container and make the rest agree: adopt
// pods this process does not know, follow state changes made behind its back, republish missing or stale
// routes, remove routes and free ports of pods that are gone (voiding their links), and report (then remove)
// orphan networks and the workspace volumes of pods that are gone.
// Pods with an operation in flight in this process are left alone; the operation owns them.
import type { Logger } from 'pino';
import { allRoutes, type RouteStore } from '../shared/route-store.ts';
import type { ContainerRuntime, RuntimeEvent } from './container-runtime.ts';
import { HOST_BOUND_OWNER, type PortAllocator } from './port-allocator.ts';
import type { PodService, PodTable } from './pods.ts';
import { decidePod, shouldForget } from './reconcile-plan.ts';
import { desiredRoute, observePod, routeNeedsWrite, type ObservedPod } from './route-builder.ts';

/** A port allocated this long ago whose pod has no container is free again (covers allocate -> create). */
export const PORT_GRACE_MS = 2 * 60_000;
/** A port found bound by something else is retried after this long. */
export const HOST_BOUND_QUARANTINE_MS = 10 * 60_000;
/** A pod network without its container is removed once seen orphaned for this long (creation makes the network first). */
export const ORPHAN_NETWORK_GRACE_MS = 60_000;
/**
 * A workspace volume whose pod is gone (its container removed and the pod unknown here) is removed once seen so for
 * this long: it holds the developer's work, so a delete whose volume removal failed is finished late, never early.
 */
export const ORPHAN_VOLUME_GRACE_MS = 10 * 60_000;
/** Events come in bursts (die, stop, destroy): one reconcile per burst. */
const EVENT_DEBOUNCE_MS = 50;
/**
 * Docker sends `die` before its container list says `exited`, so a pass right after an event can still see the
 * old state: one more pass this much later sees the new one.
 */
const EVENT_FOLLOW_UP_MS = 1000;
const EVENT_RETRY_MIN_MS = 500;
const EVENT_RETRY_MAX_MS = 10_000;
/** Docker actions that change what a pod is; exec_* and the like do not. */
const RELEVANT_ACTIONS = new Set(['start', 'die', 'stop', 'kill', 'destroy', 'pause', 'unpause', 'oom', 'restart', 'rename']);

export interface ReconcileReport {
  at: string;
  containers: number;
  adopted: string[];
  changed: string[];
  republished: string[];
  removedRoutes: string[];
  forgotten: string[];
  claimedPorts: number[];
  releasedPorts: number[];
  orphans: { kind: 'container' | 'network' | 'volume'; name: string; reason: string; removed: boolean }[];
  /** This host's route-table epoch after the pass; absent when the store lost data during it (another pass follows). */
  epoch?: number | undefined;
}

export interface ReconcilerDeps {
  runtime: ContainerRuntime;
  routes: RouteStore;
  ports: PortAllocator;
  table: PodTable;
  pods: PodService;
  hostAddress: string;
  intervalMs: number;
  logger: Logger;
  now?: () => number;
}

export class Reconciler {
  private readonly d: ReconcilerDeps;
  private readonly now: () => number;
  private running: Promise<ReconcileReport> | undefined;
  private again = false;
  private debounce: NodeJS.Timeout | undefined;
  private followUpTimer: NodeJS.Timeout | undefined;
  private interval: NodeJS.Timeout | undefined;
  private eventRetry: NodeJS.Timeout | undefined;
  private stopEvents: (() => void) | undefined;
  private unsubscribeRoutes: (() => Promise<void>) | undefined;
  private closed = false;
  private readonly orphanSeen = new Map<string, number>();
  private readonly orphanVolumeSeen = new Map<string, number>();
  last: ReconcileReport | undefined;

  constructor(deps: ReconcilerDeps) {
    this.d = deps;
    this.now = deps.now ?? Date.now;
  }

  /** Reconcile once now, then keep reconciling on events and every interval. */
  async start(): Promise<ReconcileReport | undefined> {
    // A daemon that is down at start is not fatal: the periodic pass and the event watcher keep trying.
    const first = await this.reconcile().catch((err: unknown) => {
      this.d.logger.error({ err: String(err) }, 'first reconcile failed; will retry');
      return undefined;
    });
    await this.watchEvents();
    this.unsubscribeRoutes = await this.d.routes.subscribe({
      onEvent: (e) => {
        // Someone removed a route of a pod we hold: put it back (level-triggered, so just look again).
        if (e.type === 'delete' && this.d.table.records.has(e.slug) && !this.d.table.locks.busy(e.slug)) this.trigger();
      },
      onResync: () => this.trigger(),
    });
    this.interval = setInterval(() => this.trigger(), this.d.intervalMs);
    this.interval.unref();
    return first;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.interval);
    clearTimeout(this.debounce);
    clearTimeout(this.followUpTimer);
    clearTimeout(this.eventRetry);
    this.stopEvents?.();
    await this.unsubscribeRoutes?.();
    await this.running?.catch(() => {});
  }

  /** Ask for a reconcile soon (bursts of triggers make one). */
  trigger(): void {
    if (this.closed || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.reconcile().catch((err: unknown) => this.d.logger.warn({ err: String(err) }, 'reconcile failed; retrying on the next trigger'));
    }, EVENT_DEBOUNCE_MS);
  }

  private followUp(): void {
    clearTimeout(this.followUpTimer);
    this.followUpTimer = setTimeout(() => this.trigger(), EVENT_FOLLOW_UP_MS);
    this.followUpTimer.unref();
  }

  private async watchEvents(attempt = 0): Promise<void> {
    if (this.closed) return;
    const retry = () => {
      if (this.closed) return;
      const delay = Math.min(EVENT_RETRY_MIN_MS * 2 ** attempt, EVENT_RETRY_MAX_MS);
      this.eventRetry = setTimeout(() => void this.watchEvents(attempt + 1), delay);
      this.eventRetry.unref();
    };
    try {
      this.stopEvents = await this.d.runtime.events(
        (e: RuntimeEvent) => {
          if (!RELEVANT_ACTIONS.has(e.action)) return;
          this.d.logger.debug({ action: e.action, slug: e.slug }, 'docker event');
          this.trigger();
          this.followUp();
        },
        (err) => {
          this.d.logger.warn({ err: err.message }, 'Docker event stream lost; reconnecting');
          this.stopEvents = undefined;
          retry();
        },
      );
      // Events may have been missed while the stream was down.
      if (attempt > 0) this.trigger();
    } catch (err) {
      this.d.logger.warn({ err: String(err) }, 'cannot watch Docker events; retrying');
      retry();
    }
  }

  /** One pass. Concurrent calls share a pass; a call during a pass causes one more pass after it. */
  reconcile(): Promise<ReconcileReport> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const pass = (async () => {
      let report: ReconcileReport;
      do {
        this.again = false;
        report = await this.pass();
      } while (this.again && !this.closed);
      return report;
    })();
    this.running = pass;
    void pass.then(
      () => (this.running = undefined),
      () => (this.running = undefined),
    );
    return pass;
  }

  private async pass(): Promise<ReconcileReport> {
    const { runtime, routes, ports, table, pods, hostAddress, logger } = this.d;
    const report: ReconcileReport = {
      at: new Date(this.now()).toISOString(), containers: 0, adopted: [], changed: [], republished: [],
      removedRoutes: [], forgotten: [], claimedPorts: [], releasedPorts: [], orphans: [],
    };
    logger.debug('reconcile pass');
    // Begun before the table is read: a loss from here on erases the token, and the epoch is not asserted below.
    const epochPass = await routes.beginEpochPass(hostAddress);
    const containers = await runtime.list();
    report.containers = containers.length;
    const observed = new Map<string, ObservedPod>();
    for (const c of containers) {
      const { pod, error } = observePod(c);
      if (pod) observed.set(pod.slug, pod);
      else report.orphans.push({ kind: 'container', name: c.name, reason: error ?? 'unreadable labels', removed: false });
    }
    const owners = await ports.owners();
    const stored = new Map((await allRoutes(routes)).map((r) => [r.slug, r]));

    // 1. Every container: a known pod that follows it, its port held, its route right.
    for (const pod of observed.values()) {
      if (table.locks.busy(pod.slug)) continue;
      await table.locks.run(pod.slug, async () => {
        const decision = decidePod(pod, table.records.get(pod.slug), stored.get(pod.slug), hostAddress, this.now());
        if (decision.kind === 'adopt') {
          if (decision.withoutRoute) {
            logger.warn({ slug: pod.slug }, 'stopped pod adopted without a route (Redis lost it?): if it was asleep, it stays stopped until started');
          }
          pods.adopt(decision.record);
          report.adopted.push(pod.slug);
        } else if (decision.kind === 'follow') {
          logger.warn({ slug: pod.slug, was: decision.was, now: decision.state }, 'pod changed behind the orchestrator\'s back');
          pods.followContainer(table.records.get(pod.slug)!, decision.state, decision.error);
          report.changed.push(pod.slug);
        }
        const record = table.records.get(pod.slug)!;
        if (owners.get(pod.hostPort)?.owner !== pod.slug) {
          if (await ports.claim(pod.hostPort, pod.slug)) report.claimedPorts.push(pod.hostPort);
          else logger.error({ slug: pod.slug, port: pod.hostPort, owner: owners.get(pod.hostPort)?.owner }, 'pod port is held by another owner');
        }
        const desired = desiredRoute({
          slug: record.slug, state: record.state, hostAddress, hostPort: record.hostPort, spec: record.spec, routerKey: record.routerKey,
        });
        if (desired && routeNeedsWrite(stored.get(record.slug), desired)) {
          await pods.publish(record);
          report.republished.push(record.slug);
        }
      });
    }

    // 2. Pods this process knows whose container is gone (removed behind our back): void their links, then forget
    //    them. Should the access store refuse, the pod stays known and the next pass tries again.
    for (const record of [...table.records.values()]) {
      if (observed.has(record.slug) || table.locks.busy(record.slug) || !shouldForget(record)) continue;
      await table.locks.run(record.slug, async () => {
        logger.warn({ slug: record.slug }, 'pod container disappeared; voiding its links, removing its route and port');
        await pods.forgetVanished(record);
        stored.delete(record.slug);
        report.forgotten.push(record.slug);
      });
    }

    // 3. Routes of this host with no container behind them (another process's pod that is gone, lost deletes).
    for (const route of stored.values()) {
      if (route.host !== hostAddress || observed.has(route.slug) || table.records.has(route.slug) || table.locks.busy(route.slug)) continue;
      // The route's own generation: if it was rewritten meanwhile by a newer pod, the delete is refused.
      if (await routes.delete(route.slug, route.generation)) report.removedRoutes.push(route.slug);
    }

    // 4. Ports held by pods without a container (after a grace for creations in flight), and quarantined ones.
    const now = this.now();
    for (const [port, { owner, sinceMs }] of owners) {
      if (owner === HOST_BOUND_OWNER) {
        if (now - sinceMs > HOST_BOUND_QUARANTINE_MS && (await ports.release(port, owner))) report.releasedPorts.push(port);
        continue;
      }
      const pod = observed.get(owner);
      if (pod?.hostPort === port || table.locks.busy(owner) || table.records.get(owner)?.hostPort === port) continue;
      if (now - sinceMs > PORT_GRACE_MS && (await ports.release(port, owner))) report.releasedPorts.push(port);
    }

    // 5. Pod networks without their container: reported at once, removed once they stay orphaned.
    const networks = await runtime.networks();
    const seen = new Set<string>();
    for (const n of networks) {
      if (n.slug && (observed.has(n.slug) || table.locks.busy(n.slug))) continue;
      seen.add(n.id);
      const first = this.orphanSeen.get(n.id) ?? now;
      this.orphanSeen.set(n.id, first);
      let removed = false;
      if (now - first >= ORPHAN_NETWORK_GRACE_MS) {
        removed = await runtime.removeNetwork(n.id).then(
          () => true,
          () => false,
        );
      }
      report.orphans.push({ kind: 'network', name: n.name, reason: 'no pod container', removed });
    }
    for (const id of this.orphanSeen.keys()) if (!seen.has(id)) this.orphanSeen.delete(id);

    // 6. Workspace volumes of pods that are gone: never one of a pod with a container, an operation in flight, or a
    //    record here (reconcile forgets a pod whose container vanished first, in step 2, before its volume goes).
    const volumes = await runtime.volumes();
    const seenVolumes = new Set<string>();
    for (const v of volumes) {
      if (v.slug && (observed.has(v.slug) || table.locks.busy(v.slug) || table.records.has(v.slug))) continue;
      seenVolumes.add(v.name);
      const first = this.orphanVolumeSeen.get(v.name) ?? now;
      this.orphanVolumeSeen.set(v.name, first);
      let removed = false;
      if (now - first >= ORPHAN_VOLUME_GRACE_MS) {
        removed = await runtime.removeVolume(v.name).then(
          () => true,
          () => false,
        );
        if (removed) this.orphanVolumeSeen.delete(v.name);
      }
      report.orphans.push({ kind: 'volume', name: v.name, reason: 'no pod', removed });
    }
    for (const name of this.orphanVolumeSeen.keys()) if (!seenVolumes.has(name)) this.orphanVolumeSeen.delete(name);

    // Every route of this host is in the table now: a new epoch lets gateways follow its deletions (again, after a
    // loss), and marks every earlier state of the table as older.
    report.epoch = await routes.endEpochPass(hostAddress, epochPass);
    if (report.epoch === undefined) {
      logger.warn('the route table lost data during the reconcile pass; passing again');
      this.again = true;
    }

    if (report.orphans.length > 0) logger.warn({ orphans: report.orphans }, 'orphans found');
    const changes = report.adopted.length + report.changed.length + report.republished.length + report.removedRoutes.length + report.forgotten.length + report.releasedPorts.length;
    if (changes > 0) logger.info({ ...report, orphans: undefined }, 'reconciled');
    this.last = report;
    return report;
  }
}

/**
 * Host ports in use by live pods and their owners: every pod container's label in Docker, and pods of this
 * process between allocation and container. What the port pool must never hand out, even when Redis lost them.
 */
export async function livePodPorts(runtime: ContainerRuntime, table: PodTable): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const r of table.records.values()) if (r.hostPort !== undefined) out.set(r.hostPort, r.slug);
  for (const c of await runtime.list()) {
    const { pod } = observePod(c);
    if (pod) out.set(pod.hostPort, pod.slug);
  }
  return out;
}
