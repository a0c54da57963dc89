// DNS-01 answers (needed for wildcard certificates): a DnsHook publishes and removes the TXT record
// `_acme-challenge.<name>`. Implementations:
//   challtestsrv  pebble-challtestsrv's management API (tests, local development against pebble)
//   exec          runs a command: `<command> set|clear <fqdn> <value>`, fqdn being the whole record name
//                 (`_acme-challenge.` included); scripts/dns-hook-nsupdate.sh is one for RFC 2136 dynamic
//                 updates with TSIG (Debian's nsupdate) to BIND, Knot, PowerDNS... (README "DNS-01")
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** A DNS API or update command that does not answer in this time has failed. */
const HOOK_TIMEOUT_MS = 30_000;

export interface DnsHook {
  readonly kind: string;
  /** Publish a TXT record; resolves once the record is visible to the CA's resolvers. */
  setTxt(fqdn: string, value: string): Promise<void>;
  /** Remove the TXT record with this value. */
  clearTxt(fqdn: string, value: string): Promise<void>;
}

export class ChallTestSrvDnsHook implements DnsHook {
  readonly kind = 'challtestsrv';
  private readonly baseUrl: string;

  constructor(managementUrl: string) {
    this.baseUrl = managementUrl.replace(/\/+$/, '');
  }

  async setTxt(fqdn: string, value: string): Promise<void> {
    await this.post('/set-txt', { host: `${fqdn}.`, value });
  }

  async clearTxt(fqdn: string): Promise<void> {
    await this.post('/clear-txt', { host: `${fqdn}.` });
  }

  private async post(path: string, body: unknown): Promise<void> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(HOOK_TIMEOUT_MS),
    });
    if (!res.ok) throw new Error(`challtestsrv ${path} answered ${res.status}`);
  }
}

/** Runs an operator's command; its exit status decides success, its stderr explains a failure. */
export class ExecDnsHook implements DnsHook {
  readonly kind = 'exec';
  private readonly command: string;

  constructor(command: string) {
    this.command = command;
  }

  async setTxt(fqdn: string, value: string): Promise<void> {
    await this.exec('set', fqdn, value);
  }

  async clearTxt(fqdn: string, value: string): Promise<void> {
    await this.exec('clear', fqdn, value);
  }

  private async exec(action: string, fqdn: string, value: string): Promise<void> {
    try {
      await run(this.command, [action, fqdn, value], { timeout: HOOK_TIMEOUT_MS });
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim().slice(0, 500);
      throw new Error(`DNS hook ${this.command} ${action} ${fqdn} failed: ${stderr || (err as Error).message}`);
    }
  }
}
