// A hostile pod: a raw TCP server that answers each request with bytes chosen by the request's path
// (`/case/<name>`), so a test can send any malformed status line, header, framing or 1xx/101 trick through a
// real gateway. Cases are written once, as raw bytes (latin1), or as a function given the socket.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export type HostileAnswer = string | ((socket: Socket) => void);

export interface HostilePod {
  port: number;
  /** Requests (method and target as the pod read them, and the raw head) in arrival order. */
  heads: string[];
  close(): Promise<void>;
}

const HEAD_END = '\r\n\r\n';
const MAX_HEAD = 64 * 1024;

export async function startHostilePod(answers: Record<string, HostileAnswer>): Promise<HostilePod> {
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf(HEAD_END);
      if (end === -1) {
        if (head.length > MAX_HEAD) socket.destroy();
        return;
      }
      socket.off('data', onData);
      const requestHead = head.slice(0, end);
      heads.push(requestHead);
      const target = requestHead.split(' ', 2)[1] ?? '';
      const name = /^\/case\/([^/?]+)/.exec(target)?.[1] ?? '';
      const answer = answers[name];
      if (answer === undefined) {
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      } else if (typeof answer === 'string') {
        socket.end(Buffer.from(answer, 'latin1'));
      } else {
        answer(socket);
      }
    };
    socket.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    heads,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
