// Proxying to pods: HTTP through undici with per-generation keep-alive pools, WebSocket upgrades on a connection
// of their own (websocket-upgrade.ts), timeouts, and the translation of socket errors into typed errors. Knows nothing about route tables
// or Redis: callers hand it a resolved Target.
import { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { constants as http2Constants, type Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import { PodgateError, UpstreamInvalidResponseError, UpstreamTimeoutError, UpstreamUnreachableError } from '../shared/errors.ts';
import { finalStatusProblem, responseHeaders } from './forward-headers.ts';
import type { Target } from './resolve.ts';
import type { UpstreamPool } from './upstream-pool.ts';
import { upgradeToPod, type UpgradeOutcome } from './websocket-upgrade.ts';

export type { UpgradeOutcome };

export interface ProxyOptions {
  connectTimeoutMs: number;
  responseTimeoutMs: number;
  wsIdleTimeoutMs: number;
}

export interface ProxyHooks {
  /** The 101 went out: relay both ways between the two sockets from now on. */
  onWebSocketOpen(client: Duplex, upstream: Socket): void;
}

/**
 * An upstream failure: the caller answers it, or, when the pod broke off a response already under way, only records
 * it (the stream is cut). Never called for client aborts.
 */
export type UpstreamFailure = (err: PodgateError) => void;

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

const kForward = Symbol('podgate.forward');
type ForwardedResponse = ServerResponse & { [kForward]?: HttpForward };

function onResponseClose(this: ForwardedResponse): void {
  this[kForward]?.clientClosed();
}

function onResponseDrain(this: ForwardedResponse): void {
  this[kForward]?.drained();
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
  /** The request's headers as the pod gets them (forward-headers.ts requestHeaders), as undici takes them. */
  private readonly headers: string[];
  /**
   * The client's request, read by undici, which destroys it once read: an HTTP/1.1 request after detaching the
   * client's socket from it, an HTTP/2 one without touching its stream (proxy.test.ts uploads over both).
   */
  private readonly body: IncomingMessage | null;

  constructor(req: IncomingMessage, res: ServerResponse, target: Target, headers: string[], onFailure: UpstreamFailure, pool: UpstreamPool, responseTimeoutMs: number, retried: boolean) {
    this.req = req;
    this.headers = headers;
    this.res = res;
    this.target = target;
    this.onFailure = onFailure;
    this.pool = pool;
    this.responseTimeoutMs = responseTimeoutMs;
    this.retried = retried;
    this.body = hasBody(req) ? req : null;
  }

  start(): void {
    // The client went away before the answer was complete: tear the pod's request down too. One shared listener
    // finds the request's forward on the response (a retry replaces it there): no closures per request.
    const res = this.res as ForwardedResponse;
    if (res[kForward] === undefined) res.on('close', onResponseClose);
    res[kForward] = this;
    this.pool.poolFor(this.target.route).dispatch(
      {
        path: this.req.url!,
        method: this.req.method!,
        headers: this.headers,
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

  /** The client's response closed. */
  clientClosed(): void {
    if (!this.res.writableFinished && !this.settled) {
      this.settled = true;
      this.controller?.abort(new Error('the client went away'));
    }
  }

  /** The client's response drained after a pause. */
  drained(): void {
    this.controller?.resume();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled || this.res.destroyed) controller.abort(new Error('the client went away'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    // 1xx heads are the pod's business with the gateway, never relayed (101 arrives as onRequestUpgrade).
    if (status >= 100 && status < 200) return;
    // RFC 9110 8.6: no Content-Length on a 204 (HTTP/2 clients reset such a stream as malformed).
    if (status === 204) delete headers['content-length'];
    const checked = finalStatusProblem(status) ?? responseHeaders(headers);
    const problem = typeof checked === 'string' ? checked : writeHead(this.res, status, checked);
    if (problem !== undefined) {
      this.refuse(controller, problem);
      return;
    }
    this.started = true;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', onResponseDrain);
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
      new HttpForward(this.req, this.res, this.target, this.headers, this.onFailure, this.pool, this.responseTimeoutMs, true).start();
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

export function createPodProxy(pool: UpstreamPool, options: ProxyOptions, hooks: ProxyHooks) {
  pool.setConnectTimeout(options.connectTimeoutMs);

  /**
   * Plain HTTP goes through undici's dispatcher API with one handler object per request: no ClientRequest, no
   * pipe, no per-request listeners on the pod's side (BENCHMARKS.md). Both directions stream with backpressure.
   */
  function web(req: IncomingMessage, res: ServerResponse, target: Target, headers: IncomingHttpHeaders, onFailure: UpstreamFailure): void {
    new HttpForward(req, res, target, upstreamHeaders(headers), onFailure, pool, options.responseTimeoutMs, false).start();
  }

  /** A WebSocket upgrade: the outcome is called once; a 101 hands both sockets to hooks.onWebSocketOpen. */
  function ws(req: IncomingMessage, socket: Duplex, head: Buffer, target: Target, headers: IncomingHttpHeaders, outcome: UpgradeOutcome): void {
    upgradeToPod({ req, headers, client: socket, head, host: target.route.host, port: target.route.port, outcome, open: hooks.onWebSocketOpen, toError: upstreamError }, options);
  }

  return { web, ws, close: () => {} };
}

export type PodProxy = ReturnType<typeof createPodProxy>;
