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

export function createPodProxy(pool: UpstreamPool, options: ProxyOptions, hooks: ProxyHooks) {
  const proxy = createProxyServer({ xfwd: false, ws: true, connectTimeout: options.connectTimeoutMs });

  proxy.on('proxyReq', (proxyReq: ClientRequest, req: IncomingMessage) => {
    const state = states.get(req);
    if (state) state.reusedSocket = proxyReq.reusedSocket;
    if (options.responseTimeoutMs > 0) {
      // Bounds the pod's silence before the response head, not the length of the exchange: every piece of
      // request body restarts the clock, so a long upload is never cut, while a pod that stops reading it
      // (backpressure pauses the body) or never answers still times out. A long stream after the head is never cut.
      const timer = setTimeout(
        () => proxyReq.destroy(new UpstreamTimeoutError(`no response within ${options.responseTimeoutMs} ms`)),
        options.responseTimeoutMs,
      );
      timer.unref();
      // Safe to listen: http-proxy-3 has already piped req into proxyReq when it emits proxyReq.
      const progress = () => timer.refresh();
      req.on('data', progress);
      const stop = () => {
        clearTimeout(timer);
        req.off('data', progress);
      };
      proxyReq.once('response', stop);
      proxyReq.once('close', stop);
    }
  });

  proxy.on('proxyRes', (proxyRes: IncomingMessage, _req: IncomingMessage, res: ServerResponse) => {
    prepareResponseHeaders(proxyRes.headers);
    // http-proxy-3 would otherwise echo the (already stripped) client Connection header.
    proxyRes.headers.connection = res.shouldKeepAlive ? 'keep-alive' : 'close';
  });

  proxy.on('proxyReqWs', (proxyReq: ClientRequest, _req: IncomingMessage, client: Duplex) => {
    proxyReq.once('upgrade', (_res: IncomingMessage, upstream: Socket) => {
      if (options.wsIdleTimeoutMs > 0) {
        upstream.setTimeout(options.wsIdleTimeoutMs, () => upstream.destroy());
      }
      hooks.onWebSocketOpen(client, upstream);
    });
  });

  // A client that went away is not an upstream failure: http-proxy-3 reports it here; nothing to answer.
  proxy.on('econnreset', () => {});

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
