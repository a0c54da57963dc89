// A real OpenSSH server and a real ssh-agent for the DOCKER_HOST=ssh:// tests, both child processes of the test on
// loopback, with everything (host key, authorized_keys, configuration, agent socket) in a directory the caller
// made. The system's sshd (its /etc/ssh configuration, port 22) is neither used nor touched.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, constants, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** sshd re-executes itself for every connection, so it must be started by its absolute path. */
const SSHD = '/usr/sbin/sshd';
/**
 * Compiled into Debian's sshd (privilege separation), normally made by the systemd unit or init script. Creating it
 * when missing (an empty root-owned directory) is the one thing outside `dir` the test does; it is left in place, as
 * a system sshd started later would need it too.
 */
const PRIVSEP_DIR = '/run/sshd';
const START_ATTEMPTS = 5;

export interface SshKey {
  /** The private key file; `${path}.pub` is the public one. */
  path: string;
  publicKey: string;
  /** `SHA256:...`, as sshd logs the key it accepted. */
  fingerprint: string;
}

/** A fresh ed25519 key pair in `dir` (with `passphrase`: an encrypted private key). */
export async function generateKey(dir: string, name: string, passphrase = ''): Promise<SshKey> {
  const path = join(dir, name);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', path]);
  const publicKey = (await readFile(`${path}.pub`, 'utf8')).trim();
  const { stdout } = await run('ssh-keygen', ['-l', '-f', `${path}.pub`]);
  // "256 SHA256:... name (ED25519)"
  const fingerprint = stdout.split(' ')[1];
  if (!fingerprint?.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen -l output: ${stdout}`);
  return { path, publicKey, fingerprint };
}

/** A port outside the pod port ranges (30000-39999) and the kernel's ephemeral ports, free right now. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = 21000 + Math.floor(Math.random() * 8000);
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Resolve once `ready` matches what `child` wrote on `stream`; reject (with all of it) if it exits first. */
function waitOutput(child: ChildProcess, stream: 'stdout' | 'stderr', ready: (text: string) => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const source = child[stream]!;
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (ready(text)) {
        source.off('data', onData);
        child.off('exit', onExit);
        resolve();
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      source.off('data', onData);
      reject(new Error(`${what} exited (${signal ?? code}) before it was ready: ${text.trim()}`));
    };
    source.on('data', onData);
    child.once('exit', onExit);
    child.once('error', (err) => reject(new Error(`${what} did not start: ${err.message}`)));
  });
}

export interface Sshd {
  port: number;
  /** Its host key's fingerprint (`SHA256:...`), what DOCKER_SSH_HOST_KEY names. */
  hostKeyFingerprint: string;
  /** Everything sshd logged so far (connections, accepted and refused keys). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * sshd on 127.0.0.1 accepting root with one of `authorized` (a key, nothing else: no password, no PAM, no
 * keyboard-interactive), no forwarding of any kind; commands run as on any pod host (`docker system dial-stdio`).
 */
export async function startSshd(dir: string, authorized: SshKey[], extraConfig: string[] = []): Promise<Sshd> {
  await access(SSHD, constants.X_OK).catch(() => {
    throw new Error(`${SSHD} is missing: apt-get install openssh-server openssh-client (scripts/setup.sh does)`);
  });
  await mkdir(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
  const hostKey = await generateKey(dir, 'sshd_host_ed25519_key');
  const authorizedKeys = join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, authorized.map((k) => `${k.publicKey}\n`).join(''), { mode: 0o600 });
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const config = join(dir, `sshd_config.${port}`);
    await writeFile(
      config,
      [
        `Port ${port}`,
        `ListenAddress 127.0.0.1:${port}`,
        'AddressFamily inet',
        `HostKey ${hostKey.path}`,
        // -D writes no daemon pid file we need; never /run/sshd.pid, which belongs to the system's sshd.
        'PidFile none',
        `AuthorizedKeysFile ${authorizedKeys}`,
        // The files live under /tmp, which is world-writable: StrictModes would refuse them for that alone.
        'StrictModes no',
        'AuthenticationMethods publickey',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'HostbasedAuthentication no',
        'UsePAM no',
        'PermitRootLogin prohibit-password',
        'AllowUsers root',
        'AllowTcpForwarding no',
        'AllowStreamLocalForwarding no',
        'AllowAgentForwarding no',
        'X11Forwarding no',
        'PermitTunnel no',
        'PermitUserRC no',
        'PrintMotd no',
        'PrintLastLog no',
        'LogLevel INFO',
        ...extraConfig,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    // -D: stay in the foreground as our child; -e: log to stderr (collected below) instead of syslog.
    const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    try {
      await waitOutput(child, 'stderr', (t) => t.includes(`Server listening on 127.0.0.1 port ${port}.`), 'sshd');
    } catch (err) {
      // Another process took the port between the probe and sshd's bind: another port. Anything else is fatal.
      lastError = err as Error;
      if (/Address already in use|Cannot bind any address/i.test(lastError.message)) continue;
      throw lastError;
    }
    return {
      port,
      hostKeyFingerprint: hostKey.fingerprint,
      log: () => log,
      async stop() {
        if (child.pid === undefined) return;
        // Each connection is served by a child that sshd puts in a session of its own (setsid), so killing the
        // listener leaves them running until their client goes: stop those too, by their ids.
        const { stdout } = await run('pgrep', ['-P', String(child.pid)]).catch(() => ({ stdout: '' }));
        const sessions = stdout.split('\n').map(Number).filter((pid) => pid > 0);
        child.kill('SIGTERM');
        await waitExit(child);
        for (const pid of sessions) {
          try {
            process.kill(pid, 'SIGTERM');
          } catch {
            // already gone with its connection
          }
        }
      },
    };
  }
  throw new Error(`sshd did not start after ${START_ATTEMPTS} attempts: ${lastError?.message}`);
}

export interface SshAgent {
  /** SSH_AUTH_SOCK of this agent. */
  socket: string;
  stop(): Promise<void>;
}

/** ssh-agent listening on `${dir}/${name}.sock`, holding `keys`. */
export async function startSshAgent(dir: string, name: string, keys: SshKey[]): Promise<SshAgent> {
  const socket = join(dir, `${name}.sock`);
  // -D: foreground, our child; it prints SSH_AUTH_SOCK=... once the socket is bound (its errors go to the test's).
  const child = spawn('ssh-agent', ['-D', '-a', socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = async () => {
    child.kill('SIGTERM');
    await waitExit(child);
  };
  try {
    await waitOutput(child, 'stdout', (t) => t.includes('SSH_AUTH_SOCK='), 'ssh-agent');
    for (const key of keys) await run('ssh-add', ['-q', key.path], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
  } catch (err) {
    await stop();
    throw err;
  }
  return { socket, stop };
}
