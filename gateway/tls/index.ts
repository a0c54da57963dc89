// TLS for the gateway, built once from configuration: certificates from the shared store served by SNI (exact
// name, wildcard, default), HTTP-01 answers and the HTTPS redirect on plain HTTP, on-demand issuance for pod
// hostnames, background renewal, and the certificates admin API. gateway/main.ts hands in the certificate store
// and the route table; listener.ts opens the HTTPS listener through listen().
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { Hono } from 'hono';
import type { CertificateRecord, CertStore } from '../../shared/cert-store.ts';
import { ConfigError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { GatewayConfig } from '../config.ts';
import { followStore, type Following } from '../follow-store.ts';
import { AcmeIssuer, type CertificateIssuer } from './acme.ts';
import { certificatesAdmin } from './api.ts';
import { CertIndex } from './cert-index.ts';
import type { TlsConfig } from './config.ts';
import { ChallTestSrvDnsHook, ExecDnsHook, type DnsHook } from './dns-hooks.ts';
import { createChallengeHandler, createHttpsRedirect, isChallengePath } from './http.ts';
import { listenHttps, type HttpsListener, type RequestHandlers } from './https-server.ts';
import { CertificateManager } from './manager.ts';
import { OnDemandIssuance } from './on-demand.ts';
import { Renewer } from './renewer.ts';
import { createSelfSignedCertificate } from './self-signed.ts';
import { onDemandVerdict, type PodLookup } from './names.ts';

export { loadTlsConfig, type TlsConfig } from './config.ts';

export interface TlsDeps {
  store: CertStore;
  /** The gateway's route table: on-demand issuance and renewal ask it whether a name's pod exists. */
  routes: { lookup: PodLookup };
  log: Logger;
  /** Replaces the ACME issuer built from config.acme (tests only). */
  issuer?: CertificateIssuer | undefined;
  dnsHook?: DnsHook;
  /** Clock for renewal decisions (tests move it forward instead of waiting weeks). */
  now?: (() => number) | undefined;
}

/** What TLS reads of the gateway's own settings. */
export type TlsGatewayConfig = Pick<GatewayConfig, 'baseDomains' | 'GATEWAY_ADMIN_TOKEN' | 'GATEWAY_WORKERS' | 'REDIS_URL'>;

export interface Tls {
  manager: CertificateManager;
  renewer: Renewer;
  onDemand: OnDemandIssuance | undefined;
  /** Options for a TLS server: the default certificate and the SNI callback. */
  secureContextOptions: { key: string; cert: string; SNICallback: (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void };
  /** For the plain-HTTP listener: answers ACME challenges (true), else redirects to HTTPS when configured (true). */
  intercept: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Answers ACME HTTP-01 challenges only. */
  handleHttpChallenge: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Mounts /v1/certificates on the admin app (behind the admin token; answering 404 without one). */
  mountAdmin: (app: Hono) => void;
  /** Load certificates, follow store changes, start background renewal. */
  start(): Promise<void>;
  /** Start the HTTPS listener with the gateway's request and upgrade handlers. */
  listen(handlers: RequestHandlers, options: { headersTimeoutMs: number; keepAliveTimeoutMs: number; http2?: boolean }): Promise<HttpsListener>;
  /** Re-read every certificate from the store now. */
  reload(): Promise<void>;
  close(): Promise<void>;
}

function buildDnsHook(config: TlsConfig): DnsHook | undefined {
  const hook = config.dnsHook;
  if (hook.kind === 'challtestsrv') return new ChallTestSrvDnsHook(hook.url);
  if (hook.kind === 'exec') return new ExecDnsHook(hook.command);
  return undefined;
}

/** The ACME issuer and the certificate manager over it, as both the serving gateway and the cluster primary use them. */
function createManager(
  config: TlsGatewayConfig,
  tlsConfig: TlsConfig,
  deps: Pick<TlsDeps, 'store' | 'log' | 'issuer' | 'dnsHook' | 'now'>,
  owner: string,
): CertificateManager {
  const { store, log } = deps;
  const issuer =
    deps.issuer ??
    new AcmeIssuer({
      store,
      directoryUrl: tlsConfig.acme.directoryUrl,
      ...(tlsConfig.acme.email ? { email: tlsConfig.acme.email } : {}),
      ...(tlsConfig.acme.caBundlePem ? { caBundlePem: tlsConfig.acme.caBundlePem } : {}),
      dnsHook: deps.dnsHook ?? buildDnsHook(tlsConfig),
      log,
    });
  return new CertificateManager({
    store,
    issuer,
    baseDomains: config.baseDomains,
    log,
    owner,
    ...(deps.now ? { now: deps.now } : {}),
    backoff: { minMs: tlsConfig.renewal.backoffMinMs, maxMs: tlsConfig.renewal.backoffMaxMs },
  });
}

/**
 * The certificates API alone, for a process that serves the admin listener but no traffic (the cluster
 * primary when GATEWAY_WORKERS > 1): issuance puts HTTP-01 answers in the shared store, where the workers
 * answer them. Renewal stays with the workers.
 */
export function createCertificatesAdmin(
  config: TlsGatewayConfig,
  tlsConfig: TlsConfig,
  deps: { store: CertStore; log: Logger },
): { mountAdmin: (app: Hono) => void } {
  const manager = createManager(config, tlsConfig, deps, `gateway-primary-${process.pid}`);
  const api = certificatesAdmin(manager, deps.log, config.GATEWAY_ADMIN_TOKEN);
  return { mountAdmin: (app) => void app.route('/', api) };
}

export async function createTls(gatewayConfig: TlsGatewayConfig, config: TlsConfig, deps: TlsDeps): Promise<Tls> {
  if (gatewayConfig.GATEWAY_WORKERS > 1 && !gatewayConfig.REDIS_URL) {
    // Each worker process would hold its own embedded store: different certificates, challenges nobody answers.
    throw new ConfigError('REDIS_URL', 'TLS with GATEWAY_WORKERS > 1 needs the shared store (set REDIS_URL)');
  }
  const { store, log } = deps;
  const { baseDomains } = gatewayConfig;
  const lookupPod: PodLookup = (slug) => deps.routes.lookup(slug);
  const now = deps.now ?? Date.now;
  const manager = createManager(gatewayConfig, config, { ...deps, now }, `gateway-${process.pid}-${randomUUID().slice(0, 8)}`);
  const renewer = new Renewer({
    store,
    manager,
    log,
    intervalMs: config.renewal.checkIntervalMs,
    now,
    wanted: (record) =>
      record.origin !== 'on-demand' || record.names.every((n) => onDemandVerdict(n, baseDomains, lookupPod).allowed),
  });
  const onDemand = config.onDemand.enabled
    ? new OnDemandIssuance({
        store,
        manager,
        baseDomains,
        lookupPod,
        log,
        maxPerWindow: config.onDemand.maxPerWindow,
        maxPerPod: config.onDemand.maxPerPod,
        windowMs: config.onDemand.windowMs,
        maxConcurrent: config.onDemand.maxConcurrent,
        failureBackoff: { minMs: config.onDemand.backoffMinMs, maxMs: config.renewal.backoffMaxMs },
        now,
      })
    : undefined;

  const fallback = config.defaultCertificate ?? (await createSelfSignedCertificate('podgate default certificate'));
  const index = new CertIndex(now);

  function load(id: string, record: Awaited<ReturnType<CertStore['getCertificate']>>): void {
    if (!record) {
      index.remove(id);
      return;
    }
    try {
      index.set(record);
    } catch (err) {
      log.warn({ id, err: (err as Error).message }, 'stored certificate does not load; not served');
    }
  }

  /**
   * Re-read every certificate. One the store no longer lists was either deleted on purpose (its id is among the
   * deletions: dropped here too) or lost with the store's data (a Redis restarted empty): an unexpired one of those
   * is kept and written back, so HTTPS keeps working and every replica, and the renewer, have it again.
   */
  async function reload(): Promise<void> {
    const [records, deleted] = await Promise.all([store.listCertificates(), store.deletedCertificateIds()]);
    const seen = new Set(records.map((r) => r.id));
    for (const record of records) load(record.id, record);
    const lost: CertificateRecord[] = [];
    for (const id of index.ids()) {
      if (seen.has(id)) continue;
      const held = index.get(id);
      if (!held || deleted.has(id) || Date.parse(held.notAfter) <= now()) index.remove(id);
      else lost.push(held);
    }
    if (lost.length === 0) return;
    const restored = await Promise.all(lost.map((record) => store.restoreCertificate(record)));
    log.warn(
      { ids: lost.map((r) => r.id), restored: restored.filter(Boolean).length },
      'the certificate store lost certificates this gateway holds (none was deleted): serving them on and writing them back',
    );
  }

  const safeReload = () =>
    reload().catch((err: unknown) => log.warn({ err: String(err) }, 'certificate reload failed; serving the ones held'));

  const SNICallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => {
    const hit = index.select(servername);
    if (hit) {
      cb(null, hit.context);
      return;
    }
    const outcome = onDemand?.request(servername);
    if (outcome === 'started') log.info({ servername }, 'no certificate yet: on-demand issuance started, default certificate served');
    else if (outcome) log.debug({ servername, outcome }, 'no certificate: default certificate served');
    cb(null); // the server's default certificate
  };

  const handleHttpChallenge = createChallengeHandler(store, log);
  // The port users reach HTTPS on: configured, else the one the listener got (port 0 in tests).
  let httpsPort = config.publicHttpsPort ?? config.httpsPort;
  const redirect = config.redirectHttp ? createHttpsRedirect(baseDomains, () => httpsPort) : undefined;
  const certificatesApi = certificatesAdmin(manager, log, gatewayConfig.GATEWAY_ADMIN_TOKEN);

  let following: Following | undefined;

  return {
    manager,
    renewer,
    onDemand,
    secureContextOptions: { key: fallback.keyPem, cert: fallback.certPem, SNICallback },
    // The gateway runs the same handler for both listeners: only plain HTTP is redirected.
    intercept: (req, res) =>
      handleHttpChallenge(req, res) ||
      (redirect !== undefined && !(req.socket as TLSSocket).encrypted && !isChallengePath(req.url) && redirect(req, res)),
    handleHttpChallenge,
    mountAdmin: (app) => {
      app.route('/', certificatesApi);
    },
    reload,
    async start() {
      following = await followStore({
        subscribe: () =>
          store.subscribe({
            onChange: (id) => {
              store.getCertificate(id).then(
                (record) => load(id, record),
                () => void safeReload(),
              );
            },
            onResync: () => void safeReload(),
          }),
        resync: safeReload,
        intervalMs: config.reloadIntervalMs,
        onSubscribeFailed: (err) => log.warn({ err: String(err) }, 'certificate change subscription failed; relying on periodic reload'),
      });
      renewer.start();
      log.info({ certificates: index.size, onDemand: config.onDemand.enabled, acme: config.acme.directoryUrl }, 'TLS ready');
    },
    async listen(handlers, listenOptions) {
      const listener = await listenHttps(
        { key: fallback.keyPem, cert: fallback.certPem, SNICallback },
        handlers,
        {
          port: config.httpsPort,
          host: config.httpsHost,
          http2: listenOptions.http2 ?? config.http2,
          headersTimeoutMs: listenOptions.headersTimeoutMs,
          keepAliveTimeoutMs: listenOptions.keepAliveTimeoutMs,
          http2SessionTimeoutMs: listenOptions.keepAliveTimeoutMs,
          log,
        },
      );
      if (config.publicHttpsPort === undefined) httpsPort = listener.port;
      return listener;
    },
    async close() {
      await following?.stop();
      await renewer.stop();
      await onDemand?.settled();
    },
  };
}
