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

/**
 * Drive the pod's terminal over a WebSocket: for each step send its input and, if it has `until`, wait until the
 * output received since then matches it. Resolves with what each step received.
 */
export async function terminalSession(port: number, headers: Record<string, string>, steps: Array<{ send: string; until?: RegExp }>): Promise<string[]> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers });
  let output = '';
  ws.on('message', (data: Buffer) => (output += data.toString('utf8')));
  const seen: string[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    for (const step of steps) {
      output = '';
      // Binary frames, as the page sends them (websocketd ends a text frame with a newline).
      ws.send(Buffer.from(step.send));
      const until = step.until;
      if (until) await waitFor(() => until.test(output), { timeoutMs: 20_000, what: `the terminal to answer ${JSON.stringify(step.send)}` });
      seen.push(output);
    }
    return seen;
  } finally {
    ws.terminate();
  }
}
