// Test helpers for the orchestrator's Docker tests (not used by production code).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { loadConfig, type OrchestratorConfig } from '../../orchestrator/config.ts';

const run = promisify(execFile);
/** PODGATE_POD_IMAGE picks another tag (an image under test beside the shared one); build-image.sh reads it too. */
export const POD_IMAGE = process.env.PODGATE_POD_IMAGE ?? 'podgate/pod:dev';
/**
 * The Docker runtime pod tests start containers with: PODGATE_POD_RUNTIME picks another registered one (a gVisor
 * build under test beside the machine's `runsc`).
 */
export const POD_RUNTIME = process.env.PODGATE_POD_RUNTIME ?? 'runsc';
const BUILD_SCRIPT = fileURLToPath(new URL('../../docker/build-image.sh', import.meta.url));
/** debootstrap + docker build on a cold machine. */
const BUILD_TIMEOUT_MS = 170_000;

/**
 * The image pod tests run: PODGATE_TEST_IMAGE if set (a quicker local image while developing), else POD_IMAGE,
 * built with docker/build-image.sh when it is missing.
 */
export async function testPodImage(): Promise<string> {
  const override = process.env.PODGATE_TEST_IMAGE;
  if (override) return override;
  const docker = new Docker();
  try {
    await docker.getImage(POD_IMAGE).inspect();
    return POD_IMAGE;
  } catch {
    await run('bash', [BUILD_SCRIPT, '--quiet'], { timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
    return POD_IMAGE;
  }
}

/** A slug unique to this run, so parallel runs and leftovers of crashed runs never collide. */
export function uniqueSlug(stem: string): string {
  return `t-${stem}-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Remove every container, workspace volume and network of the given slugs (afterAll; tolerant of what is already gone). */
export async function removePods(slugs: Iterable<string>): Promise<void> {
  const docker = new Docker();
  for (const slug of slugs) {
    await docker.getContainer(`podgate-${slug}`).remove({ force: true }).catch(() => {});
    await docker.getVolume(`podgate-${slug}-workspace`).remove().catch(() => {});
    await docker.getNetwork(`podgate-${slug}`).remove().catch(() => {});
  }
}

/** Docker 20.10's words when its default address pools have no subnet left for another network. */
export const POOLS_EXHAUSTED_TEXT = 'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network';

/**
 * The real Docker client, except that createNetwork fails with `message` as dockerode reports it for the status
 * libnetwork gives an exhausted pool (NotFound, 404; dockerode's createNetwork calls that "driver not found").
 */
export function withNetworkCreateError(real: Docker, message: string): Docker {
  return new Proxy(real, {
    get(target, prop, receiver) {
      if (prop !== 'createNetwork') return Reflect.get(target, prop, receiver);
      return async () => {
        throw Object.assign(new Error(`(HTTP code 404) driver not found - ${message} `), { statusCode: 404, reason: 'driver not found', json: { message } });
      };
    },
  });
}

/**
 * An orchestrator configuration for tests, from environment-style overrides (at least ADMIN_TOKEN, POD_PORT_RANGE of
 * the test file's own, POD_IMAGE): API on a free port, a namespace of its own (it never adopts another run's pods
 * on the same Docker host), and no periodic reconcile, so a test sees only the passes it causes.
 */
export function testOrchestratorConfig(env: Record<string, string | undefined>): OrchestratorConfig {
  return loadConfig({
    ORCHESTRATOR_PORT: '0',
    POD_NAMESPACE: `test-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`,
    POD_READY_TIMEOUT: '60s',
    RECONCILE_INTERVAL: '1h',
    POD_RUNTIME,
    ...env,
  });
}
