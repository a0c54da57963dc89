// A small wrk-like load loop for tests: a few keep-alive connections sending GETs through a gateway until told to
// stop, bounded in count and time. Counts answers by status and failures by reason, so a test can require zero.
import { Agent, request } from 'node:http';

export interface LoadTarget {
  /** The gateway's HTTP port on 127.0.0.1. */
  port: number;
  /** Host header (the pod hostname). */
  host: string;
  path?: string;
  /** Extra headers (a cookie or access token). */
  headers?: Record<string, string>;
}

export interface LoadResult {
  ok: number;
  failed: number;
  /** Failure reasons (status codes or error codes) and their counts. */
  reasons: Record<string, number>;
  /** When the first failures happened (ms since epoch, at most 20): to line them up with what the test did. */
  failedAt: number[];
}

export interface Load {
  /** Requests answered so far (any outcome). */
  readonly done: number;
  readonly result: LoadResult;
  /** Stop sending and wait for the requests in flight. */
  stop(): Promise<LoadResult>;
}

const REQUEST_TIMEOUT_MS = 10_000;

/** Start `connections` loops against `target`; each stops at `stop()`, after `maxRequests` in all or `maxMs`. */
export function startLoad(target: LoadTarget, options: { connections?: number; maxRequests?: number; maxMs?: number } = {}): Load {
  const { connections = 8, maxRequests = 200_000, maxMs = 120_000 } = options;
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const result: LoadResult = { ok: 0, failed: 0, reasons: {}, failedAt: [] };
  const deadline = Date.now() + maxMs;
  let stopped = false;
  let done = 0;
  const fail = (reason: string) => {
    result.failed++;
    result.reasons[reason] = (result.reasons[reason] ?? 0) + 1;
    if (result.failedAt.length < 20) result.failedAt.push(Date.now());
  };
  const once = () =>
    new Promise<void>((resolve) => {
      const req = request(
        { host: '127.0.0.1', port: target.port, path: target.path ?? '/', agent, timeout: REQUEST_TIMEOUT_MS, headers: { host: target.host, ...target.headers } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (s: string) => {
            if (body.length < 200) body += s;
          });
          res.on('end', () => {
            if (res.statusCode === 200) result.ok++;
            else fail(`${res.statusCode} ${body.slice(0, 120).replace(/\s+/g, ' ')}`);
            resolve();
          });
          res.on('error', (err) => {
            fail((err as NodeJS.ErrnoException).code ?? err.message);
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        fail((err as NodeJS.ErrnoException).code ?? err.message);
        resolve();
      });
      req.end();
    }).then(() => void done++);
  const loops = Array.from({ length: connections }, async () => {
    while (!stopped && done < maxRequests && Date.now() < deadline) await once();
  });
  const all = Promise.all(loops).then(() => agent.destroy());
  return {
    get done() {
      return done;
    },
    result,
    async stop() {
      stopped = true;
      await all;
      return result;
    },
  };
}
