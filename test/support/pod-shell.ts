// The pod's web terminal (websocketd + bash) driven over a real WebSocket: proves a whole path (gateway, in-pod
// router, service) carries WebSocket traffic both ways.
import { WebSocket } from 'ws';
import { waitFor } from './wait.ts';

/** Open a WebSocket to 127.0.0.1:`port` with `headers` (Host, cookie...), have the shell compute 6*7, return its output. */
export async function shellOverWebSocket(port: number, headers: Record<string, string>): Promise<string> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers });
  let output = '';
  ws.on('message', (data: Buffer) => (output += data.toString('utf8')));
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send('echo "sum=$((6*7))"\r');
    // The typed line echoes back as `sum=$((6*7))`; only the shell's answer contains sum=42.
    await waitFor(() => output.includes('sum=42'), { timeoutMs: 20_000, what: 'the pod shell to answer over the WebSocket' });
    return output;
  } finally {
    ws.terminate();
  }
}
