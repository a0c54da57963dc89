// A pino logger whose JSON lines a test can read back.
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A destination that hands each line written to it (without its newline) to `onLine`. */
export function lineSink(onLine: (line: string) => void): Writable {
  return new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) onLine(line);
      done();
    },
  });
}

/** A logger at `level` and the lines it wrote so far, parsed. */
export function capturedLogger(level: string): { log: Logger; logs: LogLine[] } {
  const logs: LogLine[] = [];
  return { log: pino({ level }, lineSink((line) => logs.push(JSON.parse(line)))), logs };
}

/** The settings of an in-process test gateway: every listener on 127.0.0.1 port 0, access lines off. */
/**
 * A gateway with TLS on every loopback listener (free ports), base domain example.test, no access log and no
 * on-demand issuance; its ACME directory is an address nothing listens on, so nothing reaches a CA.
 */
export function loopbackTlsGatewayEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', ADMIN_HOST: '127.0.0.1', ADMIN_PORT: '0', HTTPS_HOST: '127.0.0.1', HTTPS_PORT: '0',
    BASE_DOMAINS: 'example.test', ACCESS_LOG: 'false', ACME_DIRECTORY_URL: 'https://127.0.0.1:9/directory', TLS_ON_DEMAND: 'false',
    ...extra,
  };
}

export function loopbackGatewayEnv(redisUrl: string): Record<string, string> {
  return { HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', ADMIN_PORT: '0', REDIS_URL: redisUrl, ACCESS_LOG: 'false' };
}
