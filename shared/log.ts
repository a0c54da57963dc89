// Structured JSON logs (pino), one logger per process; modules take a child with their name.
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger };

/**
 * Lines are gathered in memory and written in one system call once this many bytes wait, or at the latest after
 * LOG_FLUSH_INTERVAL_MS: a synchronous write per access line cost more than the rest of the gateway's own work.
 */
const LOG_BUFFER_BYTES = 8192;
const LOG_FLUSH_INTERVAL_MS = 100;

/**
 * `level`: LOG_LEVEL from the caller's validated configuration (envLogLevel), so a CONFIG_FILE's value counts and a
 * bad one is reported naming the variable before any logger exists, never as pino's own throw.
 *
 * The destination is asynchronous and buffered (sonic-boom). Nothing is lost when the process exits: pino writes
 * what is still buffered synchronously on `exit` (a SIGTERM ends in process.exit, after the shutdown); only a
 * SIGKILL loses the last LOG_FLUSH_INTERVAL_MS of lines.
 */
export function createLogger(name: string, level: LogLevel, destination: pino.DestinationStream = standardOutput()): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

function standardOutput(): pino.DestinationStream {
  return pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_INTERVAL_MS });
}

/** The last millisecond's ISO time, as pino's isoTime writes it: one Date per millisecond, not one per line. */
let isoAt = -1;
let iso = '';
function isoNow(): string {
  const now = Date.now();
  if (now !== isoAt) {
    isoAt = now;
    iso = new Date(now).toISOString();
  }
  return iso;
}

/**
 * Info lines the caller has serialised itself, written to `logger`'s own destination in its own format: level, time,
 * the logger's bindings (pid, name and a child's), the caller's fields (`,"key":value...`, JSON already), `msg`.
 * For a line written thousands of times a second (the access log): pino's serialisation of a fields object cost
 * about 4 us per line here, this about a tenth of that. Lines share the logger's buffer, so they stay in order with
 * its other lines and are flushed with them at exit. Undefined when the logger does not write info lines.
 */
export function infoLineWriter(logger: Logger): ((fields: string, msg: string) => void) | undefined {
  if (!logger.isLevelEnabled('info')) return undefined;
  const internals = logger as unknown as Record<symbol, unknown>;
  const stream = internals[pino.symbols.streamSym] as { write(line: string): unknown } | undefined;
  const bindings = internals[pino.symbols.chindingsSym];
  if (typeof stream?.write !== 'function' || typeof bindings !== 'string') return undefined;
  return (fields, msg) => {
    stream.write(`{"level":30,"time":"${isoNow()}"${bindings}${fields},"msg":${JSON.stringify(msg)}}\n`);
  };
}

/** A logger that drops everything: for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
