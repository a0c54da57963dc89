// Docker over ssh: an http.Agent whose every connection is `docker system dial-stdio` run on the pod host through
// ssh2, the same thing docker-modem does for DOCKER_HOST=ssh:// (lib/ssh.js). Ours because docker-modem's, when the
// pod host refuses the command (sshd's MaxSessions reached, a ForceCommand...), calls back with the error and then
// again with no stream, and the TypeError that follows is thrown inside ssh2's callback: it would crash the
// orchestrator. Here each connection reports exactly one outcome, and a late ssh error only ends that request.
import { Agent } from 'node:http';
import type { Duplex } from 'node:stream';
import { Client, type ConnectConfig } from 'ssh2';

/** What runs on the pod host: the Docker CLI relaying the daemon's API socket over stdin/stdout. */
export const DIAL_STDIO = 'docker system dial-stdio';

type Created = (err: Error | null, stream?: Duplex) => void;

export function sshDockerAgent(connect: ConnectConfig): Agent {
  const agent = new Agent();
  // Node calls createConnection with a callback and takes the socket from it when nothing is returned.
  (agent as unknown as { createConnection: (options: unknown, created: Created) => undefined }).createConnection = (_options, created) => {
    const conn = new Client();
    let settled = false;
    const settle = (err: Error | null, stream?: Duplex) => {
      if (settled) return;
      settled = true;
      if (err) conn.end();
      created(err, stream);
    };
    // Stays attached for the connection's whole life: an ssh error after the stream was handed over ends this
    // request through the stream's own close, never the process.
    conn.on('error', (err) => settle(err));
    conn.once('close', () => settle(new Error('the ssh connection closed before Docker answered')));
    conn.once('ready', () => {
      conn.exec(DIAL_STDIO, (err, stream) => {
        // Marked like ssh2's own failures (a `level`), so it reaches the API as the 503 those get.
        if (err) return settle(Object.assign(new Error(`the pod host refused to run ${DIAL_STDIO}: ${err.message}`), { level: 'exec' }));
        stream.once('close', () => conn.end());
        settle(null, stream);
      });
    });
    conn.connect(connect);
    return undefined;
  };
  return agent;
}
