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
    // No template is the custom one: no image (the orchestrator's default), the image's own services, port 3000.
    expect(parsePodSpec({ slug: 'app' })).toEqual({ slug: 'app', template: 'custom', services: [], environment: {}, defaultPort: 3000, tier: 'dev.small', postStart: [], labels: {} });
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

  it("fills a template's image, services, port and environment where the spec has none", () => {
    expect(parsePodSpec({ slug: 'app', template: 'datascience' })).toMatchObject({
      template: 'datascience',
      image: 'podgate/pod:datascience',
      services: [{ name: 'jupyter', port: 8888 }, { name: 'terminal', port: 7681 }],
      defaultPort: 8888,
      environment: { PYTHONUNBUFFERED: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1' },
    });
  });

  it("lets the spec's own image, services and port win, and lays its environment over the template's", () => {
    const s = parsePodSpec({
      slug: 'app', template: 'python', image: 'team/py:3', services: [], defaultPort: 5000, environment: { PYTHONUNBUFFERED: '0', MINE: 'x' },
    });
    expect(s).toMatchObject({ image: 'team/py:3', services: [], defaultPort: 5000, environment: { PYTHONUNBUFFERED: '0', PIP_DISABLE_PIP_VERSION_CHECK: '1', MINE: 'x' } });
    // A stored spec (already resolved) parses to itself.
    expect(parsePodSpec(s)).toEqual(s);
  });

  it('refuses an unknown template, naming the field and the known ones', () => {
    expect(fieldOf({ slug: 'ok', template: 'ruby' })).toBe('template');
    expect(fieldOf({ slug: 'ok', template: 'toString' })).toBe('template');
    try {
      parsePodSpec({ slug: 'ok', template: 'ruby' });
    } catch (err) {
      expect((err as ValidationError).message).toContain('custom, node, python, nextjs, datascience');
    }
    expect.assertions(3);
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
