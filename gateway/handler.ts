// The request handler: one function per kind of arrival (request, upgrade, CONNECT, malformed head), each walking
// the same path: request target -> intercept (TLS) -> resolve -> access guard -> proxy. It owns no server and no
// store; main.ts builds what it needs and listener.ts feeds it from every listener (HTTP, HTTPS, HTTP/2).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { InvalidRequestTargetError, ServiceUnavailableError, UnsupportedUpgradeError, type PodgateError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import type { AccessGuard, Answered } from './access/guard.ts';
import { clientInfo } from './client-info.ts';
import type { GatewayConfig } from './config.ts';
import { prepareRequestHeaders } from './forward-headers.ts';
import type { PodProxy } from './proxy.ts';
import { ASTERISK_OPTIONS_HEADERS, normaliseRequestTarget } from './request-target.ts';
import { CLIENT_CLOSED, type RecordRequest } from './request-log.ts';
import { abort, errorAnswer, onClose, reply, toResponse, toSocket, type Answer, type ReplyTarget } from './reply.ts';
import type { Target } from './resolve.ts';

export interface HandlerDeps {
  /** The request's pod and port (resolve.ts over the route table); throws a PodgateError. */
  resolve: (req: IncomingMessage) => Target;
  guard: AccessGuard;
  proxy: PodProxy;
  record: RecordRequest;
  log: Logger;
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
  const { resolve, guard, proxy, record, log } = deps;
  let closing = false;

  /** Sends a refusal now, or once the limiter has answered; the status sent (500: it could not be). */
  function send(to: ReplyTarget, answered: Answered | Promise<Answered>): number | Promise<number> {
    if (!(answered instanceof Promise)) {
      reply(to, answered.answer);
      return answered.answer.status;
    }
    return answered.then(
      ({ answer }) => {
        reply(to, answer);
        return answer.status;
      },
      (err: unknown) => {
        // A bug, not a client's doing: logged, the connection closed.
        log.error({ err: String(err) }, 'access refusal could not be answered');
        abort(to);
        return 500;
      },
    );
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const to = toResponse(req, res);
    let pod = '-';
    let failure: PodgateError | undefined;
    // Unfinished: the client went away (499), unless the pod broke off its response (its status, with the reason).
    res.once('close', () => record(req, res.writableFinished || failure ? res.statusCode : CLIENT_CLOSED, pod, started, failure));
    if (closing) res.shouldKeepAlive = false;
    // First of all: one authority and an origin-form target, which everything below reads.
    try {
      if (normaliseRequestTarget(req) === 'asterisk') {
        reply(to, { status: 200, headers: ASTERISK_OPTIONS_HEADERS });
        return;
      }
    } catch (err) {
      reply(to, errorAnswer(err, req));
      return;
    }
    if (deps.intercept?.(req, res)) return;
    const client = clientInfo(req, config.trustedProxies);
    let target: Target;
    try {
      target = resolve(req);
    } catch (err) {
      const concealed = guard.conceal(err, req, client, false);
      if (concealed) void send(to, concealed);
      else reply(to, errorAnswer(err, req));
      return;
    }
    pod = target.slug;
    const verdict = guard.admit(req, target, client, false);
    if (verdict instanceof Promise || verdict.kind === 'answer') {
      void send(to, verdict);
      return;
    }
    onClose(to, verdict.release);
    prepareRequestHeaders(req.headers, { ...client, upgrade: false, routerKey: target.route.routerKey });
    proxy.web(req, res, target, (err) => {
      failure = err;
      reply(to, errorAnswer(err, req));
    });
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // An error handler before anything else: a reset client socket must never become an uncaught exception. A shared
    // function: a closure here would keep this request's scope alive for as long as the tunnel is open.
    socket.on('error', ignoreSocketError);
    const started = performance.now();
    const to = toSocket(socket);
    const client = clientInfo(req, config.trustedProxies);
    let target: Target;
    try {
      if (normaliseRequestTarget(req) === 'asterisk') throw new InvalidRequestTargetError('OPTIONS * is not upgraded');
      if (closing) throw new ServiceUnavailableError('the gateway is shutting down');
      target = resolve(req);
    } catch (err) {
      const concealed = guard.conceal(err, req, client, true);
      const answer = concealed ? undefined : errorAnswer(err, req);
      if (answer) reply(to, answer);
      void Promise.resolve(concealed ? send(to, concealed) : answer!.status).then((status) => record(req, status, '-', started));
      return;
    }
    // The access check comes first: what the gateway does not proxy is refused to a client without a token exactly
    // like everything else, so `Upgrade: foo` cannot tell a running private pod from an unknown one.
    const verdict = guard.admit(req, target, client, true);
    if (verdict instanceof Promise || verdict.kind === 'answer') {
      void Promise.resolve(send(to, verdict)).then((status) => record(req, status, target.slug, started));
      return;
    }
    onClose(to, verdict.release);
    if (req.headers.upgrade?.toLowerCase() !== 'websocket' || req.method !== 'GET') {
      reply(to, errorAnswer(new UnsupportedUpgradeError('only WebSocket upgrades (GET) are proxied'), req));
      record(req, 400, target.slug, started);
      return;
    }
    prepareRequestHeaders(req.headers, { ...client, upgrade: true, routerKey: target.route.routerKey });
    // Recorded once the pod has answered (or failed, or the client left), so the line says what really happened.
    proxy.ws(req, socket, head, target, {
      answered: (status, invalid) => record(req, status, target.slug, started, invalid),
      failed: (err) => {
        reply(to, errorAnswer(err, req));
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
    reply(toSocket(socket), errorAnswer(err, req));
    record(req, err.status, '-', started);
  }

  /** Malformed requests from clients: a precise status when the socket can still take one, never a crash. */
  function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    reply(toSocket(socket), malformedAnswer(err.code));
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

/** Errors of a client's raw socket: its 'close' follows, which is what the gateway acts on. */
function ignoreSocketError(): void {}

/** A request head node:http refused, in plain text with the standard reason phrase. */
function malformedAnswer(code: string | undefined): Answer {
  const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
  return { status, reason, headers: { 'content-type': 'text/plain' }, body: `${reason}\n` };
}
