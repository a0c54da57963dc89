// Proxying to pods: HTTP through node:http with per-generation keep-alive pools, WebSocket upgrades through
// http-proxy-3, timeouts, and the translation of socket errors into typed errors. Knows nothing about route tables or Redis: callers
// hand it a resolved Target.
import { request, STATUS_CODES, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { constants as http2Constants, type Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { createProxyServer } from 'http-proxy-3';
import { PodgateError, UpstreamInvalidResponseError, UpstreamTimeoutError, UpstreamUnreachableError } from '../shared/errors.ts';
import { finalStatusProblem, prepareResponseHeaders, withoutPseudoHeaders } from './forward-headers.ts';
import type { Target } from './resolve.ts';
import type { UpstreamPool } from './upstream-pool.ts';

export interface ProxyOptions {
  connectTimeoutMs: number;
  responseTimeoutMs: number;
  wsIdleTimeoutMs: number;
}

export interface ProxyHooks {
  onWebSocketOpen(client: Duplex, upstream: Socket): void;
}

/**
 * An upstream failure: the caller answers it, or, when the pod broke off a response already under way, only records
 * it (the stream is cut). Never called for client aborts.
 */
export type UpstreamFailure = (err: PodgateError) => void;

/** How one WebSocket upgrade ended: exactly one of these is called, once, so it can write the one access line. */
export interface UpgradeOutcome {
  /**
   * The pod answered: 101 (the tunnel is open) or the status of its plain HTTP refusal, relayed with the standard
   * reason phrase; or 502 with `invalid` when that refusal was not valid HTTP (the client got a bodiless 502).
   */
  answered(status: number, invalid?: PodgateError): void;
  /** The pod failed before answering: the caller answers the client with `err`. */
  failed(err: PodgateError): void;
  /** The client went away before the pod answered; the pod's request is torn down. */
  abandoned(): void;
}

/**
 * Passes on the first outcome of an upgrade only. http-proxy-3 reports errors of the tunnel after the 101 to the
 * same callback as failures before it; those are the tunnel ending, not an outcome, and must not be answered (an
 * HTTP error written into a WebSocket stream) nor logged as a second line.
 */
class FirstOutcome implements UpgradeOutcome {
  private settled = false;
  private readonly outcome: UpgradeOutcome;
  constructor(outcome: UpgradeOutcome) {
    this.outcome = outcome;
  }
  answered(status: number, invalid?: PodgateError): void {
    if (this.settle()) this.outcome.answered(status, invalid);
  }
  failed(err: PodgateError): void {
    if (this.settle()) this.outcome.failed(err);
  }
  abandoned(): void {
    if (this.settle()) this.outcome.abandoned();
  }
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    return true;
  }
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

/**
 * The pod failed after its response head went out: cut the client's stream rather than append an error to it, and
 * say why (the access line keeps the pod's status with this reason; without it the cut reads as a client abort).
 */
function cutMidResponse(res: ServerResponse, err: Error, onFailure: UpstreamFailure): void {
  // An HTTP/2 stream ended without an error code reads as a complete response: reset it with one.
  (res as unknown as Partial<Http2ServerResponse>).stream?.close(http2Constants.NGHTTP2_INTERNAL_ERROR);
  onFailure(new UpstreamUnreachableError(`the pod's response broke off: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
  res.destroy();
}

/**
 * Write the client's response head from a checked pod response: the status with its standard reason phrase (the
 * pod's own is never relayed), the checked headers. Returns what went wrong if the head could not be written
 * (node:http and node:http2 throw on what they refuse), leaving the response clean for the 502.
 */
function writeHead(res: ServerResponse, proxyRes: IncomingMessage): string | undefined {
  try {
    res.writeHead(proxyRes.statusCode!, proxyRes.headers);
    return undefined;
  } catch (err) {
    if (!res.headersSent) for (const name of res.getHeaderNames()) res.removeHeader(name);
    return `its response head was refused (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
}

function targetUrl(target: Target) {
  return { protocol: 'http:', host: target.route.host, port: target.route.port };
}

/** Give up on a pod that does not accept the connection in time (a SYN into the void). */
function armConnectTimeout(socket: Socket, timeoutMs: number): void {
  const timer = setTimeout(() => socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ECONNECT_TIMEOUT' })), timeoutMs);
  timer.unref();
  const clear = () => clearTimeout(timer);
  socket.once('connect', clear);
  socket.once('close', clear);
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
  // Registered after req was piped into proxyReq, so it runs once the pipe has handed the piece on.
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

/**
 * UPSTREAM_RESPONSE_TIMEOUT_MS for a WebSocket upgrade: from the request sent to the pod's answer (101 or a
 * refusal). A pod that accepted the connection and never answered left the client waiting forever. The timer
 * destroys the pod's request and socket; the error reaches ws()'s callback, which answers 504. The tunnel after a
 * 101 is not timed here (WS_IDLE_TIMEOUT_MS is its own setting).
 */
function armUpgradeDeadline(proxyReq: ClientRequest, timeoutMs: number): void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => proxyReq.destroy(new UpstreamTimeoutError(`no answer to the WebSocket upgrade within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  };
  const stop = () => {
    clearTimeout(timer);
    proxyReq.off('finish', arm);
  };
  proxyReq.once('finish', arm);
  proxyReq.once('upgrade', stop);
  proxyReq.once('response', stop);
  proxyReq.once('close', stop);
}

export function createPodProxy(pool: UpstreamPool, options: ProxyOptions, hooks: ProxyHooks) {
  const proxy = createProxyServer({ xfwd: false, ws: true, connectTimeout: options.connectTimeoutMs });

  /** Upgrades on their way to the pod, by request: proxyReqWs hands over the client's request, not our ws() call. */
  const upgrading = new WeakMap<IncomingMessage, FirstOutcome>();

  // Our listeners on proxyReq run before http-proxy-3's own (it adds them after emitting proxyReqWs), so header
  // changes made here are what it writes to the client, for a 101 and for a pod's plain refusal alike.
  proxy.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage, client: Duplex) => {
    const outcome = upgrading.get(req);
    upgrading.delete(req);
    // A client that resets its connection while waiting frees the pod's side now, not when (or if) the pod answers.
    // One that only half-closes goes unseen (its socket is not read before the answer): the response timeout ends it.
    const onClientClose = () => {
      outcome?.abandoned();
      proxyReq.destroy();
    };
    client.once('close', onClientClose);
    if (options.responseTimeoutMs > 0) armUpgradeDeadline(proxyReq, options.responseTimeoutMs);
    proxyReq.once('upgrade', (res: IncomingMessage, upstream: Socket) => {
      client.off('close', onClientClose);
      const problem = res.headers.upgrade?.toLowerCase() === 'websocket' ? prepareResponseHeaders(res.headers, true) : '101 to a protocol other than websocket';
      if (problem !== undefined) {
        // The 502 goes out and the client's socket ends here, before http-proxy-3's own listener writes its 101:
        // that write then fails on the ended socket (an error its listeners swallow), and with the pod's socket
        // gone nothing is piped, so nothing opens.
        upstream.destroy();
        outcome?.failed(new UpstreamInvalidResponseError(problem));
        return;
      }
      outcome?.answered(101);
      hooks.onWebSocketOpen(client, upstream);
    });
    proxyReq.once('response', (res: IncomingMessage) => {
      client.off('close', onClientClose);
      const problem = finalStatusProblem(res.statusCode, res.httpVersionMajor) ?? prepareResponseHeaders(res.headers);
      if (problem === undefined) {
        // http-proxy-3 writes this status line itself, with the pod's reason phrase: the standard one replaces it.
        res.statusMessage = STATUS_CODES[res.statusCode!] ?? 'unknown';
        outcome?.answered(res.statusCode!);
        return;
      }
      // A refusal the gateway does not relay: http-proxy-3 writes a bodiless 502 head from what is left here; the
      // pod's body stays paused (never written), and the client's connection ends once that head is out.
      res.statusCode = 502;
      res.statusMessage = STATUS_CODES[502]!;
      res.headers = { 'content-length': '0', connection: 'close' };
      res.pause();
      setImmediate(() => {
        client.end();
        proxyReq.destroy();
      });
      outcome?.answered(502, new UpstreamInvalidResponseError(problem));
    });
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

  function web(req: IncomingMessage, res: ServerResponse, target: Target, onFailure: UpstreamFailure): void {
    forward(req, res, target, onFailure, false);
  }

  /**
   * Plain HTTP goes through node:http directly rather than proxy.web(): the same steps with fewer per-request
   * objects and listeners, measured at +20-26% requests per CPU-second (BENCHMARKS.md). Streams are piped both
   * ways, so backpressure holds and nothing is buffered.
   */
  function forward(req: IncomingMessage, res: ServerResponse, target: Target, onFailure: UpstreamFailure, retried: boolean): void {
    const proxyReq = request({
      host: target.route.host,
      port: target.route.port,
      method: req.method,
      path: req.url,
      headers: req.httpVersionMajor >= 2 ? withoutPseudoHeaders(req.headers) : req.headers,
      agent: pool.agentFor(target.route),
      setHost: false,
    });
    let reusedSocket = false;
    /** Set once the pod's answer is refused: the 502 is the one outcome, later errors of its request are not. */
    let refused = false;
    /** The pod's response once its head has arrived. */
    let pending: IncomingMessage | undefined;
    const refuse = (problem: string) => {
      refused = true;
      proxyReq.destroy();
      if (!res.destroyed) onFailure(new UpstreamInvalidResponseError(problem));
    };
    proxyReq.on('socket', (socket: Socket) => {
      reusedSocket = proxyReq.reusedSocket;
      if (socket.connecting && options.connectTimeoutMs > 0) armConnectTimeout(socket, options.connectTimeoutMs);
    });
    proxyReq.on('error', (err: NodeJS.ErrnoException) => {
      if (refused || res.destroyed || req.socket.destroyed) return; // refused, or a client abort
      if (res.headersSent) {
        // Bytes after a complete response (a 204 with a body, junk after the last chunk) break the pod's connection,
        // not this response: it is relayed whole.
        if (!pending?.complete) cutMidResponse(res, err, onFailure);
        return;
      }
      // A pooled socket the pod closed just as we reused it: send an idempotent request once more.
      if (reusedSocket && !retried && IDEMPOTENT.has(req.method ?? '') && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        forward(req, res, target, onFailure, true);
        return;
      }
      onFailure(upstreamError(err));
    });
    proxyReq.on('response', (proxyRes: IncomingMessage) => {
      pending = proxyRes;
      // RFC 9110 8.6: no Content-Length on a 204 (HTTP/2 clients reset such a stream as malformed).
      if (proxyRes.statusCode === 204) delete proxyRes.headers['content-length'];
      const problem = finalStatusProblem(proxyRes.statusCode, proxyRes.httpVersionMajor) ?? prepareResponseHeaders(proxyRes.headers) ?? writeHead(res, proxyRes);
      if (problem !== undefined) {
        refuse(problem);
        return;
      }
      proxyRes.on('error', (err) => {
        if (!res.destroyed) cutMidResponse(res, err, onFailure);
      });
      proxyRes.pipe(res);
    });
    // A 101 to a request that asked for no upgrade: the pod's socket is handed over here and closed; nothing opens.
    proxyReq.on('upgrade', (_proxyRes: IncomingMessage, upstream: Socket) => {
      upstream.destroy();
      refuse('101 Switching Protocols to a request that asked for no upgrade');
    });
    // The client went away before the answer was complete: tear the pod's request down too.
    res.once('close', () => {
      if (!res.writableFinished) proxyReq.destroy();
    });
    req.on('error', () => proxyReq.destroy());
    req.pipe(proxyReq);
    if (options.responseTimeoutMs > 0) armResponseDeadline(proxyReq, req, options.responseTimeoutMs);
  }

  function ws(req: IncomingMessage, socket: Duplex, head: Buffer, target: Target, outcome: UpgradeOutcome): void {
    const first = new FirstOutcome(outcome);
    upgrading.set(req, first);
    proxy.ws(req, socket, head, { target: targetUrl(target) }, (err: Error) => {
      // A client already gone is reported by its 'close' (abandoned), with nobody left to answer.
      if (!socket.destroyed) first.failed(upstreamError(err));
    });
  }

  return { web, ws, close: () => proxy.close() };
}

export type PodProxy = ReturnType<typeof createPodProxy>;
