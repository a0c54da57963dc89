// Where the CLI sends its calls and with which token: the environment first, then the config file
// ($XDG_CONFIG_HOME/podgate/config.json, default ~/.config/podgate/config.json), then defaults. Pure but for
// readConfigFile. Tokens are never taken from the command line: every local user can read another's arguments.
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { z } from 'zod';

export const DEFAULT_ORCHESTRATOR_URL = 'http://127.0.0.1:8090';
export const DEFAULT_GATEWAY_ADMIN_PORT = 9090;

/** A mistake in the CLI's settings: the message names the variable or config key. */
export class SettingsError extends Error {}

export const ConfigFileSchema = z.strictObject({
  url: z.string().optional(),
  token: z.string().min(1).optional(),
  gatewayUrl: z.string().optional(),
  gatewayToken: z.string().min(1).optional(),
});
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

/** One admin API the CLI talks to. */
export interface Target {
  /** Without a trailing slash. */
  url: string;
  token: string;
}

export interface LoadedConfig {
  path: string;
  config: ConfigFile;
}

export function configPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'podgate', 'config.json');
}

/**
 * The config file as it stands on disk, or undefined when there is none. A file holding a token must be readable
 * by its owner only (whoever reads it administers podgate); one anyone else may write is refused too, since a
 * writer could point the CLI, and the token from the environment, at a server of theirs.
 */
export function readConfigFile(path: string): LoadedConfig | undefined {
  let text: string;
  let mode: number;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SettingsError(`cannot read ${path}: ${(err as Error).message}`);
  }
  const config = parseConfig(path, text);
  checkConfigMode(path, mode, config);
  return { path, config };
}

export function parseConfig(path: string, text: string): ConfigFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SettingsError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const r = ConfigFileSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const key = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : '');
    throw new SettingsError(`${path}: ${key ? `${key}: ` : ''}${issue.message} (keys: url, token, gatewayUrl, gatewayToken)`);
  }
  return r.data;
}

export function checkConfigMode(path: string, mode: number, config: ConfigFile): void {
  const octal = (mode & 0o777).toString(8).padStart(3, '0');
  if ((config.token !== undefined || config.gatewayToken !== undefined) && (mode & 0o077) !== 0) {
    throw new SettingsError(
      `${path} holds a token and is accessible to other users (mode ${octal}): whoever reads it administers podgate. Run: chmod 600 ${path}`,
    );
  }
  if ((mode & 0o022) !== 0) {
    throw new SettingsError(
      `${path} is writable by other users (mode ${octal}): they could point podgate, and your token, at a server of theirs. Run: chmod 600 ${path}`,
    );
  }
}

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.']);

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (LOOPBACK_NAMES.has(host)) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host) || host === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * An admin API's base URL, checked: http or https, no credentials, query or fragment. Plain http carries the
 * bearer token in clear text, so it is refused to anything but loopback unless `insecure` (a trusted private
 * network, or an SSH tunnel the CLI cannot see).
 */
export function checkUrl(raw: string, setting: string, insecure: boolean): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SettingsError(`${setting}: not a URL: ${JSON.stringify(raw)} (e.g. ${DEFAULT_ORCHESTRATOR_URL})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SettingsError(`${setting}: must be an http:// or https:// URL`);
  if (url.username || url.password) throw new SettingsError(`${setting}: must not carry credentials (the token goes in PODGATE_TOKEN or the config file)`);
  if (url.search || url.hash) throw new SettingsError(`${setting}: must not have a query or fragment`);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && !insecure) {
    throw new SettingsError(
      `${setting}: http:// to ${url.hostname} would send the admin token in clear text, readable by anyone on the path; use https://, or --insecure on a network you trust`,
    );
  }
  return url.href.replace(/\/+$/, '');
}

/** The orchestrator's admin API: PODGATE_URL, PODGATE_TOKEN. */
export function orchestratorTarget(env: NodeJS.ProcessEnv, file: LoadedConfig | undefined, insecure: boolean): Target {
  const fromFile = file?.config;
  const url = env.PODGATE_URL || fromFile?.url;
  const setting = env.PODGATE_URL ? 'PODGATE_URL' : fromFile?.url ? `${file!.path}: url` : 'PODGATE_URL';
  const token = env.PODGATE_TOKEN || fromFile?.token;
  if (!token) {
    throw new SettingsError(
      `no admin token: set PODGATE_TOKEN to the orchestrator's ADMIN_TOKEN, or "token" in ${file?.path ?? 'the config file'} (mode 600)`,
    );
  }
  return { url: checkUrl(url ?? DEFAULT_ORCHESTRATOR_URL, setting, insecure), token };
}

/**
 * The gateway's admin listener (certificates): PODGATE_GATEWAY_URL, PODGATE_GATEWAY_TOKEN. The gateway's own
 * variables (ADMIN_URL or ADMIN_PORT, GATEWAY_ADMIN_TOKEN, and ADMIN_TOKEN, which the all-in-one gateway takes)
 * work too, so a shell with the gateway's environment needs nothing more.
 */
export function gatewayTarget(env: NodeJS.ProcessEnv, file: LoadedConfig | undefined, insecure: boolean): Target {
  const fromFile = file?.config;
  const envUrl = env.PODGATE_GATEWAY_URL || env.ADMIN_URL;
  const url = envUrl || fromFile?.gatewayUrl || `http://127.0.0.1:${env.ADMIN_PORT || DEFAULT_GATEWAY_ADMIN_PORT}`;
  const setting = env.PODGATE_GATEWAY_URL ? 'PODGATE_GATEWAY_URL' : env.ADMIN_URL ? 'ADMIN_URL' : fromFile?.gatewayUrl ? `${file!.path}: gatewayUrl` : 'PODGATE_GATEWAY_URL';
  const token = env.PODGATE_GATEWAY_TOKEN || env.GATEWAY_ADMIN_TOKEN || env.ADMIN_TOKEN || fromFile?.gatewayToken;
  if (!token) {
    throw new SettingsError(
      `no gateway admin token: set PODGATE_GATEWAY_TOKEN to the gateway's GATEWAY_ADMIN_TOKEN (all-in-one: its ADMIN_TOKEN), or "gatewayToken" in ${file?.path ?? 'the config file'} (mode 600)`,
    );
  }
  return { url: checkUrl(url, setting, insecure), token };
}
