// `podgate certs ...`: TLS certificates through a gateway's admin listener (gateway/tls/api.ts). Issuance happens
// in the gateway, which answers the CA's HTTP-01 challenges.
import { Command } from 'commander';
import type { CertificateView } from '../gateway/tls/manager.ts';
import type { Ctx } from './context.ts';
import { json, printable, table } from './output.ts';

/** Issuance waits for the CA: Let's Encrypt usually answers within seconds, a slow validation within minutes. */
const ISSUE_TIMEOUT_MS = 5 * 60_000;

const certPath = (id: string, rest = '') => `/v1/certificates/${encodeURIComponent(id)}${rest}`;

function certsTable(certs: CertificateView[]): string {
  return table(
    ['ID', 'STATUS', 'EXPIRES', 'RENEW AT', 'ORIGIN', 'NAMES', 'RENEWAL'],
    certs.map((c) => [
      c.id, c.status, c.notAfter, c.renewAt, c.origin, c.names.join(','),
      c.renewal.failures > 0 ? `failed ${c.renewal.failures}x: ${c.renewal.lastError ?? ''}` : 'ok',
    ]),
  );
}

export function certsCommand(ctx: () => Ctx): Command {
  const certs = new Command('certs').description("the gateway's TLS certificates (PODGATE_GATEWAY_URL, PODGATE_GATEWAY_TOKEN)");
  const print = (c: Ctx, cert: CertificateView) => c.out.stdout(c.json ? json(cert) : certsTable([cert]));

  certs
    .command('ls')
    .alias('list')
    .description('list certificates: names, expiry, status, renewal failures')
    .action(async () => {
      const c = ctx();
      const { certificates } = await c.gateway().call<{ certificates: CertificateView[] }>('GET', '/v1/certificates');
      c.out.stdout(c.json ? json({ certificates }) : certificates.length === 0 ? 'no certificates\n' : certsTable(certificates));
    });

  certs
    .command('issue')
    .argument('<names...>', "host names, e.g. '*.pod-myapp.example.com' (the first is the id)")
    .description('issue a certificate now (answers once the CA has issued it)')
    .action(async (names: string[]) => {
      const c = ctx();
      print(c, await c.gateway().call<CertificateView>('POST', '/v1/certificates', { names }, ISSUE_TIMEOUT_MS));
    });

  certs
    .command('show')
    .argument('<id>')
    .description('one certificate')
    .action(async (id: string) => {
      const c = ctx();
      print(c, await c.gateway().call<CertificateView>('GET', certPath(id)));
    });

  certs
    .command('renew')
    .argument('<id>')
    .description('renew a certificate now')
    .action(async (id: string) => {
      const c = ctx();
      print(c, await c.gateway().call<CertificateView>('POST', certPath(id, '/renew'), undefined, ISSUE_TIMEOUT_MS));
    });

  certs
    .command('rm')
    .alias('delete')
    .argument('<id>')
    .description('delete a certificate')
    .action(async (id: string) => {
      const c = ctx();
      await c.gateway().call('DELETE', certPath(id));
      c.out.stdout(c.json ? json({ deleted: id }) : `deleted ${printable(id)}\n`);
    });

  return certs;
}
