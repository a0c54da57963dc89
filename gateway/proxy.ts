// Proxying to pods with http-proxy-3: HTTP with per-generation keep-alive pools, WebSocket upgrades, timeouts,
// and the translation of socket errors into typed errors. Knows nothing about route tables or Redis: callers
// hand it a resolved Target.
import type { IncomingMessage, ServerResponse, ClientRequest } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { createProxyServer } from 'http-proxy-3';
import { PodgateError, UpstreamTimeoutError, UpstreamUnreachableError } from '../shared/errors.ts';
import { prepareResponseHeaders } from './forward-headers.ts';
import type { Target } from './resolve.ts';
import type { UpstreamPool } from './upstream-pool.ts';

export interface ProxyOptions {
  connectTimeoutMs: number;
  responseTimeoutMs: number;
  wsIdleTimeoutMs: number;
}

export interface ProxyHooks {
  /** An upstream failure that deserves an answer (never called for client aborts). */
  onError(err: PodgateError, req: IncomingMessage, res: ServerResponse | Duplex): void;
  onWebSocketOpen(client: Duplex, upstream: Socket): void;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);
const TIMED_OUT = new Set(['ECONNECT_TIMEOUT', 'ETIMEDOUT']);
/** Methods that may be sent again when a pooled socket turns out to be dead (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Map a socket-level error to what the user is told. */
export function upstreamError(err: unknown): PodgateError {
  if (err instanceof PodgateError) return err;
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  if (TIMED_OUT.has(code)) return new UpstreamTimeoutError('connection timed out');
  if (UNREACHABLE.has(code)) return new UpstreamUnreachableError(code === 'ECONNREFUSED' ? 'connection refused' : code);
  return new UpstreamUnreachableError((err as Error)?.message ?? 'unknown error');
}

interface RequestState {
  reusedSocket: boolean;
  retried: boolean;
  target: Target;
}
const states = new WeakMap<IncomingMessage, RequestState>();

function targetUrl(target: Target) {
  return { protocol: 'http:', host: target.route.host, port: target.route.port };
}

/**
 * UPSTREAM_RESPONSE_TIMEOUT_MS bounds how long the gateway waits on the pod, never on the client: the clock runs
 * once the whole request has been sent, and during an upload only while the pod is not reading it (backpressure).
 * A slow client upload, however long, and a long stream after the response head are never cut.
 */
function armResponseDeadline(proxyReq: ClientRequest, req: IncomingMessage, timeoutMs: number): void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (timer) return;
    timer = setTimeout(() => proxyReq.destroy(new UpstreamTimeoutError(`no response within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  };
  const disarm = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  // Runs after http-proxy-3's pipe has handed the piece on (it piped req into proxyReq before emitting proxyReq).
  const onData = () => (proxyReq.writableNeedDrain ? arm() : disarm());
  const onDrain = () => {
    if (!proxyReq.writableFinished) disarm();
  };
  req.on('data', onData);
  proxyReq.on('drain', onDrain);
  if (proxyReq.writableFinished) arm();
  else proxyReq.once('finish', arm);
  const stop = () => {
    disarm();
    req.off('data', onData);
    proxyReq.off('drain', onDrain);
    proxyReq.off('finish', arm);
  };
  proxyReq.once('response', stop);
  proxyReq.once('close', stop);
}

export function createPodProxy(pool: UpstreamPool, options: ProxyOptions, hooks: ProxyHooks) {
  const proxy = createProxyServer({ xfwd: false, ws: true, connectTimeout: options.connectTimeoutMs });

  proxy.on('proxyReq', (proxyReq: ClientRequest, req: IncomingMessage) => {
    const state = states.get(req);
    if (state) state.reusedSocket = proxyReq.reusedSocket;
    if (options.responseTimeoutMs > 0) armResponseDeadline(proxyReq, req, options.responseTimeoutMs);
  });

  proxy.on('proxyRes', (proxyRes: IncomingMessage, _req: IncomingMessage, res: ServerResponse) => {
    prepareResponseHeaders(proxyRes.headers);
    // http-proxy-3 would otherwise echo the (already stripped) client Connection header.
    proxyRes.headers.connection = res.shouldKeepAlive ? 'keep-alive' : 'close';
  });

  proxy.on('proxyReqWs', (proxyReq: ClientRequest, _req: IncomingMessage, client: Duplex) => {
    proxyReq.once('upgrade', (_res: IncomingMessage, upstream: Socket) => hooks.onWebSocketOpen(client, upstream));
  });

  if (options.wsIdleTimeoutMs > 0) {
    // Armed on 'open', once http-proxy-3 has set the upstream socket up: its setupSocket() calls setTimeout(0),
    // which silently cancelled a timer set earlier (in our 'upgrade' listener, which runs before its own).
    // Any traffic either way through the tunnel is activity on this socket.
    proxy.on('open', (upstream: Socket) => upstream.setTimeout(options.wsIdleTimeoutMs, () => upstream.destroy()));
  }

  // A client that went away is not an upstream failure: http-proxy-3 reports it here; nothing to answer.
  proxy.on('econnreset', () => {});
  // Errors of a WebSocket client's socket (a reset tab, a NAT drop) are re-emitted here, and http-proxy-3 throws
  // them when nobody listens: one such client would take the whole process down. Upstream failures reach the
  // callbacks given to web() and ws(), so what arrives here is the client's own socket ending: nothing to answer.
  proxy.on('error', () => {});

  function web(req: IncomingMessage, res: ServerResponse, target: Target): void {
    states.set(req, { reusedSocket: false, retried: false, target });
    send(req, res, target);
  }

  function send(req: IncomingMessage, res: ServerResponse, target: Target): void {
    proxy.web(req, res, { target: targetUrl(target), agent: pool.agentFor(target.route) }, (err: Error) => {
      if (res.destroyed || req.socket.destroyed) return; // client abort
      const state = states.get(req);
      const code = (err as NodeJS.ErrnoException).code;
      // A pooled socket the pod closed just as we reused it: send an idempotent request once more.
      if (state && state.reusedSocket && !state.retried && !res.headersSent && IDEMPOTENT.has(req.method ?? '') &&
          (code === 'ECONNRESET' || code === 'EPIPE')) {
        state.retried = true;
        state.reusedSocket = false;
        send(req, res, state.target);
        return;
      }
      hooks.onError(upstreamError(err), req, res);
    });
  }

  function ws(req: IncomingMessage, socket: Duplex, head: Buffer, target: Target): void {
    proxy.ws(req, socket, head, { target: targetUrl(target) }, (err: Error) => {
      if (socket.destroyed) return;
      hooks.onError(upstreamError(err), req, socket);
    });
  }

  return { web, ws, close: () => proxy.close() };
}

export type PodProxy = ReturnType<typeof createPodProxy>;
