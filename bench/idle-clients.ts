// Idle connections for the memory measurement: opens N connections to a server and keeps them open and silent.
//   ws:   each sends a WebSocket upgrade and waits for its 101 (the server then holds one tunnel per client);
//   http: each sends one keep-alive GET and reads its response (the server then holds one idle keep-alive client).
// Raw sockets, so the clients cost little themselves. At most OPENING connections are being opened at once.
// Prints one JSON line once all are open (or failed): {"open":n,"failed":n,"seconds":s}; on SIGTERM, or after
// <hold seconds>, a second line {"closedWhileHeld":n} and exits.
// Usage: node bench/idle-clients.ts <ws|http> <port> <host header> <count> <open seconds> <hold seconds>
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const [mode, portArg, host, countArg, openArg, holdArg] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);
const openSeconds = Number(openArg);
const holdSeconds = Number(holdArg);
if ((mode !== 'ws' && mode !== 'http') || !(port >= 1 && port <= 65535) || !host || !(count >= 1 && count <= 50_000) || !(openSeconds > 0 && openSeconds <= 600) || !(holdSeconds > 0 && holdSeconds <= 600)) {
  process.stderr.write('usage: node bench/idle-clients.ts <ws|http> <port> <host> <count 1-50000> <open seconds 1-600> <hold seconds 1-600>\n');
  process.exit(2);
}
/** Connections being opened at once: enough to be quick, few enough not to overflow the server's listen backlog. */
const OPENING = 200;

const sockets: Socket[] = [];
let open = 0;
let failed = 0;
let holding = false;
let closedWhileHeld = 0;
/** Why connections failed to open, counted: the status line's code, `error <code>`, or `closed` before an answer. */
const failures: Record<string, number> = {};

function request(): string {
  if (mode === 'http') return `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
  const key = randomBytes(16).toString('base64');
  return `GET / HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

/** Resolves true once the connection is in the idle state it is measured in. */
function openOne(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let head = '';
    let settled = false;
    const done = (ok: boolean, why = '') => {
      if (settled) return;
      settled = true;
      if (ok) sockets.push(s);
      else {
        failures[why] = (failures[why] ?? 0) + 1;
        s.destroy();
      }
      resolve(ok);
    };
    s.setNoDelay(true);
    s.on('connect', () => s.write(request()));
    s.on('data', (d: Buffer) => {
      if (settled) return; // idle from here on; a WebSocket server may still send nothing, an HTTP one nothing either
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
      if (mode === 'ws') return done(status === '101', `status ${status ?? 'unreadable'}`);
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head.slice(0, end))?.[1] ?? NaN);
      if (status === '200' && head.length - end - 4 >= length) done(true);
      else if (status !== '200') done(false, `status ${status ?? 'unreadable'}`);
    });
    s.on('error', (err: NodeJS.ErrnoException) => done(false, `error ${err.code ?? err.message}`));
    s.on('close', () => {
      if (!settled) done(false, 'closed');
      else if (holding) closedWhileHeld++;
    });
  });
}

const started = performance.now();
const deadline = started + openSeconds * 1000;
let next = 0;
async function worker(): Promise<void> {
  while (next < count && performance.now() < deadline) {
    next++;
    if (await openOne()) open++;
    else failed++;
  }
}
await Promise.all(Array.from({ length: Math.min(OPENING, count) }, worker));
failed += count - open - failed; // not attempted before the deadline
holding = true;
process.stdout.write(`${JSON.stringify({ open, failed, failures, seconds: (performance.now() - started) / 1000 })}\n`);

function finish(): void {
  process.stdout.write(`${JSON.stringify({ closedWhileHeld })}\n`);
  for (const s of sockets) s.destroy();
  process.exit(0);
}
process.once('SIGTERM', finish);
setTimeout(finish, holdSeconds * 1000);
