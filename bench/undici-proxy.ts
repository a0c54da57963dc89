// Reference point for the benchmark: the smallest reverse proxy on undici's dispatcher API (node:http server,
// undici `Pool.dispatch()` with a handler object, no promise or Web-stream layer). Same work as
// bench/reference-proxy.ts: keep-alive pool to the upstream, the four X-Forwarded-* headers, nothing else.
// undici is imported when this starts; a machine without it exits 3 (the bench skips this case and says why).
// Usage: node bench/undici-proxy.ts <listen port> <upstream port>
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

const [listenArg, upstreamArg] = process.argv.slice(2);
const listenPort = Number(listenArg);
const upstreamPort = Number(upstreamArg);
const isPort = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
if (!isPort(listenPort) || !isPort(upstreamPort)) {
  process.stderr.write('usage: node bench/undici-proxy.ts <listen port 1-65535> <upstream port 1-65535>\n');
  process.exit(2);
}
/** The part of undici used here (typed locally: undici may not be installed, see run.ts). */
interface Controller {
  pause(): void;
  resume(): void;
}
interface Handler {
  onRequestStart(controller: Controller): void;
  onResponseStart(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>): void;
  onResponseData(controller: Controller, chunk: Buffer): void;
  onResponseEnd(controller: Controller): void;
  onResponseError(controller: Controller, err: Error): void;
}
interface Pool {
  dispatch(options: { path: string; method: string; headers: Record<string, string | string[]>; body: IncomingMessage | null }, handler: Handler): boolean;
}
type PoolClass = new (origin: string, options: { connections: number; keepAliveTimeout: number }) => Pool;

let undici: { Pool: PoolClass };
try {
  // A variable specifier: the type check does not need undici installed.
  const specifier = 'undici';
  undici = (await import(specifier)) as { Pool: PoolClass };
} catch (err) {
  process.stderr.write(`undici cannot be imported: ${(err as Error).message}\n`);
  process.exit(3); // NO_UNDICI_EXIT in run.ts: a skip, not a failure
}
/** As the gateway's pool (UPSTREAM_MAX_FREE_SOCKETS): at most this many upstream connections. */
const CONNECTIONS = 256;
const pool = new undici.Pool(`http://127.0.0.1:${upstreamPort}`, { connections: CONNECTIONS, keepAliveTimeout: 60_000 });
/** Hop-by-hop response headers node:http sets itself. */
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding']);

function proxy(req: IncomingMessage, res: ServerResponse): void {
  const headers = req.headers;
  delete headers.connection;
  delete headers['keep-alive'];
  headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-host'] = headers.host ?? '';
  headers['x-forwarded-port'] = String(listenPort);
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  pool.dispatch(
    { path: req.url ?? '/', method: req.method ?? 'GET', headers: headers as Record<string, string | string[]>, body: hasBody ? req : null },
    {
      onRequestStart() {},
      onResponseStart(_controller, statusCode, responseHeaders) {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(responseHeaders)) if (!HOP.has(k) && v !== undefined) out[k] = v;
        res.writeHead(statusCode, out);
      },
      onResponseData(controller, chunk) {
        if (!res.write(chunk)) {
          controller.pause();
          res.once('drain', () => controller.resume());
        }
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError() {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      },
    },
  );
}

createServer(proxy).listen(listenPort, '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
