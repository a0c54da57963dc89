// VS Code (code-server) in a pod, for the tests that drive it: its image, and the first step of the VS Code remote
// protocol over a real WebSocket, which proves the whole path (gateway, in-pod router, code-server) carries it.
import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { WebSocket } from 'ws';
import { waitFor } from './wait.ts';

/** Built by `docker/build-image.sh --with-vscode`, which scripts/test.sh runs (PODGATE_WITH_VSCODE=1). */
export const VSCODE_IMAGE = 'podgate/pod:vscode';
export const VSCODE_PORT = 8726;

/** The image, or an error that says how to build it: a test that needs VS Code fails rather than skips. */
export async function vscodeImage(): Promise<string> {
  try {
    await new Docker().getImage(VSCODE_IMAGE).inspect();
    return VSCODE_IMAGE;
  } catch {
    throw new Error(`${VSCODE_IMAGE} is missing: build it with docker/build-image.sh --with-vscode (scripts/test.sh does)`);
  }
}

/** The commit path of code-server's workbench page (`/stable-<commit>`): where its WebSocket connects. */
export function workbenchCommitPath(html: string): string {
  const m = /\b(stable-[0-9a-f]{40})\b/.exec(html);
  if (!m) throw new Error('no /stable-<commit> path in the workbench page');
  return m[1]!;
}

/** VS Code's PersistentProtocol header: type (1 byte), id, ack, payload length (32-bit big endian each). */
const HEADER_BYTES = 13;
const CONTROL = 2;

function controlMessage(json: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(json));
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt8(CONTROL, 0);
  header.writeUInt32BE(payload.length, 9);
  return Buffer.concat([header, payload]);
}

/**
 * Open the workbench's WebSocket (as the browser does: `/<commit>?reconnectionToken=...`) with `headers`, send the
 * client's `auth` control message and return the server's answer, VS Code's `sign` challenge.
 */
export async function vscodeHandshake(url: string, headers: Record<string, string>): Promise<{ type?: string; data?: string }> {
  const ws = new WebSocket(`${url}?reconnectionToken=${randomUUID()}&reconnection=false&skipWebSocketFrames=false`, { headers });
  let answer: { type?: string; data?: string } | undefined;
  ws.on('message', (data: Buffer) => {
    if (data.length > HEADER_BYTES && data.readUInt8(0) === CONTROL) answer = JSON.parse(data.subarray(HEADER_BYTES).toString('utf8'));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`WebSocket refused: ${res.statusCode}`)));
    });
    ws.send(controlMessage({ type: 'auth', auth: '00000000000000000000', data: randomUUID() }));
    await waitFor(() => answer !== undefined, { timeoutMs: 20_000, what: "code-server's answer over the WebSocket" });
    return answer!;
  } finally {
    ws.terminate();
  }
}
