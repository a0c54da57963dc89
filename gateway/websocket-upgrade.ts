// A WebSocket upgrade to a pod: the client's request goes to the pod on a connection of its own (node:http, no
// agent), and the pod's answer is checked before anything reaches the client: a 101 hands both sockets to the
// tunnel relay (websockets.ts), a plain refusal is relayed with the standard reason phrase, anything broken is a 502.
// Nothing of the handshake (requests, responses, closures) stays referenced once the tunnel is open: an idle
// tunnel is its two sockets and its relay.
import { request, STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { PodgateError, UpstreamInvalidResponseError, UpstreamTimeoutError } from '../shared/errors.ts';
import { finalStatusProblem, responseHeaders } from './forward-headers.ts';

export interface UpgradeOptions {
  connectTimeoutMs: number;
  responseTimeoutMs: number;
  wsIdleTimeoutMs: number;
}

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

export interface UpgradeRequest {
  req: IncomingMessage;
  /** The request's headers as the pod gets them (forward-headers.ts requestHeaders). */
  headers: IncomingHttpHeaders;
  client: Duplex;
  /** Bytes the client sent after its request head: the start of the tunnel towards the pod. */
  head: Buffer;
  host: string;
  port: number;
  outcome: UpgradeOutcome;
  /** The 101 went out: relay both ways from now on. */
  open(client: Duplex, upstream: Socket): void;
  /** Map a socket-level error to what the client is told. */
  toError(err: unknown): PodgateError;
}

/** `Connection` naming `upgrade` (RFC 9110 7.6.1: a list, any case). */
const CONNECTION_UPGRADE = /(^|,)\s*upgrade\s*($|,)/i;

/** The request headers for the pod (prepared by the handler, hop-by-hop ones gone), on a connection of their own. */
function upstreamHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  if (typeof headers.connection === 'string' && CONNECTION_UPGRADE.test(headers.connection)) return headers;
  return { ...headers, connection: 'close' };
}

/** A raw HTTP/1.1 head: arrays become one line per value. */
function rawHead(statusLine: string, headers: IncomingHttpHeaders): string {
  let head = statusLine;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'string') head += `\r\n${name}: ${value}`;
    else for (const item of value) head += `\r\n${name}: ${item}`;
  }
  return `${head}\r\n\r\n`;
}

/** Sockets of a tunnel: no Nagle delay (frames are small and interactive), TCP keep-alive, no idle timer of node's. */
function setupTunnelSocket(socket: Duplex): void {
  const s = socket as Partial<Socket>;
  s.setTimeout?.(0);
  s.setNoDelay?.(true);
  s.setKeepAlive?.(true, 0);
}

/** WS_IDLE_TIMEOUT_MS on the pod's socket: any traffic either way through the tunnel is activity on it. */
function idleTimeout(this: Socket): void {
  this.destroy();
}

/**
 * UPSTREAM_CONNECT_TIMEOUT_MS: the pod's port not accepting the connection in time is a 504 (ECONNECT_TIMEOUT).
 * Only while connecting; the timer is gone once connected.
 */
function armConnectTimeout(socket: Socket, ms: number): void {
  if (!ms || !socket.connecting) return;
  const timer = setTimeout(() => {
    const err = Object.assign(new Error('ECONNECT_TIMEOUT'), { code: 'ECONNECT_TIMEOUT' });
    socket.destroy(err);
  }, ms);
  timer.unref();
  const stop = () => {
    clearTimeout(timer);
    socket.off('connect', stop);
    socket.off('close', stop);
  };
  socket.on('connect', stop);
  socket.on('close', stop);
}

export function upgradeToPod(u: UpgradeRequest, options: UpgradeOptions): void {
  const { req, client, outcome } = u;
  let settled = false;
  let responseTimer: NodeJS.Timeout | undefined;
  /** The first outcome only: later errors of the pod's request are the handshake's end, not outcomes. */
  const settle = () => {
    if (settled) return false;
    settled = true;
    clearTimeout(responseTimer);
    client.off('close', onClientClose);
    return true;
  };
  const proxyReq = request({
    host: u.host,
    port: u.port,
    method: req.method,
    path: req.url,
    headers: upstreamHeaders(u.headers),
    agent: false,
  });
  // A client that resets its connection while waiting frees the pod's side now, not when (or if) the pod answers.
  // One that only half-closes goes unseen (its socket is not read before the answer): the response timeout ends it.
  function onClientClose(): void {
    if (settle()) outcome.abandoned();
    proxyReq.destroy();
  }
  client.once('close', onClientClose);
  proxyReq.once('socket', (socket: Socket) => armConnectTimeout(socket, options.connectTimeoutMs));
  // UPSTREAM_RESPONSE_TIMEOUT_MS: from the request sent to the pod's answer (101 or a refusal). A pod that accepted
  // the connection and never answered would leave the client waiting forever. The tunnel after a 101 is not timed
  // here (WS_IDLE_TIMEOUT_MS is its own setting).
  const ms = options.responseTimeoutMs;
  if (ms > 0) {
    proxyReq.once('finish', () => {
      if (settled) return;
      responseTimer = setTimeout(() => proxyReq.destroy(new UpstreamTimeoutError(`no answer to the WebSocket upgrade within ${ms} ms`)), ms);
      responseTimer.unref();
    });
  }

  proxyReq.on('error', (err) => {
    // A client already gone was reported by its 'close' (abandoned), with nobody left to answer.
    if (!settle() || client.destroyed) return;
    outcome.failed(u.toError(err));
    // The answer is out (or on its way): the connection closes once it is written, whatever the client does.
    (client as Partial<Socket>).destroySoon?.();
  });

  proxyReq.once('upgrade', (res: IncomingMessage, upstream: Socket, upstreamHead: Buffer) => {
    if (!settle()) {
      upstream.destroy();
      return;
    }
    const checked = res.headers.upgrade?.toLowerCase() === 'websocket' ? responseHeaders(res.headers, true) : '101 to a protocol other than websocket';
    if (typeof checked === 'string') {
      // The handler answers the client with one 502; the pod's socket is closed, nothing is relayed.
      upstream.destroy();
      outcome.failed(new UpstreamInvalidResponseError(checked));
      return;
    }
    setupTunnelSocket(client);
    setupTunnelSocket(upstream);
    client.write(rawHead('HTTP/1.1 101 Switching Protocols', checked));
    if (u.head.length > 0) client.unshift(u.head);
    if (upstreamHead.length > 0) upstream.unshift(upstreamHead);
    if (options.wsIdleTimeoutMs > 0) {
      upstream.setTimeout(options.wsIdleTimeoutMs);
      upstream.on('timeout', idleTimeout);
    }
    outcome.answered(101);
    u.open(client, upstream);
  });

  proxyReq.once('response', (res: IncomingMessage) => {
    if (!settle() || client.destroyed) {
      res.destroy();
      return;
    }
    const checked = finalStatusProblem(res.statusCode, res.httpVersionMajor) ?? responseHeaders(res.headers);
    if (typeof checked === 'string') {
      // A refusal the gateway does not relay: a bodiless 502, the pod's body never read, the connection closed.
      res.destroy();
      client.end(`HTTP/${req.httpVersion} 502 ${STATUS_CODES[502]}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
      outcome.answered(502, new UpstreamInvalidResponseError(checked));
      return;
    }
    // The pod's plain answer, relayed with the standard reason phrase (the pod's own is never relayed), its body in
    // its own framing or chunked; the connection closes after it.
    const headers = checked;
    headers.connection = 'close';
    const chunked = req.httpVersion === '1.1' && headers['content-length'] === undefined;
    if (chunked) headers['transfer-encoding'] = 'chunked';
    client.write(rawHead(`HTTP/${req.httpVersion} ${res.statusCode} ${STATUS_CODES[res.statusCode!] ?? 'unknown'}`, headers));
    res.on('data', (chunk: Buffer) => {
      if (chunked) client.write(`${chunk.length.toString(16)}\r\n`);
      client.write(chunk);
      if (chunked) client.write('\r\n');
    });
    res.once('end', () => client.end(chunked ? '0\r\n\r\n' : undefined));
    res.once('error', () => client.destroy());
    client.once('close', () => res.destroy());
    outcome.answered(res.statusCode!);
  });

  proxyReq.end();
}
