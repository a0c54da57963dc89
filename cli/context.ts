// What every command gets: where to print, whether to print JSON, and the two admin APIs, resolved only when a
// command calls them (so `--help` and usage errors never need settings).
import { setTimeout as delay } from 'node:timers/promises';
import { ApiClient } from './client.ts';
import type { Out } from './output.ts';
import { gatewayTarget, orchestratorTarget, readConfigFile, configPath, type LoadedConfig } from './settings.ts';

/** A mistake in the command line found by a command itself (the parser's own are CommanderErrors): exit 2. */
export class UsageError extends Error {}

export interface Ctx {
  out: Out;
  json: boolean;
  orchestrator(): ApiClient;
  gateway(): ApiClient;
  /** Resolves after `ms`, or at once when `signal` aborts (polling: pods create, logs -f). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  now(): number;
}

export interface GlobalOptions {
  json?: boolean;
  insecure?: boolean;
}

export function processCtx(env: NodeJS.ProcessEnv, out: Out, options: GlobalOptions): Ctx {
  let file: LoadedConfig | undefined | null = null;
  const path = configPath(env);
  // Without a file, settings' messages still name where one would go.
  const config = () => (file === null ? (file = readConfigFile(path) ?? { path, config: {} }) : file);
  const insecure = options.insecure === true;
  return {
    out,
    json: options.json === true,
    orchestrator: () => new ApiClient(orchestratorTarget(env, config(), insecure), 'orchestrator admin', 'PODGATE_URL'),
    gateway: () => new ApiClient(gatewayTarget(env, config(), insecure), 'gateway admin', 'PODGATE_GATEWAY_URL'),
    sleep: (ms, signal) => delay(ms, undefined, { signal }).catch(() => {}),
    now: Date.now,
  };
}
