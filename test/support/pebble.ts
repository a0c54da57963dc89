// Starts Let's Encrypt's test CA (Debian's `pebble`) and its DNS test server (`pebble-challtestsrv`) on free
// loopback ports for one test file. Pebble runs in -strict mode with random nonce rejection, validates HTTP-01
// on the port the caller names (the gateway's HTTP port) and resolves every name through challtestsrv, which
// answers 127.0.0.1 for A queries and nothing for AAAA (the gateway listens on IPv4 loopback only), or through
// the DNS server the caller names (a real BIND from test/support/bind.ts, for RFC 2136 updates).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './wait.ts';

const run = promisify(execFile);

export interface PebbleOptions {
  /** Port pebble connects to for HTTP-01 validation (the gateway's plain HTTP port). */
  httpPort: number;
  /** Percentage of good nonces pebble rejects with badNonce (exercises the client's retry). */
  nonceRejectPercent?: number;
  /** Lifetime of issued certificates; pebble's default is five years. */
  certificateValiditySeconds?: number;
  /**
   * DNS server (host:port) pebble resolves every name through, A records for HTTP-01 and TXT for DNS-01
   * included; default challtestsrv's. challtestsrv still runs (and its API answers), pebble just never asks it.
   */
  dnsServer?: string;
}

export interface Pebble {
  directoryUrl: string;
  /** PEM of pebble's own listener certificate: what the ACME client must trust to talk to pebble. */
  listenerCaPem: string;
  /** PEM of the root that signs issued certificates (new on every start of pebble). */
  rootPem: string;
  /** The DNS server pebble resolves through (host:port): options.dnsServer, else challtestsrv's. */
  dnsServer: string;
  /** challtestsrv's management API. */
  challtestsrvUrl: string;
  /** Stop the CA only (challtestsrv keeps running): a CA outage. */
  stopCa(): Promise<void>;
  stop(): Promise<void>;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Free loopback ports in the range the project's test helpers use (below the orchestrator's pod ports). */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count && attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 9000);
    if (!ports.includes(port) && (await isFree(port))) ports.push(port);
  }
  if (ports.length < count) throw new Error(`could not find ${count} free ports`);
  return ports;
}

function fetchPem(url: string, ca: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = httpsGet(url, { ca, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 ? body : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
  });
}

function spawnLogged(cmd: string, args: string[], env: NodeJS.ProcessEnv, log: string[]): ChildProcess {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (chunk: Buffer) => {
    log.push(chunk.toString());
    if (log.length > 200) log.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return child;
}

function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const dir = await mkdtemp(join(tmpdir(), 'podgate-pebble-'));
  const [acmePort, mgmtPort, dnsPort, ctsPort, tlsPort] = (await freePorts(5)) as [number, number, number, number, number];
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=pebble test listener', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ]);
  const listenerCaPem = await readFile(join(dir, 'cert.pem'), 'utf8');
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: join(dir, 'cert.pem'),
      privateKey: join(dir, 'key.pem'),
      httpPort: options.httpPort,
      tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      ...(options.certificateValiditySeconds ? { certificateValidityPeriod: options.certificateValiditySeconds } : {}),
    },
  };
  await writeFile(join(dir, 'pebble.json'), JSON.stringify(config));

  const log: string[] = [];
  const cts = spawnLogged('pebble-challtestsrv', [
    '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
    '-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${ctsPort}`,
    '-http01', '', '-https01', '', '-tlsalpn01', '',
  ], process.env, log);
  const dnsServer = options.dnsServer ?? `127.0.0.1:${dnsPort}`;
  let pebble: ChildProcess | undefined = spawnLogged('pebble', [
    '-strict', '-config', join(dir, 'pebble.json'), '-dnsserver', dnsServer,
  ], {
    ...process.env,
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: String(options.nonceRejectPercent ?? 15),
  }, log);

  const stop = async () => {
    await Promise.all([kill(pebble), kill(cts)]);
    pebble = undefined;
    await rm(dir, { recursive: true, force: true });
  };
  let rootPem: string | undefined;
  try {
    await waitFor(async () => {
      if (pebble?.exitCode !== null || cts.exitCode !== null) throw new Error(`pebble exited:\n${log.join('')}`);
      rootPem = await fetchPem(`https://127.0.0.1:${mgmtPort}/roots/0`, listenerCaPem);
      return rootPem !== undefined && (await fetchPem(`https://127.0.0.1:${acmePort}/dir`, listenerCaPem)) !== undefined;
    }, { timeoutMs: 15_000, intervalMs: 50, what: 'pebble to serve its directory' });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    directoryUrl: `https://127.0.0.1:${acmePort}/dir`,
    listenerCaPem,
    rootPem: rootPem!,
    dnsServer,
    challtestsrvUrl: `http://127.0.0.1:${ctsPort}`,
    async stopCa() {
      await kill(pebble);
      pebble = undefined;
    },
    stop,
  };
}
