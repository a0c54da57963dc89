// Assembles one gateway: route table -> resolve -> proxy, the HTTP listener, the admin listener, shutdown.
// Concrete stores are built by main.ts and handed in.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import type { Registry } from 'prom-client';
import { InvalidRequestTargetError, ServiceUnavailableError, toHttpError, type PodgateError } from '../shared/errors.ts';
import { listenError } from '../shared/config.ts';
import type { Logger } from '../shared/log.ts';
import type { RouteStore } from '../shared/route-store.ts';
import { createAdminApp } from './admin.ts';
import type { GatewayConfig } from './config.ts';
import { rawHttpError, renderError } from './error-page.ts';
import { prepareRequestHeaders, unwrapMappedAddress } from './forward-headers.ts';
import { createMetrics } from './metrics.ts';
import { createPodProxy } from './proxy.ts';
import { ASTERISK_OPTIONS_HEADERS, normaliseRequestTarget } from './request-target.ts';
import { resolveTarget, type Target } from './resolve.ts';
import { RouteTable } from './route-table.ts';
import { AccessGuard } from './access/guard.ts';
import { redactTarget, redactTokens } from './access/credentials.ts';
import { MemoryAccessStore, type AccessStore } from '../shared/access-store.ts';
import { UpstreamPool } from './upstream-pool.ts';
import { WebSocketTunnels } from './websockets.ts';

export interface GatewayDeps {
  store: RouteStore;
  log: Logger;
  /** Runs before routing; returns true when it answered the request itself (ACME challenges, redirects). */
  intercept?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Extra admin routes. */
  mountAdmin?: (app: Hono) => void;
  /** Skip the admin listener (worker processes share the primary's). */
  noAdmin?: boolean;
  /** Access links and revocations (gateway/access); the embedded store when absent (pods stay private by default). */
  access?: AccessStore;
}

export interface RunningGateway {
  httpPort: number;
  adminPort: number | undefined;
  table: RouteTable;
  registry: Registry;
  handleRequest: (req: IncomingMessage, res: ServerResponse) => void;
  handleUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** CONNECT requests (HTTP/1.1 'connect'): always refused. */
  handleConnect: (req: IncomingMessage, socket: Duplex) => void;
  /** Stop accepting, let in-flight requests finish, close WebSockets with 1001; resolves when all is closed. */
  shutdown(deadlineMs?: number): Promise<void>;
}

/** Status recorded for requests whose client went away before the answer was complete (nginx's convention). */
const CLIENT_CLOSED = 499;
/** Node's default period for checking header deadlines; ours is shorter when HEADERS_TIMEOUT_MS is short. */
const NODE_CONNECTIONS_CHECK_MS = 30_000;
const MIN_CONNECTIONS_CHECK_MS = 100;
/** Header deadlines are overshot by at most this fraction of HEADERS_TIMEOUT_MS. */
const CHECKS_PER_HEADERS_TIMEOUT = 4;

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

export async function startGateway(config: GatewayConfig, deps: GatewayDeps): Promise<RunningGateway> {
  const { log, store } = deps;
  const pool = new UpstreamPool(config.UPSTREAM_MAX_FREE_SOCKETS);
  const table = new RouteTable(store, {
    resyncIntervalMs: config.ROUTE_RESYNC_INTERVAL_MS,
    log,
    onChange: (slug) => pool.retire(slug),
  });
  const access = new AccessGuard(config, { store: deps.access ?? new MemoryAccessStore(), log, lookup: (slug) => table.lookup(slug) });
  const metrics = createMetrics({ routeCount: () => table.size, lastSyncAt: () => table.lastSyncAt });
  const tunnels = new WebSocketTunnels((delta) => metrics.websocketsOpen.inc(delta));
  let closing = false;

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

  function answerError(err: unknown, req: IncomingMessage, res: ServerResponse | Duplex): void {
    const answer = renderError(toHttpError(err), req.headers.accept);
    if ('writeHead' in res) {
      if (res.headersSent) {
        res.destroy(); // the pod failed mid-response: cut the stream rather than append an error to it
        return;
      }
      res.writeHead(answer.status, { ...answer.headers, 'content-length': Buffer.byteLength(answer.body) });
      res.end(req.method === 'HEAD' ? undefined : answer.body);
    } else if (res.writable) {
      res.end(rawHttpError(answer));
    } else {
      res.destroy();
    }
  }

  function forwardContext(req: IncomingMessage, upgrade: boolean, target: Target) {
    const remoteAddress = unwrapMappedAddress(req.socket.remoteAddress);
    return {
      remoteAddress,
      trustedPeer: remoteAddress !== '' && config.trustedProxies.check(remoteAddress, remoteAddress.includes(':') ? 'ipv6' : 'ipv4'),
      proto: (req.socket as TLSSocket).encrypted ? ('https' as const) : ('http' as const),
      port: req.socket.localPort ?? 0,
      upgrade,
      routerKey: target.route.routerKey,
    };
  }

  function resolve(req: IncomingMessage): Target {
    return resolveTarget(req.headers.host, config.baseDomains, (slug) => table.lookup(slug), config.RETRY_AFTER_SECONDS);
  }

  /**
   * The one log line of a request: its access line, which carries the reason when the pod failed (`err`: the
   * answer's code, `reason`: what happened). A separate warning per failure doubled the lines, and a dead pod under
   * load became a warning storm. With ACCESS_LOG off, failures are logged at debug only, for the same reason;
   * podgate_http_requests_total counts them either way. Tokens never reach the log: the path and host go through
   * the access guard's redaction (a refused or redirected request still carries the client's token).
   */
  function record(req: IncomingMessage, status: number, pod: string, started: number, failure?: PodgateError): void {
    const seconds = (performance.now() - started) / 1000;
    metrics.requests.inc({ status: String(status), pod });
    metrics.duration.observe({ status_class: `${Math.floor(status / 100)}xx` }, seconds);
    if (!config.ACCESS_LOG && !failure) return;
    const host = req.headers.host === undefined ? undefined : redactTokens(req.headers.host);
    const line = { method: req.method, host, path: req.url === undefined ? undefined : redactTarget(req.url).slice(0, 200), status, pod, ms: Math.round(seconds * 1000) };
    if (!failure) log.info(line, 'request');
    else if (config.ACCESS_LOG) log.info({ ...line, err: failure.code, reason: failure.message }, 'request');
    else log.debug({ ...line, err: failure.code, reason: failure.message }, 'upstream error');
  }

  function handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    let pod = '-';
    let failure: PodgateError | undefined;
    // Unfinished: the client went away (499), unless the pod broke off its response (its status, with the reason).
    res.once('close', () => record(req, res.writableFinished || failure ? res.statusCode : CLIENT_CLOSED, pod, started, failure));
    if (closing) res.shouldKeepAlive = false;
    // First of all: one authority and an origin-form target, which everything below reads.
    try {
      if (normaliseRequestTarget(req) === 'asterisk') {
        res.writeHead(200, ASTERISK_OPTIONS_HEADERS);
        res.end();
        return;
      }
    } catch (err) {
      answerError(err, req, res);
      return;
    }
    if (deps.intercept?.(req, res)) return;
    let target: Target;
    try {
      target = resolve(req);
    } catch (err) {
      if (!access.concealRequest(err, req, res)) answerError(err, req, res);
      return;
    }
    pod = target.slug;
    if (access.guardRequest(req, res, target)) return;
    prepareRequestHeaders(req.headers, forwardContext(req, false, target));
    proxy.web(req, res, target, (err) => {
      failure = err;
      answerError(err, req, res);
    });
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // An error handler before anything else: a reset client socket must never become an uncaught exception.
    socket.on('error', () => {});
    const started = performance.now();
    let target: Target;
    try {
      if (normaliseRequestTarget(req) === 'asterisk') throw new InvalidRequestTargetError('OPTIONS * is not upgraded');
      if (closing) throw new ServiceUnavailableError('the gateway is shutting down');
      target = resolve(req);
    } catch (err) {
      const concealed = access.concealUpgrade(err, req, socket);
      if (concealed === undefined) answerError(err, req, socket);
      void Promise.resolve(concealed ?? toHttpError(err).status).then((status) => record(req, status, '-', started));
      return;
    }
    // The access check comes first: what the gateway does not proxy is refused to a client without a token exactly
    // like everything else, so `Upgrade: foo` cannot tell a running private pod from an unknown one.
    const refused = access.guardUpgrade(req, socket, target);
    if (refused !== undefined) {
      void Promise.resolve(refused).then((status) => record(req, status, target.slug, started));
      return;
    }
    if (req.headers.upgrade?.toLowerCase() !== 'websocket' || req.method !== 'GET') {
      const answer = renderError({ status: 400, code: 'unsupported_upgrade', message: 'only WebSocket upgrades (GET) are proxied', headers: {} }, req.headers.accept);
      socket.end(rawHttpError(answer)); // the connection slot the guard took is released when the socket closes
      record(req, 400, target.slug, started);
      return;
    }
    prepareRequestHeaders(req.headers, forwardContext(req, true, target));
    // Recorded once the pod has answered (or failed, or the client left), so the line says what really happened.
    proxy.ws(req, socket, head, target, {
      answered: (status, invalid) => record(req, status, target.slug, started, invalid),
      failed: (err) => {
        answerError(err, req, socket);
        record(req, err.status, target.slug, started, err);
      },
      abandoned: () => record(req, CLIENT_CLOSED, target.slug, started),
    });
  }

  /**
   * CONNECT (authority-form) over HTTP/1.1: node:http hands it here, not to 'request'. The gateway is no forward
   * proxy: a precise 400, where without a listener node:http would drop the connection without a word.
   */
  function handleConnect(req: IncomingMessage, socket: Duplex): void {
    socket.on('error', () => {});
    const started = performance.now();
    const err = new InvalidRequestTargetError('CONNECT is not served: this is not a forward proxy');
    answerError(err, req, socket);
    record(req, err.status, '-', started);
  }

  const server = createServer({
    headersTimeout: config.HEADERS_TIMEOUT_MS,
    // No whole-request deadline: it would cut long uploads and streams. Slowloris is bounded by headersTimeout.
    requestTimeout: 0,
    // Node enforces headersTimeout only when it sweeps its connections, every 30 s by default: a silent or dripping
    // client kept its socket up to 30 s past the deadline. Sweep a few times per deadline instead.
    connectionsCheckingInterval: Math.min(
      NODE_CONNECTIONS_CHECK_MS,
      Math.max(MIN_CONNECTIONS_CHECK_MS, Math.ceil(config.HEADERS_TIMEOUT_MS / CHECKS_PER_HEADERS_TIMEOUT)),
    ),
    keepAliveTimeout: config.CLIENT_KEEPALIVE_MS,
  });
  server.on('request', handleRequest);
  server.on('upgrade', handleUpgrade);
  server.on('connect', handleConnect);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Malformed requests from clients: a precise status when the socket can still take one, never a crash.
    if (!socket.writable || (err.code === 'ECONNRESET')) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const text = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
    socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain\r\ncontent-length: ${text.length + 1}\r\nconnection: close\r\n\r\n${text}\n`);
  });

  await Promise.all([table.start(), access.start()]);
  let httpPort: number;
  let admin: ServerType | undefined;
  let adminPort: number | undefined;
  try {
    httpPort = await listen(server, config.HTTP_PORT, config.HTTP_HOST, { host: 'HTTP_HOST', port: 'HTTP_PORT' });
    if (!deps.noAdmin) {
      const app = createAdminApp({ ready: () => table.ready && !closing, registry: metrics.registry, mount: deps.mountAdmin });
      admin = await new Promise<ServerType>((resolveAdmin, reject) => {
        const s = serve({ fetch: app.fetch, port: config.ADMIN_PORT, hostname: config.ADMIN_HOST }, () => resolveAdmin(s));
        s.once('error', (err: NodeJS.ErrnoException) =>
          reject(listenError(err, config.ADMIN_HOST, config.ADMIN_PORT, { host: 'ADMIN_HOST', port: 'ADMIN_PORT' })),
        );
      });
      adminPort = (admin.address() as AddressInfo).port;
    }
  } catch (err) {
    // Leave nothing behind for an embedding process (or a test) that carries on.
    server.close();
    pool.close();
    await Promise.all([table.close(), access.close()]);
    throw err;
  }
  log.info({ httpPort, adminPort, routes: table.size, baseDomains: config.baseDomains }, 'gateway listening');

  async function shutdown(deadlineMs = config.SHUTDOWN_TIMEOUT_MS): Promise<void> {
    if (closing) return;
    closing = true;
    log.info({ inFlightWebSockets: tunnels.size }, 'gateway shutting down');
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    const tunnelsClosed = tunnels.closeAll(Math.min(deadlineMs, 2000));
    const deadline = setTimeout(() => server.closeAllConnections(), deadlineMs);
    await Promise.all([closed, tunnelsClosed]);
    clearTimeout(deadline);
    proxy.close();
    pool.close();
    await Promise.all([table.close(), access.close()]);
    if (admin) await new Promise<void>((r) => admin!.close(() => r()));
  }

  return { httpPort, adminPort, table, registry: metrics.registry, handleRequest, handleUpgrade, handleConnect, shutdown };
}

