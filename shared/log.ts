// Structured JSON logs (pino), one logger per process; modules take a child with their name.
import { writeSync } from 'node:fs';
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
 * The destination is asynchronous and buffered (sonic-boom). Nothing is lost when the process exits: what is still
 * buffered is written synchronously on `exit` (a SIGTERM ends in process.exit, after the shutdown); only a SIGKILL
 * loses the last LOG_FLUSH_INTERVAL_MS of lines. A standard output that breaks loses its lines (StandardOutput).
 */
export function createLogger(name: string, level: LogLevel, destination?: pino.DestinationStream): Logger {
  const stream = destination ?? standardOutput().pinoLines;
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}

/** Bytes of pre-serialised lines gathered before they are written. */
const LINE_BUFFER_BYTES = 16 * 1024;

type LineSink = { write(line: string): unknown };

/**
 * The process's standard output, one per process, made on first use: pino's lines through one sonic-boom, and
 * infoLineWriter's (the access log) through another, a buffer of bytes written synchronously once LINE_BUFFER_BYTES
 * wait. sonic-boom keeps pino's lines as strings it appends to one another, and writing the joined string cost
 * about 3 us per access line (measured in isolation, BENCHMARKS.md); bytes appended to a buffer cost about 0.4 us.
 * Both are written every LOG_FLUSH_INTERVAL_MS and on exit; an access line may reach the output up to that much
 * apart from pino's.
 *
 * When a write fails (the reader went away: EPIPE; or any other error), every line to standard output is dropped
 * from then on and the process goes on serving, and still stops on SIGTERM. sonic-boom throws a write error out of
 * the write that met it when its stream has no error listener (an uncaught exception), and its flushSync before
 * 5.0 retried a failed write forever (SIGTERM then never ended the process). Said once on standard error, which
 * may be gone too. Descriptor 1 is never closed: a descriptor closed here could be reused by a client's socket,
 * and the next line would go to that client.
 */
class StandardOutput {
  private broken = false;
  private readonly streams: InstanceType<typeof SonicBoom>[] = [];
  private readonly timer: NodeJS.Timeout;
  readonly pinoLines: pino.DestinationStream;
  readonly accessLines: LineSink;

  constructor() {
    const pinoStream = this.track(new SonicBoom({ fd: 1, sync: false, minLength: LOG_BUFFER_BYTES }));
    const lineStream = this.track(new SonicBoom({ fd: 1, sync: true, minLength: LINE_BUFFER_BYTES, maxWrite: 4 * LINE_BUFFER_BYTES, contentMode: 'buffer' }));
    this.pinoLines = {
      write: (line: string) => {
        if (!this.broken) pinoStream.write(line);
      },
    };
    this.accessLines = {
      write: (line: string) => {
        if (!this.broken) lineStream.write(Buffer.from(line) as unknown as string);
      },
    };
    this.timer = setInterval(() => this.each((s) => s.flush()), LOG_FLUSH_INTERVAL_MS).unref();
    process.once('exit', () => this.each((s) => s.flushSync()));
  }

  private track(stream: InstanceType<typeof SonicBoom>): InstanceType<typeof SonicBoom> {
    stream.on('error', (err: NodeJS.ErrnoException) => this.fail(err));
    this.streams.push(stream);
    return stream;
  }

  private each(flush: (stream: InstanceType<typeof SonicBoom>) => void): void {
    for (const stream of this.streams) {
      if (this.broken) return;
      try {
        flush(stream);
      } catch (err) {
        this.fail(err as NodeJS.ErrnoException);
      }
    }
  }

  private fail(err: NodeJS.ErrnoException): void {
    if (this.broken) return;
    this.broken = true;
    clearInterval(this.timer);
    try {
      // Not process.stderr: a stream that fails emits an error event later, which nothing here would catch.
      writeSync(2, `podgate: standard output cannot be written (${err.code ?? err.message}): its log lines are dropped from now on\n`);
    } catch {
      // standard error is gone as well
    }
  }
}

let processStandardOutput: StandardOutput | undefined;
function standardOutput(): StandardOutput {
  return (processStandardOutput ??= new StandardOutput());
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
 * buffer of bytes for these lines (StandardOutput.accessLines); any other writes them to its own destination.
 * Undefined when the logger does not write info lines.
 */
export function infoLineWriter(logger: Logger): ((fields: string, msg: string) => void) | undefined {
  if (!logger.isLevelEnabled('info')) return undefined;
  const internals = logger as unknown as Record<symbol, unknown>;
  const destination = internals[pino.symbols.streamSym] as { write(line: string): unknown } | undefined;
  const bindings = internals[pino.symbols.chindingsSym];
  if (typeof destination?.write !== 'function' || typeof bindings !== 'string') return undefined;
  const stream = processStandardOutput && destination === processStandardOutput.pinoLines ? processStandardOutput.accessLines : destination;
  return (fields, msg) => {
    stream.write(`{"level":30,"time":"${isoNow()}"${bindings}${fields},"msg":${JSON.stringify(msg)}}\n`);
  };
}

/** A logger that drops everything: for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
