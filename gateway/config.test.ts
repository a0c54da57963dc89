import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnv } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { loadGatewayConfig } from './config.ts';

describe('gateway configuration', () => {
  it('has working defaults', () => {
    const c = loadGatewayConfig({});
    expect(c).toMatchObject({ HTTP_PORT: 8080, ADMIN_PORT: 9090, ADMIN_HOST: '127.0.0.1', REDIS_PREFIX: 'podgate:', GATEWAY_WORKERS: 1 });
    expect(c).toMatchObject({ ACTIVITY_FLUSH_MS: 5000, WAKE_TIMEOUT_MS: 30_000, WAKE_PAGE_AFTER_MS: 2000, WAKE_MAX_WAITING: 1000 });
    expect(c.baseDomains).toEqual(['localhost']);
    expect(c.REDIS_URL).toBeUndefined();
  });

  it('connects through Sentinel with REDIS_SENTINELS; REDIS_URL then gives only credentials, TLS and database', () => {
    const c = loadGatewayConfig({ REDIS_SENTINELS: ' 10.0.0.1:26380, [fd00::2]:26381,sentinel-c ', REDIS_SENTINEL_NAME: 'podgate', GATEWAY_WORKERS: '2' });
    expect(c.redis?.sentinel).toEqual({
      name: 'podgate',
      sentinels: [{ host: '10.0.0.1', port: 26380 }, { host: 'fd00::2', port: 26381 }, { host: 'sentinel-c', port: 26379 }],
      username: undefined,
      password: undefined,
    });
    expect(c.redis?.url).toBe('redis://podgate');
    const withUrl = loadGatewayConfig({ REDIS_SENTINELS: '10.0.0.1:26380', REDIS_SENTINEL_NAME: 'm', REDIS_SENTINEL_PASSWORD: 's3cret', REDIS_URL: 'redis://:pw@ignored/2' });
    expect(withUrl.redis).toMatchObject({ url: 'redis://:pw@ignored/2', sentinel: { password: 's3cret' } });
  });

  it.each([
    [{ HTTP_PORT: 'abc' }, 'HTTP_PORT'],
    [{ HTTP_PORT: '70000' }, 'HTTP_PORT'],
    [{ BASE_DOMAINS: ',,' }, 'BASE_DOMAINS'],
    [{ BASE_DOMAINS: 'ok.com,bad_domain!' }, 'BASE_DOMAINS'],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL'],
    [{ REDIS_PREFIX: 'has space' }, 'REDIS_PREFIX'],
    [{ TRUSTED_PROXIES: '10.0.0.0/33' }, 'TRUSTED_PROXIES'],
    [{ TRUSTED_PROXIES: 'example.com' }, 'TRUSTED_PROXIES'],
    [{ UPSTREAM_CONNECT_TIMEOUT_MS: '-1' }, 'UPSTREAM_CONNECT_TIMEOUT_MS'],
    [{ GATEWAY_WORKERS: 'many' }, 'GATEWAY_WORKERS'],
    [{ GATEWAY_WORKERS: '2' }, 'GATEWAY_WORKERS'], // needs REDIS_URL
    [{ REDIS_SENTINELS: '10.0.0.1:26379,nope:x' }, 'REDIS_SENTINELS'],
    [{ REDIS_SENTINELS: '10.0.0.1:70000' }, 'REDIS_SENTINELS'],
    [{ REDIS_SENTINELS: '10.0.0.1:26379' }, 'REDIS_SENTINEL_NAME'], // required with sentinels
    [{ REDIS_SENTINELS: '10.0.0.1:26379', REDIS_SENTINEL_NAME: 'bad name' }, 'REDIS_SENTINEL_NAME'],
    [{ REDIS_SENTINEL_NAME: 'mymaster' }, 'REDIS_SENTINEL_NAME'], // only with sentinels
    [{ REDIS_SENTINEL_PASSWORD: 'pw' }, 'REDIS_SENTINEL_PASSWORD'],
    [{ REDIS_SENTINELS: '10.0.0.1', REDIS_SENTINEL_NAME: 'm', REDIS_SENTINEL_USERNAME: 'u' }, 'REDIS_SENTINEL_PASSWORD'],
    [{ REDIS_SENTINELS: '10.0.0.1', REDIS_SENTINEL_NAME: 'm', REDIS_TLS_CA: '/nonexistent' }, 'REDIS_TLS_CA'], // needs rediss://
    [{ ACCESS_LOG: 'maybe' }, 'ACCESS_LOG'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL'],
    [{ LOG_LEVEL: 'INFO' }, 'LOG_LEVEL'], // pino's names are lower-case
    [{ HTTP_HOST: 'not a host' }, 'HTTP_HOST'],
    [{ HTTP_HOST: '0.0.0.0:8080' }, 'HTTP_HOST'],
    [{ ADMIN_HOST: '' }, 'ADMIN_HOST'], // listen() would take an empty host for every interface
    [{ ADMIN_HOST: '[::1]' }, 'ADMIN_HOST'],
    [{ ADMIN_HOST: 'http://127.0.0.1' }, 'ADMIN_HOST'],
    [{ GATEWAY_ADMIN_TOKEN: 'too-short' }, 'GATEWAY_ADMIN_TOKEN'],
    [{ ACTIVITY_FLUSH_MS: '10' }, 'ACTIVITY_FLUSH_MS'],
    [{ WAKE_TIMEOUT_MS: 'soon' }, 'WAKE_TIMEOUT_MS'],
    [{ WAKE_PAGE_AFTER_MS: '-1' }, 'WAKE_PAGE_AFTER_MS'],
    [{ WAKE_MAX_WAITING: '0' }, 'WAKE_MAX_WAITING'],
  ])('rejects %j naming %s', (env, variable) => {
    let thrown: unknown;
    try {
      loadGatewayConfig(env);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).variable).toBe(variable);
    expect((thrown as ConfigError).message).toMatch(new RegExp(`^${variable}: `));
  });

  it('names the accepted log levels', () => {
    expect(() => loadGatewayConfig({ LOG_LEVEL: 'verbose' })).toThrow(
      'LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent (got "verbose")',
    );
    expect(loadGatewayConfig({}).LOG_LEVEL).toBe('info');
  });

  it.each(['0.0.0.0', '::', '::1', '127.0.0.1', 'localhost', 'gateway.internal.example'])('listens on %s', (host) => {
    expect(loadGatewayConfig({ HTTP_HOST: host, ADMIN_HOST: host })).toMatchObject({ HTTP_HOST: host, ADMIN_HOST: host });
  });

  it('trusts the configured proxies only', () => {
    const c = loadGatewayConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 192.0.2.7, ::1' });
    expect(c.trustedProxies.check('10.1.2.3', 'ipv4')).toBe(true);
    expect(c.trustedProxies.check('192.0.2.7', 'ipv4')).toBe(true);
    expect(c.trustedProxies.check('192.0.2.8', 'ipv4')).toBe(false);
    expect(c.trustedProxies.check('::1', 'ipv6')).toBe(true);
  });

  it('reads CONFIG_FILE underneath the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'podgate-config-'));
    const file = join(dir, 'gateway.json');
    writeFileSync(file, JSON.stringify({ HTTP_PORT: 8181, BASE_DOMAINS: 'a.example,b.example', LOG_LEVEL: 'debug' }));
    const c = loadGatewayConfig(loadEnv({ CONFIG_FILE: file, HTTP_PORT: '8282' }));
    expect(c.HTTP_PORT).toBe(8282);
    expect(c.baseDomains).toEqual(['a.example', 'b.example']);
    expect(c.LOG_LEVEL).toBe('debug');
    writeFileSync(file, JSON.stringify({ LOG_LEVEL: 'verbose' }));
    expect(() => loadGatewayConfig(loadEnv({ CONFIG_FILE: file }))).toThrow(/^LOG_LEVEL: /);
  });

  it('loads the shipped example file', () => {
    expect(() => loadGatewayConfig(loadEnv({ CONFIG_FILE: 'config/gateway.example.json' }))).not.toThrow();
  });

  it('names CONFIG_FILE when the file is missing or not an object', () => {
    expect(() => loadEnv({ CONFIG_FILE: '/nonexistent/podgate.json' })).toThrow(/^CONFIG_FILE: cannot read/);
    const dir = mkdtempSync(join(tmpdir(), 'podgate-config-'));
    writeFileSync(join(dir, 'x.json'), '[1,2]');
    expect(() => loadEnv({ CONFIG_FILE: join(dir, 'x.json') })).toThrow(/^CONFIG_FILE: .* must be a JSON object/);
  });
});
