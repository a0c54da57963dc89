// The pod egress policy by hand, on the machine where pods run (as root):
//   node orchestrator/egress-cli.ts install   rules from POD_EGRESS_DENY / POD_EGRESS_HOST_PORTS (environment or CONFIG_FILE)
//   node orchestrator/egress-cli.ts remove    delete them (the orchestrator never does; pods outlive it)
//   node orchestrator/egress-cli.ts show      print what is installed
// For a pod host the orchestrator reaches over DOCKER_HOST, and for taking the policy off on purpose.
import { loadEnv } from '../shared/config.ts';
import { ConfigError, EXIT_CONFIG } from '../shared/errors.ts';
import { egressConfig } from './config.ts';
import { EGRESS_NAMES } from './egress-rules.ts';
import { dockerResolvers, installEgressPolicy, listChain, removeEgressPolicy } from './egress-iptables.ts';

const USAGE = 'usage: node orchestrator/egress-cli.ts install|remove|show';

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case 'install': {
      // Installing here is the point: where pods run is this machine, whatever DOCKER_HOST says elsewhere.
      const egress = egressConfig(loadEnv(), undefined);
      const sets = await installEgressPolicy({ deny: egress.deny, hostPorts: egress.hostPorts, resolvers: dockerResolvers() });
      for (const set of sets) {
        process.stdout.write(`# IPv${set.family}\n${[...set.chains.flatMap((c) => c.rules), ...set.jumps.map((j) => `-A ${j.from} ${j.rule}`)].join('\n')}\n`);
      }
      return 0;
    }
    case 'remove':
      await removeEgressPolicy();
      process.stdout.write('pod egress policy removed\n');
      return 0;
    case 'show':
      for (const family of [4, 6] as const) {
        const lines = [...(await listChain(family, EGRESS_NAMES.forwardChain)), ...(await listChain(family, EGRESS_NAMES.inputChain))];
        process.stdout.write(`# IPv${family}\n${lines.length ? lines.join('\n') : '(not installed)'}\n`);
      }
      return 0;
    default:
      process.stderr.write(`${USAGE}\n`);
      return 64;
  }
}

try {
  process.exitCode = await main(process.argv[2]);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`egress: invalid configuration: ${err.message}\n`);
    process.exitCode = EXIT_CONFIG;
  } else {
    process.stderr.write(`egress: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
