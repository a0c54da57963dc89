// Host ports for pods: the PortAllocator interface, its in-memory implementation (single process, no Redis)
// and the host-bind check. The Redis implementation (shared by several orchestrator processes) is in
// redis-port-allocator.ts; port-allocator.contract.ts runs one suite against both.
import { createServer } from 'node:net';
import { PortsExhaustedError } from '../shared/errors.ts';
import type { PortRange } from './config.ts';

export interface PortOwner {
  owner: string;
  /** When the port was handed out (ms since the epoch). */
  sinceMs: number;
}

export interface PortAllocator {
  /** Hand out a free port of the range to `owner`, in O(1). @throws PortsExhaustedError */
  allocate(owner: string): Promise<number>;
  /** Give a port back, only if `owner` holds it. Returns whether it was released. */
  release(port: number, owner: string): Promise<boolean>;
  /**
   * Record that `owner` holds `port` (reconcile after a restart or data loss). False if someone else holds it,
   * except HOST_BOUND_OWNER: a port quarantined because the probe found it bound goes to the live pod that bound it.
   */
  claim(port: number, owner: string): Promise<boolean>;
  /** Every port handed out, with its owner. */
  owners(): Promise<Map<number, PortOwner>>;
}

/** Owner of ports found bound on the host by something else; reconcile frees them again after a while. */
export const HOST_BOUND_OWNER = '!host-bound';
/** How many handed-out ports may turn out to be bound on the host before allocation gives up. */
export const MAX_BOUND_SKIPS = 32;

export function rangeSize(range: PortRange): number {
  return range.last - range.first + 1;
}

export class MemoryPortAllocator implements PortAllocator {
  private readonly range: PortRange;
  private readonly now: () => number;
  /** Insertion-ordered: the first value is taken in O(1), released ports go to the back. */
  private readonly free = new Set<number>();
  private readonly held = new Map<number, PortOwner>();

  constructor(range: PortRange, now: () => number = Date.now) {
    this.range = range;
    this.now = now;
    for (let p = range.first; p <= range.last; p++) this.free.add(p);
  }

  async allocate(owner: string): Promise<number> {
    const next = this.free.values().next();
    if (next.done) throw new PortsExhaustedError(`${this.range.first}-${this.range.last}`);
    this.free.delete(next.value);
    this.held.set(next.value, { owner, sinceMs: this.now() });
    return next.value;
  }

  async release(port: number, owner: string): Promise<boolean> {
    if (this.held.get(port)?.owner !== owner) return false;
    this.held.delete(port);
    if (port >= this.range.first && port <= this.range.last) this.free.add(port);
    return true;
  }

  async claim(port: number, owner: string): Promise<boolean> {
    const cur = this.held.get(port);
    if (cur?.owner === owner) return true;
    if (cur && cur.owner !== HOST_BOUND_OWNER) return false;
    this.free.delete(port);
    this.held.set(port, { owner, sinceMs: this.now() });
    return true;
  }

  async owners(): Promise<Map<number, PortOwner>> {
    return new Map(this.held);
  }
}

/** True if nothing on this host listens on address:port (we can bind it ourselves for a moment). */
export function isPortBindable(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * Allocate a port that nothing else on the host has bound. Only the handed-out port is probed (no scan); a bound
 * one stays held by HOST_BOUND_OWNER so nobody gets it again until reconcile frees it after a quarantine.
 */
export async function allocateBindablePort(
  allocator: PortAllocator,
  owner: string,
  isBindable: (port: number) => Promise<boolean>,
): Promise<number> {
  for (let i = 0; i < MAX_BOUND_SKIPS; i++) {
    const port = await allocator.allocate(owner);
    if (await isBindable(port)) return port;
    await allocator.release(port, owner);
    await allocator.claim(port, HOST_BOUND_OWNER);
  }
  throw new PortsExhaustedError(`${MAX_BOUND_SKIPS} ports in a row were bound on the host by something else`);
}
