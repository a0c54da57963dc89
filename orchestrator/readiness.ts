// "Running and answering": a pod's route goes live only once its in-pod router says every service of the pod
// passed its health check (GET /readyz with Host: podgate-router, see docker/README.md), exactly as a gateway
// would reach it. A router that merely answers may front services still starting, which would give a new pod's
// first users a 502 ("nothing is listening"); the `starting` route gives them a 503 with Retry-After instead.
import { request } from 'node:http';

/** The router's own status server: no pod hostname, so no service of the pod can shadow it. */
export const ROUTER_STATUS_HOST = 'podgate-router';
/** One probe's budget: a router that accepted the connection answers well within this. */
const PROBE_TIMEOUT_MS = 1000;
/** Pause between probes: short, because this sits on the create -> first byte path. */
export const PROBE_INTERVAL_MS = 25;
/** Ask the runtime whether the container still runs every this many probes, to fail fast on a crash. */
const ALIVE_CHECK_EVERY = 20;
/** How much of a 503's body (the router names the service it waits for) goes into messages. */
const DETAIL_CHARS = 200;

/**
 * What one probe saw: nothing answering yet; the router up and some service not ready (`detail` is the router's
 * reason, e.g. "not ready: terminal"); or ready. Any answer other than 503 counts as ready: an image with a router
 * of its own that has no /readyz can only tell us that it answers.
 */
export type ProbeResult = { state: 'down' } | { state: 'booting'; detail: string } | { state: 'ready' };

/** One GET /readyz on host:port. */
export function probeOnce(host: string, port: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const req = request(
      { host, port, path: '/readyz', method: 'GET', headers: { host: ROUTER_STATUS_HOST }, agent: false, timeout: PROBE_TIMEOUT_MS },
      (res) => {
        if (res.statusCode !== 503) {
          res.resume();
          resolve({ state: 'ready' });
          return;
        }
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < DETAIL_CHARS) body += chunk;
        });
        res.once('end', () => resolve({ state: 'booting', detail: body.trim().slice(0, DETAIL_CHARS) || '503' }));
        res.once('error', () => resolve({ state: 'booting', detail: '503' }));
      },
    );
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', () => resolve({ state: 'down' }));
    req.end();
  });
}

export interface WaitReadyOptions {
  timeoutMs: number;
  /** False when the container is no longer running: stop waiting at once. */
  alive: () => Promise<boolean>;
}

/** Resolve when the pod is ready; throw with the reason when it died or the deadline passed. */
export async function waitReady(host: string, port: number, options: WaitReadyOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (let i = 1; ; i++) {
    const seen = await probeOnce(host, port);
    if (seen.state === 'ready') return;
    if (i % ALIVE_CHECK_EVERY === 0 && !(await options.alive())) {
      throw new Error(seen.state === 'down' ? 'the container exited before its router answered' : `the container exited before it was ready (${seen.detail})`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        seen.state === 'down'
          ? `the in-pod router did not answer on ${host}:${port} within ${options.timeoutMs} ms`
          : `the pod's services were not ready within ${options.timeoutMs} ms (${seen.detail})`,
      );
    }
    await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
  }
}
