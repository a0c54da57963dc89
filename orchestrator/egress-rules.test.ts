// The egress rule set as data: settings -> the exact rules, and the settings' validation.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../shared/errors.ts';
import { egressConfig } from './config.ts';
import { podBridgeName } from './container-runtime.ts';
import { DEFAULT_EGRESS_DENY, egressRules, parseCidr, parseCidrList, type Cidr, type EgressPolicy } from './egress-rules.ts';

const cidr = (text: string): Cidr => {
  const c = parseCidr(text);
  if (typeof c === 'string') throw new Error(c);
  return c;
};
const none: EgressPolicy = { deny: [], hostPorts: [], resolvers: [] };

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    [' 192.168.1.7 ', '192.168.1.7/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['fd00:0:0:0::/8', 'fd00::/8'],
    ['FD00:EC2::254', 'fd00:ec2::254/128'],
    ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128'],
    ['::ffff:10.0.0.0/104', '::ffff:a00:0/104'],
    ['::/0', '::/0'],
  ])('%s is %s', (text, expected) => {
    expect(cidr(text).text).toBe(expected);
  });

  it.each([
    ['10.0.0.1/8', /host bits set; the network is 10\.0\.0\.0\/8/],
    ['fd00::1/8', /host bits set; the network is fd00::\/8/],
    ['10.0.0.0/33', /prefix length above 32/],
    ['fd00::/129', /prefix length above 128/],
    ['10.0.0.0/', /no valid prefix length/],
    ['10.0.0.0/x', /no valid prefix length/],
    ['example.com', /not an IPv4 or IPv6 network/],
    ['10.0.0/8', /not an IPv4 or IPv6 network/],
    ['fe80::1%eth0', /not an IPv4 or IPv6 network/],
    ['', /not an IPv4 or IPv6 network/],
  ])('%s is refused', (text, message) => {
    expect(parseCidr(text)).toMatch(message);
  });

  it('reads a list, dropping empty entries and duplicates', () => {
    expect(parseCidrList('10.0.0.0/8, ,10.0.0.0/8,fc00::/7')).toEqual([cidr('10.0.0.0/8'), cidr('fc00::/7')]);
    expect(parseCidrList('10.0.0.0/8,nope')).toMatch(/"nope"/);
  });
});

describe('egressRules', () => {
  it('IPv4 with every setting: replies and DNS first, then other pods, DNAT, link-local and the deny list; the host only for its allowed ports', () => {
    const rules = egressRules(
      { deny: [cidr('10.0.0.0/8'), cidr('fc00::/7')], hostPorts: [8080, 443], resolvers: [cidr('169.254.169.253'), cidr('fd00::53')] },
      4,
      'DOCKER-USER',
    );
    expect(rules).toEqual({
      family: 4,
      chains: [
        {
          name: 'PODGATE-EGRESS',
          rules: [
            '-N PODGATE-EGRESS',
            '-A PODGATE-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
            '-A PODGATE-EGRESS -d 169.254.169.253/32 -p udp -m udp --dport 53 -j RETURN',
            '-A PODGATE-EGRESS -d 169.254.169.253/32 -p tcp -m tcp --dport 53 -j RETURN',
            '-A PODGATE-EGRESS -o pgpod+ -j REJECT --reject-with icmp-admin-prohibited',
            '-A PODGATE-EGRESS -m conntrack --ctstate DNAT -j REJECT --reject-with icmp-admin-prohibited',
            '-A PODGATE-EGRESS -d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited',
            '-A PODGATE-EGRESS -d 10.0.0.0/8 -j REJECT --reject-with icmp-admin-prohibited',
          ],
        },
        {
          name: 'PODGATE-INPUT',
          rules: [
            '-N PODGATE-INPUT',
            '-A PODGATE-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
            '-A PODGATE-INPUT -d 169.254.169.253/32 -p udp -m udp --dport 53 -j RETURN',
            '-A PODGATE-INPUT -d 169.254.169.253/32 -p tcp -m tcp --dport 53 -j RETURN',
            '-A PODGATE-INPUT -p tcp -m tcp --dport 8080 -j RETURN',
            '-A PODGATE-INPUT -p tcp -m tcp --dport 443 -j RETURN',
            '-A PODGATE-INPUT -j REJECT --reject-with icmp-admin-prohibited',
          ],
        },
      ],
      jumps: [
        { from: 'DOCKER-USER', rule: '-i pgpod+ -j PODGATE-EGRESS' },
        { from: 'INPUT', rule: '-i pgpod+ -j PODGATE-INPUT' },
      ],
    });
  });

  it.each([
    { case: 'IPv4, nothing configured', family: 4 as const, policy: none, hook: 'DOCKER-USER', denied: ['169.254.0.0/16'], reject: 'icmp-admin-prohibited' },
    { case: 'IPv6 takes only IPv6 entries', family: 6 as const, policy: { ...none, deny: [cidr('10.0.0.0/8'), cidr('fc00::/7')] }, hook: 'FORWARD', denied: ['fe80::/10', 'fc00::/7'], reject: 'icmp6-adm-prohibited' },
    { case: 'IPv4 takes only IPv4 entries', family: 4 as const, policy: { ...none, deny: [cidr('fc00::/7'), cidr('192.168.0.0/16')] }, hook: 'FORWARD', denied: ['169.254.0.0/16', '192.168.0.0/16'], reject: 'icmp-admin-prohibited' },
  ])('$case', ({ family, policy, hook, denied, reject }) => {
    const rules = egressRules(policy, family, hook);
    const forward = rules.chains[0]!.rules;
    expect(forward.filter((r) => r.includes(' -d ')).map((r) => r.split(' ')[3])).toEqual(denied);
    expect(forward.every((r) => !r.includes('REJECT') || r.endsWith(`-j REJECT --reject-with ${reject}`))).toBe(true);
    expect(rules.chains[1]!.rules.slice(-1)).toEqual([`-A PODGATE-INPUT -j REJECT --reject-with ${reject}`]);
    expect(rules.jumps[0]).toEqual({ from: hook, rule: '-i pgpod+ -j PODGATE-EGRESS' });
  });

  it('takes other chain and bridge names (tests install beside the real policy)', () => {
    const rules = egressRules(none, 4, 'FORWARD', { forwardChain: 'T-FWD', inputChain: 'T-IN', bridgePrefix: 'tst' });
    expect(rules.jumps).toEqual([
      { from: 'FORWARD', rule: '-i tst+ -j T-FWD' },
      { from: 'INPUT', rule: '-i tst+ -j T-IN' },
    ]);
    expect(rules.chains[0]!.rules).toContain('-A T-FWD -o tst+ -j REJECT --reject-with icmp-admin-prohibited');
  });
});

describe('egress settings', () => {
  it('defaults: auto, private and shared ranges denied, no host port', () => {
    expect(egressConfig({}, undefined)).toEqual({ mode: 'auto', deny: parseCidrList(DEFAULT_EGRESS_DENY), hostPorts: [], offReason: undefined });
    expect(DEFAULT_EGRESS_DENY).toBe('10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7');
  });

  it.each([
    [{ POD_EGRESS_POLICY: 'yes' }, 'POD_EGRESS_POLICY', /must be on, off or auto/],
    [{ POD_EGRESS_DENY: '10.0.0.0/8,10.1.2.3/16' }, 'POD_EGRESS_DENY', /"10\.1\.2\.3\/16" has host bits set; the network is 10\.1\.0\.0\/16/],
    [{ POD_EGRESS_DENY: 'metadata' }, 'POD_EGRESS_DENY', /not an IPv4 or IPv6 network/],
    [{ POD_EGRESS_HOST_PORTS: '8080,0' }, 'POD_EGRESS_HOST_PORTS', /"0" is not a TCP port/],
    [{ POD_EGRESS_HOST_PORTS: '80-90' }, 'POD_EGRESS_HOST_PORTS', /"80-90" is not a TCP port/],
  ])('%j is a ConfigError naming %s', (env, variable, message) => {
    const err = (() => {
      try {
        egressConfig(env, undefined);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as Error).message).toMatch(message);
  });

  it('an empty deny list leaves the built-in ones; ports are read once each', () => {
    expect(egressConfig({ POD_EGRESS_POLICY: 'on', POD_EGRESS_DENY: '', POD_EGRESS_HOST_PORTS: '8080, 443,8080' }, 'unix:///var/run/docker.sock')).toEqual({
      mode: 'on',
      deny: [],
      hostPorts: [8080, 443],
      offReason: undefined,
    });
  });

  it('pods on another machine: on is refused, auto becomes off with the reason', () => {
    expect(() => egressConfig({ POD_EGRESS_POLICY: 'on' }, 'ssh://pods@host')).toThrow(/POD_EGRESS_POLICY: is on, but pods run on ssh:\/\/pods@host/);
    expect(egressConfig({}, 'tcp://10.0.0.5:2376')).toMatchObject({ mode: 'off', offReason: expect.stringMatching(/egress-cli\.ts install/) });
    expect(egressConfig({ POD_EGRESS_POLICY: 'off' }, 'ssh://pods@host')).toMatchObject({ mode: 'off', offReason: undefined });
  });
});

describe('podBridgeName', () => {
  it('is a Linux interface name with the policy prefix, one per pod', () => {
    const a = podBridgeName('app');
    expect(a).toMatch(/^pgpod[0-9a-f]{10}$/);
    expect(a.length).toBeLessThanOrEqual(15);
    expect(podBridgeName('app')).toBe(a);
    expect(podBridgeName('app2')).not.toBe(a);
  });
});
