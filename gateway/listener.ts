// The gateway's servers: the public HTTP listener, the HTTPS/HTTP2 listener when TLS is on, and the admin
// listener; all of them feed one request handler (handler.ts). Owns their start (a listener that cannot start
// names its variables, and nothing opened is left behind) and their drain on shutdown.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import { listenError } from '../shared/config.ts';
import type { GatewayConfig } from './config.ts';
import type { RequestHandler } from './handler.ts';
import type { HttpsListener } from './tls/https-server.ts';
import type { Tls } from './tls/index.ts';

/** Node's default period for checking header deadlines; ours is shorter when HEADERS_TIMEOUT_MS is short. */
const NODE_CONNECTIONS_CHECK_MS = 30_000;
const MIN_CONNECTIONS_CHECK_MS = 100;
/** Header deadlines are overshot by at most this fraction of HEADERS_TIMEOUT_MS. */
const CHECKS_PER_HEADERS_TIMEOUT = 4;

export type ListenerConfig = Pick<
  GatewayConfig,
  'HTTP_PORT' | 'HTTP_HOST' | 'ADMIN_PORT' | 'ADMIN_HOST' | 'HEADERS_TIMEOUT_MS' | 'CLIENT_KEEPALIVE_MS'
>;

export interface Listeners {
  httpPort: number;
  httpsPort: number | undefined;
  adminPort: number | undefined;
  /** Stop accepting; close idle connections now and the rest after `deadlineMs`. Resolves once all are closed. */
  drain(deadlineMs: number): Promise<void>;
  /** Close the admin listener (last, so /readyz answers "not ready" while the others drain). */
  closeAdmin(): Promise<void>;
}

function listen(server: Server, port: number, host: string, variables: { host: string; port: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => reject(listenError(err, host, port, variables));
    server.once('error', fail);
    server.listen({ port, host }, () => {
      server.off('error', fail);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** The admin listener (ADMIN_HOST:ADMIN_PORT) for `app`; one that cannot start names those variables. */
export function serveAdmin(app: Hono, config: Pick<GatewayConfig, 'ADMIN_PORT' | 'ADMIN_HOST'>): Promise<ServerType> {
  return new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: config.ADMIN_PORT, hostname: config.ADMIN_HOST }, () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) =>
      reject(listenError(err, config.ADMIN_HOST, config.ADMIN_PORT, { host: 'ADMIN_HOST', port: 'ADMIN_PORT' })),
    );
  });
}

function closeServer(server: { close(cb: () => void): unknown }): Promise<void> {
  return new Promise<void>((r) => server.close(() => r()));
}

export async function startListeners(
  config: ListenerConfig,
  handler: RequestHandler,
  options: { admin?: Hono | undefined; tls?: Tls | undefined },
): Promise<Listeners> {
  const server = createServer({
    headersTimeout: config.HEADERS_TIMEOUT_MS,
    // No whole-request deadline: it would cut long uploads and streams. Slowloris is bounded by headersTimeout.
    requestTimeout: 0,
    // Node enforces headersTimeout only when it sweeps its connections (every 30 s by default), so a silent or
    // dripping client would keep its socket up to 30 s past the deadline. Sweep a few times per deadline instead.
    connectionsCheckingInterval: Math.min(
      NODE_CONNECTIONS_CHECK_MS,
      Math.max(MIN_CONNECTIONS_CHECK_MS, Math.ceil(config.HEADERS_TIMEOUT_MS / CHECKS_PER_HEADERS_TIMEOUT)),
    ),
    keepAliveTimeout: config.CLIENT_KEEPALIVE_MS,
  });
  server.on('request', handler.onRequest);
  server.on('upgrade', handler.onUpgrade);
  server.on('connect', handler.onConnect);
  server.on('clientError', handler.onClientError);

  let admin: ServerType | undefined;
  let https: HttpsListener | undefined;
  let httpPort: number;
  try {
    httpPort = await listen(server, config.HTTP_PORT, config.HTTP_HOST, { host: 'HTTP_HOST', port: 'HTTP_PORT' });
    if (options.admin) admin = await serveAdmin(options.admin, config);
    https = await options.tls?.listen(handler, { headersTimeoutMs: config.HEADERS_TIMEOUT_MS, keepAliveTimeoutMs: config.CLIENT_KEEPALIVE_MS });
  } catch (err) {
    // Leave nothing behind for an embedding process (or a test) that carries on.
    server.close();
    if (admin) await closeServer(admin);
    throw err;
  }

  return {
    httpPort,
    httpsPort: https?.port,
    adminPort: admin ? (admin.address() as AddressInfo).port : undefined,
    async drain(deadlineMs) {
      const closed = closeServer(server);
      server.closeIdleConnections();
      const deadline = setTimeout(() => server.closeAllConnections(), deadlineMs);
      await Promise.all([closed, https?.close(deadlineMs)]);
      clearTimeout(deadline);
    },
    async closeAdmin() {
      if (admin) await closeServer(admin);
    },
  };
}
