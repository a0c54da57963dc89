// DNS-01 through RFC 2136 against real parts only: scripts/dns-hook-nsupdate.sh (Debian's nsupdate, TSIG)
// updating a real BIND 9 (test/support/bind.ts), pebble -strict resolving every name through that BIND, and the
// gateway as a process (`node gateway/main.ts`) configured the way an operator would (TLS_DNS_HOOK=exec),
// issuing through its admin API. Pebble asks only BIND, so an issued wildcard means BIND served the TXT record.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBind, writeTsigKey, type Bind } from '../../test/support/bind.ts';
import { spawnGateway, type ChildGateway } from '../../test/support/child-gateway.ts';
import { freePorts, startPebble, type Pebble } from '../../test/support/pebble.ts';
import { waitFor } from '../../test/support/wait.ts';

const ZONE = 'podgate-dns.test';
const RECORD = `_acme-challenge.${ZONE}`;
const ADMIN_TOKEN = 'rfc2136-admin-token-0123456789';
const HOOK = fileURLToPath(new URL('../../scripts/dns-hook-nsupdate.sh', import.meta.url));

let bind: Bind;
let pebble: Pebble;
let dir: string;
let wrongKeyFile: string;
let gateway: ChildGateway;
let wrongKeyGateway: ChildGateway;
let httpsPort: number;

function gatewayEnv(keyFile: string, ports: { http: number; https: number }): Record<string, string> {
  return {
    HTTP_PORT: String(ports.http),
    HTTPS_PORT: String(ports.https),
    HTTPS_HOST: '127.0.0.1',
    ADMIN_HOST: '127.0.0.1',
    BASE_DOMAINS: ZONE,
    ACCESS_LOG: 'false',
    ACME_DIRECTORY_URL: pebble.directoryUrl,
    ACME_CA_BUNDLE: join(dir, 'pebble-listener.pem'),
    ACME_EMAIL: 'ops@podgate-dns.test',
    TLS_ON_DEMAND: 'false',
    GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
    TLS_DNS_HOOK: 'exec',
    TLS_DNS_HOOK_COMMAND: HOOK,
    NSUPDATE_SERVER: bind.server,
    NSUPDATE_KEY_FILE: keyFile,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'podgate-rfc2136-'));
  bind = await startBind({ zone: ZONE });
  const [http, https, wrongHttp, wrongHttps] = (await freePorts(4)) as [number, number, number, number];
  // HTTP-01 is not used here (only wildcards), but pebble needs a port for it: the gateway's.
  pebble = await startPebble({ httpPort: http, dnsServer: bind.server });
  await writeFile(join(dir, 'pebble-listener.pem'), pebble.listenerCaPem);
  // Same key name, another secret: what a mistyped or rotated key looks like to the server (BADSIG).
  wrongKeyFile = join(dir, 'wrong.key');
  await writeTsigKey(bind.keyName, wrongKeyFile);
  httpsPort = https;
  [gateway, wrongKeyGateway] = await Promise.all([
    spawnGateway(gatewayEnv(bind.keyFile, { http, https })),
    spawnGateway(gatewayEnv(wrongKeyFile, { http: wrongHttp, https: wrongHttps })),
  ]);
  // The HTTPS listener opens after the one spawnGateway waits for.
  await waitFor(() => gateway.logs.some((l) => l.msg === 'HTTPS listening'), { what: 'the gateway to listen on HTTPS' });
});

afterAll(async () => {
  await Promise.all([gateway?.kill(), wrongKeyGateway?.kill()]);
  await pebble?.stop();
  await bind?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function admin(g: ChildGateway, method: string, path: string, body?: unknown) {
  const res = await fetch(`${g.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(method === 'GET' ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** A verified TLS handshake: the certificate must chain to pebble's root and cover `servername`. */
function verifiedPeer(servername: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: httpsPort, servername, ca: pebble.rootPem, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert);
    });
    socket.on('error', reject);
  });
}

/** The script as the gateway runs it, with only the environment given here. */
function hook(args: string[], env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(HOOK, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } }, (err, _stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stderr });
    });
  });
}

describe('DNS-01 through RFC 2136 (nsupdate + TSIG) against a real BIND', () => {
  it('issues a wildcard through the admin API, pebble validating the TXT record the hook put in BIND', async () => {
    const res = await admin(gateway, 'POST', '/v1/certificates', { names: [`*.${ZONE}`] });
    expect(res.json?.error).toBeUndefined();
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ id: `*.${ZONE}`, names: [`*.${ZONE}`], status: 'valid' });
    // Served for a name under the zone, verified against pebble's root (a self-signed default would fail).
    await waitFor(async () => (await verifiedPeer(`pod-app.${ZONE}`).catch(() => undefined))?.subjectaltname === `DNS:*.${ZONE}`, {
      what: 'the wildcard to be served',
    });
    const cert = await verifiedPeer(`localhost-3000-pod-app.${ZONE}`);
    expect(cert.subjectaltname).toBe(`DNS:*.${ZONE}`);
    expect(cert.issuer.CN).toMatch(/^Pebble Intermediate/);
    // The hook's set and clear both reached BIND, signed with the key; the record is gone again.
    expect(bind.log()).toMatch(new RegExp(`/key ${bind.keyName}: updating zone '${ZONE}/IN': adding an RR at '${RECORD}' TXT`));
    expect(bind.log()).toMatch(new RegExp(`/key ${bind.keyName}: updating zone '${ZONE}/IN': deleting an RR at ${RECORD} TXT`));
    expect(await bind.txt(RECORD)).toEqual([]);
  });

  it('fails issuance with the hook message when the TSIG key is wrong, storing nothing', async () => {
    const res = await admin(wrongKeyGateway, 'POST', '/v1/certificates', { names: [`*.${ZONE}`] });
    expect(res.status).toBe(502);
    expect(res.json.error.message).toContain(`dns-hook-nsupdate: set ${RECORD} TXT at ${bind.host}#${bind.port} failed`);
    expect(res.json.error.message).toContain('NOTAUTH(BADSIG)');
    expect(res.json.error.message).toContain('check NSUPDATE_KEY_FILE');
    expect((await admin(wrongKeyGateway, 'GET', '/v1/certificates')).json).toEqual({ certificates: [] });
    expect(bind.log()).toContain(`TSIG ${bind.keyName}: tsig verify failure (BADSIG)`);
    expect(await bind.txt(RECORD)).toEqual([]);
  });

  it('set adds a value next to the others and clear removes exactly that value', async () => {
    // Two authorizations answering on one name at once (`*.zone`, and `zone` when it gets a DNS-01 challenge).
    const env = { NSUPDATE_SERVER: bind.server, NSUPDATE_KEY_FILE: bind.keyFile, NSUPDATE_ZONE: ZONE };
    const [a, b] = ['first-value_0123456789abcdefghijklmnopqrstu', 'second-value_0123456789abcdefghijklmnopqrs'];
    expect(await hook(['set', RECORD, a], env)).toEqual({ code: 0, stderr: '' });
    // The gateway passes names without the trailing dot; one is accepted too.
    expect(await hook(['set', `${RECORD}.`, b], env)).toEqual({ code: 0, stderr: '' });
    expect((await bind.txt(RECORD)).sort()).toEqual([a, b].sort());
    expect(await hook(['clear', RECORD, a], env)).toEqual({ code: 0, stderr: '' });
    expect(await bind.txt(RECORD)).toEqual([b]);
    expect(await hook(['clear', RECORD, b], env)).toEqual({ code: 0, stderr: '' });
    expect(await bind.txt(RECORD)).toEqual([]);
    // Clearing what is already gone succeeds: a retried cleanup is not an error.
    expect((await hook(['clear', RECORD, b], env)).code).toBe(0);
  });

  it('reports a name the server does not let the key update with the server answer', async () => {
    const env = { NSUPDATE_SERVER: bind.server, NSUPDATE_KEY_FILE: bind.keyFile };
    const outside = `_acme-challenge.pod-app.${ZONE}`; // not granted by the zone's update-policy
    const result = await hook(['set', outside, 'abc'], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`set ${outside} TXT at ${bind.host}#${bind.port} failed: update failed: REFUSED`);
    expect(await bind.txt(outside)).toEqual([]);
  });

  it('refuses bad arguments and configuration before sending anything, naming what is wrong', async () => {
    const good = { NSUPDATE_SERVER: bind.server, NSUPDATE_KEY_FILE: bind.keyFile };
    const notAKey = join(dir, 'not-a-key');
    await writeFile(notAKey, 'secret = hunter2\n');
    const cases: [string[], Record<string, string>, string][] = [
      [['set', RECORD, 'abc'], { NSUPDATE_KEY_FILE: bind.keyFile }, 'NSUPDATE_SERVER is required'],
      [['set', RECORD, 'abc'], { ...good, NSUPDATE_SERVER: '127.0.0.1:70000' }, 'NSUPDATE_SERVER port must be 1-65535'],
      [['set', RECORD, 'abc'], { NSUPDATE_SERVER: bind.server }, 'NSUPDATE_KEY_FILE is required'],
      [['set', RECORD, 'abc'], { ...good, NSUPDATE_KEY_FILE: join(dir, 'missing.key') }, 'is not a readable file'],
      [['set', RECORD, 'abc'], { ...good, NSUPDATE_KEY_FILE: notAKey }, `NSUPDATE_KEY_FILE ${notAKey} is not a TSIG key nsupdate can use`],
      [['set', RECORD, 'abc'], { ...good, NSUPDATE_ZONE: 'elsewhere.test' }, `${RECORD} is not in NSUPDATE_ZONE elsewhere.test`],
      [['set', RECORD, 'abc'], { ...good, NSUPDATE_TTL: '1h' }, 'NSUPDATE_TTL must be 0-86400 seconds'],
      [['set', RECORD, 'abc'], { ...good, NSUPDATE_TIMEOUT: '60' }, 'NSUPDATE_TIMEOUT must be 1-14 seconds'],
      [['set', `host.${ZONE}`, 'abc'], good, 'fqdn must start with _acme-challenge.'],
      [['set', RECORD, 'a"\nupdate add evil 60 A 1.2.3.4'], good, 'value must be the DNS-01 challenge answer'],
      [['publish', RECORD, 'abc'], good, 'usage: dns-hook-nsupdate set|clear <fqdn> <value>'],
    ];
    for (const [args, env, message] of cases) {
      const result = await hook(args, env);
      expect({ args, env, ...result }).toMatchObject({ code: 2, stderr: expect.stringContaining(message) });
    }
    // None of them reached the server.
    expect(bind.log()).not.toContain('evil');
    expect(await bind.txt(RECORD)).toEqual([]);
  });
});
