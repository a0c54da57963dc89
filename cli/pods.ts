// `podgate pods ...`: the orchestrator's pod endpoints (orchestrator/api.ts).
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { ExecLogEntry } from '../orchestrator/exec-log.ts';
import type { ExecOutcome, PodView } from '../orchestrator/pods.ts';
import { RequestTimeoutError } from './client.ts';
import { UsageError, type Ctx } from './context.ts';
import { json, keyValues, printable, printableText, table } from './output.ts';

export const DEFAULT_CREATE_TIMEOUT_S = 180;
const POLL_INTERVAL_MS = 500;
const FOLLOW_INTERVAL_MS = 1000;
const FOLLOW_BATCH = 20;
/** The API's most entries per read. */
const MAX_LOG_LIMIT = 1000;
/** timeout(1)'s exit code for a command that ran out of time. */
const EXEC_TIMED_OUT_EXIT = 124;

/** A pod the CLI stopped waiting for (--timeout); it may still come up. */
export class PodNotReadyError extends Error {}

const path = (slug: string, rest = '') => `/v1/pods/${encodeURIComponent(slug)}${rest}`;

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A whole number for the API, or the text as given, so the API's validation names the field it belongs to. */
function numberOrText(s: string): number | string {
  return /^\d+$/.test(s) ? Number(s) : s;
}

function pair(flag: string, sep: string, what: string) {
  return (value: string): [string, string] => {
    const i = value.indexOf(sep);
    if (i <= 0) throw new UsageError(`${flag} takes ${what}, got ${JSON.stringify(value)}`);
    return [value.slice(0, i), value.slice(i + 1)];
  };
}

export interface CreateOptions {
  spec?: string;
  service: string[];
  env: string[];
  label: string[];
  name?: string;
  image?: string;
  tier?: string;
  idleTimeout?: string;
  defaultPort?: string;
  public?: boolean;
  wait: boolean;
  timeout: string;
}

/** The pod spec from a JSON file (or `-`, stdin) with the flags on top. */
export function specFrom(slug: string, o: CreateOptions, readSpec: (file: string) => string): Record<string, unknown> {
  let spec: Record<string, unknown> = {};
  if (o.spec !== undefined) {
    const text = readSpec(o.spec);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`--spec ${o.spec}: not valid JSON (${(err as Error).message})`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`--spec ${o.spec}: must be a JSON object (a pod spec)`);
    spec = parsed as Record<string, unknown>;
  }
  spec.slug = slug;
  if (o.service.length > 0) {
    spec.services = o.service.map((s) => {
      const [name, port] = pair('--service', ':', 'name:port (e.g. app:3000)')(s);
      return { name, port: numberOrText(port) };
    });
  }
  if (o.env.length > 0) spec.environment = { ...(spec.environment as object), ...Object.fromEntries(o.env.map(pair('--env', '=', 'NAME=value'))) };
  if (o.label.length > 0) spec.labels = { ...(spec.labels as object), ...Object.fromEntries(o.label.map(pair('--label', '=', 'key=value'))) };
  if (o.name !== undefined) spec.name = o.name;
  if (o.image !== undefined) spec.image = o.image;
  if (o.tier !== undefined) spec.tier = o.tier;
  if (o.idleTimeout !== undefined) spec.idleTimeout = o.idleTimeout;
  if (o.defaultPort !== undefined) spec.defaultPort = numberOrText(o.defaultPort);
  if (o.public) spec.access = { default: 'public', ports: {} };
  return spec;
}

function podsTable(pods: PodView[]): string {
  return table(
    ['SLUG', 'STATUS', 'TIER', 'HOST PORT', 'SERVICES', 'URL'],
    pods.map((p) => [p.slug, p.status, p.tier, p.hostPort, p.services.map((s) => `${s.name}:${s.port}`).join(',') || '-', p.url]),
  );
}

function podDetails(p: PodView): string {
  const pairs: [string, unknown][] = [
    ['slug', p.slug],
    ['status', p.status],
    ['image', p.image],
    ['tier', p.tier],
    ['host', p.hostPort === null ? null : `${p.host}:${p.hostPort}`],
    ['url', p.url],
    ['idle timeout', p.idleTimeout],
    ...p.services.map((s): [string, unknown] => [`${s.name} (${s.port})`, s.url]),
    ['created', p.createdAt],
  ];
  if (p.error) pairs.push(['error', p.error]);
  return keyValues(pairs);
}

function printPod(ctx: Ctx, pod: PodView): void {
  ctx.out.stdout(ctx.json ? json(pod) : podDetails(pod));
}

/**
 * Create the pod; with `wait`, the API answers once the pod is ready (or with its error and field, the create
 * rolled back), and meanwhile the pod's state is polled for the progress line.
 */
export async function createPod(ctx: Ctx, spec: Record<string, unknown>, wait: boolean, timeoutS: number): Promise<PodView> {
  const api = ctx.orchestrator();
  if (!wait) return api.call<PodView>('POST', '/v1/pods?wait=false', spec);
  const slug = String(spec.slug);
  const started = ctx.now();
  const stop = new AbortController();
  let status = 'pending';
  const progress = (async () => {
    while (!stop.signal.aborted) {
      ctx.out.progress(`creating ${slug}: ${status} (${Math.floor((ctx.now() - started) / 1000)}s)`);
      await ctx.sleep(POLL_INTERVAL_MS, stop.signal);
      if (stop.signal.aborted) break;
      // Only for the progress line: the create's own answer decides.
      status = (await api.call<PodView>('GET', path(slug)).catch(() => undefined))?.status ?? status;
    }
  })();
  try {
    return await api.call<PodView>('POST', '/v1/pods', spec, timeoutS * 1000);
  } catch (err) {
    if (err instanceof RequestTimeoutError) {
      throw new PodNotReadyError(`pod ${JSON.stringify(slug)} was not ready within ${timeoutS} s (--timeout); it may still come up: podgate pods show ${slug}`);
    }
    throw err;
  } finally {
    stop.abort();
    await progress;
    ctx.out.progressDone();
  }
}

function logEntry(e: ExecLogEntry): string {
  // A sleep or wake: what happened and why, no command.
  if (e.note !== undefined) return `${printable(e.time)}  ${printable(e.label)}  ${printable(e.note)}\n`;
  const status = e.error ? `error: ${e.error}` : `exit ${e.exitCode}`;
  let s = `${printable(e.time)}  ${printable(e.label)}  ${status}  ${e.durationMs} ms  $ ${printable(e.command.join(' '))}\n`;
  for (const text of [e.stdout, e.stderr]) if (text) s += printableText(text).replace(/^/gm, '    ').replace(/\s*$/, '\n');
  if (e.truncated) s += '    (output truncated)\n';
  return s;
}

/** Stream ids ("<ms>-<seq>") in order. */
function idAfter(a: string, b: string): boolean {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am > bm || (am === bm && as > bs);
}

async function logs(ctx: Ctx, slug: string, limit: number, follow: boolean): Promise<void> {
  const api = ctx.orchestrator();
  const read = async (n: number) => (await api.call<{ entries: ExecLogEntry[] }>('GET', `${path(slug, '/logs')}?limit=${n}`)).entries.reverse();
  const print = (entries: ExecLogEntry[]) => {
    if (ctx.json) for (const e of entries) ctx.out.stdout(`${JSON.stringify(e)}\n`);
    else for (const e of entries) ctx.out.stdout(logEntry(e));
  };
  let entries = await read(limit);
  if (!follow) {
    if (ctx.json) ctx.out.stdout(json({ entries }));
    else if (entries.length === 0) ctx.out.stderr(`no log entries for ${slug}\n`);
    else print(entries);
    return;
  }
  // Following prints one JSON object a line with --json (a stream scripts can read line by line).
  print(entries);
  let last = entries.at(-1)?.id;
  for (;;) {
    await ctx.sleep(FOLLOW_INTERVAL_MS);
    const isNew = (e: ExecLogEntry) => last === undefined || idAfter(e.id, last);
    // A small read each second; the largest one only when everything in the small one is new.
    entries = await read(FOLLOW_BATCH);
    if (entries.length === FOLLOW_BATCH && entries.every(isNew)) entries = await read(MAX_LOG_LIMIT);
    entries = entries.filter(isNew);
    print(entries);
    last = entries.at(-1)?.id ?? last;
  }
}

export function podsCommand(ctx: () => Ctx, setExit: (code: number) => void): Command {
  const pods = new Command('pods').description('list, create, start, stop, restart, delete pods; run commands in them; read their logs');

  pods
    .command('ls')
    .alias('list')
    .description('list pods')
    .action(async () => {
      const c = ctx();
      const { pods: list } = await c.orchestrator().call<{ pods: PodView[] }>('GET', '/v1/pods');
      c.out.stdout(c.json ? json({ pods: list }) : list.length === 0 ? 'no pods\n' : podsTable(list));
    });

  pods
    .command('show')
    .argument('<slug>')
    .description("one pod: status, host port, service URLs, last error")
    .action(async (slug: string) => {
      const c = ctx();
      printPod(c, await c.orchestrator().call<PodView>('GET', path(slug)));
    });

  pods
    .command('create')
    .argument('<slug>', 'the pod name: a DNS label of at most 40 characters')
    .description('create a pod and wait until its services answer')
    .option('-s, --service <name:port>', 'a service of the pod image and its in-pod port (repeatable), e.g. app:3000', collect, [])
    .option('-e, --env <NAME=value>', 'an environment variable (repeatable)', collect, [])
    .option('-l, --label <key=value>', 'a label (repeatable)', collect, [])
    .option('--name <text>', 'display name')
    .option('--image <ref>', 'image (default: the orchestrator\'s POD_IMAGE)')
    .option('--tier <tier>', 'resource tier (dev.small, dev.medium, ...)')
    .option('--idle-timeout <duration>', 'sleep after this long without requests (30m, 2h, off; default: the orchestrator\'s POD_IDLE_TIMEOUT)')
    .option('--default-port <port>', 'the port pod-<slug>.<base> opens (default 3000)')
    .option('--public', 'anyone who reaches the gateway may open the pod (default: private, links only)')
    .option('--spec <file>', 'a JSON pod spec (- for stdin); the flags above override it')
    .option('--no-wait', 'answer as soon as the pod is accepted (status pending), without waiting for it to run')
    .option('--timeout <seconds>', 'how long to wait for the pod to run', String(DEFAULT_CREATE_TIMEOUT_S))
    .action(async (slug: string, o: CreateOptions) => {
      const c = ctx();
      const timeout = Number(o.timeout);
      if (!Number.isInteger(timeout) || timeout <= 0) throw new UsageError(`--timeout takes whole seconds, got ${JSON.stringify(o.timeout)}`);
      const spec = specFrom(slug, o, (f) => readFileSync(f === '-' ? 0 : f, 'utf8'));
      printPod(c, await createPod(c, spec, o.wait, timeout));
    });

  for (const [name, description] of [
    ['start', 'start a stopped pod (answers once it is ready)'],
    ['stop', 'stop a pod (its files are kept)'],
    ['restart', 'restart a pod'],
    ['sleep', 'put a running pod to sleep (stopped, its files kept; the next request through a gateway wakes it)'],
    ['wake', 'wake a sleeping pod (answers once it is ready)'],
  ] as const) {
    pods
      .command(name)
      .argument('<slug>')
      .description(description)
      .action(async (slug: string) => {
        const c = ctx();
        const pod = await c.orchestrator().call<PodView>('POST', path(slug, `/${name}`));
        c.out.stdout(c.json ? json(pod) : `${printable(pod.slug)}: ${pod.status}\n`);
      });
  }

  pods
    .command('rm')
    .alias('delete')
    .argument('<slug>')
    .description('delete a pod: its container, network, route and links')
    .action(async (slug: string) => {
      const c = ctx();
      await c.orchestrator().call('DELETE', path(slug));
      c.out.stdout(c.json ? json({ deleted: slug }) : `deleted ${printable(slug)}\n`);
    });

  pods
    .command('exec')
    .argument('<slug>')
    .argument('<command...>', 'the command and its arguments (after --), run without a shell: use sh -c for one')
    .description("run a command in a pod; its output is printed and its exit code is podgate's")
    .option('--label <text>', 'what the pod log calls it', 'exec')
    .option('--timeout <ms>', 'kill the command after this many milliseconds (default 60000)')
    .action(async (slug: string, command: string[], o: { label: string; timeout?: string }) => {
      const c = ctx();
      const body = { command, label: o.label, ...(o.timeout !== undefined ? { timeoutMs: numberOrText(o.timeout) } : {}) };
      const r = await c.orchestrator().call<ExecOutcome>('POST', path(slug, '/exec'), body, 11 * 60_000);
      if (c.json) c.out.stdout(json(r));
      else {
        // The command's own output, as `docker exec` shows it.
        c.out.stdout(r.stdout);
        c.out.stderr(r.stderr);
        if (r.truncated) c.out.stderr('podgate: output truncated\n');
        if (r.timedOut) c.out.stderr(`podgate: ${r.error ?? 'timed out'}\n`);
      }
      setExit(r.timedOut ? EXEC_TIMED_OUT_EXIT : (r.exitCode ?? 1));
    });

  pods
    .command('logs')
    .argument('<slug>')
    .description("the pod's provisioning and exec log (oldest first)")
    .option('-n, --limit <count>', 'entries to show', '100')
    .option('-f, --follow', 'keep printing new entries until interrupted')
    .action(async (slug: string, o: { limit: string; follow?: boolean }) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LOG_LIMIT) throw new UsageError(`--limit takes 1 to ${MAX_LOG_LIMIT}, got ${JSON.stringify(o.limit)}`);
      await logs(ctx(), slug, limit, o.follow === true);
    });

  return pods;
}
