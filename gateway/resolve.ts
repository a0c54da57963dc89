// Host -> upstream target (pure, synchronous): the decision the request path makes for every request. The Host
// it is given is the request's one authority (request-target.ts has already reconciled it with the target).
// A running pod resolves, and so does a sleeping one (the handler holds it for a wake after the access check, so a
// stranger is refused exactly as by a running private pod), and a starting one this process is waking. Every other
// route is unavailable here, before the access check, where concealment (access/guard.ts conceal()) answers it.
import { PodNotFoundError, PodUnavailableError } from '../shared/errors.ts';
import { parsePodHost, type PodAddress } from '../shared/hostname.ts';
import type { Route } from '../shared/route.ts';

export interface Target {
  slug: string;
  /** In-pod port the user asked for (the route's default when the hostname names none). */
  podPort: number;
  route: Route;
}

/** How many parsed Host headers a HostParser keeps. */
const PARSED_HOSTS = 1024;

/**
 * parsePodHost with the answers remembered: a keep-alive client sends the same Host on every request, and parsing
 * it (lowercasing, slicing, three regular expressions) was, after the header rules, the largest share of podgate's
 * own work per request in the profile. Only hosts that parsed are kept, at most PARSED_HOSTS; when full the map
 * starts over, so a client sending a new name each time costs one parse per request, as without the cache, and
 * memory stays bounded.
 */
export class HostParser {
  private readonly parsed = new Map<string, PodAddress>();
  private readonly baseDomains: readonly string[];
  private readonly max: number;

  constructor(baseDomains: readonly string[], max = PARSED_HOSTS) {
    this.baseDomains = baseDomains;
    this.max = max;
  }

  /** @throws what parsePodHost throws, every time for the same host (failures are not kept). */
  parse(host: string | undefined): PodAddress {
    if (host === undefined) return parsePodHost(host, this.baseDomains);
    const known = this.parsed.get(host);
    if (known !== undefined) return known;
    const address = Object.freeze(parsePodHost(host, this.baseDomains));
    if (this.parsed.size >= this.max) this.parsed.clear();
    this.parsed.set(host, address);
    return address;
  }

  get size(): number {
    return this.parsed.size;
  }
}

export function resolveTarget(
  host: string | undefined,
  hosts: HostParser,
  lookup: (slug: string) => Route | undefined,
  retryAfterSeconds: number,
  waking: (slug: string) => boolean = () => false,
): Target {
  const address = hosts.parse(host);
  const route = lookup(address.slug);
  if (!route) throw new PodNotFoundError(address.slug);
  if (!resolvable(route, waking)) throw new PodUnavailableError(address.slug, route.status, retryAfterSeconds);
  return { slug: address.slug, podPort: address.port ?? route.defaultPort, route };
}

function resolvable(route: Route, waking: (slug: string) => boolean): boolean {
  return route.status === 'running' || route.status === 'sleeping' || (route.status === 'starting' && waking(route.slug));
}
