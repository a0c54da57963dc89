// "Running and answering": a pod's route goes live only once its in-pod router answers HTTP on the host port,
// exactly as a gateway would reach it. Any HTTP status counts (the router answers 502 while a service boots).
import { request } from 'node:http';

/** One probe's budget: a router that accepted the connection answers well within this. */
const PROBE_TIMEOUT_MS = 1000;
/** Pause between probes: short, because this sits on the create -> first byte path. */
export const PROBE_INTERVAL_MS = 25;
/** Ask the runtime whether the container still runs every this many probes, to fail fast on a crash. */
const ALIVE_CHECK_EVERY = 20;

/** One HTTP request to host:port with the pod's Host; true on any answer. */
export function probeOnce(host: string, port: number, hostHeader: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/', method: 'GET', headers: { host: hostHeader }, agent: false, timeout: PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      resolve(true);
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', () => resolve(false));
    req.end();
  });
}

export interface WaitAnsweringOptions {
  timeoutMs: number;
  /** False when the container is no longer running: stop waiting at once. */
  alive: () => Promise<boolean>;
  probe?: () => Promise<boolean>;
}

/** Resolve when the pod answers; throw with the reason when it died or the deadline passed. */
export async function waitAnswering(host: string, port: number, hostHeader: string, options: WaitAnsweringOptions): Promise<void> {
  const probe = options.probe ?? (() => probeOnce(host, port, hostHeader));
  const deadline = Date.now() + options.timeoutMs;
  for (let i = 1; ; i++) {
    if (await probe()) return;
    if (i % ALIVE_CHECK_EVERY === 0 && !(await options.alive())) throw new Error('the container exited before its router answered');
    if (Date.now() > deadline) throw new Error(`the in-pod router did not answer on ${host}:${port} within ${options.timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
  }
}
