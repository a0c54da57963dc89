// TLS settings from the environment (see README "TLS"), validated once at start. TLS is off unless
// TLS_ENABLED is true or HTTPS_PORT is set.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { envBool, envListenHost, envMs, envPort, parseEnv } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';

export const LETS_ENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory';

const optionalPath = z.string().optional().or(z.literal('').transform(() => undefined));

const TlsEnv = z.object({
  TLS_ENABLED: envBool(false),
  HTTPS_PORT: z.string().optional(),
  HTTPS_HOST: envListenHost('0.0.0.0'),
  /** The HTTPS port users reach (in redirects), when a port mapping puts the gateway behind another one. */
  HTTPS_PUBLIC_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  ACME_DIRECTORY_URL: z.url({ protocol: /^https?$/ }).default(LETS_ENCRYPT_PRODUCTION),
  ACME_EMAIL: z.email().optional().or(z.literal('').transform(() => undefined)),
  /** PEM file the CA's own TLS listener chains to (a private test CA such as pebble). */
  ACME_CA_BUNDLE: optionalPath,
  /** Plain HTTP answers ACME challenges and redirects everything else to HTTPS. */
  TLS_REDIRECT_HTTP: envBool(true),
  /** A certificate for handshakes no issued certificate covers; a self-signed one is made when unset. */
  TLS_DEFAULT_CERT_FILE: optionalPath,
  TLS_DEFAULT_KEY_FILE: optionalPath,
  /** Offer HTTP/2 through ALPN (HTTP/1.1 stays available, and carries WebSockets). */
  TLS_HTTP2: envBool(true),
  TLS_ON_DEMAND: envBool(true),
  TLS_ON_DEMAND_MAX_PER_WINDOW: z.coerce.number().int().min(0).max(100_000).default(20),
  /** On-demand attempts per pod per window (TLS_ON_DEMAND_WINDOW_MS), across replicas. */
  TLS_ON_DEMAND_MAX_PER_POD: z.coerce.number().int().min(0).max(100_000).default(6),
  TLS_ON_DEMAND_WINDOW_MS: envMs(3_600_000).pipe(z.number().min(1000)),
  TLS_ON_DEMAND_MAX_CONCURRENT: z.coerce.number().int().min(1).max(100).default(4),
  TLS_ON_DEMAND_BACKOFF_MS: envMs(60_000).pipe(z.number().min(1)),
  TLS_RENEW_CHECK_INTERVAL_MS: envMs(3_600_000).pipe(z.number().min(100)),
  TLS_RENEW_BACKOFF_MIN_MS: envMs(5 * 60_000).pipe(z.number().min(1)),
  TLS_RENEW_BACKOFF_MAX_MS: envMs(12 * 3_600_000).pipe(z.number().min(1)),
  /** Full re-read of the certificate store (change events can be missed while Redis is away). */
  TLS_RELOAD_INTERVAL_MS: envMs(60_000).pipe(z.number().min(100)),
  TLS_DNS_HOOK: z.enum(['none', 'challtestsrv', 'exec']).default('none'),
  TLS_DNS_CHALLTESTSRV_URL: z.url().optional(),
  TLS_DNS_HOOK_COMMAND: z.string().min(1).optional(),
});

export interface TlsConfig {
  enabled: boolean;
  httpsPort: number;
  httpsHost: string;
  publicHttpsPort: number | undefined;
  redirectHttp: boolean;
  http2: boolean;
  acme: { directoryUrl: string; email?: string; caBundlePem?: string };
  defaultCertificate?: { certPem: string; keyPem: string };
  onDemand: { enabled: boolean; maxPerWindow: number; maxPerPod: number; windowMs: number; maxConcurrent: number; backoffMinMs: number };
  renewal: { checkIntervalMs: number; backoffMinMs: number; backoffMaxMs: number };
  reloadIntervalMs: number;
  dnsHook: { kind: 'none' } | { kind: 'challtestsrv'; url: string } | { kind: 'exec'; command: string };
}

const DEFAULT_HTTPS_PORT = 8443;

function readPem(variable: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${path}: ${(err as Error).message}`);
  }
}

export function loadTlsConfig(env: Record<string, string | undefined>): TlsConfig {
  const e = parseEnv(TlsEnv, env);
  const port = envPort(DEFAULT_HTTPS_PORT).safeParse(e.HTTPS_PORT);
  if (!port.success) throw new ConfigError('HTTPS_PORT', `must be a port number (got ${JSON.stringify(e.HTTPS_PORT)})`);
  if (Boolean(e.TLS_DEFAULT_CERT_FILE) !== Boolean(e.TLS_DEFAULT_KEY_FILE)) {
    throw new ConfigError(e.TLS_DEFAULT_CERT_FILE ? 'TLS_DEFAULT_KEY_FILE' : 'TLS_DEFAULT_CERT_FILE', 'set both TLS_DEFAULT_CERT_FILE and TLS_DEFAULT_KEY_FILE, or neither');
  }
  if (e.TLS_RENEW_BACKOFF_MAX_MS < e.TLS_RENEW_BACKOFF_MIN_MS) {
    throw new ConfigError('TLS_RENEW_BACKOFF_MAX_MS', 'must not be below TLS_RENEW_BACKOFF_MIN_MS');
  }
  let dnsHook: TlsConfig['dnsHook'] = { kind: 'none' };
  if (e.TLS_DNS_HOOK === 'challtestsrv') {
    if (!e.TLS_DNS_CHALLTESTSRV_URL) throw new ConfigError('TLS_DNS_CHALLTESTSRV_URL', 'required when TLS_DNS_HOOK=challtestsrv');
    dnsHook = { kind: 'challtestsrv', url: e.TLS_DNS_CHALLTESTSRV_URL };
  } else if (e.TLS_DNS_HOOK === 'exec') {
    if (!e.TLS_DNS_HOOK_COMMAND) throw new ConfigError('TLS_DNS_HOOK_COMMAND', 'required when TLS_DNS_HOOK=exec');
    dnsHook = { kind: 'exec', command: e.TLS_DNS_HOOK_COMMAND };
  }
  return {
    enabled: e.TLS_ENABLED || e.HTTPS_PORT !== undefined,
    httpsPort: port.data,
    httpsHost: e.HTTPS_HOST,
    publicHttpsPort: e.HTTPS_PUBLIC_PORT,
    redirectHttp: e.TLS_REDIRECT_HTTP,
    http2: e.TLS_HTTP2,
    acme: {
      directoryUrl: e.ACME_DIRECTORY_URL,
      ...(e.ACME_EMAIL ? { email: e.ACME_EMAIL } : {}),
      ...(e.ACME_CA_BUNDLE ? { caBundlePem: readPem('ACME_CA_BUNDLE', e.ACME_CA_BUNDLE) } : {}),
    },
    ...(e.TLS_DEFAULT_CERT_FILE && e.TLS_DEFAULT_KEY_FILE
      ? {
          defaultCertificate: {
            certPem: readPem('TLS_DEFAULT_CERT_FILE', e.TLS_DEFAULT_CERT_FILE),
            keyPem: readPem('TLS_DEFAULT_KEY_FILE', e.TLS_DEFAULT_KEY_FILE),
          },
        }
      : {}),
    onDemand: {
      enabled: e.TLS_ON_DEMAND,
      maxPerWindow: e.TLS_ON_DEMAND_MAX_PER_WINDOW,
      maxPerPod: e.TLS_ON_DEMAND_MAX_PER_POD,
      windowMs: e.TLS_ON_DEMAND_WINDOW_MS,
      maxConcurrent: e.TLS_ON_DEMAND_MAX_CONCURRENT,
      backoffMinMs: e.TLS_ON_DEMAND_BACKOFF_MS,
    },
    renewal: {
      checkIntervalMs: e.TLS_RENEW_CHECK_INTERVAL_MS,
      backoffMinMs: e.TLS_RENEW_BACKOFF_MIN_MS,
      backoffMaxMs: e.TLS_RENEW_BACKOFF_MAX_MS,
    },
    reloadIntervalMs: e.TLS_RELOAD_INTERVAL_MS,
    dnsHook,
  };
}
