// The one way the gateway answers a client itself (errors, refusals, redirects, preflights, OPTIONS *): to a
// ServerResponse, or as raw HTTP/1.1 bytes to a socket that is not one (upgrades, CONNECT, malformed heads).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { toHttpError } from '../shared/errors.ts';
import { renderError, STATUS_TITLES } from './error-page.ts';

export interface Answer {
  status: number;
  headers: Record<string, string>;
  /** Absent: no body (content-length 0). */
  body?: string;
  /** The reason phrase of a raw answer; the gateway's title for the status when absent. */
  reason?: string;
}

/** Where an answer goes: a request's response, or a raw socket. */
export type ReplyTarget =
  | { kind: 'response'; req: IncomingMessage; res: ServerResponse }
  | { kind: 'socket'; socket: Duplex };

export const toResponse = (req: IncomingMessage, res: ServerResponse): ReplyTarget => ({ kind: 'response', req, res });
export const toSocket = (socket: Duplex): ReplyTarget => ({ kind: 'socket', socket });

/** The error page for `err` (shared/errors.ts maps it to HTTP), by the client's Accept. */
export function errorAnswer(err: unknown, req: IncomingMessage): Answer {
  return renderError(toHttpError(err), req.headers.accept);
}

export function reply(target: ReplyTarget, answer: Answer): void {
  if (target.kind === 'socket') {
    if (target.socket.writable) target.socket.end(rawAnswer(answer));
    else target.socket.destroy();
    return;
  }
  const { req, res } = target;
  if (res.destroyed) return; // the client left (while the limiter was asked, say)
  if (res.headersSent) {
    res.destroy(); // the pod failed mid-response: cut the stream rather than append an error to it
    return;
  }
  const body = answer.body ?? '';
  res.writeHead(answer.status, { ...answer.headers, 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' || body === '' ? undefined : body);
  // A body nobody started reading is drained, so the connection stays usable for the next request; one the proxy
  // was reading stays the proxy's.
  if (req.readableFlowing === null) req.resume();
}

/** Runs `fn` once the target's connection (response or socket) closes. */
export function onClose(target: ReplyTarget, fn: () => void): void {
  (target.kind === 'response' ? target.res : target.socket).once('close', fn);
}

/** Closes the target's connection without an answer. */
export function abort(target: ReplyTarget): void {
  (target.kind === 'response' ? target.res : target.socket).destroy();
}

/** The answer as raw HTTP/1.1 bytes; the connection closes after it. */
export function rawAnswer(answer: Answer): string {
  const body = answer.body ?? '';
  const lines = [`HTTP/1.1 ${answer.status} ${answer.reason ?? STATUS_TITLES[answer.status] ?? 'Error'}`];
  for (const [k, v] of Object.entries(answer.headers)) lines.push(`${k}: ${v}`);
  lines.push(`content-length: ${Buffer.byteLength(body)}`, 'connection: close', '', '');
  return lines.join('\r\n') + body;
}
