import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { lineSink } from '../test/support/logs.ts';
import { createLogger, infoLineWriter } from './log.ts';

describe('infoLineWriter', () => {
  it("writes a line as the logger's own info line with the same fields: the same keys in the same order", async () => {
    const lines: string[] = [];
    const child = createLogger('gateway', 'info', lineSink((l) => lines.push(l))).child({ role: 'gateway' });
    child.info({ n: 1, s: 'x' }, 'hello');
    infoLineWriter(child)!(',"n":1,"s":"x"', 'hello');
    await new Promise((resolve) => setImmediate(resolve));
    const [theirs, ours] = lines.map((l) => JSON.parse(l));
    expect(ours.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    delete theirs.time;
    delete ours.time;
    expect(Object.keys(ours)).toEqual(Object.keys(theirs));
    expect(ours).toEqual(theirs);
  });

  it('writes nothing for a logger that does not write info lines', () => {
    expect(infoLineWriter(createLogger('gateway', 'warn', lineSink(() => {})))).toBeUndefined();
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
