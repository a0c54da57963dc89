import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.ts';
import { parsePodSpec, tierLimits } from './spec.ts';
import { loadConfig, parseDuration, parsePortRange } from './config.ts';
import { ConfigError } from '../shared/errors.ts';

function fieldOf(input: unknown): string {
  try {
    parsePodSpec(input);
  } catch (err) {
    if (err instanceof ValidationError) return err.field;
    throw err;
  }
  return '(valid)';
}

describe('pod spec', () => {
  it('fills defaults', () => {
    expect(parsePodSpec({ slug: 'app' })).toEqual({ slug: 'app', services: [], environment: {}, defaultPort: 3000, tier: 'dev.small', postStart: [], labels: {} });
    const s = parsePodSpec({ slug: 'app', postStart: [{ command: 'npm ci' }] });
    expect(s.postStart[0]).toEqual({ command: ['/bin/sh', '-c', 'npm ci'], timeoutMs: 60_000 });
  });

  it('names the bad field', () => {
    expect(fieldOf({})).toBe('slug');
    expect(fieldOf({ slug: '-x' })).toBe('slug');
    expect(fieldOf({ slug: 'a'.repeat(41) })).toBe('slug');
    expect(fieldOf({ slug: 'ok', image: 'Not An Image' })).toBe('image');
    expect(fieldOf({ slug: 'ok', defaultPort: 0 })).toBe('defaultPort');
    expect(fieldOf({ slug: 'ok', services: [{ name: 'a', port: 80 }] })).toBe('services[0].port');
    expect(fieldOf({ slug: 'ok', services: [{ name: 'a', port: 3000 }, { name: 'a', port: 3001 }] })).toBe('services[1].name');
    expect(fieldOf({ slug: 'ok', services: [{ name: 'a', port: 3000 }, { name: 'b', port: 3000 }] })).toBe('services[1].port');
    expect(fieldOf({ slug: 'ok', postStart: [{ command: 'x', timeoutMs: 1 }] })).toBe('postStart[0].timeoutMs');
    expect(fieldOf({ slug: 'ok', access: { default: 'open' } })).toBe('access.default');
    expect(fieldOf('not an object')).toBe('body');
    expect(fieldOf({ slug: 'ok', image: 'registry.example:5000/team/pod:1.2@sha256:' + 'a'.repeat(64) })).toBe('(valid)');
  });

  it('maps tiers to Docker limits, clamped to the host CPUs', () => {
    expect(tierLimits('dev.small', 8)).toEqual({ nanoCpus: 1e9, cpuShares: 512, memoryBytes: 1024 ** 3 });
    expect(tierLimits('dev.xlarge', 16)).toEqual({ nanoCpus: 8e9, cpuShares: 4096, memoryBytes: 8 * 1024 ** 3 });
    expect(tierLimits('dev.xlarge', 2).nanoCpus).toBe(2e9);
  });
});

describe('config', () => {
  const base = { ADMIN_TOKEN: 'x'.repeat(20) };
  it('has safe defaults', () => {
    const c = loadConfig(base);
    expect(c).toMatchObject({ runtime: 'runsc', bindAddress: '127.0.0.1', hostAddress: '127.0.0.1', portRange: { first: 30000, last: 39999 }, adminBind: '127.0.0.1', logRetentionMs: 5 * 86_400_000, redisUrl: undefined });
  });
  it('names the bad variable', () => {
    const variableOf = (env: Record<string, string>) => {
      try {
        loadConfig({ ...base, ...env });
        return '(valid)';
      } catch (err) {
        return (err as ConfigError).variable;
      }
    };
    expect(variableOf({ ADMIN_TOKEN: 'short' })).toBe('ADMIN_TOKEN');
    expect(variableOf({ POD_PORT_RANGE: '40000-30000' })).toBe('POD_PORT_RANGE');
    expect(variableOf({ POD_BIND_ADDRESS: 'everywhere' })).toBe('POD_BIND_ADDRESS');
    expect(variableOf({ LOG_RETENTION: 'forever' })).toBe('LOG_RETENTION');
    expect(variableOf({ ORCHESTRATOR_PORT: 'abc' })).toBe('ORCHESTRATOR_PORT');
    expect(variableOf({ REDIS_URL: 'not a url' })).toBe('REDIS_URL');
    expect(variableOf({ ORCHESTRATOR_BIND: 'local host' })).toBe('ORCHESTRATOR_BIND');
    expect(variableOf({ POD_SUDO: 'yes' })).toBe('POD_SUDO');
    expect(variableOf({ POD_CA_FILE: '/nonexistent/ca.pem' })).toBe('POD_CA_FILE');
    expect(variableOf({ POD_CA_FILE: '/etc/hostname' })).toBe('POD_CA_FILE');
    expect(loadConfig(base)).toMatchObject({ sudo: true, podCa: undefined });
    expect(loadConfig({ ...base, POD_SUDO: 'off' }).sudo).toBe(false);
    expect(variableOf({ LOG_LEVEL: 'verbose' })).toBe('LOG_LEVEL');
  });
  it('parses durations and ranges', () => {
    expect(parseDuration('5d')).toBe(432_000_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('5 days')).toBeUndefined();
    expect(parsePortRange('30000-30000')).toEqual({ first: 30000, last: 30000 });
    expect(parsePortRange('80-90')).toBeUndefined();
  });
});
