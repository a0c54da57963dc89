import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { accessFields } from '../gateway/request-log.ts';
import { createLogger, infoLineWriter } from './log.ts';

/** A logger of createLogger's own format writing into `lines`. */
function capture(level: 'info' | 'warn' = 'info') {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { log: createLogger('gateway', level, stream), lines };
}

/** Fields of both kinds a client controls: quotes, backslashes, controls, non-ASCII and a would-be second key. */
const HOSTILE = ['plain', 'a"b\\c', 'tab\there\u0001', 'é€😀', '","level":60,"x":"', ''];

describe('infoLineWriter', () => {
  it("writes what pino writes for the same fields: the same keys in the same order, the same values", () => {
    const { log, lines } = capture();
    const child = log.child({ role: 'gateway' });
    const write = infoLineWriter(child)!;
    for (const value of HOSTILE) {
      child.info({ method: 'GET', host: value, path: `/${value}`, status: 200, pod: 'a', ms: 3 }, 'request');
      write(accessFields('GET', value, `/${value}`, 200, 'a', 3), 'request');
    }
    child.info({ method: 'GET', host: undefined, path: undefined, status: 499, pod: '-', ms: 0 }, 'request');
    write(accessFields('GET', undefined, undefined, 499, '-', 0), 'request');
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      expect(lines).toHaveLength(2 * (HOSTILE.length + 1));
      for (let i = 0; i < lines.length; i += 2) {
        const [theirs, ours] = [JSON.parse(lines[i]!), JSON.parse(lines[i + 1]!)];
        expect(ours.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        expect(Math.abs(Date.parse(ours.time) - Date.parse(theirs.time))).toBeLessThan(1000);
        delete theirs.time;
        delete ours.time;
        expect(Object.keys(ours)).toEqual(Object.keys(theirs));
        expect(ours).toEqual(theirs);
      }
    });
  });

  it('writes nothing for a logger that does not write info lines', () => {
    expect(infoLineWriter(capture('warn').log)).toBeUndefined();
  });
});

describe('standard output lines', () => {
  it('reach standard output within the flush interval while the process runs on, and all of them at exit', { timeout: 20_000 }, async () => {
    const logModule = fileURLToPath(new URL('./log.ts', import.meta.url));
    // A process that writes 3 lines, waits (its timer keeps it alive), then writes 2000 more and exits at once.
    const script = `
      import { createLogger, infoLineWriter } from ${JSON.stringify(logModule)};
      const write = infoLineWriter(createLogger('gateway', 'info'));
      for (let i = 0; i < 3; i++) write(',"n":' + i, 'early');
      process.stdin.once('data', () => { for (let i = 0; i < 2000; i++) write(',"n":' + i, 'late'); process.exit(0); });
      setTimeout(() => {}, 15000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    const started = Date.now();
    while (!out.includes('"n":2,"msg":"early"') && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 20));
    expect(out.split('\n').filter((l) => l.includes('"early"'))).toHaveLength(3);
    child.stdin.write('go\n');
    expect(await exited).toBe(0);
    const late = out.split('\n').filter((l) => l.includes('"late"')).map((l) => JSON.parse(l).n as number);
    expect(late).toEqual(Array.from({ length: 2000 }, (_, i) => i));
  });
});
