// Keep-alive connection pools to pods, one per pod *generation*: a pod's host port can be freed and handed to
// another pod, so a pool must never outlive the route it was made for.
import { Agent } from 'node:http';
import type { Route } from '../shared/route.ts';

/**
 * Idle pooled sockets are closed after this long. Node servers close idle keep-alive sockets after 5 s; closing
 * ours first avoids sending a request on a socket the pod is closing at that very moment.
 */
const FREE_SOCKET_TIMEOUT_MS = 4_000;

interface Pool {
  generation: number;
  agent: Agent;
}

export class UpstreamPool {
  private readonly pools = new Map<string, Pool>();
  private readonly maxFreeSockets: number;

  constructor(maxFreeSockets: number) {
    this.maxFreeSockets = maxFreeSockets;
  }

  agentFor(route: Route): Agent {
    const pool = this.pools.get(route.slug);
    if (pool && pool.generation === route.generation) return pool.agent;
    if (pool) retire(pool.agent);
    const agent = new Agent({
      keepAlive: true,
      maxFreeSockets: this.maxFreeSockets,
      timeout: FREE_SOCKET_TIMEOUT_MS,
      // Reuse the most recently used socket: the least likely to have been closed by the pod meanwhile.
      scheduling: 'lifo',
    });
    this.pools.set(route.slug, { generation: route.generation, agent });
    return agent;
  }

  /** The pod's route changed or went away: in-flight requests finish, idle sockets close, nothing is reused. */
  retire(slug: string): void {
    const pool = this.pools.get(slug);
    if (!pool) return;
    this.pools.delete(slug);
    retire(pool.agent);
  }

  get size(): number {
    return this.pools.size;
  }

  close(): void {
    for (const slug of [...this.pools.keys()]) this.retire(slug);
  }
}

function retire(agent: Agent): void {
  // With keepAlive off the agent destroys each socket when its request ends instead of pooling it.
  (agent as Agent & { keepAlive: boolean }).keepAlive = false;
  for (const sockets of Object.values(agent.freeSockets)) for (const s of sockets ?? []) s.destroy();
}
