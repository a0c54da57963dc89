// The pure decisions of sleep and wake (idle.ts): idle timeouts as written, which pods are idle, how often to look.
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.ts';
import { ConfigError } from '../shared/errors.ts';
import { loadConfig } from './config.ts';
import { effectiveIdleTimeout, idleCheckIntervalMs, parseIdleTimeout, podsToSleep } from './idle.ts';
import { parsePodSpec } from './spec.ts';

describe('idle timeout', () => {
  it('reads durations and off, within 5s and 30d', () => {
    expect(parseIdleTimeout('30m')).toEqual({ ms: 30 * 60_000 });
    expect(parseIdleTimeout('90s')).toEqual({ ms: 90_000 });
    expect(parseIdleTimeout('2h')).toEqual({ ms: 2 * 3_600_000 });
    expect(parseIdleTimeout('5s')).toEqual({ ms: 5000 });
    expect(parseIdleTimeout('30d')).toEqual({ ms: 30 * 86_400_000 });
    expect(parseIdleTimeout('off')).toEqual({ ms: 'off' });
    for (const bad of ['4s', '4999ms', '31d', '', '30', 'soon', '-5m', '1.5h', 'OFF', '30 m', '9999999999s']) {
      expect(parseIdleTimeout(bad), bad).toHaveProperty('error');
    }
    expect((parseIdleTimeout('2s') as { error: string }).error).toMatch(/shorter than 5s/);
    expect((parseIdleTimeout('60d') as { error: string }).error).toMatch(/longer than 30d; use off/);
  });

  it("a spec's own value wins over the default, off included", () => {
    expect(effectiveIdleTimeout(undefined, 'off')).toEqual({ text: 'off', ms: undefined });
    expect(effectiveIdleTimeout(undefined, '30m')).toEqual({ text: '30m', ms: 1_800_000 });
    expect(effectiveIdleTimeout('10s', '30m')).toEqual({ text: '10s', ms: 10_000 });
    expect(effectiveIdleTimeout('off', '30m')).toEqual({ text: 'off', ms: undefined });
  });

  it('is a spec field: kept as written (the stored spec parses to itself), a bad one a 400 naming idleTimeout', () => {
    const spec = parsePodSpec({ slug: 'app', idleTimeout: '30m' });
    expect(spec.idleTimeout).toBe('30m');
    expect(parsePodSpec(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
    expect(parsePodSpec({ slug: 'app' }).idleTimeout).toBeUndefined();
    for (const bad of ['1s', 'forever', 30, null]) {
      try {
        parsePodSpec({ slug: 'app', idleTimeout: bad });
        expect.unreachable(String(bad));
      } catch (err) {
        expect(err).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).field).toBe('idleTimeout');
      }
    }
    expect(() => parsePodSpec({ slug: 'app', idleTimeout: '1s' })).toThrow(/idleTimeout: 1s is shorter than 5s/);
  });

  it('POD_IDLE_TIMEOUT: default off, validated naming the variable', () => {
    const base = { ADMIN_TOKEN: 'x'.repeat(20) };
    expect(loadConfig(base).idleTimeout).toBe('off');
    expect(loadConfig({ ...base, POD_IDLE_TIMEOUT: '45m' }).idleTimeout).toBe('45m');
    expect(loadConfig(base).wakeLimit).toEqual({ count: 10, windowMs: 600_000 });
    expect(loadConfig({ ...base, POD_WAKE_LIMIT: '3', POD_WAKE_WINDOW: '1h' }).wakeLimit).toEqual({ count: 3, windowMs: 3_600_000 });
    for (const [env, variable] of [
      [{ POD_IDLE_TIMEOUT: '1s' }, 'POD_IDLE_TIMEOUT'],
      [{ POD_IDLE_TIMEOUT: 'never' }, 'POD_IDLE_TIMEOUT'],
      [{ POD_WAKE_LIMIT: '0' }, 'POD_WAKE_LIMIT'],
      [{ POD_WAKE_WINDOW: 'a while' }, 'POD_WAKE_WINDOW'],
    ] as const) {
      try {
        loadConfig({ ...base, ...env });
        expect.unreachable(variable);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).message).toContain(variable);
      }
    }
  });
});

describe('which pods go to sleep', () => {
  const now = 1_000_000;
  const pod = (slug: string, idleTimeoutMs: number | undefined, runningSinceMs = 0) => ({ slug, idleTimeoutMs, runningSinceMs });

  it('those idle for longer than their timeout, by the store clock', () => {
    const last = new Map([
      ['idle', now - 60_001],
      ['busy', now - 1000],
      ['edge', now - 60_000],
      ['never', now - 999_999],
    ]);
    const decided = podsToSleep(now, [pod('idle', 60_000), pod('busy', 60_000), pod('edge', 60_000), pod('never', undefined)], last);
    expect(decided).toEqual([{ slug: 'idle', idleMs: 60_001 }]);
  });

  it('a pod just woken or adopted is idle only since it was seen running, whatever its last activity', () => {
    const last = new Map([['woken', now - 600_000]]);
    expect(podsToSleep(now, [pod('woken', 60_000, now - 1000)], last)).toEqual([]);
    expect(podsToSleep(now, [pod('woken', 60_000, now - 61_000)], last)).toEqual([{ slug: 'woken', idleMs: 61_000 }]);
    // Never touched by any gateway: idle since it was seen running.
    expect(podsToSleep(now, [pod('untouched', 60_000, now - 59_000)], new Map())).toEqual([]);
    expect(podsToSleep(now, [pod('untouched', 60_000, now - 70_000)], new Map())).toEqual([{ slug: 'untouched', idleMs: 70_000 }]);
  });

  it('looks a fifth of the shortest timeout apart, within 1 s and 30 s; not at all without timeouts', () => {
    expect(idleCheckIntervalMs([undefined, undefined])).toBeUndefined();
    expect(idleCheckIntervalMs([])).toBeUndefined();
    expect(idleCheckIntervalMs([5000, undefined])).toBe(1000);
    expect(idleCheckIntervalMs([60_000, 30 * 60_000])).toBe(12_000);
    expect(idleCheckIntervalMs([3_600_000])).toBe(30_000);
  });
});
