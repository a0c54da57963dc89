// The pod lifecycle: create, start, stop, restart, delete and exec, one operation per pod at a time. Every step
// that makes something (network, container, host port, route) is undone when a later step fails. Routes follow
// the pod: `starting` while it boots, `running` once its router reports every service ready, `stopped` when
// stopped, `sleeping` while asleep (stopped because idle, wakeable), gone on delete; each write carries a fresh
// generation from the route store.
// Access links belong to one lifetime of a pod: create writes the slug's "not before" time (every token issued
// earlier is void) before the pod's first route exists, and delete writes it again once the container is gone.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AccessStore } from '../shared/access-store.ts';
import type { PodActivityStore } from '../shared/pod-activity.ts';
import { ConflictError, PodgateError, PodNotFoundError, PodStartFailedError, ServiceUnavailableError, ValidationError } from '../shared/errors.ts';
import { podHostnames } from '../shared/hostname.ts';
import type { RouteStore } from '../shared/route-store.ts';
import { isRedisUnavailable, storeErrorText } from '../shared/redis.ts';
import { HostPortBusyError, LABELS, type ContainerRuntime, type PodContainer, type PodContainerSpec } from './container-runtime.ts';
import type { ExecLog, ExecLogEntry } from './exec-log.ts';
import { effectiveIdleTimeout } from './idle.ts';
import type { OrchestratorMetrics, WakeCause } from './metrics.ts';
import { allocateBindablePort, HOST_BOUND_OWNER, type PortAllocator } from './port-allocator.ts';
import { waitReady } from './readiness.ts';
import { canDo, desiredRoute, stateFromContainer, toRoute, type PodOperation, type PodState } from './route-builder.ts';
import { TEMPLATES, TEMPLATE_NAMES, type TemplateName } from './templates.ts';
import { CommandSchema, DEFAULT_HOOK_TIMEOUT_MS, MAX_HOOK_TIMEOUT_MS, parseOrThrow, parsePodSpec, tierLimits, type PodSpec } from './spec.ts';

/** Seconds a pod gets to shut down on stop before Docker kills it. */
export const STOP_GRACE_SECONDS = 5;
/** Output returned by an exec call (the log keeps less). */
export const EXEC_OUTPUT_LIMIT = 64 * 1024;
/** How much of a failed pod's own output its error carries. */
const FAILURE_LOG_LINES = 10;
const FAILURE_LOG_CHARS = 1000;
/** Tries on other ports when Docker finds the pod's host port taken at start. */
const PORT_BUSY_ATTEMPTS = 3;

export type ResolvedSpec = PodSpec & { image: string };

export interface PodRecord {
  slug: string;
  spec: ResolvedSpec;
  state: PodState;
  hostPort: number | undefined;
  containerId: string | undefined;
  /** Generation of this incarnation (container label); routes use newer ones. */
  generation: number;
  /**
   * The key its in-pod router requires of every request (PODGATE_ROUTER_KEY), made with the container and kept as
   * long as it: every route of this container carries it to the gateways. Undefined before the container exists
   * (and for containers made before router keys, whose router asks for none).
   */
  routerKey: string | undefined;
  /** Generation of the last route this process wrote for the pod (0: none). */
  routeGeneration: number;
  createdAt: string;
  updatedAt: string;
  /** Why the pod failed, when it did (or why its last wake did not bring it up). */
  error: string | undefined;
  /**
   * When the idle check first saw this pod running since it last came up, on the activity store's clock (idle.ts):
   * unset until then, and again whenever the pod comes up.
   */
  runningSinceMs?: number | undefined;
  /**
   * Settles once this lifetime's "not before" time is written, or its creation failed before that. A link minted
   * earlier could be issued before that time (void at once) and be dropped from the pod's list by the write.
   * Unset for pods this process adopted: their lifetime began elsewhere.
   */
  lifetimeBegun?: Promise<void>;
}

/** A stack template as GET /v1/templates shows it: what a spec with `template: <name>` and nothing else gets. */
export interface TemplateView {
  name: TemplateName;
  description: string;
  image: string;
  services: { name: string; port: number }[];
  defaultPort: number;
  environment: Record<string, string>;
}

export interface ServiceView {
  name: string;
  port: number;
  url: string;
}

export interface PodView {
  slug: string;
  name: string;
  status: PodState;
  host: string;
  hostPort: number | null;
  /** The stack template the pod was created from (orchestrator/templates.ts). */
  template: TemplateName;
  image: string;
  tier: string;
  defaultPort: number;
  /** The idle timeout that applies (the spec's own, else POD_IDLE_TIMEOUT): `30m`, ... or `off`. */
  idleTimeout: string;
  generation: number;
  createdAt: string;
  updatedAt: string;
  error: string | null;
  labels: Record<string, string>;
  /** The pod's default port through the gateway. */
  url: string;
  services: ServiceView[];
}

/** Serialises operations per pod inside this process; other processes are kept apart by Docker's unique names. */
export class SlugLocks {
  private readonly tails = new Map<string, Promise<unknown>>();

  busy(slug: string): boolean {
    return this.tails.has(slug);
  }

  /** Run `fn` after every earlier operation on `slug`. Registers synchronously, so busy() is true at once. */
  run<T>(slug: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(slug) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.then(
      () => {},
      () => {},
    );
    this.tails.set(slug, tail);
    void tail.then(() => {
      if (this.tails.get(slug) === tail) this.tails.delete(slug);
    });
    return next;
  }
}

/** The pods this process knows, shared by the lifecycle service and reconcile. */
export class PodTable {
  readonly records = new Map<string, PodRecord>();
  readonly locks = new SlugLocks();
}

export interface PodServiceConfig {
  runtime: string;
  /** The pod user may become root inside its sandbox (POD_SUDO). */
  sudo: boolean;
  /** POD_CA_FILE's certificates, trusted by every pod's Node. */
  podCa?: string | undefined;
  bindAddress: string;
  hostAddress: string;
  defaultImage: string;
  readyTimeoutMs: number;
  baseDomains: string[];
  publicScheme: 'http' | 'https';
  publicPort: number | undefined;
  /** POD_IDLE_TIMEOUT: pods whose spec sets no idleTimeout get this one; default `off`. */
  idleTimeout?: string;
}

export interface PodServiceDeps {
  runtime: ContainerRuntime;
  routes: RouteStore;
  ports: PortAllocator;
  execLog: ExecLog;
  /** Voids a slug's links issued before a time: every gateway refuses them from then on. */
  links: Pick<AccessStore, 'revokePod'>;
  table: PodTable;
  logger: Logger;
  config: PodServiceConfig;
  /** Is the host port free on the host (nothing else bound it)? */
  isBindable: (port: number) => Promise<boolean>;
  /** Pod activity (sleep and wake): a deleted pod's is forgotten. */
  activity?: PodActivityStore;
  metrics?: OrchestratorMetrics;
}

/** Why a pod goes to sleep. `stillIdle` is asked under the pod's lock, right before: activity may have come since. */
export type SleepReason = { by: 'idle'; idleMs: number; stillIdle: () => Promise<boolean> } | { by: 'admin' };

function sleepNote(reason: SleepReason): string {
  return reason.by === 'idle' ? `idle for ${Math.round(reason.idleMs / 1000)} s` : 'asked by the admin API';
}

function wakeNote(cause: WakeCause): string {
  return cause === 'request' ? 'a request through a gateway' : 'the admin API';
}

export const ExecRequestSchema = z.strictObject({
  command: CommandSchema,
  label: z.string().min(1).max(100).default('exec'),
  timeoutMs: z.number().int().min(100).max(MAX_HOOK_TIMEOUT_MS).default(DEFAULT_HOOK_TIMEOUT_MS),
});

export interface ExecOutcome extends Omit<ExecLogEntry, 'id'> {
  timedOut: boolean;
}

/** A pod router key: 32 random bytes (see RouterKeySchema). */
export function newRouterKey(): string {
  return randomBytes(32).toString('hex');
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Environment the pod image reads (docker/README.md): who it is and which services it runs. */
export function podEnvironment(spec: ResolvedSpec): Record<string, string> {
  return {
    ...spec.environment,
    POD_SLUG: spec.slug,
    POD_NAME: spec.name ?? spec.slug,
    POD_DEFAULT_PORT: String(spec.defaultPort),
    // Without services the image runs its own default set.
    ...(spec.services.length > 0 ? { POD_SERVICES: spec.services.map((s) => s.name).join(' ') } : {}),
  };
}

/** Milliseconds spent in each step of a pod's start, for the log (where the time goes). */
class Phases {
  readonly ms: Record<string, number> = {};
  private readonly start = Date.now();
  private last = this.start;

  mark(name: string): void {
    const now = Date.now();
    this.ms[name] = now - this.last;
    this.last = now;
  }

  total(): number {
    return Date.now() - this.start;
  }
}

export class PodService {
  private readonly deps: PodServiceDeps;

  constructor(deps: PodServiceDeps) {
    this.deps = deps;
  }

  private get records() {
    return this.deps.table.records;
  }

  /** The stack templates, with the image each one resolves to on this orchestrator. */
  templates(): TemplateView[] {
    return TEMPLATE_NAMES.map((name) => {
      const t = TEMPLATES[name];
      return {
        name,
        description: t.description,
        image: ('image' in t ? t.image : undefined) ?? this.deps.config.defaultImage,
        services: t.services.map((s) => ({ ...s })),
        defaultPort: t.defaultPort,
        environment: { ...t.environment },
      };
    });
  }

  /**
   * Create a pod. With `wait` (the default) it resolves once the pod is running and ready; without, it
   * resolves at once with the pending pod and provisioning goes on (its failure is kept on the pod).
   */
  async create(input: unknown, options: { wait?: boolean } = {}): Promise<PodView> {
    const wait = options.wait ?? true;
    // The template is already applied: parsePodSpec fills what the spec leaves to it (orchestrator/templates.ts).
    const parsed = parsePodSpec(input);
    const spec: ResolvedSpec = { ...parsed, image: parsed.image ?? this.deps.config.defaultImage };
    const slug = spec.slug;
    const existing = this.records.get(slug);
    // A pod whose creation failed and was rolled back may be created again.
    if (existing && !(existing.state === 'failed' && existing.containerId === undefined)) {
      throw new ConflictError(`pod ${JSON.stringify(slug)} already exists`);
    }
    const now = new Date().toISOString();
    const record: PodRecord = {
      slug, spec, state: 'pending', hostPort: undefined, containerId: undefined,
      generation: 0, routerKey: undefined, routeGeneration: 0, createdAt: now, updatedAt: now, error: undefined,
    };
    let begun = () => {};
    record.lifetimeBegun = new Promise<void>((resolve) => (begun = resolve));
    this.records.set(slug, record);
    const work = this.deps.table.locks.run(slug, () => this.provision(record, wait, begun).finally(begun));
    if (!wait) {
      work.catch(() => {});
      return this.view(record);
    }
    await work;
    return this.view(record);
  }

  private async provision(record: PodRecord, forgetOnFailure: boolean, lifetimeBegun: () => void): Promise<void> {
    const { runtime, ports, routes, config, logger } = this.deps;
    const { slug, spec } = record;
    let created = false;
    const phases = new Phases();
    try {
      // Independent checks at once: they sit on the create -> first byte path.
      const [, imageThere, existing, hostCpus] = await Promise.all([
        runtime.checkRuntime(config.runtime),
        runtime.imageExists(spec.image),
        runtime.inspect(slug),
        runtime.hostCpus(),
      ]);
      if (!imageThere) throw new ValidationError('image', `${spec.image} is not on the Docker host (build or load it there first)`);
      if (existing) throw new ConflictError(`pod ${JSON.stringify(slug)} already exists on the Docker host`);
      phases.mark('checks');
      // After the checks (a refused create must not void a live pod's links), before anything is made: no gateway
      // may see a route of this pod while links of an earlier pod of the same slug still count.
      await this.beginLifetime(slug);
      lifetimeBegun();
      phases.mark('lifetime');
      this.setState(record, 'provisioning');
      for (let attempt = 1; ; attempt++) {
        const [hostPort, generation] = await Promise.all([allocateBindablePort(ports, slug, this.deps.isBindable), routes.nextGeneration()]);
        record.hostPort = hostPort;
        record.generation = generation;
        record.routerKey = newRouterKey();
        phases.mark('port');
        const container = await runtime.create(this.containerSpec(record, tierLimits(spec.tier, hostCpus)));
        created = true;
        record.containerId = container.id;
        phases.mark('create');
        try {
          await runtime.start(slug);
          phases.mark('start');
          break;
        } catch (err) {
          if (!(err instanceof HostPortBusyError) || attempt >= PORT_BUSY_ATTEMPTS) throw err;
          // Taken between our probe and Docker's bind (or on a remote host we cannot probe): another port.
          logger.warn({ slug, port: hostPort, err: err.message }, 'host port taken; retrying on another');
          await runtime.remove(slug);
          created = false;
          record.containerId = undefined;
          await ports.release(hostPort, slug);
          await ports.claim(hostPort, HOST_BOUND_OWNER);
          record.hostPort = undefined;
        }
      }
      await this.bringUp(record, phases);
      logger.info({ slug, hostPort: record.hostPort, ms: phases.total(), phases: phases.ms }, 'pod running');
    } catch (err) {
      logger.warn({ slug, err: message(err) }, 'pod creation failed; rolling back');
      this.setState(record, 'failed');
      record.error = message(err);
      await this.rollback(record, created);
      if (forgetOnFailure && this.records.get(slug) === record) this.records.delete(slug);
      // Redis down or failing over: nothing of the pod is kept, and the caller may simply try again.
      if (isRedisUnavailable(err)) throw new ServiceUnavailableError(`pod ${JSON.stringify(slug)} not created: ${storeErrorText(err)}; try again once it is back`);
      if (err instanceof PodgateError) throw err;
      throw new PodStartFailedError(slug, message(err));
    }
  }

  /** Void every token of the slug issued before now. @throws ServiceUnavailableError when the access store cannot. */
  private async beginLifetime(slug: string): Promise<void> {
    try {
      await this.deps.links.revokePod(slug, Date.now());
    } catch (err) {
      throw new ServiceUnavailableError(`pod ${JSON.stringify(slug)} not created: links of an earlier pod of this name could not be voided in the access store (${storeErrorText(err)})`);
    }
  }

  /**
   * The pod is gone (deleted, or its container vanished): void its links, including any minted in this very
   * millisecond. Throws what the access store throws.
   */
  async endLifetime(slug: string): Promise<void> {
    await this.deps.links.revokePod(slug, Date.now() + 1);
  }

  /**
   * Resolves once a link minted now belongs to the pod's current lifetime: after a create in flight has written
   * its "not before" time. @throws PodNotFoundError for an unknown pod (also one whose creation failed meanwhile).
   */
  async linkable(slug: string): Promise<void> {
    await this.require(slug).lifetimeBegun;
    this.require(slug);
  }

  private containerSpec(record: PodRecord, limits: ReturnType<typeof tierLimits>): PodContainerSpec {
    const { spec } = record;
    const { config } = this.deps;
    return {
      slug: record.slug,
      generation: record.generation,
      image: spec.image,
      runtime: config.runtime,
      sudo: config.sudo,
      ca: config.podCa,
      bindAddress: config.bindAddress,
      hostPort: record.hostPort!,
      defaultPort: spec.defaultPort,
      env: { ...podEnvironment(spec), PODGATE_ROUTER_KEY: record.routerKey! },
      labels: {
        ...spec.labels,
        [LABELS.routerKey]: record.routerKey!,
        [LABELS.generation]: String(record.generation),
        [LABELS.hostPort]: String(record.hostPort),
        [LABELS.defaultPort]: String(spec.defaultPort),
        [LABELS.spec]: JSON.stringify(spec),
      },
      ...limits,
    };
  }

  /** Undo a half-made pod: container and network, route, port. Each step is attempted even if one fails. */
  private async rollback(record: PodRecord, created: boolean): Promise<void> {
    const { runtime, ports, routes, logger } = this.deps;
    const { slug } = record;
    if (created) await runtime.remove(slug).catch((e: unknown) => logger.error({ slug, err: message(e) }, 'rollback: container remains'));
    if (record.routeGeneration > 0) {
      await routes
        .nextGeneration()
        .then((g) => routes.delete(slug, g))
        .catch((e: unknown) => logger.error({ slug, err: message(e) }, 'rollback: route remains until reconcile'));
      record.routeGeneration = 0;
    }
    if (record.hostPort !== undefined) {
      await ports.release(record.hostPort, slug).catch((e: unknown) => logger.error({ slug, err: message(e) }, 'rollback: port held until reconcile'));
    }
    record.hostPort = undefined;
    record.containerId = undefined;
    record.routerKey = undefined;
  }

  /** Start the container, wait until its router reports every service ready, run postStart hooks, then route to it. */
  private async bringUp(record: PodRecord, phases = new Phases()): Promise<void> {
    const { runtime, config } = this.deps;
    const { slug } = record;
    this.setState(record, 'starting');
    // The `starting` route (gateways answer 503 + Retry-After) is written while Docker starts the container.
    await Promise.all([this.publish(record), runtime.start(slug)]);
    phases.mark('startingRoute');
    try {
      await waitReady(config.hostAddress, record.hostPort!, {
        timeoutMs: config.readyTimeoutMs,
        alive: async () => (await runtime.inspect(slug))?.state === 'running',
      });
    } catch (err) {
      const tail = await runtime.logsTail(slug, FAILURE_LOG_LINES).catch(() => '');
      throw new Error(`${message(err)}${tail.trim() ? `; its last output: ${tail.trim().slice(-FAILURE_LOG_CHARS)}` : ''}`);
    }
    phases.mark('ready');
    for (const [i, hook] of record.spec.postStart.entries()) {
      const label = hook.label ?? `postStart[${i}]`;
      const r = await this.execLogged(slug, hook.command, label, hook.timeoutMs);
      if (r.exitCode !== 0) throw new Error(`postStart hook ${JSON.stringify(label)} ${r.timedOut ? 'timed out' : `exited with ${r.exitCode}`}`);
    }
    phases.mark('hooks');
    this.setState(record, 'running');
    record.error = undefined;
    record.runningSinceMs = undefined;
    await this.publish(record);
    phases.mark('route');
  }

  /** Write the route the pod's state (or the state it is going to, `as`) calls for, with a fresh generation. */
  async publish(record: PodRecord, as: PodState = record.state): Promise<void> {
    const { routes, config } = this.deps;
    const desired = desiredRoute({
      slug: record.slug, state: as, hostAddress: config.hostAddress, hostPort: record.hostPort, spec: record.spec, routerKey: record.routerKey,
    });
    if (!desired) return;
    const generation = await routes.nextGeneration();
    await routes.put(toRoute(desired, generation));
    record.routeGeneration = generation;
  }

  private setState(record: PodRecord, state: PodState): void {
    record.state = state;
    record.updatedAt = new Date().toISOString();
  }

  private require(slug: string): PodRecord {
    const r = this.records.get(slug);
    if (!r) throw new PodNotFoundError(slug);
    return r;
  }

  private check(op: PodOperation, record: PodRecord): void {
    if (!canDo(op, record.state)) throw new ConflictError(`cannot ${op} pod ${JSON.stringify(record.slug)} while it is ${record.state}`);
  }

  async start(slug: string): Promise<PodView> {
    this.require(slug);
    return this.deps.table.locks.run(slug, async () => {
      const record = this.require(slug);
      if (record.state === 'running') return this.view(record);
      this.check('start', record);
      if (record.state === 'sleeping') await this.wakeLocked(record, 'admin', Date.now());
      else await this.bringUpOrFail(record);
      return this.view(record);
    });
  }

  /**
   * Put a running pod to sleep: its route says `sleeping` first (so arriving requests wait for a wake instead of
   * failing), then its container stops (the pod is `stopping` meanwhile), then the pod is `sleeping`; filesystem,
   * workspace volume and host port stay. A wake asked during the stop runs after it, under the pod's lock. An idle
   * sleep of a pod that is no longer running, or no longer idle, does nothing (undefined).
   * @throws ConflictError (admin, not running)
   */
  async sleep(slug: string, reason: SleepReason): Promise<PodView | undefined> {
    if (reason.by === 'admin') this.require(slug);
    else if (!this.records.has(slug)) return undefined;
    return this.deps.table.locks.run(slug, async () => {
      const record = reason.by === 'admin' ? this.require(slug) : this.records.get(slug);
      if (!record) return undefined;
      if (reason.by === 'idle' && (record.state !== 'running' || !(await reason.stillIdle()))) return undefined;
      this.check('sleep', record);
      const started = Date.now();
      try {
        this.setState(record, 'stopping');
        await this.publish(record, 'sleeping');
        await this.deps.runtime.stop(slug, STOP_GRACE_SECONDS);
      } catch (err) {
        const { said } = await this.recoverFromDocker(record, err);
        throw new ServiceUnavailableError(`could not put pod ${JSON.stringify(slug)} to sleep: ${storeErrorText(err)}; ${said}`);
      }
      this.setState(record, 'sleeping');
      record.error = undefined;
      record.runningSinceMs = undefined;
      const note = sleepNote(reason);
      this.deps.logger.info({ slug, reason: reason.by, note }, 'pod asleep');
      this.deps.metrics?.sleeps.inc({ reason: reason.by });
      await this.logEvent(slug, 'sleep', `asleep: ${note}`, started);
      return this.view(record);
    });
  }

  /**
   * Wake a sleeping pod (the normal start: `starting` route, ready, `running` route). For a gateway's request
   * (`request`) a pod that is unknown here, deleted or not sleeping (running, stopped by an admin, failed) is left
   * alone (undefined); for the admin API that is a 404 or 409. `askedAt`: when the wake was first asked (for the
   * wake duration). `admit`, asked under the lock once the pod is known to sleep, may refuse the wake (a rate
   * limit). A wake that does not bring the pod up puts it back to sleep with the reason in its `error`, so a later
   * request tries again (POD_WAKE_LIMIT bounds how often). @throws PodStartFailedError (admin)
   */
  async wake(slug: string, cause: WakeCause, askedAt: number = Date.now(), admit: () => boolean = () => true): Promise<PodView | undefined> {
    if (cause === 'admin') this.require(slug);
    else if (!this.records.has(slug)) return undefined;
    return this.deps.table.locks.run(slug, async () => {
      const record = cause === 'admin' ? this.require(slug) : this.records.get(slug);
      if (!record || (cause === 'request' && record.state !== 'sleeping')) return undefined;
      if (record.state === 'sleeping' && !admit()) return undefined;
      if (cause === 'admin' && record.state === 'running') return this.view(record);
      this.check('wake', record);
      try {
        await this.wakeLocked(record, cause, askedAt);
      } catch (err) {
        if (cause === 'admin') throw err;
        // A gateway's wake: the pod's log, the logger and the metrics say why; there is nobody to answer.
        return undefined;
      }
      return this.view(record);
    });
  }

  /** Under the pod's lock, a sleeping pod. */
  private async wakeLocked(record: PodRecord, cause: WakeCause, askedAt: number): Promise<void> {
    const { slug } = record;
    const { logger, metrics } = this.deps;
    const started = Date.now();
    const phases = new Phases();
    try {
      await this.bringUp(record, phases);
    } catch (err) {
      // Back to sleep: the container may be up but not ready. Wakeable again, with the reason shown.
      await this.deps.runtime.stop(slug, STOP_GRACE_SECONDS).catch((e: unknown) => logger.warn({ slug, err: message(e) }, 'failed wake: container not stopped; reconcile follows it'));
      this.setState(record, 'sleeping');
      record.error = `wake failed: ${message(err)}`;
      await this.publish(record).catch((e: unknown) => logger.warn({ slug, err: message(e) }, 'route not updated; reconcile writes it'));
      logger.warn({ slug, reason: cause, err: message(err) }, 'pod did not wake; asleep again');
      metrics?.wakes.inc({ reason: cause, outcome: 'failed' });
      await this.logEvent(slug, 'wake', `wake by ${wakeNote(cause)} failed: ${message(err)}; asleep again`, started, message(err));
      if (err instanceof PodgateError) throw err;
      throw new PodStartFailedError(slug, message(err));
    }
    const ms = Date.now() - askedAt;
    logger.info({ slug, reason: cause, ms, phases: phases.ms }, 'pod woken');
    metrics?.wakes.inc({ reason: cause, outcome: 'woken' });
    metrics?.wakeSeconds.observe({ reason: cause }, ms / 1000);
    await this.logEvent(slug, 'wake', `woken by ${wakeNote(cause)}, running ${ms} ms after the wake was asked`, started);
  }

  /** A lifecycle event in the pod's log (a log failure never fails the operation). */
  async logEvent(slug: string, label: string, note: string, startedAt: number, error?: string): Promise<void> {
    await this.deps.execLog
      .append(slug, {
        time: new Date(startedAt).toISOString(), label, command: [], exitCode: null, stdout: '', stderr: '',
        durationMs: Date.now() - startedAt, note, ...(error === undefined ? {} : { error }),
      })
      .catch((e: unknown) => this.deps.logger.warn({ slug, err: message(e) }, 'pod log write failed'));
  }

  /** The idle timeout that applies to a pod, in milliseconds; undefined: it never sleeps. */
  idleTimeoutMs(record: PodRecord): number | undefined {
    return effectiveIdleTimeout(record.spec.idleTimeout, this.deps.config.idleTimeout ?? 'off').ms;
  }

  async stop(slug: string): Promise<PodView> {
    this.require(slug);
    return this.deps.table.locks.run(slug, async () => {
      const record = this.require(slug);
      if (record.state === 'stopped') return this.view(record);
      this.check('stop', record);
      await this.takeDown(record, 'stop');
      return this.view(record);
    });
  }

  async restart(slug: string): Promise<PodView> {
    this.require(slug);
    return this.deps.table.locks.run(slug, async () => {
      const record = this.require(slug);
      this.check('restart', record);
      if (record.state !== 'stopped') await this.takeDown(record, 'restart');
      await this.bringUpOrFail(record);
      return this.view(record);
    });
  }

  private async takeDown(record: PodRecord, op: 'stop' | 'restart'): Promise<void> {
    try {
      // The route says `stopped` first, so gateways answer 503 at once instead of failing connections.
      this.setState(record, 'stopping');
      await this.publish(record);
      await this.deps.runtime.stop(record.slug, STOP_GRACE_SECONDS);
    } catch (err) {
      const { said } = await this.recoverFromDocker(record, err);
      throw new ServiceUnavailableError(`could not ${op} pod ${JSON.stringify(record.slug)}: ${storeErrorText(err)}; ${said}`);
    }
    this.setState(record, 'stopped');
    record.error = undefined;
  }

  /**
   * After a stop or delete failed half-way. The pod must not stay `stopping` or `terminating`: no operation
   * accepts those and reconcile leaves pods between states to their operation, so only an orchestrator restart
   * would clear it. Its state (and route) come from what Docker reports now, so the admin can retry; `said`
   * tells them what that is, `gone` that the container no longer exists.
   */
  private async recoverFromDocker(record: PodRecord, cause: unknown): Promise<{ gone: boolean; said: string }> {
    const { runtime, logger } = this.deps;
    const { slug } = record;
    let container: PodContainer | undefined;
    try {
      container = await runtime.inspect(slug);
    } catch (err) {
      // Docker cannot say: `failed` accepts every operation, and reconcile follows the container once it can.
      this.setState(record, 'failed');
      record.error = `${message(cause)}; its state is unknown (${message(err)})`;
      await this.publish(record).catch((e: unknown) => logger.warn({ slug, err: message(e) }, 'route not updated; reconcile writes it'));
      return { gone: false, said: `Docker cannot say what the container is now (${message(err)}), so the pod is failed` };
    }
    if (!container) {
      // Removed behind our back: reconcile forgets a failed pod whose container is gone (route, port).
      this.setState(record, 'failed');
      record.error = `${message(cause)}; its container is gone`;
      return { gone: true, said: 'its container is gone' };
    }
    // `removing` would be one more state between states: `failed` lets the admin delete again.
    const state = container.state === 'removing' ? 'failed' : stateFromContainer(container.state);
    this.setState(record, state);
    record.error = state === 'failed' ? `${message(cause)}; container ${container.state}` : undefined;
    await this.publish(record).catch((e: unknown) => logger.warn({ slug, err: message(e) }, 'route not updated; reconcile writes it'));
    logger.warn({ slug, err: message(cause), container: container.state, state }, 'operation failed; pod state settled from Docker');
    return { gone: false, said: `Docker reports its container ${container.state}, so the pod is ${state}` };
  }

  private async bringUpOrFail(record: PodRecord): Promise<void> {
    try {
      await this.bringUp(record);
    } catch (err) {
      this.setState(record, 'failed');
      record.error = message(err);
      await this.publish(record).catch(() => {});
      if (err instanceof PodgateError) throw err;
      throw new PodStartFailedError(record.slug, message(err));
    }
  }

  async delete(slug: string): Promise<void> {
    this.require(slug);
    await this.deps.table.locks.run(slug, async () => {
      const { runtime, routes, ports, logger } = this.deps;
      const record = this.require(slug);
      try {
        if (record.containerId !== undefined && record.routeGeneration > 0) {
          this.setState(record, 'stopping');
          await this.publish(record);
        }
        this.setState(record, 'terminating');
        await runtime.remove(slug);
      } catch (err) {
        const { gone, said } = await this.recoverFromDocker(record, err);
        if (!gone) throw new ServiceUnavailableError(`could not delete pod ${JSON.stringify(slug)}: ${storeErrorText(err)}; ${said}`);
        // Only the network (or a route write) failed: the pod is gone. Reconcile removes the orphan network.
        logger.warn({ slug, err: message(err) }, 'pod container removed, the rest left to reconcile');
      }
      // The container is gone: its links must open nothing from now on. Should the store refuse, they still open
      // nothing (no route), and the next create of this slug voids them before its first route.
      await this.endLifetime(slug).catch((err: unknown) => logger.warn({ slug, err: message(err) }, 'pod deleted; its links are voided when a pod of this name is created again'));
      try {
        // A fresh generation: a route written by a newer incarnation of this slug (created after the container
        // was gone) has a higher one and survives this late delete.
        await routes.delete(slug, await routes.nextGeneration());
        if (record.hostPort !== undefined) await ports.release(record.hostPort, slug);
      } catch (err) {
        // The container is gone, so the pod is: reconcile removes this host's routes without a container and
        // frees ports without one after PORT_GRACE_MS.
        logger.warn({ slug, err: message(err) }, 'pod deleted; its route or port is left to reconcile');
      }
      this.records.delete(slug);
      await this.deps.activity?.forget(slug).catch((err: unknown) => logger.warn({ slug, err: message(err) }, 'pod deleted; its activity entry stays until a pod of this name is active again'));
      logger.info({ slug }, 'pod deleted');
    });
  }

  async exec(slug: string, body: unknown): Promise<ExecOutcome> {
    const req = parseOrThrow(ExecRequestSchema, body);
    const record = this.require(slug);
    this.check('exec', record);
    return this.execLogged(slug, req.command, req.label, req.timeoutMs);
  }

  /** Run a command in the pod and record it in the pod's log (a log failure never fails the command). */
  private async execLogged(slug: string, command: string[], label: string, timeoutMs: number): Promise<ExecOutcome> {
    const started = Date.now();
    let outcome: ExecOutcome;
    try {
      const r = await this.deps.runtime.exec(slug, command, { timeoutMs, outputLimit: EXEC_OUTPUT_LIMIT });
      outcome = {
        time: new Date(started).toISOString(), label, command, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr,
        truncated: r.truncated, durationMs: Date.now() - started, timedOut: r.timedOut,
        ...(r.timedOut ? { error: `timed out after ${timeoutMs} ms` } : {}),
      };
    } catch (err) {
      outcome = {
        time: new Date(started).toISOString(), label, command, exitCode: null, stdout: '', stderr: '',
        truncated: false, durationMs: Date.now() - started, timedOut: false, error: message(err),
      };
    }
    const { timedOut: _t, truncated: _tr, ...entry } = outcome;
    await this.deps.execLog.append(slug, entry).catch((e: unknown) => this.deps.logger.warn({ slug, err: message(e) }, 'exec log write failed'));
    if (outcome.error && !outcome.timedOut) throw new ServiceUnavailableError(`exec in pod ${JSON.stringify(slug)} failed: ${outcome.error}`);
    return outcome;
  }

  async logs(slug: string, limit: number): Promise<ExecLogEntry[]> {
    const entries = await this.deps.execLog.read(slug, limit);
    if (entries.length === 0 && !this.records.has(slug)) throw new PodNotFoundError(slug);
    return entries;
  }

  get(slug: string): PodView {
    return this.view(this.require(slug));
  }

  list(): PodView[] {
    return [...this.records.values()].sort((a, b) => a.slug.localeCompare(b.slug)).map((r) => this.view(r));
  }

  view(r: PodRecord): PodView {
    const { config } = this.deps;
    return {
      slug: r.slug,
      name: r.spec.name ?? r.slug,
      status: r.state,
      host: config.hostAddress,
      hostPort: r.hostPort ?? null,
      template: r.spec.template,
      image: r.spec.image,
      tier: r.spec.tier,
      defaultPort: r.spec.defaultPort,
      idleTimeout: effectiveIdleTimeout(r.spec.idleTimeout, config.idleTimeout ?? 'off').text,
      generation: r.generation,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      error: r.error ?? null,
      labels: r.spec.labels,
      url: podUrl(r.slug, undefined, config),
      services: r.spec.services.map((s) => ({ name: s.name, port: s.port, url: podUrl(r.slug, s.port, config) })),
    };
  }
}

const DEFAULT_SCHEME_PORT = { http: 80, https: 443 } as const;

/** A pod's URL through the gateway. HTTPS uses the flat form, covered by one wildcard certificate per base. */
export function podUrl(slug: string, port: number | undefined, config: Pick<PodServiceConfig, 'baseDomains' | 'publicScheme' | 'publicPort'>): string {
  const names = podHostnames(slug, port, config.baseDomains[0]!);
  const host = config.publicScheme === 'https' ? names.flat : names.nested;
  const p = config.publicPort;
  const suffix = p === undefined || p === DEFAULT_SCHEME_PORT[config.publicScheme] ? '' : `:${p}`;
  return `${config.publicScheme}://${host}${suffix}/`;
}
