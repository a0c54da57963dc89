// The default certificate served when no issued certificate covers an SNI name (and while on-demand issuance
// runs). Node cannot build X.509 certificates itself, so this asks openssl, which works offline.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** Ten years: the default certificate is never trusted anyway, it only has to complete the handshake. */
const DEFAULT_CERT_DAYS = 3650;
const OPENSSL_TIMEOUT_MS = 15_000;

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

export async function createSelfSignedCertificate(commonName: string): Promise<KeyAndCert> {
  const { stdout } = await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', String(DEFAULT_CERT_DAYS), '-subj', `/CN=${commonName}`, '-keyout', '-', '-out', '-',
  ], { timeout: OPENSSL_TIMEOUT_MS }).catch((err: Error) => {
    throw new Error(`could not create the default TLS certificate with openssl (is it installed?): ${err.message}`);
  });
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(stdout)?.[0];
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(stdout)?.[0];
  if (!key || !cert) throw new Error('openssl did not print a key and a certificate');
  return { keyPem: key, certPem: cert };
}
