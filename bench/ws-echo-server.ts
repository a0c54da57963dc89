// The WebSocket "pod" of the benchmark: echoes every message. Plain GETs get 200 so the bench can poll it.
// Usage: node bench/ws-echo-server.ts <port>
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: node bench/ws-echo-server.ts <port 1-65535>\n');
  process.exit(2);
}
const server = createServer((_req, res) => res.end('ws echo\n'));
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
});
server.listen(port, '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
