import { describe, expect, it } from 'vitest';
import { createLogger, infoLineWriter } from '../shared/log.ts';
import { lineSink } from '../test/support/logs.ts';
import { accessFields } from './request-log.ts';

/** Values a client controls in an access line: quotes, backslashes, controls, non-ASCII and a would-be second key. */
const HOSTILE = ['plain', 'a"b\\c', 'tab\there\u0001', 'é€😀', '","level":60,"x":"', ''];

describe('access lines', () => {
  it("are the line pino writes for the same fields, whatever the client's host and path hold", async () => {
    const lines: string[] = [];
    const log = createLogger('gateway', 'info', lineSink((l) => lines.push(l))).child({ role: 'gateway' });
    const write = infoLineWriter(log)!;
    for (const value of HOSTILE) {
      log.info({ method: 'GET', host: value, path: `/${value}`, status: 200, pod: 'a', ms: 3 }, 'request');
      write(accessFields('GET', value, `/${value}`, 200, 'a', 3), 'request');
    }
    log.info({ method: 'GET', host: undefined, path: undefined, status: 499, pod: '-', ms: 0 }, 'request');
    write(accessFields('GET', undefined, undefined, 499, '-', 0), 'request');
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toHaveLength(2 * (HOSTILE.length + 1));
    for (let i = 0; i < lines.length; i += 2) {
      const [theirs, ours] = [JSON.parse(lines[i]!), JSON.parse(lines[i + 1]!)];
      expect(Math.abs(Date.parse(ours.time) - Date.parse(theirs.time))).toBeLessThan(1000);
      delete theirs.time;
      delete ours.time;
      expect(Object.keys(ours)).toEqual(Object.keys(theirs));
      expect(ours).toEqual(theirs);
    }
  });
});
