// What pods may not reach, as iptables rules: a pure function from the egress settings to the exact rule specs
// `iptables -S` prints, so installing is replaying them and checking is comparing text. egress-iptables.ts does
// the I/O.
//
// Every pod's bridge is named POD_BRIDGE_PREFIX + a hash (container-runtime.ts podBridgeName), so one static rule
// set matching `-i pgpod+` covers every pod, present and future, without per-pod rules:
// - traffic a pod sends through the host (FORWARD, hooked from DOCKER-USER, Docker's place for user rules) meets
//   the forward chain: link-local (cloud metadata), other pods' bridges, ports the host forwards by DNAT, and the
//   POD_EGRESS_DENY ranges are refused; everything else (the internet) goes on to Docker's own rules.
// - traffic a pod sends to the host itself (any of its addresses: INPUT, not FORWARD) meets the input chain: only
//   replies, DNS to the resolvers Docker forwards to, and POD_EGRESS_HOST_PORTS pass.
// Replies of connections made into the pod (the gateway through the published port, the orchestrator's
// readiness probe) are ESTABLISHED and always pass. A refusal is an ICMP "administratively prohibited" (a
// connect fails at once with "No route to host"), so a program in the pod neither hangs nor mistakes the policy
// for a service that is down.
import { isIPv4, isIPv6 } from 'node:net';

export const POD_BRIDGE_PREFIX = 'pgpod';

export type IpFamily = 4 | 6;

/** A validated network in the form iptables prints it (network address, prefix length). */
export interface Cidr {
  family: IpFamily;
  text: string;
}

export interface EgressPolicy {
  /** POD_EGRESS_DENY: networks pods may not reach beyond the built-in ones. */
  deny: Cidr[];
  /** POD_EGRESS_HOST_PORTS: TCP ports on the host's own addresses pods may open (the gateway on the same host). */
  hostPorts: number[];
  /** Resolvers Docker's embedded DNS forwards to from inside the pod's namespace: port 53 to them passes. */
  resolvers: Cidr[];
}

export interface EgressNames {
  forwardChain: string;
  inputChain: string;
  /** Interface name prefix of pod bridges (iptables `-i <prefix>+`). */
  bridgePrefix: string;
}

export const EGRESS_NAMES: EgressNames = { forwardChain: 'PODGATE-EGRESS', inputChain: 'PODGATE-INPUT', bridgePrefix: POD_BRIDGE_PREFIX };

/** Link-local: 169.254.169.254 is the metadata service (credentials) of AWS, GCP, Azure, OpenStack, Oracle... */
export const ALWAYS_DENIED: Record<IpFamily, string> = { 4: '169.254.0.0/16', 6: 'fe80::/10' };

/**
 * POD_EGRESS_DENY's default: private and shared address space (the host's LAN or VPC: databases, Redis, other
 * machines' admin ports), plus cloud metadata services outside link-local (Alibaba 100.100.100.200 is in
 * 100.64.0.0/10, AWS's IPv6 fd00:ec2::254 in fc00::/7).
 */
export const DEFAULT_EGRESS_DENY = '10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7';

export interface FamilyRules {
  family: IpFamily;
  /** User chains and their rules, each as `iptables -S <chain>` prints it (the `-N` line first). */
  chains: { name: string; rules: string[] }[];
  /** Jumps into them from built-in or Docker chains: the chain jumped from, and the rule after `-A <from>`. */
  jumps: { from: string; rule: string }[];
}

/**
 * The rules for one address family. `forwardHook` is DOCKER-USER where Docker made it (its FORWARD rules accept
 * pod traffic before anything appended to FORWARD would see it), else FORWARD itself.
 */
export function egressRules(policy: EgressPolicy, family: IpFamily, forwardHook: string, names: EgressNames = EGRESS_NAMES): FamilyRules {
  const pods = `${names.bridgePrefix}+`;
  const reject = family === 4 ? '-j REJECT --reject-with icmp-admin-prohibited' : '-j REJECT --reject-with icmp6-adm-prohibited';
  const replies = '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN';
  const dns = policy.resolvers
    .filter((r) => r.family === family)
    .flatMap((r) => [`-d ${r.text} -p udp -m udp --dport 53 -j RETURN`, `-d ${r.text} -p tcp -m tcp --dport 53 -j RETURN`]);
  const denied = [ALWAYS_DENIED[family], ...policy.deny.filter((c) => c.family === family).map((c) => c.text)];

  const fwd = names.forwardChain;
  const forward = [
    `-N ${fwd}`,
    `-A ${fwd} ${replies}`,
    ...dns.map((r) => `-A ${fwd} ${r}`),
    // Another pod's bridge: Docker isolates its networks too; this says so independently of Docker's chains.
    `-A ${fwd} -o ${pods} ${reject}`,
    // A port the host publishes for a container (Docker's DNAT): it is the host's, not the internet's.
    `-A ${fwd} -m conntrack --ctstate DNAT ${reject}`,
    ...denied.map((d) => `-A ${fwd} -d ${d} ${reject}`),
  ];
  const inp = names.inputChain;
  const input = [
    `-N ${inp}`,
    `-A ${inp} ${replies}`,
    ...dns.map((r) => `-A ${inp} ${r}`),
    ...policy.hostPorts.map((p) => `-A ${inp} -p tcp -m tcp --dport ${p} -j RETURN`),
    `-A ${inp} ${reject}`,
  ];
  return {
    family,
    chains: [
      { name: fwd, rules: forward },
      { name: inp, rules: input },
    ],
    jumps: [
      { from: forwardHook, rule: `-i ${pods} -j ${fwd}` },
      { from: 'INPUT', rule: `-i ${pods} -j ${inp}` },
    ],
  };
}

/**
 * One network of a CIDR list: `a.b.c.d/n`, an IPv6 `x::/n`, or a bare address (one host). Host bits must be
 * zero, so what is written is what iptables enforces. @returns the network, or an error message
 */
export function parseCidr(text: string): Cidr | string {
  const t = text.trim();
  const slash = t.indexOf('/');
  const address = slash === -1 ? t : t.slice(0, slash);
  const lengthText = slash === -1 ? undefined : t.slice(slash + 1);
  // A zone (fe80::1%eth0) names an interface, which a network of a deny list cannot have.
  const family: IpFamily | undefined = isIPv4(address) ? 4 : isIPv6(address) && !address.includes('%') ? 6 : undefined;
  if (!family) return `${JSON.stringify(t)} is not an IPv4 or IPv6 network (expected e.g. 10.0.0.0/8 or fd00::/8)`;
  const bits = family === 4 ? 32 : 128;
  if (lengthText !== undefined && !/^\d{1,3}$/.test(lengthText)) return `${JSON.stringify(t)} has no valid prefix length (0-${bits})`;
  const length = lengthText === undefined ? bits : Number(lengthText);
  if (length > bits) return `${JSON.stringify(t)} has a prefix length above ${bits}`;
  const bytes = family === 4 ? address.split('.').map(Number) : ipv6Bytes(address);
  for (let bit = length; bit < bits; bit++) {
    if ((bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) {
      return `${JSON.stringify(t)} has host bits set; the network is ${formatAddress(family, mask(bytes, length))}/${length}`;
    }
  }
  return { family, text: `${formatAddress(family, bytes)}/${length}` };
}

/** A comma list of CIDRs. @returns the networks, or the first entry's error message */
export function parseCidrList(text: string): Cidr[] | string {
  const out: Cidr[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const c = parseCidr(part);
    if (typeof c === 'string') return c;
    if (!out.some((o) => o.text === c.text)) out.push(c);
  }
  return out;
}

function mask(bytes: number[], length: number): number[] {
  return bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, length - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
}

function ipv6Bytes(address: string): number[] {
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups first.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  let text = address;
  if (v4) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number) as [number, number, number, number];
    text = address.slice(0, -v4[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

/** IPv6 in RFC 5952 form (the longest run of zero groups, if two or more, becomes `::`), as iptables prints it. */
function formatAddress(family: IpFamily, bytes: number[]): string {
  if (family === 4) return bytes.join('.');
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
