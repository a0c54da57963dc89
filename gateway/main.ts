// The gateway's composition root. startGateway() builds each part once and hands it down; a request walks
//   listener.ts (HTTP, HTTPS/HTTP2) -> handler.ts -> resolve.ts (host -> pod) -> access/guard.ts -> proxy.ts.
// runGateway() adds the stores named by the configuration (shared/stores.ts). `npm run gateway` runs this file
// (workers through cluster.ts); the all-in-one main.ts at the top calls runGateway().
import cluster from 'node:cluster';
import type { Registry } from 'prom-client';
import { MemoryAccessStore, type AccessStore } from '../shared/access-store.ts';
import { MemoryPodActivity, type PodActivityStore } from '../shared/pod-activity.ts';
import type { CertStore } from '../shared/cert-store.ts';
import { loadEnv } from '../shared/config.ts';
import { EXIT_CONFIG } from '../shared/errors.ts';
import { createLogger, type Logger } from '../shared/log.ts';
import { runMain } from '../shared/run-main.ts';
import { createStores, type Stores } from '../shared/stores.ts';
import type { RouteStore } from '../shared/route-store.ts';
import { AccessGuard } from './access/guard.ts';
import { ActivityReporter } from './activity.ts';
import { createAdminApp } from './admin.ts';
import { announceWorker, runPrimary } from './cluster.ts';
import { loadGatewayConfig, type GatewayConfig } from './config.ts';
import { createHandler, type RequestHandler } from './handler.ts';
import { startListeners } from './listener.ts';
import { createMetrics } from './metrics.ts';
import { createPodProxy } from './proxy.ts';
import { createRequestLog } from './request-log.ts';
import { HostParser, resolveTarget } from './resolve.ts';
import { RouteTable } from './route-table.ts';
import type { CertificateIssuer } from './tls/acme.ts';
import { loadTlsConfig, type TlsConfig } from './tls/config.ts';
import type { Tls } from './tls/index.ts';
import { UpstreamPool } from './upstream-pool.ts';
import { Waker } from './waker.ts';
import { WebSocketTunnels } from './websockets.ts';

export { loadGatewayConfig };
export type { GatewayConfig };

export interface GatewayDeps {
  store: RouteStore;
  log: Logger;
  /** Access links and revocations (gateway/access); the embedded store when absent (pods stay private by default). */
  access?: AccessStore | undefined;
  /** Pod activity and wake requests (sleep and wake); the embedded store when absent (nothing wakes pods then). */
  activity?: PodActivityStore | undefined;
  /** TLS on: its settings and the certificate store (issuer and clock: tests only). */
  tls?: { config: TlsConfig; store: CertStore; issuer?: CertificateIssuer; now?: () => number } | undefined;
  /** Skip the admin listener (worker processes share the primary's). */
  noAdmin?: boolean | undefined;
}

export interface RunningGateway {
  httpPort: number;
  /** The HTTPS listener's port when TLS is on. */
  httpsPort: number | undefined;
  adminPort: number | undefined;
  table: RouteTable;
  registry: Registry;
  tls: Tls | undefined;
  handler: RequestHandler;
  /** Stop accepting, let in-flight requests finish, close WebSockets with 1001; resolves when all is closed. */
  shutdown(deadlineMs?: number): Promise<void>;
}

export async function startGateway(config: GatewayConfig, deps: GatewayDeps): Promise<RunningGateway> {
  const { log } = deps;
  const pool = new UpstreamPool(config.UPSTREAM_MAX_FREE_SOCKETS);
  const table = new RouteTable(deps.store, {
    resyncIntervalMs: config.ROUTE_RESYNC_INTERVAL_MS,
    log,
    onChange: (slug) => pool.retire(slug),
  });
  const guard = new AccessGuard(config, { store: deps.access ?? new MemoryAccessStore(), log, lookup: (slug) => table.lookup(slug) });
  const metrics = createMetrics({ routeCount: () => table.size, lastSyncAt: () => table.lastSyncAt, wakeWaiting: () => waker.waiting });
  const activityStore = deps.activity ?? new MemoryPodActivity();
  const waker = new Waker(
    { lookup: (slug) => table.lookup(slug), onRouteChange: (listener) => table.onRouteChange(listener), activity: activityStore },
    { timeoutMs: config.WAKE_TIMEOUT_MS, maxWaiting: config.WAKE_MAX_WAITING, log, metrics: metrics.wake },
  );
  const activity = new ActivityReporter(activityStore, {
    flushIntervalMs: config.ACTIVITY_FLUSH_MS,
    log,
    onFlushFailure: () => metrics.activityFlushFailures.inc(),
  });
  const tunnels = new WebSocketTunnels((delta) => metrics.websocketsOpen.inc(delta));
  const proxy = createPodProxy(
    pool,
    {
      connectTimeoutMs: config.UPSTREAM_CONNECT_TIMEOUT_MS,
      responseTimeoutMs: config.UPSTREAM_RESPONSE_TIMEOUT_MS,
      wsIdleTimeoutMs: config.WS_IDLE_TIMEOUT_MS,
    },
    {
      onWebSocketOpen: (client, upstream) => {
        metrics.websocketsTotal.inc();
        tunnels.add(client, upstream);
      },
    },
  );
  // Loaded only when TLS is on: the ACME client and its dependencies are about 10 MB of resident memory.
  const tls = deps.tls
    ? await (await import('./tls/index.ts')).createTls(config, deps.tls.config, { store: deps.tls.store, routes: table, log, issuer: deps.tls.issuer, now: deps.tls.now })
    : undefined;
  // Made once, not per request.
  const lookup = (slug: string) => table.lookup(slug);
  const isWaking = (slug: string) => waker.isWaking(slug);
  const hosts = new HostParser(config.baseDomains);
  const handler = createHandler(config, {
    resolve: (req) => resolveTarget(req.headers.host, hosts, lookup, config.RETRY_AFTER_SECONDS, isWaking),
    guard,
    waker,
    activity,
    proxy,
    record: createRequestLog(config, metrics, log),
    log,
    intercept: tls?.intercept,
  });
  const admin = deps.noAdmin
    ? undefined
    : createAdminApp({ ready: () => table.ready && !handler.closing, registry: metrics.registry, mount: tls?.mountAdmin });

  async function closeParts(): Promise<void> {
    waker.close();
    proxy.close();
    pool.close();
    await Promise.all([table.close(), guard.close(), tls?.close(), activity.close()]);
  }

  await Promise.all([table.start(), guard.start(), tls?.start()]);
  activity.start();
  let listeners;
  try {
    listeners = await startListeners(config, handler, { admin, tls });
  } catch (err) {
    await closeParts();
    throw err;
  }
  log.info({ httpPort: listeners.httpPort, adminPort: listeners.adminPort, routes: table.size, baseDomains: config.baseDomains }, 'gateway listening');

  return {
    httpPort: listeners.httpPort,
    httpsPort: listeners.httpsPort,
    adminPort: listeners.adminPort,
    table,
    registry: metrics.registry,
    tls,
    handler,
    async shutdown(deadlineMs = config.SHUTDOWN_TIMEOUT_MS) {
      if (handler.closing) return;
      handler.beginShutdown();
      // Held requests are answered now (503, retry), not at their wake deadline, which may be past the drain's.
      waker.close();
      log.info({ inFlightWebSockets: tunnels.size }, 'gateway shutting down');
      await Promise.all([listeners.drain(deadlineMs), tunnels.closeAll(Math.min(deadlineMs, 2000))]);
      await closeParts();
      await listeners.closeAdmin();
    },
  };
}

export interface GatewayProcess {
  gateway: RunningGateway;
  stores: Stores;
  stop(): Promise<void>;
}

/** Start a gateway from settings; `stores` may be shared with an orchestrator in the same process (it closes them). */
export async function runGateway(
  config: GatewayConfig,
  options: { log?: Logger; stores?: Stores; tls?: TlsConfig; noAdmin?: boolean } = {},
): Promise<GatewayProcess> {
  const log = options.log ?? createLogger('gateway', config.LOG_LEVEL);
  const stores = options.stores ?? createStores({ redis: config.redis, prefix: config.REDIS_PREFIX, user: 'gateway' }, log);
  const tls = options.tls?.enabled ? { config: options.tls, store: stores.certs } : undefined;
  const gateway = await startGateway(config, { store: stores.routes, access: stores.access, activity: stores.activity, log, tls, noAdmin: options.noAdmin }).catch(async (err: unknown) => {
    if (!options.stores) await stores.close();
    throw err;
  });
  return {
    gateway,
    stores,
    async stop() {
      await gateway.shutdown();
      if (!options.stores) await stores.close();
    },
  };
}

/** The configuration error line of the gateway and the all-in-one process. */
export const CONFIG_ERROR_PREFIX = 'podgate: invalid configuration';

if (import.meta.main) {
  await runMain(async () => {
    const env = loadEnv();
    const config = loadGatewayConfig(env);
    const tlsConfig = loadTlsConfig(env);
    const log = createLogger('gateway', config.LOG_LEVEL);
    if (config.GATEWAY_WORKERS > 1 && cluster.isPrimary) {
      // The primary serves the admin listener, so the certificates API lives there; workers serve traffic.
      const stores = tlsConfig.enabled ? createStores({ redis: config.redis, prefix: config.REDIS_PREFIX, user: 'gateway' }, log) : undefined;
      const certificates = stores ? (await import('./tls/index.ts')).createCertificatesAdmin(config, tlsConfig, { store: stores.certs, log }) : undefined;
      // A worker that could not start on this configuration said why on stderr; restarting it cannot help.
      const primary = await runPrimary(config, log, certificates?.mountAdmin, () => process.exit(EXIT_CONFIG));
      const stop = async () => {
        await primary.stop();
        await stores?.close();
      };
      return { log, stop, deadlineMs: config.SHUTDOWN_TIMEOUT_MS };
    }
    // A listener that cannot start is reported like a bad setting (listenError in shared/config.ts).
    const running = await runGateway(config, { log, noAdmin: cluster.isWorker, tls: tlsConfig });
    if (cluster.isWorker) announceWorker(running.gateway.registry);
    return { log, stop: running.stop, deadlineMs: config.SHUTDOWN_TIMEOUT_MS };
  }, { configErrorPrefix: CONFIG_ERROR_PREFIX });
}
