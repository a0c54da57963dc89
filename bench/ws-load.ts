// WebSocket echo load: N clients, each sends its next message as soon as the echo of the previous one arrives,
// for a fixed time after a short warm-up. Prints one JSON line: messages echoed in the measured window.
// Usage: node bench/ws-load.ts <url> <host header> <clients> <seconds> <message bytes>
import { WebSocket } from 'ws';

const [url, host, clientsArg, secondsArg, bytesArg] = process.argv.slice(2);
const clients = Number(clientsArg);
const seconds = Number(secondsArg);
const bytes = Number(bytesArg);
if (!url || !host || !(clients >= 1 && clients <= 1000) || !(seconds > 0 && seconds <= 60) || !(bytes >= 1 && bytes <= 65536)) {
  process.stderr.write('usage: node bench/ws-load.ts <url> <host> <clients 1-1000> <seconds 0-60> <message bytes 1-65536>\n');
  process.exit(2);
}
/** JIT and connection set-up before counting starts. */
const WARMUP_MS = 1000;
const OPEN_TIMEOUT_MS = 10_000;
const CLOSE_DEADLINE_MS = 3000;

const payload = Buffer.alloc(bytes, 'x').toString();
let counting = false;
let stopped = false;
let messages = 0;
let errors = 0;
const sockets: WebSocket[] = [];

function open(): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url!, { headers: { host: host! }, perMessageDeflate: false, handshakeTimeout: OPEN_TIMEOUT_MS });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

try {
  for (let i = 0; i < clients; i++) sockets.push(await open());
} catch (err) {
  process.stderr.write(`ws-load: could not connect: ${(err as Error).message}\n`);
  for (const ws of sockets) ws.terminate();
  process.exit(1);
}
for (const ws of sockets) {
  ws.on('error', () => errors++);
  ws.on('close', () => {
    if (!stopped) errors++;
  });
  ws.on('message', () => {
    if (counting) messages++;
    if (!stopped) ws.send(payload);
  });
  ws.send(payload);
}
setTimeout(() => {
  counting = true;
  const started = performance.now();
  setTimeout(() => {
    stopped = true;
    counting = false;
    const elapsed = (performance.now() - started) / 1000;
    process.stdout.write(`${JSON.stringify({ messages, seconds: elapsed, messagesPerSecond: messages / elapsed, errors })}\n`);
    // Close like a well-behaved client (close handshake, reading what is still in flight): terminating with echoes
    // in flight makes the kernel reset the connections, which measures something else.
    const closed = sockets.map((ws) => new Promise<void>((r) => (ws.readyState === WebSocket.CLOSED ? r() : ws.once('close', () => r()))));
    for (const ws of sockets) ws.close(1000);
    const deadline = setTimeout(() => process.exit(0), CLOSE_DEADLINE_MS);
    void Promise.all(closed).then(() => {
      clearTimeout(deadline);
      process.exit(0);
    });
  }, seconds * 1000);
}, WARMUP_MS);
