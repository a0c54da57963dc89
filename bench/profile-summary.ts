// Summarise a V8 CPU profile (`node --cpu-prof`): where the time went, by function (self and inclusive time) and
// by component (Node's HTTP internals, http-proxy-3, pino, prom-client, podgate's own modules, GC, idle).
// Usage: node bench/profile-summary.ts <file.cpuprofile> [top N]
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const CallFrame = z.object({ functionName: z.string(), url: z.string(), lineNumber: z.number() });
const Profile = z.object({
  nodes: z.array(z.object({ id: z.number(), callFrame: CallFrame, children: z.array(z.number()).optional() })),
  samples: z.array(z.number()),
  timeDeltas: z.array(z.number()),
});
type Profile = z.infer<typeof Profile>;

export interface Entry {
  name: string;
  ms: number;
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  byComponent: Entry[];
  selfByFunction: Entry[];
  inclusiveByFunction: Entry[];
}

/** Which part of the system a frame belongs to, from its script URL (pure). */
export function componentOf(functionName: string, url: string): string {
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'V8/native (program)';
    return `native: ${functionName || '(anonymous)'}`;
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return `npm: ${pkg[1]}`;
  if (url.startsWith('node:')) {
    const mod = url.slice(5).replace(/^internal\//, 'internal/');
    if (/^(_http|http|internal\/http)/.test(mod)) return 'node: http';
    if (/^(net|internal\/(stream_base|net))/.test(mod)) return 'node: net/socket';
    if (/^(internal\/streams|stream)/.test(mod)) return 'node: streams';
    if (/^(events|internal\/(timers|process|async_hooks)|timers)/.test(mod)) return 'node: events/timers/ticks';
    return `node: ${mod.split('/').slice(0, 2).join('/')}`;
  }
  const own = /\/(gateway|shared|orchestrator)\/(.+)$/.exec(url);
  if (own) return `podgate: ${own[1]}/${own[2]}`;
  return url;
}

function frameName(f: z.infer<typeof CallFrame>): string {
  const file = f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(gateway|shared)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim();
}

export function summarise(profile: Profile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const component = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(id);
    if (!node) return;
    total += ms;
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + ms);
    const comp = componentOf(node.callFrame.functionName, node.callFrame.url);
    component.set(comp, (component.get(comp) ?? 0) + ms);
    // Inclusive: each distinct function on the sample's stack once (recursion is not double counted).
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (!n) break;
      const fn = frameName(n.callFrame);
      if (!seen.has(fn)) {
        seen.add(fn);
        inclusive.set(fn, (inclusive.get(fn) ?? 0) + ms);
      }
    }
  });
  const rank = (m: Map<string, number>, n: number): Entry[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => ({ name, ms: Math.round(ms), share: total ? Math.round((ms / total) * 1000) / 10 : 0 }));
  return {
    totalMs: Math.round(total),
    byComponent: rank(component, top),
    selfByFunction: rank(self, top),
    inclusiveByFunction: rank(inclusive, top),
  };
}

function print(title: string, entries: Entry[]): void {
  process.stdout.write(`\n${title}\n`);
  for (const e of entries) process.stdout.write(`${e.share.toFixed(1).padStart(6)}%  ${String(e.ms).padStart(7)} ms  ${e.name}\n`);
}

if (import.meta.main) {
  const [file, topArg] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node bench/profile-summary.ts <file.cpuprofile> [top N]\n');
    process.exit(2);
  }
  const parsed = Profile.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) {
    process.stderr.write(`${file} is not a V8 CPU profile: ${z.prettifyError(parsed.error)}\n`);
    process.exit(2);
  }
  const s = summarise(parsed.data, Number(topArg) || 25);
  process.stdout.write(`total sampled: ${s.totalMs} ms\n`);
  print('by component (self time)', s.byComponent);
  print('by function (self time)', s.selfByFunction);
  print('by function (inclusive time)', s.inclusiveByFunction);
}
