// Gateway composition root: configuration from the environment, the route store, the listeners, signals.
// `npm run gateway` runs this file; the all-in-one main.ts at the top calls runGateway().
import cluster from 'node:cluster';
import { loadEnv } from '../shared/config.ts';
import { ConfigError, EXIT_CONFIG } from '../shared/errors.ts';
import { createLogger, type Logger } from '../shared/log.ts';
import { createRouteStore } from '../shared/route-store-factory.ts';
import { createAccessStore } from '../shared/access-store-factory.ts';
import type { RouteStore } from '../shared/route-store.ts';
import { announceWorker, runPrimary } from './cluster.ts';
import { loadGatewayConfig, type GatewayConfig } from './config.ts';
import { startGateway, type GatewayDeps, type RunningGateway } from './gateway.ts';
import { createCertStore } from '../shared/cert-store-factory.ts';
import { loadTlsConfig, type TlsConfig } from './tls/config.ts';
import { createCertificatesAdmin, prepareGatewayTls } from './tls/gateway-tls.ts';

export { startGateway, loadGatewayConfig };
export type { GatewayConfig, RunningGateway };

export interface GatewayProcess {
  gateway: RunningGateway;
  store: RouteStore;
  /** The HTTPS listener's port when TLS is on. */
  httpsPort: number | undefined;
  stop(): Promise<void>;
}

/** Start a gateway from settings; `store` may be shared with an orchestrator in the same process. */
export async function runGateway(
  config: GatewayConfig,
  options: { log?: Logger; store?: RouteStore; tls?: TlsConfig } & Partial<Omit<GatewayDeps, 'store' | 'log'>> = {},
): Promise<GatewayProcess> {
  const log = options.log ?? createLogger('gateway', config.LOG_LEVEL);
  const store = options.store ?? createRouteStore(config.redis, config.REDIS_PREFIX, log);
  // Access links and revocations (gateway/access); an embedded orchestrator passes the same store in.
  const access = options.access ?? createAccessStore(config.redis, config.REDIS_PREFIX, log);
  // TLS (gateway/tls): certificates in the shared store, HTTPS listener with the same handlers as HTTP.
  const certStore = options.tls?.enabled ? createCertStore(config.redis, config.REDIS_PREFIX, log) : undefined;
  const tls = certStore && options.tls ? await prepareGatewayTls(config, options.tls, { certStore, log }) : undefined;
  const gateway = await startGateway(config, { ...options, ...tls?.hooks, store, log, access });
  const httpsPort = await tls?.attach(gateway);
  return {
    gateway,
    store,
    httpsPort,
    async stop() {
      await Promise.all([tls?.stop(config.SHUTDOWN_TIMEOUT_MS), gateway.shutdown()]);
      await certStore?.close();
      if (!options.store) await store.close();
      if (!options.access) await access.close();
    },
  };
}

/** Exit cleanly on SIGTERM/SIGINT within the shutdown deadline. */
export function stopOnSignals(stop: () => Promise<void>, deadlineMs: number, log: Logger): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    // The deadline is enforced here too, in case something refuses to close.
    setTimeout(() => process.exit(1), deadlineMs + 1000).unref();
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err: String(err) }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
}

/** Print a configuration error naming the variable and exit; rethrow anything else. */
export function exitOnConfigError(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`podgate: invalid configuration: ${err.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  throw err;
}

if (import.meta.main) {
  let config: GatewayConfig;
  let tlsConfig: TlsConfig;
  try {
    const env = loadEnv();
    config = loadGatewayConfig(env);
    tlsConfig = loadTlsConfig(env);
  } catch (err) {
    exitOnConfigError(err);
  }
  const log = createLogger('gateway', config.LOG_LEVEL);
  if (config.GATEWAY_WORKERS > 1 && cluster.isPrimary) {
    // The primary serves the admin listener, so the certificates API lives there; workers serve traffic.
    const certStore = tlsConfig.enabled ? createCertStore(config.redis, config.REDIS_PREFIX, log) : undefined;
    const certificates = certStore ? createCertificatesAdmin(config, tlsConfig, { certStore, log }) : undefined;
    // A worker that could not start on this configuration said why on stderr; restarting it cannot help.
    const primary = await runPrimary(config, log, certificates?.mountAdmin, () => process.exit(EXIT_CONFIG)).catch(exitOnConfigError);
    stopOnSignals(
      async () => {
        await primary.stop();
        await certStore?.close();
      },
      config.SHUTDOWN_TIMEOUT_MS,
      log,
    );
  } else {
    // A listener that cannot start is reported like a bad setting (see listenError in gateway.ts).
    const running = await runGateway(config, { log, noAdmin: cluster.isWorker, tls: tlsConfig }).catch(exitOnConfigError);
    if (cluster.isWorker) announceWorker(running.gateway.registry);
    stopOnSignals(running.stop, config.SHUTDOWN_TIMEOUT_MS, log);
  }
}
