// Host -> upstream target (pure, synchronous): the decision the request path makes for every request. The Host
// it is given is the request's one authority (request-target.ts has already reconciled it with the target).
// A running pod resolves, and so does a sleeping one (the handler holds it for a wake after the access check, so a
// stranger is refused exactly as by a running private pod), and a starting one this process is waking. Every other
// route is unavailable here, before the access check, where concealment (access/guard.ts conceal()) answers it.
import { PodNotFoundError, PodUnavailableError } from '../shared/errors.ts';
import { parsePodHost } from '../shared/hostname.ts';
import type { Route } from '../shared/route.ts';

export interface Target {
  slug: string;
  /** In-pod port the user asked for (the route's default when the hostname names none). */
  podPort: number;
  route: Route;
}

export function resolveTarget(
  host: string | undefined,
  baseDomains: readonly string[],
  lookup: (slug: string) => Route | undefined,
  retryAfterSeconds: number,
  waking: (slug: string) => boolean = () => false,
): Target {
  const address = parsePodHost(host, baseDomains);
  const route = lookup(address.slug);
  if (!route) throw new PodNotFoundError(address.slug);
  if (!resolvable(route, waking)) throw new PodUnavailableError(address.slug, route.status, retryAfterSeconds);
  return { slug: address.slug, podPort: address.port ?? route.defaultPort, route };
}

function resolvable(route: Route, waking: (slug: string) => boolean): boolean {
  return route.status === 'running' || route.status === 'sleeping' || (route.status === 'starting' && waking(route.slug));
}
