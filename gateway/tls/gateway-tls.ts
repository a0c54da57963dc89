// Wiring of TLS into one gateway process, kept here so main.ts needs three lines: hooks for the plain-HTTP
// listener and the admin app before startGateway(), then attach() to open the HTTPS listener with the
// gateway's own request and upgrade handlers, and stop() on shutdown.
import type { CertStore } from '../../shared/cert-store.ts';
import type { Logger } from '../../shared/log.ts';
import type { GatewayConfig } from '../config.ts';
import type { GatewayDeps, RunningGateway } from '../gateway.ts';
import type { CertificateIssuer } from './acme.ts';
import type { TlsConfig } from './config.ts';
import type { HttpsListener } from './https-server.ts';
import { createTls, type Tls } from './index.ts';

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
  let gateway: RunningGateway | undefined;
  let https: HttpsListener | undefined;
  const tls = await createTls({
    config: tlsConfig,
    store: deps.certStore,
    baseDomains: config.baseDomains,
    podExists: (slug) => gateway?.table.lookup(slug) !== undefined,
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
