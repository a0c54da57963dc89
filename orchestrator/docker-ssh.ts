// Docker over ssh: an http.Agent whose every connection is `docker system dial-stdio` run on the pod host through
// ssh2, the same thing docker-modem does for DOCKER_HOST=ssh:// (lib/ssh.js). Ours because docker-modem's, when the
// pod host refuses the command (sshd's MaxSessions reached, a ForceCommand...), calls back with the error and then
// again with no stream, and the TypeError that follows is thrown inside ssh2's callback: it would crash the
// orchestrator. Here each connection reports exactly one outcome, and a late ssh error only ends that request.
// It also pins the pod host's key and turns ssh failures into answers that say what to check.
import { createHash } from 'node:crypto';
import { Agent } from 'node:http';
import type { Duplex } from 'node:stream';
import { Client, type ConnectConfig } from 'ssh2';
import { ServiceUnavailableError } from '../shared/errors.ts';
import type { DockerSshTarget } from './config.ts';

/** What runs on the pod host: the Docker CLI relaying the daemon's API socket over stdin/stdout. */
export const DIAL_STDIO = 'docker system dial-stdio';

type Created = (err: Error | null, stream?: Duplex) => void;

/** OpenSSH's SHA256 fingerprint of a raw host key (`ssh-keygen -lf` prints the same). */
export function sshFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** ssh2 marks its own failures (socket, DNS, timeout, handshake, authentication, agent) with a `level`; so do we. */
function sshLevel(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'level' in err && typeof err.level === 'string' ? err.level : undefined;
}

/** An ssh failure -> a 503 that says which DOCKER_HOST and what to check (ssh2's own words alone are a 502). */
function sshFailure(err: Error, dockerHost: string, ssh: DockerSshTarget): Error {
  const level = sshLevel(err);
  if (level === undefined) return err;
  const keys = [ssh.agent && `the agent SSH_AUTH_SOCK=${ssh.agent}`, ssh.identity && `DOCKER_SSH_IDENTITY=${ssh.identity}`].filter(Boolean).join(' or ');
  const hint =
    level === 'client-authentication' || level === 'agent'
      ? `the pod host refused every key of ${keys}: add the public key to ~${ssh.user}/.ssh/authorized_keys there`
      : level === 'exec'
        ? `the pod host's sshd refused the command (its MaxSessions, a ForceCommand or Match block for ${ssh.user}?)`
        : /Host denied/.test(err.message)
          ? `its host key is not the one DOCKER_SSH_HOST_KEY=${ssh.hostKey} names: the pod host's key changed, or this is not the pod host`
          : `check that sshd runs there and that DOCKER_HOST's host and port are right`;
  return new ServiceUnavailableError(`Docker is not reachable over ssh (DOCKER_HOST=${dockerHost}): ${err.message}; ${hint}`);
}

/**
 * The agent for DOCKER_HOST=`dockerHost` (parsed into `ssh`); `privateKey`: the DOCKER_SSH_IDENTITY file's
 * content, read once at start.
 */
export function sshDockerAgent(dockerHost: string, ssh: DockerSshTarget, privateKey: Buffer | undefined): Agent {
  const connect: ConnectConfig = {
    host: ssh.host,
    port: ssh.port,
    username: ssh.user,
    agent: ssh.agent,
    ...(privateKey ? { privateKey } : {}),
    // ssh2 accepts any host key unless told which one: without this a machine posing as the pod host would be
    // handed every pod (and their Docker API).
    ...(ssh.hostKey ? { hostVerifier: (key: Buffer) => sshFingerprint(key) === ssh.hostKey } : {}),
  };
  const agent = new Agent();
  // Node calls createConnection with a callback and takes the socket from it when nothing is returned.
  (agent as unknown as { createConnection: (options: unknown, created: Created) => undefined }).createConnection = (_options, created) => {
    const conn = new Client();
    let finished = false;
    const finish = (err: Error | null, stream?: Duplex) => {
      if (finished) return;
      finished = true;
      if (err) conn.end();
      created(err && sshFailure(err, dockerHost, ssh), stream);
    };
    // Stays attached for the connection's whole life: an ssh error after the stream was handed over ends this
    // request through the stream's own close, never the process.
    conn.on('error', (err) => finish(err));
    conn.once('close', () => finish(new Error('the ssh connection closed before Docker answered')));
    conn.once('ready', () => {
      conn.exec(DIAL_STDIO, (err, stream) => {
        if (err) return finish(Object.assign(new Error(`the pod host refused to run ${DIAL_STDIO}: ${err.message}`), { level: 'exec' }));
        stream.once('close', () => conn.end());
        finish(null, stream);
      });
    });
    conn.connect(connect);
    return undefined;
  };
  return agent;
}
