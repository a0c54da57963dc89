// Pod hostname grammar (pure). Accepted forms, under any configured base domain:
//   localhost-<port>.pod-<slug>.<base>   one certificate per pod (*.pod-<slug>.<base>)
//   localhost-<port>-pod-<slug>.<base>   flat: one label under the base, so *.<base> covers every pod
//   pod-<slug>.<base>                    the pod's default port
import { HostNotServedError, InvalidHostError } from './errors.ts';
import { SLUG_PATTERN } from './route.ts';

export interface PodAddress {
  slug: string;
  /** The in-pod port named in the hostname; undefined means the route's default port. */
  port: number | undefined;
  /** The base domain the host matched. */
  base: string;
}

const PORT_LABEL = /^localhost-(\d{1,5})$/;
const FLAT_LABEL = /^localhost-(\d{1,5})-pod-(.+)$/;
const POD_LABEL = /^pod-(.+)$/;
const PORT_DIGITS = /^[1-9]\d{0,4}$/;
const MAX_HOST_LENGTH = 253;

/** Normalise base domains once, at configuration time: lowercase, no dots at the ends, longest first. */
export function normaliseBaseDomains(bases: readonly string[]): string[] {
  return [...new Set(bases.map((b) => b.trim().toLowerCase().replace(/^\.+|\.+$/g, '')).filter(Boolean))].sort(
    (a, b) => b.length - a.length,
  );
}

/** Strip an optional `:port`, IPv6 brackets and one trailing dot; lowercase. */
export function hostWithoutPort(hostHeader: string): string {
  let host = hostHeader.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.lastIndexOf(':');
  if (colon !== -1 && host.indexOf(':') === colon) host = host.slice(0, colon);
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host;
}

function parsePort(digits: string, host: string): number {
  if (!PORT_DIGITS.test(digits)) throw new InvalidHostError(host, `port ${digits} has leading zeros or is 0`);
  const port = Number(digits);
  if (port > 65535) throw new InvalidHostError(host, `port ${digits} is above 65535`);
  return port;
}

function checkSlug(slug: string, host: string): string {
  if (!SLUG_PATTERN.test(slug)) throw new InvalidHostError(host, `pod name ${JSON.stringify(slug)} is not a valid slug`);
  return slug;
}

/**
 * Parse a Host header (or SNI name) into a pod address.
 * @param bases normalised base domains (see normaliseBaseDomains)
 * @throws InvalidHostError when the host is under a base domain but malformed
 * @throws HostNotServedError when it is under none of them (IP literals, foreign domains, the bare base)
 */
export function parsePodHost(hostHeader: string | undefined, bases: readonly string[]): PodAddress {
  if (!hostHeader) throw new InvalidHostError('', 'missing Host header');
  if (hostHeader.length > MAX_HOST_LENGTH + 7) throw new InvalidHostError(hostHeader, 'too long');
  const host = hostWithoutPort(hostHeader);
  const base = bases.find((b) => host.endsWith(`.${b}`));
  if (!base) throw new HostNotServedError(host);
  const labels = host.slice(0, host.length - base.length - 1).split('.');

  if (labels.length === 2) {
    const portMatch = PORT_LABEL.exec(labels[0]!);
    const podMatch = POD_LABEL.exec(labels[1]!);
    if (!portMatch || !podMatch) throw new InvalidHostError(host, 'expected localhost-<port>.pod-<name>');
    return { slug: checkSlug(podMatch[1]!, host), port: parsePort(portMatch[1]!, host), base };
  }
  if (labels.length === 1) {
    const label = labels[0]!;
    const flat = FLAT_LABEL.exec(label);
    if (flat) return { slug: checkSlug(flat[2]!, host), port: parsePort(flat[1]!, host), base };
    if (label.startsWith('localhost-')) throw new InvalidHostError(host, 'expected localhost-<port>-pod-<name>');
    const pod = POD_LABEL.exec(label);
    if (pod) return { slug: checkSlug(pod[1]!, host), port: undefined, base };
  }
  throw new InvalidHostError(host, 'expected pod-<name>, localhost-<port>.pod-<name> or localhost-<port>-pod-<name>');
}

/** The hostnames at which a pod's port is reachable, for APIs that show URLs. */
export function podHostnames(slug: string, port: number | undefined, base: string): { nested: string; flat: string } {
  if (port === undefined) return { nested: `pod-${slug}.${base}`, flat: `pod-${slug}.${base}` };
  return { nested: `localhost-${port}.pod-${slug}.${base}`, flat: `localhost-${port}-pod-${slug}.${base}` };
}
