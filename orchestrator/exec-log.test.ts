import { describe, expect, it } from 'vitest';
import { useRedis } from '../test/support/redis-server.ts';
import { execLogKey, LOG_OUTPUT_LIMIT, MemoryExecLog, RedisExecLog, type ExecLog, type ExecLogOptions, type NewExecLogEntry } from './exec-log.ts';

const DAY = 86_400_000;

function entry(label: string, timeMs: number, extra: Partial<NewExecLogEntry> = {}): NewExecLogEntry {
  return { time: new Date(timeMs).toISOString(), label, command: ['echo', label], exitCode: 0, stdout: `${label}\n`, stderr: '', durationMs: 3, ...extra };
}

const redisServer = useRedis();

let n = 0;
const impls: [string, (o: ExecLogOptions) => Promise<ExecLog>][] = [
  ['memory', async (o) => new MemoryExecLog(o)],
  [
    'redis',
    async (o) => {
      const redis = await redisServer.client();
      return new RedisExecLog(redis, { ...o, prefix: `log${++n}:` });
    },
  ],
];

for (const [name, make] of impls) {
  describe(`ExecLog: ${name}`, () => {
    it('records commands newest first, per pod', async () => {
      let now = Date.parse('2030-01-01T00:00:00Z');
      const log = await make({ retentionMs: 5 * DAY, maxEntries: 100, now: () => now });
      await log.append('a', entry('one', now));
      now += 1;
      await log.append('a', entry('two', now, { exitCode: 2, stderr: 'bad' }));
      await log.append('b', entry('other', now));
      const got = await log.read('a', 10);
      expect(got.map((e) => e.label)).toEqual(['two', 'one']);
      expect(got[0]).toMatchObject({ exitCode: 2, stderr: 'bad', command: ['echo', 'two'], truncated: false, durationMs: 3 });
      expect(await log.read('a', 1)).toHaveLength(1);
      expect(await log.read('nobody', 10)).toEqual([]);
    });

    it('truncates long output and says so', async () => {
      const now = Date.now();
      const log = await make({ retentionMs: DAY, maxEntries: 100, now: () => now });
      await log.append('a', entry('big', now, { stdout: 'x'.repeat(LOG_OUTPUT_LIMIT * 3) }));
      const [e] = await log.read('a', 1);
      expect(e!.stdout).toHaveLength(LOG_OUTPUT_LIMIT);
      expect(e!.truncated).toBe(true);
    });

    it('expires entries older than the retention', async () => {
      let now = Date.parse('2030-01-01T00:00:00Z');
      const log = await make({ retentionMs: 5 * DAY, maxEntries: 100, now: () => now });
      await log.append('a', entry('old', now));
      now += 6 * DAY;
      await log.append('a', entry('new', now));
      expect((await log.read('a', 10)).map((e) => e.label)).toEqual(['new']);
    });

    it('caps the number of entries', async () => {
      const now = Date.now();
      const log = await make({ retentionMs: DAY, maxEntries: 10, now: () => now });
      for (let i = 0; i < 500; i++) await log.append('a', entry(`e${i}`, now));
      const got = await log.read('a', 1000);
      // Redis trims approximately (whole stream nodes), so allow its slack; never unbounded.
      expect(got.length).toBeGreaterThanOrEqual(10);
      expect(got.length).toBeLessThan(200);
      expect(got[0]!.label).toBe('e499');
    });
  });
}

describe('RedisExecLog', () => {
  it('gives the stream a TTL so a forgotten pod leaves nothing behind', async () => {
    const redis = await redisServer.client();
    const log = new RedisExecLog(redis, { retentionMs: DAY, maxEntries: 10, prefix: 'ttl:' });
    await log.append('a', entry('x', Date.now()));
    const ttl = await redis.pttl(execLogKey('ttl:', 'a'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(DAY);
  });
});
