// Where the memory of idle WebSockets goes: a gateway in this process (embedded route store, no Redis), the bench's
// echo server as the pod, bench/idle-clients.ts opening N idle WebSockets through the gateway; then, after a GC,
// process.memoryUsage() and VmRSS per tunnel, and with HEAP=1 a heap snapshot summarised by constructor (shallow
// bytes and count per tunnel). Bounded: the clients open for at most 120 s and hold for at most 60 s.
// Usage: node --expose-gc bench/ws-memory-probe.ts [count=2000]   (HEAP=1 for the heap summary; SETTLE_MS: wait
// after opening, default 1000)
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getHeapStatistics, writeHeapSnapshot } from 'node:v8';
import { loadGatewayConfig } from '../gateway/config.ts';
import { startGateway } from '../gateway/main.ts';
import { silentLogger } from '../shared/log.ts';
import { MemoryRouteStore } from '../shared/memory-route-store.ts';
import { freePort, waitServing } from './processes.ts';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const COUNT = Number(process.argv[2] ?? 2000);
const HOST = 'pod-probe.localhost';
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc || !(COUNT >= 1 && COUNT <= 9000)) {
  process.stderr.write('usage: node --expose-gc bench/ws-memory-probe.ts [count 1-9000]\n');
  process.exit(2);
}

function rss(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** Resident memory of the malloc heap ([heap]) and of the other anonymous mappings (V8's heap among them), bytes. */
function residentByKind(): { mallocHeap: number; otherAnon: number } {
  let mallocHeap = 0;
  let otherAnon = 0;
  let kind: 'heap' | 'anon' | 'file' = 'file';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (header) {
      kind = header[2] === '[heap]' ? 'heap' : header[1] === '0' && !header[2]!.startsWith('/') ? 'anon' : 'file';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && kind === 'heap') mallocHeap += Number(rss[1]) * 1024;
    else if (rss && kind === 'anon') otherAnon += Number(rss[1]) * 1024;
  }
  return { mallocHeap, otherAnon };
}

function snapshotSummary(): Map<string, { bytes: number; count: number }> {
  const file = writeHeapSnapshot(join(tmpdir(), `podgate-probe-${process.pid}.heapsnapshot`));
  const snap = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  rmSync(file);
  const fields = snap.snapshot.meta.node_fields;
  const width = fields.length;
  const [iType, iName, iSize] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const types = snap.snapshot.meta.node_types[0];
  const out = new Map<string, { bytes: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!]!;
    const name = type === 'object' || type === 'closure' || type === 'native' ? snap.strings[snap.nodes[i + iName]!]! : `(${type})`;
    const key = `${type}:${name.slice(0, 60)}`;
    const e = out.get(key) ?? { bytes: 0, count: 0 };
    e.bytes += snap.nodes[i + iSize]!;
    e.count++;
    out.set(key, e);
  }
  return out;
}

function measure() {
  gc!();
  gc!();
  const m = process.memoryUsage();
  const h = getHeapStatistics();
  return { rss: rss(), ...residentByKind(), heapUsed: m.heapUsed, heapPhysical: h.total_physical_size, external: m.external, arrayBuffers: m.arrayBuffers, v8Malloced: h.malloced_memory };
}

const children: ChildProcess[] = [];
const store = new MemoryRouteStore();
const config = loadGatewayConfig({ HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', ADMIN_PORT: '0', ACCESS_LOG: 'false', ACCESS_CONCEAL_PODS: 'false' });
try {
  const echoPort = await freePort();
  children.push(spawn(process.execPath, [join(ROOT, 'bench/ws-echo-server.ts'), String(echoPort)], { stdio: 'ignore' }));
  await waitServing(echoPort, HOST, 'ws echo server');
  await store.put({ slug: 'probe', host: '127.0.0.1', port: echoPort, status: 'running', generation: await store.nextGeneration(), defaultPort: 3000, updatedAt: new Date().toISOString(), access: { default: 'public', ports: {} } });
  const gateway = await startGateway(config, { store, log: silentLogger(), noAdmin: true });

  const open = (n: number) =>
    new Promise<ChildProcess>((resolve, reject) => {
      const c = spawn(process.execPath, [join(ROOT, 'bench/idle-clients.ts'), 'ws', String(gateway.httpPort), HOST, String(n), '120', '60'], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(c);
      c.stdout!.once('data', (d: Buffer) => {
        const r = JSON.parse(String(d)) as { open: number };
        if (r.open !== n) reject(new Error(`only ${r.open} of ${n} opened`));
        else resolve(c);
      });
      c.once('exit', (code) => reject(new Error(`idle-clients exited with ${code}`)));
    });
  const stopClients = async (c: ChildProcess) => {
    c.kill('SIGTERM');
    if (c.exitCode === null) await new Promise((r) => c.once('exit', r));
  };

  // Warm-up: the first tunnels load code and grow pools that every later one shares.
  await stopClients(await open(200));
  await new Promise((r) => setTimeout(r, 1000));
  const before = measure();
  const heapBefore = process.env.HEAP === '1' ? snapshotSummary() : undefined;
  const clients = await open(COUNT);
  await new Promise((r) => setTimeout(r, Number(process.env.SETTLE_MS ?? 1000)));
  const after = measure();
  const per = (k: keyof typeof before) => Math.round((after[k] - before[k]) / COUNT);
  process.stdout.write(`${COUNT} idle WebSockets; per tunnel: rss ${per('rss')} B (malloc heap ${per('mallocHeap')} B, other anonymous ${per('otherAnon')} B), heapUsed ${per('heapUsed')} B, heap physical ${per('heapPhysical')} B, external ${per('external')} B, arrayBuffers ${per('arrayBuffers')} B, v8 malloced ${per('v8Malloced')} B\n`);
  process.stdout.write(`rss before ${(before.rss / 1048576).toFixed(1)} MiB, after ${(after.rss / 1048576).toFixed(1)} MiB\n`);
  if (heapBefore) {
    const heapAfter = snapshotSummary();
    const rows = [...heapAfter].map(([k, v]) => {
      const b = heapBefore.get(k) ?? { bytes: 0, count: 0 };
      return { k, bytes: (v.bytes - b.bytes) / COUNT, count: (v.count - b.count) / COUNT };
    });
    rows.sort((a, b) => b.bytes - a.bytes);
    for (const r of rows.slice(0, Number(process.env.HEAP_ROWS ?? 40))) process.stdout.write(`${r.bytes.toFixed(0).padStart(7)} B ${r.count.toFixed(2).padStart(6)} x  ${r.k}\n`);
    process.stdout.write(`total shallow per tunnel: ${rows.reduce((s, r) => s + r.bytes, 0).toFixed(0)} B\n`);
  }
  await stopClients(clients);
  await gateway.shutdown(1000);
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
}
process.exit(0);
