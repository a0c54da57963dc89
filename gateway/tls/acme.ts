// Issuance through ACME (acme-client). The account key lives in the certificate store so every replica uses
// the same account; HTTP-01 answers go to the store (any replica answers pebble/Let's Encrypt), DNS-01 records
// to a DnsHook. acme-client's own retry loop is switched off: it sleeps for whatever Retry-After says inside
// one call. Retries are decided in one place instead (renewal backoff, on-demand failure backoff), which needs
// the CA's Retry-After and rateLimited answers: an axios interceptor records them per issuance.
import { AsyncLocalStorage } from 'node:async_hooks';
import { X509Certificate } from 'node:crypto';
import { Agent } from 'node:https';
import * as acme from 'acme-client';
import type { Logger } from '../../shared/log.ts';
import type { CertStore } from '../../shared/cert-store.ts';
import { CertificateAuthorityError, ValidationError } from '../../shared/errors.ts';
import type { DnsHook } from './dns-hooks.ts';
import { isWildcard } from './names.ts';

/** How long an HTTP-01 answer stays in the store if the removal after validation never runs. */
const CHALLENGE_TTL_MS = 10 * 60_000;
/** Every request to the CA answers or fails within this time: a hung CA must not hang a renewal forever. */
const CA_REQUEST_TIMEOUT_MS = 30_000;
/** Polling of pending authorizations and orders (acme-client's default starts at 5 s). */
const POLL_BACKOFF = { backoffAttempts: 12, backoffMin: 250, backoffMax: 5_000 };
/** The longest name a certificate subject's CN may hold; longer first names go in the SAN only. */
const MAX_COMMON_NAME = 64;
const RATE_LIMITED_PROBLEM = 'urn:ietf:params:acme:error:rateLimited';
/** The CA forgot our account (a test CA restarted, or the account was deactivated): register the key again. */
const ACCOUNT_MISSING_PROBLEM = 'urn:ietf:params:acme:error:accountDoesNotExist';

export interface IssuedCertificate {
  names: string[];
  certPem: string;
  keyPem: string;
  notBefore: string;
  notAfter: string;
}

/** Anything that turns names into a certificate (AcmeIssuer; tests may use another CA). */
export interface CertificateIssuer {
  issue(names: string[]): Promise<IssuedCertificate>;
  readonly supportsWildcards: boolean;
}

export interface AcmeIssuerOptions {
  store: CertStore;
  directoryUrl: string;
  email?: string;
  /** PEM the CA's TLS listener chains to, when it is not a public CA (pebble in tests). */
  caBundlePem?: string;
  dnsHook?: DnsHook;
  log: Logger;
}

interface Observation {
  retryAfterSeconds?: number;
  rateLimited: boolean;
  accountMissing: boolean;
  lastUrl?: string;
}

const observations = new AsyncLocalStorage<Observation>();
/** TLS agents for CAs with a private root, by directory origin (per CA, never a process-wide trust change). */
const caAgents = new Map<string, Agent>();
let interceptorsInstalled = false;

function parseRetryAfter(value: unknown): number | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function installInterceptors(): void {
  if (interceptorsInstalled) return;
  interceptorsInstalled = true;
  // acme-client's own setting (not in its types): no retries inside a call.
  (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings.retryMaxAttempts = 0;
  acme.axios.interceptors.request.use((config) => {
    const url = config.url ? new URL(config.url) : undefined;
    const agent = url && caAgents.get(url.origin);
    if (agent) config.httpsAgent = agent;
    config.timeout ||= CA_REQUEST_TIMEOUT_MS;
    const seen = observations.getStore();
    if (seen && url) seen.lastUrl = url.origin + url.pathname;
    return config;
  });
  const observe = (response: { status?: number; headers?: Record<string, unknown>; data?: unknown } | undefined) => {
    const seen = observations.getStore();
    if (!seen || !response) return;
    const body = typeof response.data === 'string' ? response.data : JSON.stringify(response.data ?? '');
    if (response.status === 429 || body.includes(RATE_LIMITED_PROBLEM)) seen.rateLimited = true;
    if (body.includes(ACCOUNT_MISSING_PROBLEM)) seen.accountMissing = true;
    const retryAfter = parseRetryAfter(response.headers?.['retry-after']);
    if (retryAfter !== undefined && (response.status === 429 || response.status === 503 || seen.rateLimited)) {
      seen.retryAfterSeconds = retryAfter;
    }
  };
  acme.axios.interceptors.response.use(
    (response) => {
      observe(response);
      return response;
    },
    (error: { response?: Parameters<typeof observe>[0] }) => {
      observe(error?.response);
      return Promise.reject(error);
    },
  );
}

/** The validity dates of the leaf (first) certificate of a PEM chain. */
export function certificateDates(certPem: string): { notBefore: string; notAfter: string } {
  const leaf = new X509Certificate(certPem);
  return { notBefore: new Date(leaf.validFrom).toISOString(), notAfter: new Date(leaf.validTo).toISOString() };
}

function dnsRecordName(identifier: string): string {
  return `_acme-challenge.${identifier.replace(/^\*\./, '')}`;
}

export class AcmeIssuer implements CertificateIssuer {
  private readonly options: AcmeIssuerOptions;
  private client: Promise<acme.Client> | undefined;

  constructor(options: AcmeIssuerOptions) {
    this.options = options;
    installInterceptors();
    if (options.caBundlePem) {
      caAgents.set(new URL(options.directoryUrl).origin, new Agent({ ca: options.caBundlePem, keepAlive: true }));
    }
  }

  get supportsWildcards(): boolean {
    return this.options.dnsHook !== undefined;
  }

  async issue(names: string[]): Promise<IssuedCertificate> {
    if (names.some(isWildcard) && !this.options.dnsHook) {
      throw new ValidationError('names', 'wildcard names need DNS-01: configure a DNS hook (TLS_DNS_HOOK)');
    }
    return this.attempt(names, true);
  }

  private attempt(names: string[], mayReRegister: boolean): Promise<IssuedCertificate> {
    const seen: Observation = { rateLimited: false, accountMissing: false };
    return observations.run(seen, async () => {
      try {
        return await this.order(names);
      } catch (err) {
        if (seen.accountMissing && mayReRegister) {
          this.options.log.warn({ directoryUrl: this.options.directoryUrl }, 'the CA does not know our account; registering it again');
          await this.forgetAccountUrl();
          return this.attempt(names, false);
        }
        if (err instanceof ValidationError) throw err;
        // acme-client turns "no answer at all" into a TypeError while reading the missing response.
        const message = err instanceof TypeError
          ? `no answer from the CA (${seen.lastUrl ?? this.options.directoryUrl})`
          : err instanceof Error ? err.message : String(err);
        throw new CertificateAuthorityError(`issuing ${names.join(', ')} failed: ${message}`, {
          retryAfterSeconds: seen.retryAfterSeconds,
          rateLimited: seen.rateLimited,
        });
      }
    });
  }

  private async order(names: string[]): Promise<IssuedCertificate> {
    const client = await this.account();
    const keyPem = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
    const first = names[0]!;
    const [, csr] = await acme.crypto.createCsr(
      { altNames: names, ...(first.length <= MAX_COMMON_NAME ? { commonName: first } : {}) },
      keyPem,
    );
    const { store, dnsHook, log } = this.options;
    const certPem = await client.auto({
      csr,
      termsOfServiceAgreed: true,
      // The CA checks from the outside; a self-check from inside the gateway proves nothing and needs DNS.
      skipChallengeVerification: true,
      challengePriority: ['http-01', 'dns-01'],
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        if (challenge.type === 'http-01') {
          await store.putChallenge(challenge.token, keyAuthorization, CHALLENGE_TTL_MS);
        } else if (challenge.type === 'dns-01' && dnsHook) {
          await dnsHook.setTxt(dnsRecordName(authz.identifier.value), keyAuthorization);
        } else {
          throw new Error(`no way to answer a ${challenge.type} challenge for ${authz.identifier.value}`);
        }
        log.debug({ name: authz.identifier.value, type: challenge.type }, 'ACME challenge placed');
      },
      // acme-client swallows what this throws (the certificate is fine either way), so a record left behind in the
      // zone or a challenge left in the store would go unnoticed: say so here.
      challengeRemoveFn: async (authz, challenge, keyAuthorization) => {
        try {
          if (challenge.type === 'http-01') await store.deleteChallenge(challenge.token);
          else if (challenge.type === 'dns-01' && dnsHook) {
            await dnsHook.clearTxt(dnsRecordName(authz.identifier.value), keyAuthorization);
          }
        } catch (err) {
          log.warn({ name: authz.identifier.value, type: challenge.type, err: err instanceof Error ? err.message : String(err) }, 'ACME challenge answer could not be removed; remove it by hand');
          throw err;
        }
      },
    });
    return { names, certPem, keyPem, ...certificateDates(certPem) };
  }

  private async forgetAccountUrl(): Promise<void> {
    this.client = undefined;
    const account = await this.options.store.getAccount(this.options.directoryUrl);
    if (account) await this.options.store.putAccount({ ...account, url: undefined });
  }

  /** The ACME client for the stored account; the first replica to get here creates the key, others reuse it. */
  private account(): Promise<acme.Client> {
    this.client ??= this.loadAccount().catch((err: unknown) => {
      this.client = undefined; // try again next time (the CA may be down)
      throw err;
    });
    return this.client;
  }

  private async loadAccount(): Promise<acme.Client> {
    const { store, directoryUrl, email, log } = this.options;
    let account = await store.getAccount(directoryUrl);
    if (!account) {
      const keyPem = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
      account = await store.putAccountIfAbsent({ directoryUrl, keyPem, email, createdAt: new Date().toISOString() });
    }
    const client = new acme.Client({
      directoryUrl,
      accountKey: account.keyPem,
      ...(account.url ? { accountUrl: account.url } : {}),
      ...POLL_BACKOFF,
    });
    if (!account.url) {
      // Registering an existing key returns the existing account, so racing replicas end up with one account.
      await client.createAccount({ termsOfServiceAgreed: true, ...(email ? { contact: [`mailto:${email}`] } : {}) });
      await store.putAccount({ ...account, url: client.getAccountUrl() });
      log.info({ directoryUrl, account: client.getAccountUrl() }, 'ACME account registered');
    }
    return client;
  }
}
