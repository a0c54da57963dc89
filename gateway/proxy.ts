// Proxying to pods: HTTP through undici with per-generation keep-alive pools, WebSocket upgrades through
// http-proxy-3, timeouts, and the translation of socket errors into typed errors. Knows nothing about route tables
// or Redis: callers hand it a resolved Target.
import { STATUS_CODES, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { constants as http2Constants, type Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { createProxyServer } from 'http-proxy-3';
import type { Dispatcher } from 'undici';
import { PodgateError, UpstreamInvalidResponseError, UpstreamTimeoutError, UpstreamUnreachableError } from '../shared/errors.ts';
import { finalStatusProblem, prepareResponseHeaders } from './forward-headers.ts';
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
 * A pooled connection the pod closed just as it was reused: the error an idempotent request without a body may be
 * sent again for, once. A connection reset, or a close on a socket that had carried earlier answers.
 */
function staleSocket(err: Error & { code?: string; socket?: { bytesRead?: number } }): boolean {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return true;
  return err.code === 'UND_ERR_SOCKET' && (err.socket?.bytesRead ?? 0) > 0;
}

/** undici's own errors, as the user is told them. */
function dispatchError(err: Error & { code?: string }, responseTimeoutMs: number): PodgateError {
  if (err.code === 'UND_ERR_HEADERS_TIMEOUT') return new UpstreamTimeoutError(`no response within ${responseTimeoutMs} ms`);
  if (err.code === 'UND_ERR_CONNECT_TIMEOUT') return new UpstreamTimeoutError('connection timed out');
  return upstreamError(err);
}

/**
 * The headers to send to the pod, as undici takes them: name/value pairs, without HTTP/2 pseudo-headers, and without
 * what undici frames or refuses itself: Transfer-Encoding (it chunks a body of unknown length) and Expect (node:http
 * already answered the client's 100-continue; the pod gets the body as it comes).
 */
function upstreamHeaders(headers: IncomingHttpHeaders): string[] {
  const pairs: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 0x3a /* : */ || name === 'transfer-encoding' || name === 'expect') continue;
    if (typeof value === 'string') pairs.push(name, value);
    else for (const item of value) pairs.push(name, item);
  }
  return pairs;
}

/**
 * Whether the client's request has a body: HTTP/1.1 says so in its head (a Content-Length other than 0, or
 * Transfer-Encoding); an HTTP/2 request unless its HEADERS frame ended the stream.
 */
function hasBody(req: IncomingMessage): boolean {
  if (req.httpVersionMajor >= 2) return !(req as unknown as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * One request to a pod on undici's dispatcher API. UPSTREAM_RESPONSE_TIMEOUT_MS is undici's headersTimeout, which
 * bounds the wait on the pod and never on the client: it counts from the request sent, restarts with every piece of
 * body written, and does not fire while a body is being written unless the pod has stopped reading it
 * (backpressure). There is no body timeout: a long stream after the head is never cut.
 */
class HttpForward implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  /** The pod's response head went out to the client. */
  private started = false;
  /** The answer is settled (refused, failed, or complete): later errors of the pod's request are not outcomes. */
  private settled = false;
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private readonly target: Target;
  private readonly onFailure: UpstreamFailure;
  private readonly pool: UpstreamPool;
  private readonly responseTimeoutMs: number;
  private readonly retried: boolean;
  /**
   * The client's request, read by undici, which destroys it once read: an HTTP/1.1 request after detaching the
   * client's socket from it, an HTTP/2 one without touching its stream (proxy.test.ts uploads over both).
   */
  private readonly body: IncomingMessage | null;

  constructor(req: IncomingMessage, res: ServerResponse, target: Target, onFailure: UpstreamFailure, pool: UpstreamPool, responseTimeoutMs: number, retried: boolean) {
    this.req = req;
    this.res = res;
    this.target = target;
    this.onFailure = onFailure;
    this.pool = pool;
    this.responseTimeoutMs = responseTimeoutMs;
    this.retried = retried;
    this.body = hasBody(req) ? req : null;
  }

  start(): void {
    // The client went away before the answer was complete: tear the pod's request down too.
    this.res.once('close', this.onClientClose);
    this.pool.poolFor(this.target.route).dispatch(
      {
        path: this.req.url!,
        method: this.req.method!,
        headers: upstreamHeaders(this.req.headers),
        body: this.body,
        headersTimeout: this.responseTimeoutMs,
        bodyTimeout: 0,
        // undici closes the connection after every HEAD by default (for servers that send a body anyway); a pod
        // that does only spoils its own next answer on that connection, as with any client.
        reset: false,
      },
      this,
    );
  }

  private readonly onClientClose = (): void => {
    if (!this.res.writableFinished && !this.settled) {
      this.settled = true;
      this.controller?.abort(new Error('the client went away'));
    }
  };

  private readonly onDrain = (): void => this.controller?.resume();

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled || this.res.destroyed) controller.abort(new Error('the client went away'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    // 1xx heads are the pod's business with the gateway, never relayed (101 arrives as onRequestUpgrade).
    if (status >= 100 && status < 200) return;
    // RFC 9110 8.6: no Content-Length on a 204 (HTTP/2 clients reset such a stream as malformed).
    if (status === 204) delete headers['content-length'];
    const problem = finalStatusProblem(status) ?? prepareResponseHeaders(headers) ?? writeHead(this.res, status, headers);
    if (problem !== undefined) {
      this.refuse(controller, problem);
      return;
    }
    this.started = true;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', this.onDrain);
    }
  }

  onResponseEnd(): void {
    this.settled = true;
    this.res.end();
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, _status: number, _headers: IncomingHttpHeaders, socket: Duplex): void {
    // A 101 to a request that asked for no upgrade (undici refuses those itself; this is the second line).
    socket.destroy();
    this.refuse(controller, '101 Switching Protocols to a request that asked for no upgrade');
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error & { code?: string }): void {
    if (this.settled || this.res.destroyed) return; // settled, or a client abort
    this.settled = true;
    if (this.started) {
      cutMidResponse(this.res, err, this.onFailure);
      return;
    }
    if (!this.retried && this.body === null && IDEMPOTENT.has(this.req.method!) && staleSocket(err)) {
      this.res.off('close', this.onClientClose);
      new HttpForward(this.req, this.res, this.target, this.onFailure, this.pool, this.responseTimeoutMs, true).start();
      return;
    }
    this.onFailure(dispatchError(err, this.responseTimeoutMs));
  }

  /** The pod's answer is not relayed: its request is torn down and the client gets one 502. */
  private refuse(controller: Dispatcher.DispatchController, problem: string): void {
    this.settled = true;
    const err = new UpstreamInvalidResponseError(problem);
    controller.abort(err);
    if (!this.res.destroyed) this.onFailure(err);
  }
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
function writeHead(res: ServerResponse, status: number, headers: IncomingHttpHeaders): string | undefined {
  try {
    res.writeHead(status, headers);
    return undefined;
  } catch (err) {
    if (!res.headersSent) for (const name of res.getHeaderNames()) res.removeHeader(name);
    return `its response head was refused (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
}

function targetUrl(target: Target) {
  return { protocol: 'http:', host: target.route.host, port: target.route.port };
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

  pool.setConnectTimeout(options.connectTimeoutMs);

  /**
   * Plain HTTP goes through undici's dispatcher API with one handler object per request: no ClientRequest, no
   * pipe, no per-request listeners on the pod's side (BENCHMARKS.md). Both directions stream with backpressure.
   */
  function web(req: IncomingMessage, res: ServerResponse, target: Target, onFailure: UpstreamFailure): void {
    new HttpForward(req, res, target, onFailure, pool, options.responseTimeoutMs, false).start();
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
