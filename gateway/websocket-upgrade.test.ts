// What an open WebSocket tunnel keeps: its two sockets and its relay, nothing of the handshake. Thousands of idle
// tunnels are held at once, and each request or response object kept alive per tunnel (with its headers, raw
// headers and listeners) is kilobytes. The client and the pod here are raw sockets, so every IncomingMessage and
// ClientRequest alive in this process is the gateway's.
import { IncomingMessage, ClientRequest } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { queryObjects } from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../test/support/gateway-harness.ts';
import { waitFor } from '../test/support/wait.ts';

const TUNNELS = 40;

let h: Harness;
let pod: Server;
const podSockets: Socket[] = [];

beforeAll(async () => {
  h = await startHarness();
  // A pod that accepts every upgrade with a bare 101 and then stays silent.
  pod = createServer((s) => {
    podSockets.push(s);
    s.on('error', () => {});
    s.once('data', () => s.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'));
  });
  await new Promise<void>((r) => pod.listen(0, '127.0.0.1', r));
  await h.route('idle', (pod.address() as AddressInfo).port);
});

afterAll(async () => {
  for (const s of podSockets) s.destroy();
  await new Promise((r) => pod?.close(r));
  await h?.close();
});

/** A raw WebSocket client whose upgrade got its 101. */
function openTunnel(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: Number(new URL(h.url).port) });
    let head = '';
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      if (head.startsWith('HTTP/1.1 101 ')) resolve(s);
      else reject(new Error(`not upgraded: ${head}`));
    });
    s.write('GET / HTTP/1.1\r\nHost: pod-idle.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
  });
}

const live = () => ({
  incoming: queryObjects(IncomingMessage, { format: 'count' }) as number,
  outgoing: queryObjects(ClientRequest, { format: 'count' }) as number,
});

describe('an open tunnel', () => {
  it('keeps no request or response of its handshake', async () => {
    const before = live();
    const clients: Socket[] = [];
    for (let i = 0; i < TUNNELS; i++) clients.push(await openTunnel());
    await waitFor(() => podSockets.length >= TUNNELS, { what: 'the tunnels at the pod' });
    // queryObjects collects garbage first: what it counts is held by something.
    const after = live();
    expect(after.incoming - before.incoming).toBeLessThan(TUNNELS / 4);
    expect(after.outgoing - before.outgoing).toBeLessThan(TUNNELS / 4);
    // ... and the tunnels are open: a frame from the client reaches the pod.
    const got = new Promise<Buffer>((r) => podSockets[0]!.once('data', r));
    const frame = Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2]);
    clients[0]!.write(frame);
    expect(await got).toEqual(frame);
    for (const c of clients) c.destroy();
  });
});
