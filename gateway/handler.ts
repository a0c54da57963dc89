// The request handler: one function per kind of arrival (request, upgrade, CONNECT, malformed head), each walking
// the same path: request target -> intercept (TLS) -> resolve -> access guard -> proxy. It owns no server and no
// store; main.ts builds what it needs and listener.ts feeds it from every listener (HTTP, HTTPS, HTTP/2).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { InvalidRequestTargetError, ServiceUnavailableError, toHttpError, type PodgateError } from '../shared/errors.ts';
import type { AccessGuard } from './access/guard.ts';
import type { GatewayConfig } from './config.ts';
import { rawHttpError, renderError } from './error-page.ts';
import { prepareRequestHeaders, unwrapMappedAddress } from './forward-headers.ts';
import type { PodProxy } from './proxy.ts';
import { ASTERISK_OPTIONS_HEADERS, normaliseRequestTarget } from './request-target.ts';
import { CLIENT_CLOSED, type RecordRequest } from './request-log.ts';
import type { Target } from './resolve.ts';

export interface HandlerDeps {
  /** The request's pod and port (resolve.ts over the route table); throws a PodgateError. */
  resolve: (req: IncomingMessage) => Target;
  guard: AccessGuard;
  proxy: PodProxy;
  record: RecordRequest;
  /** Runs before routing; true when it answered the request itself (ACME challenges, the HTTPS redirect). */
  intercept?: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
}

export interface RequestHandler {
  onRequest(req: IncomingMessage, res: ServerResponse): void;
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** CONNECT requests (HTTP/1.1 'connect'): always refused. */
  onConnect(req: IncomingMessage, socket: Duplex): void;
  /** A request head node:http could not parse. */
  onClientError(err: NodeJS.ErrnoException, socket: Socket): void;
  /** True once shutdown began: connections are not kept alive and upgrades are refused. */
  readonly closing: boolean;
  beginShutdown(): void;
}

export function createHandler(config: Pick<GatewayConfig, 'trustedProxies'>, deps: HandlerDeps): RequestHandler {
  const { resolve, guard, proxy, record } = deps;
  let closing = false;

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

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
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
      if (!guard.concealRequest(err, req, res)) answerError(err, req, res);
      return;
    }
    pod = target.slug;
    if (guard.guardRequest(req, res, target)) return;
    prepareRequestHeaders(req.headers, forwardContext(req, false, target));
    proxy.web(req, res, target, (err) => {
      failure = err;
      answerError(err, req, res);
    });
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // An error handler before anything else: a reset client socket must never become an uncaught exception.
    socket.on('error', () => {});
    const started = performance.now();
    let target: Target;
    try {
      if (normaliseRequestTarget(req) === 'asterisk') throw new InvalidRequestTargetError('OPTIONS * is not upgraded');
      if (closing) throw new ServiceUnavailableError('the gateway is shutting down');
      target = resolve(req);
    } catch (err) {
      const concealed = guard.concealUpgrade(err, req, socket);
      if (concealed === undefined) answerError(err, req, socket);
      void Promise.resolve(concealed ?? toHttpError(err).status).then((status) => record(req, status, '-', started));
      return;
    }
    // The access check comes first: what the gateway does not proxy is refused to a client without a token exactly
    // like everything else, so `Upgrade: foo` cannot tell a running private pod from an unknown one.
    const refused = guard.guardUpgrade(req, socket, target);
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
  function onConnect(req: IncomingMessage, socket: Duplex): void {
    socket.on('error', () => {});
    const started = performance.now();
    const err = new InvalidRequestTargetError('CONNECT is not served: this is not a forward proxy');
    answerError(err, req, socket);
    record(req, err.status, '-', started);
  }

  /** Malformed requests from clients: a precise status when the socket can still take one, never a crash. */
  function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const text = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
    socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain\r\ncontent-length: ${text.length + 1}\r\nconnection: close\r\n\r\n${text}\n`);
  }

  return {
    onRequest,
    onUpgrade,
    onConnect,
    onClientError,
    get closing() {
      return closing;
    },
    beginShutdown() {
      closing = true;
    },
  };
}
