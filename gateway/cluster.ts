// Using every core: a primary process forks GATEWAY_WORKERS workers that share the HTTP port (Node's cluster
// module hands accepted connections to workers round-robin). The primary serves the admin listener with
// metrics aggregated over the workers, restarts a worker that dies, and forwards SIGTERM.
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { EXIT_CONFIG } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { createAdminApp } from './admin.ts';
import type { GatewayConfig } from './config.ts';
import { serveAdmin } from './listener.ts';

const READY = 'podgate:worker-ready';
/** A worker that keeps dying is restarted at most this often, so a crash loop does not eat the CPU. */
const RESTART_DELAY_MS = 1000;

export interface ClusterPrimary {
  adminPort: number;
  stop(): Promise<void>;
}

/**
 * `onConfigError`: a worker stopped on invalid configuration (EXIT_CONFIG: its HTTP port is taken, say, and it said
 * why on stderr). Every worker would do the same, so none is restarted: the others are stopped, then this is called
 * (the caller ends the process).
 */
export async function runPrimary(
  config: GatewayConfig,
  log: Logger,
  mountAdmin: ((app: Hono) => void) | undefined,
  onConfigError: () => void,
): Promise<ClusterPrimary> {
  const ready = new Set<number>();
  let stopping = false;
  const stopWorkers = async (): Promise<void> => {
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            w.once('exit', () => resolve());
            w.process.kill('SIGTERM');
          }),
      ),
    );
  };
  const fork = (): Worker => {
    const worker = cluster.fork();
    worker.on('message', (m: unknown) => {
      if (m === READY) ready.add(worker.id);
    });
    return worker;
  };
  cluster.on('exit', (worker, code, signal) => {
    ready.delete(worker.id);
    if (stopping) return;
    if (code === EXIT_CONFIG) {
      log.error({ worker: worker.id, code }, 'gateway worker stopped on invalid configuration; stopping the gateway');
      void stopWorkers().then(onConfigError);
      return;
    }
    log.error({ worker: worker.id, code, signal }, 'gateway worker died; restarting it');
    setTimeout(() => !stopping && fork(), RESTART_DELAY_MS).unref();
  });
  for (let i = 0; i < config.GATEWAY_WORKERS; i++) fork();

  const registry = new AggregatorRegistry();
  const app = createAdminApp({
    ready: () => !stopping && ready.size === config.GATEWAY_WORKERS,
    registry: { contentType: registry.contentType, metrics: () => registry.clusterMetrics() } as unknown as Registry,
    mount: mountAdmin,
  });
  const admin = await serveAdmin(app, config).catch(async (err: unknown) => {
    await stopWorkers();
    throw err;
  });
  log.info({ workers: config.GATEWAY_WORKERS, adminPort: (admin.address() as AddressInfo).port }, 'gateway primary started');

  return {
    adminPort: (admin.address() as AddressInfo).port,
    async stop() {
      await stopWorkers();
      await new Promise<void>((r) => admin.close(() => r()));
    },
  };
}

/** In a worker: let the primary aggregate this registry and know that the worker serves. */
export function announceWorker(registry: Registry): void {
  new AggregatorRegistry(); // installs the worker side of the metrics request listener
  AggregatorRegistry.setRegistries(registry);
  process.send?.(READY);
}
