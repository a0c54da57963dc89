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

/**
 * Follows the frames relayed in one direction of a tunnel (RFC 6455 5.2: headers are read, payloads only counted) to
 * know where one frame ends: a close frame written anywhere else would land inside a frame being relayed and
 * corrupt the stream (the peer then fails with a protocol error instead of seeing 1001).
 */
export class FrameBoundary {
  private readonly head = Buffer.alloc(14);
  /** Header bytes seen of the frame under way, and how many its header has (2 until its second byte is seen). */
  private headBytes = 0;
  private headLength = 2;
  private payloadLeft = 0;

  get atBoundary(): boolean {
    return this.headBytes === 0 && this.payloadLeft === 0;
  }

  /** Follow `chunk`; with `stopAtBoundary`, stop where the frame under way ends. Returns how many bytes it took. */
  advance(chunk: Buffer, stopAtBoundary = false): number {
    let i = 0;
    while (i < chunk.length) {
      if (stopAtBoundary && this.atBoundary) return i;
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, chunk.length - i);
        this.payloadLeft -= n;
        i += n;
        continue;
      }
      this.head[this.headBytes++] = chunk[i++]!;
      if (this.headBytes === 2) {
        const len7 = this.head[1]! & 0x7f;
        this.headLength = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.head[1]! & 0x80 ? 4 : 0);
      }
      if (this.headBytes >= 2 && this.headBytes === this.headLength) {
        const len7 = this.head[1]! & 0x7f;
        this.payloadLeft = len7 === 126 ? this.head.readUInt16BE(2) : len7 === 127 ? Number(this.head.readBigUInt64BE(2)) : len7;
        this.headBytes = 0;
        this.headLength = 2;
      }
    }
    return i;
  }
}

/** One direction of a tunnel: its source, its destination and where the frames it relays end. */
interface Direction {
  from: Duplex;
  to: Duplex;
  frames: FrameBoundary;
  observe: (chunk: Buffer) => void;
  /** Masked towards the pod (client-to-server frames are masked), unmasked towards the client. */
  masked: boolean;
}

function direction(from: Duplex, to: Duplex, masked: boolean): Direction {
  const frames = new FrameBoundary();
  const observe = (chunk: Buffer) => void frames.advance(chunk);
  // Attached before http-proxy-3 pipes (same tick), so the tracker sees every byte the pipe relays. Paused first: a
  // 'data' listener would otherwise set the socket flowing, and the bytes http-proxy-3 then unshifts (what the pod
  // sent right behind its 101, e.g. Vite's first HMR message) would be emitted at once, to this listener alone,
  // before the pipe exists. The pipe resumes the socket.
  from.pause();
  from.on('data', observe);
  return { from, to, frames, observe, masked };
}

/** Stop relaying at the end of the frame under way, then send 1001 and end; what comes after is read and dropped. */
function goAway(d: Direction): void {
  d.from.unpipe(d.to);
  d.from.off('data', d.observe);
  const finish = () => {
    if (d.to.writable) d.to.end(closeFrame(GOING_AWAY, d.masked));
  };
  if (d.frames.atBoundary) {
    finish();
  } else {
    const relayRest = (chunk: Buffer) => {
      const n = d.frames.advance(chunk, true);
      if (n > 0 && d.to.writable) d.to.write(chunk.subarray(0, n));
      if (d.frames.atBoundary) {
        d.from.off('data', relayRest);
        finish();
      }
    };
    d.from.on('data', relayRest);
  }
  // Unpiped sockets are paused: keep reading, so each sees its peer's answering close and FIN and closes now,
  // instead of lingering until the hard deadline and holding up the shutdown.
  d.from.resume();
}

export class WebSocketTunnels {
  private readonly open = new Map<Duplex, [Direction, Direction]>();
  private readonly onCountChange: (delta: number) => void;

  constructor(onCountChange: (delta: number) => void) {
    this.onCountChange = onCountChange;
  }

  add(client: Duplex, upstream: Socket): void {
    this.open.set(client, [direction(client, upstream, true), direction(upstream, client, false)]);
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

  /**
   * Tell both ends we are going away, then end the sockets; they are destroyed if still open at `hardMs`. Resolves
   * once every socket of every tunnel is closed: the pod's side is not the HTTP server's, so a shutdown that only
   * waited for the server would exit while the rest of a frame and the 1001 were still on their way to the pod.
   */
  closeAll(hardMs: number): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [toPod, toClient] of this.open.values()) {
      goAway(toClient);
      goAway(toPod);
      setTimeout(() => {
        toPod.from.destroy();
        toClient.from.destroy();
      }, hardMs).unref();
      for (const socket of [toPod.from, toClient.from]) {
        if (!socket.destroyed) closing.push(new Promise((r) => socket.once('close', () => r())));
      }
    }
    return Promise.all(closing).then(() => undefined);
  }
}
