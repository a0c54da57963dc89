// Structured JSON logs (pino), one logger per process; modules take a child with their name.
import { pino, type Logger } from 'pino';
import sonicBoom, { type SonicBoom as SonicBoomClass } from 'sonic-boom';

/** sonic-boom is CommonJS: its module is the class (its types also declare a named export it does not have). */
const SonicBoom = sonicBoom as unknown as typeof SonicBoomClass;
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
export function createLogger(name: string, level: LogLevel, destination?: pino.DestinationStream): Logger {
  const stream = destination ?? standardOutput();
  if (destination === undefined) toStandardOutput.add(stream);
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}

function standardOutput(): pino.DestinationStream {
  return pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_INTERVAL_MS });
}

/** Bytes of pre-serialised lines gathered before they are written. */
const LINE_BUFFER_BYTES = 16 * 1024;

/** The destinations createLogger made for standard output: infoLineWriter sends their lines to standardOutputLines. */
const toStandardOutput = new WeakSet<object>();

type LineSink = { write(line: string): unknown };
let standardOutputSink: LineSink | undefined;

/**
 * Where infoLineWriter's lines for standard output go: a buffer of bytes, one per process, made on first use (only
 * a gateway with access lines has one). sonic-boom keeps pino's lines as strings it appends to one another, and
 * writing the joined string cost about 3 us per access line (measured in isolation, BENCHMARKS.md); bytes appended
 * to a buffer and written synchronously once LINE_BUFFER_BYTES wait, or after LOG_FLUSH_INTERVAL_MS, cost about
 * 0.4 us. Written on exit like pino's own (SIGTERM ends in process.exit). Its lines are whole but may reach the
 * output up to LOG_FLUSH_INTERVAL_MS apart from pino's.
 */
function standardOutputLines(): LineSink {
  if (standardOutputSink) return standardOutputSink;
  const sink = new SonicBoom({ fd: 1, sync: true, minLength: LINE_BUFFER_BYTES, maxWrite: 4 * LINE_BUFFER_BYTES, contentMode: 'buffer', periodicFlush: LOG_FLUSH_INTERVAL_MS });
  process.once('exit', () => sink.flushSync());
  standardOutputSink = { write: (line: string) => sink.write(Buffer.from(line) as unknown as string) };
  return standardOutputSink;
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
 * about 4 us per line here, this about a tenth of that. A logger made by createLogger for standard output has a
 * buffer of bytes for these lines (standardOutputLines); any other writes them to its own destination. Undefined when the
 * logger does not write info lines.
 */
export function infoLineWriter(logger: Logger): ((fields: string, msg: string) => void) | undefined {
  if (!logger.isLevelEnabled('info')) return undefined;
  const internals = logger as unknown as Record<symbol, unknown>;
  const destination = internals[pino.symbols.streamSym] as { write(line: string): unknown } | undefined;
  const bindings = internals[pino.symbols.chindingsSym];
  if (typeof destination?.write !== 'function' || typeof bindings !== 'string') return undefined;
  const stream = toStandardOutput.has(destination) ? standardOutputLines() : destination;
  return (fields, msg) => {
    stream.write(`{"level":30,"time":"${isoNow()}"${bindings}${fields},"msg":${JSON.stringify(msg)}}\n`);
  };
}

/** A logger that drops everything: for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
