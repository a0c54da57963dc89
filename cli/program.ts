// The `podgate` command line: commander's parser over the commands of pods.ts, links.ts, routes.ts, certs.ts.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { Ctx, GlobalOptions } from './context.ts';
import { podsCommand } from './pods.ts';
import { linksCommand } from './links.ts';
import { routesCommand } from './routes.ts';
import { certsCommand } from './certs.ts';

const SETTINGS_HELP = `
Settings (the environment first, then $XDG_CONFIG_HOME/podgate/config.json, default ~/.config/podgate/config.json,
a JSON object of url, token, gatewayUrl, gatewayToken that must be mode 600 when it holds a token):
  PODGATE_URL            the orchestrator admin API (default http://127.0.0.1:8090)
  PODGATE_TOKEN          its bearer token (the orchestrator's ADMIN_TOKEN)
  PODGATE_GATEWAY_URL    a gateway's admin listener, for certs (default http://127.0.0.1:9090)
  PODGATE_GATEWAY_TOKEN  its bearer token (the gateway's GATEWAY_ADMIN_TOKEN; all-in-one: ADMIN_TOKEN)
Tokens are never taken as arguments: other local users can read a process's command line.

Exit codes: 0 done; 1 the API refused or could not be reached (its message and field on stderr);
2 usage; pods exec: the command's own exit code (124 when it timed out).`;

/**
 * The program; `ctx` is built on first use from the global options, `setExit` records an exit code other than
 * 0 for a command that succeeded as a call (pods exec).
 */
export function buildProgram(makeCtx: (options: GlobalOptions) => Ctx, setExit: (code: number) => void): Command {
  const program = new Command('podgate')
    .description('administer podgate: pods, access links, routes, certificates')
    .version(version(), '-V, --version')
    .option('--json', 'print JSON (for scripts) instead of tables')
    .option('--insecure', 'allow http:// to a host that is not loopback (the token crosses the network in clear text)')
    .addHelpText('after', SETTINGS_HELP)
    .showHelpAfterError('(podgate --help for usage)')
    .exitOverride();
  let ctx: Ctx | undefined;
  const get = () => (ctx ??= makeCtx(program.opts<GlobalOptions>()));
  for (const cmd of [podsCommand(get, setExit), linksCommand(get), routesCommand(get), certsCommand(get)]) {
    program.addCommand(cmd);
  }
  // addCommand takes subcommands as built, so the settings commander copies to commands made with .command()
  // are applied to the whole tree here: usage errors throw (exit 2 in main.ts) instead of exiting with 1.
  const configure = (cmd: Command) => {
    cmd.exitOverride().showHelpAfterError(`(podgate ${cmd.name() === 'podgate' ? '' : `${fullName(cmd)} `}--help for usage)`);
    cmd.commands.forEach(configure);
  };
  configure(program);
  return program;
}

function version(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c && c.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}
