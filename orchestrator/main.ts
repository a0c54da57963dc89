// Composition root of the orchestrator: the only place that builds concrete clients (dockerode, ioredis, stores).
// `startOrchestrator(config)` is what the all-in-one root main.ts calls beside the gateway; run directly
// (`node orchestrator/main.ts`), it reads the environment and stops cleanly on SIGINT/SIGTERM.
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { serve, type ServerType } from '@hono/node-server';
import Docker from 'dockerode';
import { createLogger, type Logger } from '../shared/log.ts';
import { waitReady } from '../shared/redis.ts';
import type { RouteStore } from '../shared/route-store.ts';
import { runMain } from '../shared/run-main.ts';
import { createStores, type Stores } from '../shared/stores.ts';
import { createApi } from './api.ts';
import { accessTokensFor, createAccessApi, podAccessControl } from './access-api.ts';
import { generateSecret } from '../shared/access-token.ts';
import { ConfigError } from '../shared/errors.ts';
import { loadConfig, readSshIdentity, type EgressConfig, type OrchestratorConfig } from './config.ts';
import { dockerResolvers, installEgressPolicy, iptablesUsable } from './egress-iptables.ts';
import { POD_BRIDGE_PREFIX } from './egress-rules.ts';
import { DockerRuntime } from './docker-runtime.ts';
import { sshDockerAgent } from './docker-ssh.ts';
import { MemoryExecLog, RedisExecLog, type ExecLog } from './exec-log.ts';
import { OrchestratorMetrics } from './metrics.ts';
import { isPortBindable, MemoryPortAllocator, type PortAllocator } from './port-allocator.ts';
import { PodService, PodTable } from './pods.ts';
import { livePodPorts, Reconciler } from './reconcile.ts';
import { RedisPortAllocator } from './redis-port-allocator.ts';
import { RedisLossWatch } from './redis-watch.ts';
import { SleepWake } from './sleep-wake.ts';

export interface StartOptions {
  /**
   * The stores (and their Redis connection), shared with an embedded gateway (all-in-one): the caller closes them.
   * Otherwise they are built from the configuration.
   */
  stores?: Stores;
  docker?: Docker;
  logger?: Logger;
  /**
   * Probe a host port before handing it out (skip ports something else bound). Only possible when Docker runs on
   * this machine; default: true unless DOCKER_HOST names a remote daemon. Docker's own bind error is the backstop.
   */
  probeHostPorts?: boolean;
}

export interface RunningOrchestrator {
  /** The admin API's port (useful when configured as 0). */
  port: number;
  pods: PodService;
  reconciler: Reconciler;
  routes: RouteStore;
  /** The idle check and the wake subscription. */
  sleepWake: SleepWake;
  metrics: OrchestratorMetrics;
  close(): Promise<void>;
}

/**
 * The dockerode client for this configuration. DOCKER_HOST=ssh:// is built from the configuration itself (its
 * agent, its key file, its pinned host key; docker-ssh.ts): docker-modem would read only process.env, and only the
 * agent. Other forms are left to docker-modem, which reads the process environment (DOCKER_HOST,
 * DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).
 */
export function dockerClient(config: OrchestratorConfig): Docker {
  const ssh = config.dockerSsh;
  if (!ssh || !config.dockerHost) return new Docker();
  const agent = sshDockerAgent(config.dockerHost, ssh, ssh.identity ? readSshIdentity(ssh.identity) : undefined);
  // Plain HTTP to the Docker API through that agent; host and port only fill the request line. dockerode's
  // typings omit `agent`, which it hands to docker-modem (and docker-modem to every request).
  return new Docker({ protocol: 'http', host: ssh.host, port: ssh.port, agent } as Docker.DockerOptions);
}

/**
 * Install the egress policy before any pod is created or adopted (reconcile). It stays installed when the
 * orchestrator stops: the pods keep running. `on` (or `auto` where iptables works) that cannot be installed stops
 * the start: running pods that can reach the metadata service is not a degraded mode to fall into silently.
 * @throws ConfigError naming POD_EGRESS_POLICY
 */
export async function applyEgressPolicy(egress: EgressConfig, logger: Logger): Promise<boolean> {
  if (egress.mode === 'off') {
    if (egress.offReason) logger.warn(`the pod egress policy is off: ${egress.offReason}`);
    return false;
  }
  if (egress.mode === 'auto') {
    // Root, or CAP_NET_ADMIN: iptables itself says whether it may read the rules.
    const unusable = await iptablesUsable();
    if (unusable) {
      logger.warn(
        { why: unusable },
        'the pod egress policy is off (iptables cannot be used): pods can reach link-local cloud metadata, this host and its network. ' +
          'Run as root with iptables, install it with `node orchestrator/egress-cli.ts install`, or set POD_EGRESS_POLICY=off to silence this',
      );
      return false;
    }
  }
  const resolvers = dockerResolvers();
  try {
    await installEgressPolicy({ deny: egress.deny, hostPorts: egress.hostPorts, resolvers });
  } catch (err) {
    throw new ConfigError('POD_EGRESS_POLICY', `the pod egress policy cannot be installed: ${(err as Error).message} (set POD_EGRESS_POLICY=off to run pods without it)`);
  }
  logger.info({ deny: egress.deny.map((c) => c.text), hostPorts: egress.hostPorts, resolvers: resolvers.map((c) => c.text) }, 'pod egress policy installed');
  return true;
}

/** Pods whose network predates the bridge naming are not matched by the policy: say which, once. */
async function warnUncoveredPods(runtime: DockerRuntime, logger: Logger): Promise<void> {
  const uncovered = (await runtime.networks()).filter((n) => !n.bridge?.startsWith(POD_BRIDGE_PREFIX)).map((n) => n.slug ?? n.name);
  if (uncovered.length > 0) {
    logger.warn({ pods: uncovered }, `the pod egress policy does not apply to these pods: their networks were created before pod bridges were named ${POD_BRIDGE_PREFIX}*; delete and recreate them`);
  }
}

export async function startOrchestrator(config: OrchestratorConfig, options: StartOptions = {}): Promise<RunningOrchestrator> {
  const logger = options.logger ?? createLogger('orchestrator', config.logLevel);
  if (config.runtime !== 'runsc') {
    logger.warn(
      { runtime: config.runtime },
      `POD_RUNTIME=${config.runtime}: pods are NOT sandboxed by gVisor; they share the host kernel. Use this only where that is acceptable.`,
    );
  }
  if (config.dockerSsh && !config.dockerSsh.hostKey) {
    logger.warn({ dockerHost: config.dockerHost }, 'DOCKER_SSH_HOST_KEY is unset: the pod host\'s ssh key is not verified (set it to the fingerprint `ssh-keygen -lf` prints)');
  }
  const egressOn = await applyEgressPolicy(config.egress, logger);
  const docker = options.docker ?? dockerClient(config);
  const runtime = new DockerRuntime(docker, { namespace: config.namespace });
  if (egressOn) warnUncoveredPods(runtime, logger).catch((err: unknown) => logger.warn({ err: String(err) }, 'cannot list pod networks to check the egress policy covers them'));
  runtime.checkRuntime(config.runtime).catch((err: unknown) => logger.error({ err: String(err) }, 'pods cannot be created until this is fixed'));

  const ownStores = !options.stores;
  const stores =
    options.stores ??
    createStores({ redis: config.redisUrl ? { url: config.redisUrl, ca: config.redisTlsCa, sentinel: config.redisSentinel } : undefined, prefix: config.redisPrefix, user: 'orchestrator' }, logger);
  const { redis, routes, access, activity } = stores;
  if (redis) {
    try {
      await waitReady(redis);
    } catch (err) {
      if (ownStores) await stores.close();
      throw err;
    }
  }
  const table = new PodTable();
  // Ports are per Docker host: orchestrators of different hosts sharing one Redis get separate pools. Reseeding
  // the pool claims live pods' ports first (Redis may have lost them) and means data loss: reconcile now.
  const ports: PortAllocator = redis
    ? new RedisPortAllocator(redis, config.portRange, {
        prefix: `${config.redisPrefix}host:${config.hostAddress}:`,
        inUse: () => livePodPorts(runtime, table),
        onReseed: () => reconciler.trigger(),
      })
    : new MemoryPortAllocator(config.portRange);
  const logOptions = { retentionMs: config.logRetentionMs, maxEntries: config.logMaxEntries };
  const execLog: ExecLog = redis ? new RedisExecLog(redis, { ...logOptions, prefix: config.redisPrefix }) : new MemoryExecLog(logOptions);

  const dockerHost = config.dockerHost ?? process.env.DOCKER_HOST ?? '';
  const probe = options.probeHostPorts ?? (dockerHost === '' || dockerHost.startsWith('unix://'));
  const metrics = new OrchestratorMetrics(() => [...table.records.values()].filter((r) => r.state === 'sleeping').length);
  const pods = new PodService({
    runtime, routes, ports, execLog, links: access, table, logger, activity, metrics,
    config,
    isBindable: probe ? (port) => isPortBindable(config.bindAddress, port) : async () => true,
  });
  const reconciler = new Reconciler({ runtime, routes, ports, table, pods, hostAddress: config.hostAddress, intervalMs: config.reconcileIntervalMs, logger });
  // Rebuild the view from Docker before taking requests: a restart loses nothing.
  await reconciler.start();
  // Redis back after a loss, or emptied: republish routes and claim ports now, not RECONCILE_INTERVAL later.
  const lossWatch = redis
    ? new RedisLossWatch(redis, {
        prefix: `${config.redisPrefix}host:${config.hostAddress}:orchestrator:`,
        onLoss: (why) => {
          logger.warn({ why }, 'Redis reconnected or lost its data; reconciling now');
          reconciler.trigger();
        },
      })
    : undefined;
  await lossWatch?.start();
  // After the first reconcile: sleeping pods are known as such before any wake request is judged.
  const sleepWake = new SleepWake({ pods, table, activity, logger, wakeLimit: config.wakeLimit, metrics });
  await sleepWake.start();

  const accessApi = createAccessApi({
    store: access,
    tokens: await accessTokensFor(config.accessSecrets, access, generateSecret),
    pods: podAccessControl(pods, table),
    urls: config,
  });
  const app = createApi({ pods, routes, reconciler, adminToken: config.adminToken, accessApi, gatewayAdmin: config.gatewayAdmin, logger, metrics: metrics.registry });
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: config.adminPort, hostname: config.adminBind }, () => resolve(s));
    s.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ bind: config.adminBind, port }, 'orchestrator admin API listening');

  let closed: Promise<void> | undefined;
  return {
    port,
    pods,
    reconciler,
    routes,
    sleepWake,
    metrics,
    close() {
      closed ??= (async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await sleepWake.close();
        await lossWatch?.close();
        await reconciler.close();
        if (ownStores) await stores.close();
      })();
      return closed;
    },
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await runMain(
    async () => {
      const config = loadConfig();
      const logger = createLogger('orchestrator', config.logLevel);
      // A bad setting found only at start (Redis refusing REDIS_URL's credentials or REDIS_TLS_CA's trust, an egress
      // policy that cannot be installed) is reported like one.
      const running = await startOrchestrator(config, { logger });
      return { log: logger, stop: () => running.close() };
    },
    { configErrorPrefix: 'orchestrator' },
  );
}
