// The request handler: one function per kind of arrival (request, upgrade, CONNECT, malformed head), each walking
// the same path: request target -> intercept (TLS) -> resolve -> access guard -> [wake] -> proxy. It owns no server
// and no store; main.ts builds what it needs and listener.ts feeds it from every listener (HTTP, HTTPS, HTTP/2).
// A request the guard admitted for a sleeping pod is held by the waker until the pod runs, then resolved again (the
// woken pod has a new route: port, generation, router key) and proxied; admitted, proxied requests and open
// WebSockets are what the activity reporter counts.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { InvalidRequestTargetError, PodUnavailableError, ServiceUnavailableError, UnsupportedUpgradeError, type PodgateError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import type { AccessGuard, Answered } from './access/guard.ts';
import { visibilityOf } from './access/decide.ts';
import type { ActivityReporter } from './activity.ts';
import { clientInfo, type ClientInfo } from './client-info.ts';
import type { GatewayConfig } from './config.ts';
import { requestHeaders } from './forward-headers.ts';
import type { PodProxy } from './proxy.ts';
import { ASTERISK_OPTIONS_HEADERS, normaliseRequestTarget } from './request-target.ts';
import { CLIENT_CLOSED, type RecordRequest } from './request-log.ts';
import { abort, errorAnswer, onClose, reply, toResponse, toSocket, type Answer, type ReplyTarget } from './reply.ts';
import type { Target } from './resolve.ts';
import { wantsHtml } from './error-page.ts';
import { wakingPage } from './wake-page.ts';
import type { Waker, WakeOutcome } from './waker.ts';

export interface HandlerDeps {
  /** The request's pod and port (resolve.ts over the route table); throws a PodgateError. */
  resolve: (req: IncomingMessage) => Target;
  guard: AccessGuard;
  proxy: PodProxy;
  record: RecordRequest;
  log: Logger;
  /** Runs before routing; true when it answered the request itself (ACME challenges, the HTTPS redirect). */
  intercept?: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  /** Holds admitted requests for sleeping pods until they run. */
  waker: Waker;
  /** Counts the pods served and their open WebSockets. */
  activity: ActivityReporter;
}

/** Bytes a WebSocket client may send before its held upgrade is proxied (a client speaks only after the 101). */
const MAX_EARLY_UPGRADE_BYTES = 64 * 1024;

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

export function createHandler(config: Pick<GatewayConfig, 'trustedProxies' | 'WAKE_PAGE_AFTER_MS' | 'RETRY_AFTER_SECONDS'>, deps: HandlerDeps): RequestHandler {
  const { resolve, guard, proxy, record, log, waker, activity } = deps;
  let closing = false;

  /**
   * Where a request held for a wake goes: the woken pod's target, or the answer to send. The target is resolved
   * afresh (the running route is another generation). A port the sleeping route made public that the running one
   * makes private was admitted without credentials: that request is not proxied but told to retry, and the retry
   * meets the access check of the running route.
   */
  function afterWake(req: IncomingMessage, held: Target, outcome: WakeOutcome): { target: Target } | { answer: Answer } {
    const retry = config.RETRY_AFTER_SECONDS;
    switch (outcome.kind) {
      case 'woken': {
        let target: Target;
        try {
          target = resolve(req);
        } catch (err) {
          return { answer: errorAnswer(err, req) };
        }
        if (target.route.status !== 'running' || (visibilityOf(target.route, target.podPort) === 'private' && visibilityOf(held.route, held.podPort) === 'public')) {
          return { answer: errorAnswer(new PodUnavailableError(held.slug, 'starting', retry), req) };
        }
        return { target };
      }
      case 'page':
        return { answer: wakingPage() };
      case 'gone':
        return { answer: errorAnswer(new PodUnavailableError(held.slug, 'stopped', retry), req) };
      case 'failed':
        return { answer: errorAnswer(new PodUnavailableError(held.slug, 'not starting: its wake failed', retry), req) };
      case 'full':
        return { answer: errorAnswer(new PodUnavailableError(held.slug, 'waking up (too many requests wait on this gateway)', retry), req) };
      default:
        return { answer: errorAnswer(new PodUnavailableError(held.slug, 'still waking up', retry), req) };
    }
  }

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

  /**
   * The one close listener of every response, shared: it releases the pod's connection slot and records the request.
   * Unfinished: the client went away (499), unless the pod broke off its response (its status, with the reason).
   */
  function onResponseClose(this: AccountedResponse): void {
    const account = this[kAccount];
    account.release?.();
    record(account.req, this.writableFinished || account.failure ? this.statusCode : CLIENT_CLOSED, account.pod, account.started, account.failure);
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const account = new RequestAccount(req);
    (res as AccountedResponse)[kAccount] = account;
    res.on('close', onResponseClose);
    const to = toResponse(req, res);
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
    account.pod = target.slug;
    const verdict = guard.admit(req, target, client, false);
    if (verdict instanceof Promise || verdict.kind === 'answer') {
      void send(to, verdict);
      return;
    }
    account.release = verdict.release;
    if (target.route.status === 'running') {
      forwardRequest(req, res, to, client, target);
      return;
    }
    const browser = req.method === 'GET' && wantsHtml(req.headers.accept);
    const held = waker.hold(target.slug, { pageAfterMs: browser ? config.WAKE_PAGE_AFTER_MS : undefined });
    onClose(to, held.cancel);
    void held.outcome.then((outcome) => {
      if (outcome.kind === 'client_closed' || res.destroyed) return;
      const next = afterWake(req, target, outcome);
      if ('answer' in next) reply(to, next.answer);
      else forwardRequest(req, res, to, client, next.target);
    });
  }

  /** An admitted request to its pod; a failure of the pod is answered (and kept for the access line). */
  function forwardRequest(req: IncomingMessage, res: ServerResponse, to: ReplyTarget, client: ClientInfo, target: Target): void {
    activity.touch(target.slug);
    proxy.web(req, res, target, requestHeaders(req.headers, client, false, target.route.routerKey), (err) => {
      (res as AccountedResponse)[kAccount].failure = err;
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
    const forward = (target: Target, head: Buffer) => {
      activity.touch(target.slug);
      // Recorded once the pod has answered (or failed, or the client left), so the line says what really happened.
      proxy.ws(req, socket, head, target, requestHeaders(req.headers, client, true, target.route.routerKey), {
        answered: (status, invalid) => {
          if (status === 101) socket.once('close', activity.openWebSocket(target.slug));
          record(req, status, target.slug, started, invalid);
        },
        failed: (err) => {
          reply(to, errorAnswer(err, req));
          record(req, err.status, target.slug, started, err);
        },
        abandoned: () => record(req, CLIENT_CLOSED, target.slug, started),
      });
    };
    if (target.route.status === 'running') {
      forward(target, head);
      return;
    }
    // Held for the wake. The socket is read meanwhile, so a client that goes away (even with a half-close) is seen
    // and stops waiting; what it sent early is handed to the pod with the upgrade.
    const held = waker.hold(target.slug);
    const early: Buffer[] = [head];
    let earlyBytes = head.length;
    const onData = (chunk: Buffer) => {
      early.push(chunk);
      earlyBytes += chunk.length;
      if (earlyBytes > MAX_EARLY_UPGRADE_BYTES) socket.destroy();
    };
    const gone = () => {
      held.cancel();
      socket.destroy();
    };
    socket.on('data', onData);
    socket.once('end', gone);
    socket.once('close', gone);
    void held.outcome.then((outcome) => {
      socket.off('data', onData);
      socket.off('end', gone);
      socket.off('close', gone);
      if (outcome.kind === 'client_closed' || socket.destroyed) {
        record(req, CLIENT_CLOSED, target.slug, started);
        return;
      }
      socket.pause();
      const next = afterWake(req, target, outcome);
      if ('target' in next) {
        forward(next.target, Buffer.concat(early));
        return;
      }
      reply(to, next.answer);
      record(req, next.answer.status, target.slug, started);
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

/** What the access line of a request needs once its response closes, kept on the response under kAccount. */
class RequestAccount {
  readonly req: IncomingMessage;
  readonly started = performance.now();
  /** The pod's slug once resolved ('-' before). */
  pod = '-';
  /** Why the pod's answer failed, when it did. */
  failure: PodgateError | undefined = undefined;
  /** Frees the pod's connection slot (access/limits.ts), once admitted. */
  release: (() => void) | undefined = undefined;

  constructor(req: IncomingMessage) {
    this.req = req;
  }
}

const kAccount = Symbol('podgate.account');
type AccountedResponse = ServerResponse & { [kAccount]: RequestAccount };

/** Errors of a client's raw socket: its 'close' follows, which is what the gateway acts on. */
function ignoreSocketError(): void {}

/** A request head node:http refused, in plain text with the standard reason phrase. */
function malformedAnswer(code: string | undefined): Answer {
  const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
  return { status, reason, headers: { 'content-type': 'text/plain' }, body: `${reason}\n` };
}
