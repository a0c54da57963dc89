// Starts a real BIND 9 (Debian's `named`, package bind9) for one test file: authoritative only (no recursion) for
// one zone, on a free loopback port, accepting RFC 2136 updates signed with a TSIG key made by `tsig-keygen`.
// Everything named writes (journal, pid and lock files, session and managed keys) goes to a temp dir: `named -g`
// runs in the foreground as a child process (no systemd, no rndc: `controls {}`), logging to stderr, which is
// kept so tests can see the updates it applied. Stopped with SIGTERM (SIGKILL if it hangs); the dir is removed.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePorts } from './pebble.ts';
import { waitFor } from './wait.ts';

const run = promisify(execFile);
const STOP_TIMEOUT_MS = 5_000;

export interface BindOptions {
  /** The zone named is authoritative for: apex and `*` answer A 127.0.0.1 (pebble's HTTP-01, the gateway). */
  zone: string;
  /** Name of the TSIG key allowed to update the zone (default podgate-acme). */
  keyName?: string;
  /**
   * What the key may update, as update-policy rules without the `grant <key>` part. Default: only TXT at
   * `_acme-challenge.<zone>.`, the one record a `*.<zone>` certificate needs.
   */
  grants?: string[];
}

export interface Bind {
  zone: string;
  host: string;
  port: number;
  /** host:port, as NSUPDATE_SERVER and pebble's -dnsserver take it. */
  server: string;
  keyName: string;
  /** The TSIG key file named trusts (tsig-keygen's output). */
  keyFile: string;
  /** The TXT strings named serves for `name` now (empty when it has none), asked without recursion. */
  txt(name: string): Promise<string[]>;
  /** named's log so far (updates applied and refused, TSIG failures). */
  log(): string;
  stop(): Promise<void>;
}

/** A TSIG key file as `tsig-keygen -a hmac-sha256 <name>` writes it (a new random secret each call). */
export async function writeTsigKey(name: string, path: string): Promise<void> {
  const { stdout } = await run('tsig-keygen', ['-a', 'hmac-sha256', name]);
  await writeFile(path, stdout, { mode: 0o600 });
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => resolve(false));
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
  });
}

/** A loopback port free for TCP (freePorts checks that) and UDP, both of which DNS uses. */
async function freeDnsPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const [port] = (await freePorts(1)) as [number];
    if (await udpFree(port)) return port;
  }
  throw new Error('no loopback port free for both TCP and UDP');
}

function namedConf(dir: string, zone: string, port: number, keyName: string, grants: string[]): string {
  return `include "${join(dir, 'tsig.key')}";
options {
  directory "${dir}";
  pid-file "${join(dir, 'named.pid')}";
  lock-file "${join(dir, 'named.lock')}";
  session-keyfile "${join(dir, 'session.key')}";
  managed-keys-directory "${dir}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
};
controls { };
zone "${zone}" {
  type primary;
  file "${join(dir, 'zone.db')}";
  update-policy {
${grants.map((g) => `    grant ${keyName} ${g};`).join('\n')}
  };
};
`;
}

function zoneFile(zone: string): string {
  return `$TTL 60
@ IN SOA ns.${zone}. hostmaster.${zone}. 1 3600 600 86400 60
@ IN NS ns.${zone}.
@ IN A 127.0.0.1
* IN A 127.0.0.1
`;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startBind(options: BindOptions): Promise<Bind> {
  const zone = options.zone.replace(/\.$/, '');
  const keyName = options.keyName ?? 'podgate-acme';
  const grants = options.grants ?? [`name _acme-challenge.${zone}. TXT`];
  const dir = await mkdtemp(join(tmpdir(), 'podgate-bind-'));
  const keyFile = join(dir, 'tsig.key');
  let child: ChildProcess | undefined;
  let output = '';
  try {
    await writeTsigKey(keyName, keyFile);
    await writeFile(join(dir, 'zone.db'), zoneFile(zone));
    const port = await freeDnsPort();
    await writeFile(join(dir, 'named.conf'), namedConf(dir, zone, port, keyName, grants));
    // -g: foreground, log to stderr; -4: IPv4 only (loopback); -n 1: one worker thread is plenty for a test.
    // No -u: named keeps the test's user, which owns the temp dir.
    const named = spawn('named', ['-g', '-4', '-n', '1', '-c', join(dir, 'named.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = named;
    named.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
    named.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
    named.once('error', (err) => (output += `\nspawn named: ${err.message} (Debian package bind9)\n`));
    const resolver = new Resolver({ timeout: 500, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    await waitFor(
      async () => {
        if (exited(named) || output.includes('spawn named:')) throw new Error(`named exited during start:\n${output}`);
        // Loaded and answering: the zone's own SOA (not some other server that took the port meanwhile).
        if (!output.includes('running')) return false;
        const soa = await resolver.resolveSoa(zone).catch(() => undefined);
        return soa?.hostmaster === `hostmaster.${zone}`;
      },
      { timeoutMs: 20_000, intervalMs: 50, what: `named to serve ${zone}` },
    );
    return {
      zone,
      host: '127.0.0.1',
      port,
      server: `127.0.0.1:${port}`,
      keyName,
      keyFile,
      async txt(name) {
        try {
          return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(''));
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code === 'ENODATA' || code === 'ENOTFOUND') return [];
          throw err;
        }
      },
      log: () => output,
      async stop() {
        await stopChild(named);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (child) await stopChild(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
