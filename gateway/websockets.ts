// Open WebSocket tunnels, so shutdown can close each one with 1001 "going away" in both directions.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const GOING_AWAY = 1001;

/** A close frame: unmasked towards the client, masked towards the server (RFC 6455 5.1). */
export function closeFrame(code: number, masked: boolean): Buffer {
  const payload = Buffer.from([code >> 8, code & 0xff]);
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, body]);
}

export class WebSocketTunnels {
  private readonly open = new Map<Duplex, Socket>();
  private readonly onCountChange: (delta: number) => void;

  constructor(onCountChange: (delta: number) => void) {
    this.onCountChange = onCountChange;
  }

  add(client: Duplex, upstream: Socket): void {
    this.open.set(client, upstream);
    this.onCountChange(1);
    let removed = false;
    const remove = () => {
      if (removed) return;
      removed = true;
      this.open.delete(client);
      this.onCountChange(-1);
    };
    client.once('close', remove);
    upstream.once('close', remove);
  }

  get size(): number {
    return this.open.size;
  }

  /** Tell both ends we are going away, then end the sockets; they are destroyed if still open at `hardMs`. */
  closeAll(hardMs: number): void {
    for (const [client, upstream] of this.open) {
      // Stop relaying first so a close frame is never spliced into the middle of a relayed frame's bytes.
      upstream.unpipe(client);
      client.unpipe(upstream);
      if (client.writable) client.end(closeFrame(GOING_AWAY, false));
      if (upstream.writable) upstream.end(closeFrame(GOING_AWAY, true));
      // Unpiped sockets are paused: keep reading (and discarding) so each sees its peer's answering close and FIN
      // and closes now, instead of lingering until the hard deadline below and holding up the shutdown.
      client.resume();
      upstream.resume();
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
      }, hardMs).unref();
    }
  }
}
