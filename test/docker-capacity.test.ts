// Every pod has a bridge network of its own, and Docker's default address pools hold only about 30 networks: a host
// set up by scripts/setup.sh (default-address-pools in /etc/docker/daemon.json) must hold many more pods than that.
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';

/** More than Docker's default pools can give (31 networks, docker0 included), bounded to keep the test short. */
const NETWORKS = 40;
const docker = new Docker();
const names = Array.from({ length: NETWORKS }, (_, i) => `podgate-capacity-${process.pid.toString(36)}-${i}`);

afterAll(async () => {
  await Promise.all(names.map((name) => docker.getNetwork(name).remove().catch(() => {})));
});

describe('the Docker daemon scripts/setup.sh prepares', () => {
  it(`has address space for ${NETWORKS} pod networks`, async () => {
    const subnets = new Set<string>();
    for (const name of names) {
      const network = await docker.createNetwork({ Name: name, Driver: 'bridge', Labels: { 'podgate.test': 'capacity' } });
      const info = await network.inspect();
      subnets.add(String(info.IPAM?.Config?.[0]?.Subnet));
    }
    expect(subnets.size).toBe(NETWORKS);
  });
});
