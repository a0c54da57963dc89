// Pure decisions about certificate names: which names an admin may ask for, which certificate serves an SNI
// name, and whether a handshake may trigger on-demand issuance.
import { z } from 'zod';
import { CertNameSchema, MAX_NAMES_PER_CERTIFICATE } from '../../shared/cert-store.ts';
import { PodgateError, ValidationError } from '../../shared/errors.ts';
import { hostWithoutPort, parsePodHost, type PodAddress } from '../../shared/hostname.ts';
import type { Route } from '../../shared/route.ts';

export const CertNamesSchema = z
  .array(z.string().transform((n) => hostWithoutPort(n)).pipe(CertNameSchema))
  .min(1, 'at least one name')
  .max(MAX_NAMES_PER_CERTIFICATE, `at most ${MAX_NAMES_PER_CERTIFICATE} names`);

export function isWildcard(name: string): boolean {
  return name.startsWith('*.');
}

/**
 * Validate names for a certificate: DNS names (or `*.` wildcards) at or under one of our base domains, because
 * the gateway can only prove control of (and only serves) those. Returns them lowercased, de-duplicated, in the
 * order given (the first is the certificate's id).
 * @throws ValidationError naming `field`
 */
export function normaliseCertNames(input: unknown, bases: readonly string[], field = 'names'): string[] {
  const parsed = CertNamesSchema.safeParse(input);
  if (!parsed.success) throw new ValidationError(field, z.prettifyError(parsed.error));
  const names = [...new Set(parsed.data)];
  for (const name of names) {
    const bare = isWildcard(name) ? name.slice(2) : name;
    if (!bases.some((b) => bare === b || bare.endsWith(`.${b}`))) {
      throw new ValidationError(field, `${name} is not under a base domain this gateway serves (${bases.join(', ')})`);
    }
  }
  return names;
}

/** The names a certificate for `servername` may be filed under, most specific first: exact, then wildcard. */
export function sniCandidates(servername: string): string[] {
  const name = servername.toLowerCase().replace(/\.$/, '');
  const dot = name.indexOf('.');
  // A wildcard covers exactly one label, and never a bare top-level domain.
  return dot > 0 && name.indexOf('.', dot + 1) > 0 ? [name, `*${name.slice(dot)}`] : [name];
}

/** Whether a certificate with `names` is valid for `host` (exact or one-label wildcard match). */
export function covers(names: readonly string[], host: string): boolean {
  const candidates = sniCandidates(host);
  return names.some((n) => candidates.includes(n));
}

/** What on-demand issuance needs of a pod's route: undefined when the pod is not in the route table. */
export type PodLookup = (slug: string) => Pick<Route, 'defaultPort' | 'ports'> | undefined;

export type OnDemandVerdict = { allowed: true; slug: string } | { allowed: false; reason: string };

/**
 * The in-pod ports whose hostnames may be issued on demand: the ports the route declares, and its default port.
 * A route without the list (written by an older orchestrator) declares its default port only, so its pod gets
 * `pod-<slug>`, `localhost-<default>.pod-<slug>` and `localhost-<default>-pod-<slug>`, never any other port.
 */
export function onDemandPorts(route: Pick<Route, 'defaultPort' | 'ports'>): ReadonlySet<number> {
  return new Set([route.defaultPort, ...(route.ports ?? [])]);
}

/**
 * May a handshake for `servername` trigger issuance? Only for names that parse as pod hostnames under a base
 * domain, whose pod exists, and whose port the pod declares: anything else would let any client make us burn
 * the CA's rate limits (and publish names in CT logs), e.g. by asking for localhost-1...65535 of one pod.
 * Other ports of a pod get a certificate only through a wildcard an admin issues (`*.pod-<slug>.<base>`, or
 * `*.<base>` for the flat names), which the SNI lookup prefers to on-demand issuance anyway.
 */
export function onDemandVerdict(servername: string | undefined, bases: readonly string[], lookup: PodLookup): OnDemandVerdict {
  if (!servername) return { allowed: false, reason: 'no SNI name' };
  let address: PodAddress;
  try {
    address = parsePodHost(servername, bases);
  } catch (err) {
    return { allowed: false, reason: err instanceof PodgateError ? err.code : 'unparseable name' };
  }
  const route = lookup(address.slug);
  if (!route) return { allowed: false, reason: 'pod_not_found' };
  if (address.port !== undefined && !onDemandPorts(route).has(address.port)) return { allowed: false, reason: 'port_not_declared' };
  return { allowed: true, slug: address.slug };
}
