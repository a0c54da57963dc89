// How every podgate process starts and stops (gateway, orchestrator, all-in-one): a configuration error, found
// while loading or while starting (a port taken, Redis refusing REDIS_URL's credentials), is one line on stderr and
// exit EXIT_CONFIG, since restarting cannot help; SIGTERM/SIGINT stop the process once, within its deadline.
import { ConfigError, EXIT_CONFIG } from './errors.ts';
import type { Logger } from './log.ts';

/** Exit code of a process that did not stop cleanly (or within its deadline). */
export const EXIT_FAILURE = 1;
/** Past the shutdown deadline, the process is ended this much later (closing itself enforces the deadline). */
const DEADLINE_GRACE_MS = 1000;

export interface MainProcess {
  log: Logger;
  stop(): Promise<void>;
  /** stop() is given this long before the process ends anyway; unset, it is waited for. */
  deadlineMs?: number | undefined;
}

export interface MainOptions {
  /** How a configuration error line starts: "<prefix>: <VARIABLE>: <what is wrong>". */
  configErrorPrefix: string;
}

/** Print a configuration error naming the variable and exit EXIT_CONFIG; rethrow anything else. */
export function exitOnConfigError(err: unknown, prefix: string): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`${prefix}: ${err.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  throw err;
}

/** Exit cleanly on SIGTERM/SIGINT: stop once, exit 0, or EXIT_FAILURE when stopping fails or overruns. */
export function stopOnSignals(main: MainProcess): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    main.log.info({ signal }, 'stopping');
    if (main.deadlineMs !== undefined) setTimeout(() => process.exit(EXIT_FAILURE), main.deadlineMs + DEADLINE_GRACE_MS).unref();
    main.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        main.log.error({ err: String(err) }, 'error while stopping');
        process.exit(EXIT_FAILURE);
      },
    );
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
}

/** Start a process (configuration is read inside `start`) and stop it on signals. */
export async function runMain(start: () => Promise<MainProcess>, options: MainOptions): Promise<void> {
  let main: MainProcess;
  try {
    main = await start();
  } catch (err) {
    exitOnConfigError(err, options.configErrorPrefix);
  }
  stopOnSignals(main);
}
