// A whole podgate for tests that need real pods behind a real gateway: a redis-server, a gateway on it (the access
// tests' world: guard on, no pods concealed), and the real orchestrator on the same Redis (its admin API, Docker with
// runsc). Pods are created through the API, exactly as an admin would.
import { pino, type Logger } from 'pino';
import { startOrchestrator, type RunningOrchestrator } from '../../orchestrator/main.ts';
import { removePods, testOrchestratorConfig } from './orchestrator.ts';
import { startTestGateway, startWorld, type AccessWorld, type TestGateway } from './access.ts';
import { adminCall, type ApiAnswer } from './admin-api.ts';
import { waitFor } from './wait.ts';

const ADMIN_TOKEN = 'pod-world-admin-token-0123456789';

export interface PodWorldOptions {
  /** The pod image (POD_IMAGE). */
  image: string;
  /** POD_PORT_RANGE: a range of its own per test file, so files running at once never collide. */
  portRange: string;
  /** POD_READY_TIMEOUT. */
  readyTimeout?: string;
  /** More orchestrator settings (POD_CA_FILE, ...). */
  env?: Record<string, string>;
  /** The orchestrator's logger (default: silent), for tests that read what it logs. */
  logger?: Logger;
  /** More settings of the gateway. */
  gatewayEnv?: Record<string, string>;
}

export interface PodWorld {
  world: AccessWorld;
  gw: TestGateway;
  orch: RunningOrchestrator;
  /** One admin API call with the bearer token. */
  api(method: string, path: string, body?: unknown): Promise<ApiAnswer>;
  /** POST /v1/pods; throws with the API's answer unless 201; resolves once the gateway routes the running pod. */
  createPod(spec: { slug: string } & Record<string, unknown>): Promise<any>;
  close(): Promise<void>;
}

export async function startPodWorld(options: PodWorldOptions): Promise<PodWorld> {
  const world = await startWorld();
  const gw = await startTestGateway(world, options.gatewayEnv);
  const config = testOrchestratorConfig({
    ADMIN_TOKEN,
    REDIS_URL: world.redis.url,
    POD_PORT_RANGE: options.portRange,
    POD_IMAGE: options.image,
    POD_READY_TIMEOUT: options.readyTimeout ?? '90s',
    ...options.env,
  });
  // No ACCESS_SECRET anywhere: the orchestrator and the gateway share the one generated into Redis.
  const orch = await startOrchestrator(config, { logger: options.logger ?? pino({ level: 'silent' }) });
  const slugs = new Set<string>();

  const api = (method: string, path: string, body?: unknown) => adminCall(orch.port, ADMIN_TOKEN, method, path, body);

  return {
    world,
    gw,
    orch,
    api,
    async createPod(spec) {
      slugs.add(spec.slug);
      const created = await api('POST', '/v1/pods', spec);
      if (created.status !== 201) throw new Error(`pod not created: ${JSON.stringify(created.json)}`);
      await waitFor(() => gw.gateway.table.lookup(spec.slug)?.status === 'running', { what: 'the running route on the gateway', timeoutMs: 30_000 });
      return created.json;
    },
    async close() {
      await orch.close();
      await removePods(slugs);
      await gw.close();
      await world.close();
    },
  };
}
