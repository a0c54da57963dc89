// Open WebSocket tunnels: the relay both ways between client and pod, and shutdown, which closes each one with
// 1001 "going away" in both directions.
import { randomBytes } from 'node:crypto';
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
  /** Header bytes seen of the frame under way, and how many its header has (2 until its second byte is seen). */
  private headBytes = 0;
  private headLength = 2;
  /** The second header byte (mask bit, 7-bit length), then the extended length as it is read, big-endian. */
  private len7 = 0;
  private extended = 0;
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
      const byte = chunk[i++]!;
      const at = this.headBytes++;
      if (at === 1) {
        this.len7 = byte & 0x7f;
        this.extended = 0;
        this.headLength = 2 + (this.len7 === 126 ? 2 : this.len7 === 127 ? 8 : 0) + (byte & 0x80 ? 4 : 0);
      } else if (at >= 2 && at < 2 + (this.len7 === 126 ? 2 : this.len7 === 127 ? 8 : 0)) {
        // Numbers stay exact to 2^53, beyond any frame a socket will carry.
        this.extended = this.extended * 256 + byte;
      }
      if (this.headBytes >= 2 && this.headBytes === this.headLength) {
        this.payloadLeft = this.len7 >= 126 ? this.extended : this.len7;
        this.headBytes = 0;
        this.headLength = 2;
      }
    }
    return i;
  }
}

/**
 * One direction of a tunnel: bytes read from `from` are written to `to`, with backpressure, and followed frame by
 * frame. An idle tunnel is held by thousands at once, so it costs two of these and no closures: the listeners are
 * shared functions, called with the socket as `this`, which finds its direction under kRelay.
 */
class Relay extends FrameBoundary {
  readonly from: Duplex;
  readonly to: Duplex;
  /** Masked towards the pod (client-to-server frames are masked), unmasked towards the client. */
  readonly masked: boolean;
  readonly tunnels: WebSocketTunnels;
  /** The other direction of the same tunnel. */
  peer!: Relay;
  /** False once shutdown stopped relaying (the rest of the frame under way is written by goAway). */
  relaying = true;

  constructor(from: Duplex, to: Duplex, masked: boolean, tunnels: WebSocketTunnels) {
    super();
    this.from = from;
    this.to = to;
    this.masked = masked;
    this.tunnels = tunnels;
  }
}

const kRelay = Symbol('podgate.relay');
type RelayedSocket = Duplex & { [kRelay]: Relay };

function relayData(this: RelayedSocket, chunk: Buffer): void {
  const r = this[kRelay];
  r.advance(chunk);
  if (!r.to.write(chunk)) this.pause();
}

/** The socket drained what was relayed to it: read on from the other one. */
function relayDrain(this: RelayedSocket): void {
  const source = this[kRelay].peer;
  if (source.relaying) source.from.resume();
}

/** A half-close goes through, as with pipe(). */
function relayEnd(this: RelayedSocket): void {
  const r = this[kRelay];
  if (r.relaying) r.to.end();
}

/** One end closed: end the other, and forget the tunnel. */
function relayClose(this: RelayedSocket): void {
  const r = this[kRelay];
  if (!r.to.destroyed) r.to.end();
  r.tunnels.forget(r.masked ? r : r.peer);
}

/** The error is followed by 'close', which ends the tunnel; listening keeps it from being thrown. */
function ignoreError(): void {}

/** Stop relaying at the end of the frame under way, then send 1001 and end; what comes after is read and dropped. */
function goAway(d: Relay): void {
  d.relaying = false;
  d.from.off('data', relayData);
  const finish = () => {
    if (d.to.writable) d.to.end(closeFrame(GOING_AWAY, d.masked));
  };
  if (d.atBoundary) {
    finish();
  } else {
    const relayRest = (chunk: Buffer) => {
      const n = d.advance(chunk, true);
      if (n > 0 && d.to.writable) d.to.write(chunk.subarray(0, n));
      if (d.atBoundary) {
        d.from.off('data', relayRest);
        finish();
      }
    };
    d.from.on('data', relayRest);
  }
  // Keep reading, so each socket sees its peer's answering close and FIN and closes now, instead of lingering until
  // the hard deadline and holding up the shutdown.
  d.from.resume();
}

export class WebSocketTunnels {
  /** Open tunnels, by their client-to-pod direction. */
  private readonly open = new Set<Relay>();
  private readonly onCountChange: (delta: number) => void;

  constructor(onCountChange: (delta: number) => void) {
    this.onCountChange = onCountChange;
  }

  /**
   * Relay both ways between the client and the pod from now on. Bytes already read past the handshake go first:
   * unshifted by the caller, they are the first 'data' of each socket.
   */
  add(client: Duplex, upstream: Duplex): void {
    const toPod = new Relay(client, upstream, true, this);
    const toClient = new Relay(upstream, client, false, this);
    toPod.peer = toClient;
    toClient.peer = toPod;
    this.open.add(toPod);
    this.onCountChange(1);
    for (const r of [toPod, toClient]) {
      const socket = r.from as RelayedSocket;
      socket[kRelay] = r;
      socket.on('error', ignoreError);
      socket.on('end', relayEnd);
      socket.on('close', relayClose);
      socket.on('drain', relayDrain);
      socket.on('data', relayData);
      socket.resume();
    }
  }

  /** The tunnel of `toPod` closed (either end): counted once. */
  forget(toPod: Relay): void {
    if (this.open.delete(toPod)) this.onCountChange(-1);
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
    for (const toPod of this.open) {
      const toClient = toPod.peer;
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
