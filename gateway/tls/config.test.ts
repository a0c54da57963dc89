import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.ts';
import { LETS_ENCRYPT_PRODUCTION, loadTlsConfig } from './config.ts';

function variableOf(env: Record<string, string>): string | undefined {
  try {
    loadTlsConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.variable;
    throw err;
  }
  return undefined;
}

describe('TLS configuration', () => {
  it('is off by default, with Let us Encrypt production and on-demand guards as defaults', () => {
    const c = loadTlsConfig({});
    expect(c.enabled).toBe(false);
    expect(c.httpsPort).toBe(8443);
    expect(c.acme.directoryUrl).toBe(LETS_ENCRYPT_PRODUCTION);
    expect(c.onDemand).toMatchObject({ enabled: true, maxPerWindow: 20, maxPerPod: 6, windowMs: 3_600_000 });
    expect(c.http2).toBe(true);
    expect(c.dnsHook).toEqual({ kind: 'none' });
  });

  it('is on when HTTPS_PORT is set or TLS_ENABLED is true', () => {
    expect(loadTlsConfig({ HTTPS_PORT: '443' })).toMatchObject({ enabled: true, httpsPort: 443 });
    expect(loadTlsConfig({ TLS_ENABLED: 'true' })).toMatchObject({ enabled: true, httpsPort: 8443 });
  });

  it('names the variable that is wrong', () => {
    expect(variableOf({ HTTPS_PORT: 'x' })).toBe('HTTPS_PORT');
    expect(variableOf({ ACME_DIRECTORY_URL: 'ftp://ca' })).toBe('ACME_DIRECTORY_URL');
    expect(variableOf({ ACME_EMAIL: 'not-mail' })).toBe('ACME_EMAIL');
    expect(variableOf({ ACME_CA_BUNDLE: '/nonexistent/ca.pem' })).toBe('ACME_CA_BUNDLE');
    expect(variableOf({ TLS_DEFAULT_CERT_FILE: '/x.pem' })).toBe('TLS_DEFAULT_KEY_FILE');
    expect(variableOf({ TLS_DNS_HOOK: 'route53' })).toBe('TLS_DNS_HOOK');
    expect(variableOf({ TLS_DNS_HOOK: 'exec' })).toBe('TLS_DNS_HOOK_COMMAND');
    expect(variableOf({ TLS_DNS_HOOK: 'challtestsrv' })).toBe('TLS_DNS_CHALLTESTSRV_URL');
    expect(variableOf({ TLS_ON_DEMAND_MAX_PER_WINDOW: '-1' })).toBe('TLS_ON_DEMAND_MAX_PER_WINDOW');
    expect(variableOf({ TLS_ON_DEMAND_MAX_PER_POD: 'many' })).toBe('TLS_ON_DEMAND_MAX_PER_POD');
    expect(variableOf({ TLS_RENEW_BACKOFF_MIN_MS: '10000', TLS_RENEW_BACKOFF_MAX_MS: '10' })).toBe('TLS_RENEW_BACKOFF_MAX_MS');
  });
});
