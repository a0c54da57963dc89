// Wiring of TLS into one gateway process, kept here so main.ts needs three lines: hooks for the plain-HTTP
// listener and the admin app before startGateway(), then attach() to open the HTTPS listener with the
// gateway's own request and upgrade handlers, and stop() on shutdown.
import type { CertStore } from '../../shared/cert-store.ts';
import { ConfigError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { GatewayConfig } from '../config.ts';
import type { GatewayDeps, RunningGateway } from '../gateway.ts';
import type { TlsConfig } from './config.ts';
import type { HttpsListener } from './https-server.ts';
import { buildDnsHook, createTls, type Tls } from './index.ts';
import { AcmeIssuer, type CertificateIssuer } from './acme.ts';
import { certificatesAdmin } from './api.ts';
import { CertificateManager } from './manager.ts';
import type { Hono } from 'hono';

export interface GatewayTls {
  tls: Tls;
  /** Pass to startGateway(): ACME challenges + HTTPS redirect on plain HTTP, /v1/certificates on admin. */
  hooks: Pick<GatewayDeps, 'intercept' | 'mountAdmin'>;
  /** After startGateway(): load certificates, start renewal, listen on HTTPS. Returns the HTTPS port. */
  attach(gateway: RunningGateway): Promise<number>;
  /** Close the HTTPS listener (within `deadlineMs`) and stop background work; the caller closes the store. */
  stop(deadlineMs: number): Promise<void>;
}

export async function prepareGatewayTls(
  config: GatewayConfig,
  tlsConfig: TlsConfig,
  deps: { certStore: CertStore; log: Logger; issuer?: CertificateIssuer; now?: () => number },
): Promise<GatewayTls> {
  if (config.GATEWAY_WORKERS > 1 && !config.REDIS_URL) {
    // Each worker process would hold its own embedded store: different certificates, challenges nobody answers.
    throw new ConfigError('REDIS_URL', 'TLS with GATEWAY_WORKERS > 1 needs the shared store (set REDIS_URL)');
  }
  let gateway: RunningGateway | undefined;
  let https: HttpsListener | undefined;
  const tls = await createTls({
    config: tlsConfig,
    store: deps.certStore,
    baseDomains: config.baseDomains,
    lookupPod: (slug) => gateway?.table.lookup(slug),
    adminToken: config.GATEWAY_ADMIN_TOKEN,
    log: deps.log,
    ...(deps.issuer ? { issuer: deps.issuer } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  });
  return {
    tls,
    hooks: { intercept: tls.intercept, mountAdmin: tls.mountAdmin },
    async attach(running) {
      gateway = running;
      await tls.start();
      https = await tls.listen(running, {
        headersTimeoutMs: config.HEADERS_TIMEOUT_MS,
        keepAliveTimeoutMs: config.CLIENT_KEEPALIVE_MS,
      });
      return https.port;
    },
    async stop(deadlineMs) {
      await https?.close(deadlineMs);
      await tls.close();
    },
  };
}

/**
 * The certificates API alone, for a process that serves the admin listener but no traffic (the cluster
 * primary when GATEWAY_WORKERS > 1): issuance puts HTTP-01 answers in the shared store, where the workers
 * answer them. Renewal stays with the workers.
 */
export function createCertificatesAdmin(
  config: GatewayConfig,
  tlsConfig: TlsConfig,
  deps: { certStore: CertStore; log: Logger },
): { mountAdmin: (app: Hono) => void } {
  const issuer = new AcmeIssuer({
    store: deps.certStore,
    directoryUrl: tlsConfig.acme.directoryUrl,
    ...(tlsConfig.acme.email ? { email: tlsConfig.acme.email } : {}),
    ...(tlsConfig.acme.caBundlePem ? { caBundlePem: tlsConfig.acme.caBundlePem } : {}),
    dnsHook: buildDnsHook(tlsConfig),
    log: deps.log,
  });
  const manager = new CertificateManager({
    store: deps.certStore,
    issuer,
    baseDomains: config.baseDomains,
    log: deps.log,
    owner: `gateway-primary-${process.pid}`,
    backoff: { minMs: tlsConfig.renewal.backoffMinMs, maxMs: tlsConfig.renewal.backoffMaxMs },
  });
  const api = certificatesAdmin(manager, deps.log, config.GATEWAY_ADMIN_TOKEN);
  return { mountAdmin: (app) => void app.route('/', api) };
}
