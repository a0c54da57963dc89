// The HTTPS listener: the same request and upgrade handlers as plain HTTP, with the certificate picked per
// SNI name. HTTP/2 is offered through ALPN (h2, then http/1.1): HTTP/2 requests reach the gateway's request
// handler with Host copied from :authority here (gateway/request-target.ts refuses a Host that names another
// authority, and any :path that is not /path?query), and gateway/proxy.ts sends them to the pod over HTTP/1.1 with
// undici, leaving out the pseudo-headers. WebSockets keep using HTTP/1.1 (gateway/websocket-upgrade.ts)
// (browsers fall back to an HTTP/1.1 connection because the server does not offer RFC 8441 extended CONNECT).
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type ServerHttp2Session,
} from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContextOptions, TLSSocket, TlsOptions } from 'node:tls';
import { listenError } from '../../shared/config.ts';
import type { Logger } from '../../shared/log.ts';

export interface RequestHandlers {
  onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** HTTP/1.1 CONNECT; without it such connections are closed. HTTP/2 CONNECT streams go to onRequest. */
  onConnect?: (req: IncomingMessage, socket: Duplex) => void;
}

export interface HttpsListenerOptions {
  port: number;
  host: string;
  http2: boolean;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Closes HTTP/2 sessions with no streams for this long (HTTP/1.1 uses keepAliveTimeoutMs). */
  http2SessionTimeoutMs?: number;
  log: Logger;
}

export interface HttpsListener {
  port: number;
  /** Stop accepting; close idle connections now and the rest after `deadlineMs`. */
  close(deadlineMs: number): Promise<void>;
}

/** Handshakes that fail (scanners, clients refusing the default certificate) are normal at the edge. */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Deadlines for HTTP/1.1 request heads on the HTTP/2 server: the first head within `headersMs` of the
 * handshake, each next one within `idleMs` (the keep-alive timeout) of the previous response's end.
 */
class HeadDeadline {
  private readonly timers = new WeakMap<TLSSocket, NodeJS.Timeout>();
  private readonly idleMs: number;
  constructor(idleMs: number) {
    this.idleMs = idleMs;
  }
  arm(socket: TLSSocket, ms: number): void {
    if (ms <= 0) return;
    this.disarm(socket);
    const timer = setTimeout(() => socket.destroy(), ms);
    timer.unref();
    this.timers.set(socket, timer);
  }
  disarm(socket: TLSSocket): void {
    clearTimeout(this.timers.get(socket));
    this.timers.delete(socket);
  }
  requestArrived(socket: TLSSocket, res: { once(event: 'finish', listener: () => void): unknown }): void {
    this.disarm(socket);
    res.once('finish', () => !socket.destroyed && this.arm(socket, this.idleMs));
  }
}

/** HTTP/2 requests carry the host in :authority; the gateway's router reads Host, as in HTTP/1.1. */
function withHostHeader(req: IncomingMessage): IncomingMessage {
  if (req.httpVersionMajor >= 2 && !req.headers.host) {
    const authority = (req as unknown as Http2ServerRequest).headers[':authority'];
    if (typeof authority === 'string') req.headers.host = authority;
  }
  return req;
}

export function listenHttps(
  tlsOptions: TlsOptions & SecureContextOptions,
  handlers: RequestHandlers,
  options: HttpsListenerOptions,
): Promise<HttpsListener> {
  const common = { ...tlsOptions, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS };
  let server: HttpsServer | Http2SecureServer;
  if (options.http2) {
    const h2 = createSecureServer({ ...common, allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'] });
    // Node applies headersTimeout only to http.Server: on this server's HTTP/1.1 connections a client could
    // trickle a request head forever (slowloris). A timer per connection bounds the wait for each head.
    const headDeadline = new HeadDeadline(options.keepAliveTimeoutMs);
    h2.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') return;
      headDeadline.arm(socket, options.headersTimeoutMs);
      socket.once('close', () => headDeadline.disarm(socket));
    });
    h2.on('request', (req, res) => {
      if (req.httpVersionMajor < 2) headDeadline.requestArrived(req.socket as TLSSocket, res);
      handlers.onRequest(withHostHeader(req as unknown as IncomingMessage), res as unknown as ServerResponse);
    });
    h2.on('upgrade', (req: IncomingMessage) => headDeadline.disarm(req.socket as TLSSocket));
    // One event for both protocols: an HTTP/2 CONNECT stream comes with its response (answered like any request,
    // where the gateway refuses it), an HTTP/1.1 CONNECT with its socket.
    h2.on('connect', (req: IncomingMessage, second: ServerResponse | Duplex) => {
      if ('writeHead' in second) handlers.onRequest(withHostHeader(req), second);
      else if (handlers.onConnect) handlers.onConnect(req, second);
      else second.destroy();
    });
    if (options.http2SessionTimeoutMs) h2.setTimeout(options.http2SessionTimeoutMs);
    server = h2;
  } else {
    server = createHttpsServer({
      ...common,
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: 0,
      keepAliveTimeout: options.keepAliveTimeoutMs,
    });
    server.on('request', handlers.onRequest);
    if (handlers.onConnect) server.on('connect', handlers.onConnect);
  }
  // HTTP/1.1 connections (also those an HTTP/2 server downgrades) upgrade to WebSockets here.
  server.on('upgrade', handlers.onUpgrade);
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => {
    options.log.debug({ code: err.code, msg: err.message }, 'TLS handshake failed');
  });
  server.on('clientError', (_err: Error, socket: Duplex) => socket.destroy());
  // Tracked so shutdown can end them: an HTTP/2 server has no closeAllConnections().
  const sockets = new Set<TLSSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });

  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => reject(listenError(err, options.host, options.port, { host: 'HTTPS_HOST', port: 'HTTPS_PORT' }));
    server.once('error', fail);
    server.listen({ port: options.port, host: options.host }, () => {
      server.off('error', fail);
      const port = (server.address() as AddressInfo).port;
      options.log.info({ httpsPort: port, http2: options.http2 }, 'HTTPS listening');
      resolve({
        port,
        close: (deadlineMs) =>
          new Promise<void>((done) => {
            const deadline = setTimeout(() => {
              for (const socket of sockets) socket.destroy();
            }, deadlineMs);
            server.close(() => {
              clearTimeout(deadline);
              done();
            });
            // GOAWAY lets HTTP/2 clients finish their streams and open no new ones.
            for (const session of sessions) session.close();
            if ('closeIdleConnections' in server) server.closeIdleConnections();
          }),
      });
    });
  });
}
