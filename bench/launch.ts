// How production starts the gateway, so the bench starts its gateways the same way: the Node flags of package.json's
// `gateway` script (`bash scripts/node.sh <flags> gateway/main.ts`). docker-compose.yml and the images' commands
// carry the same flags (bench/bench.test.ts checks that they agree).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The `--` options between `scripts/node.sh` and the entry file of an npm script's command line (pure). */
export function nodeFlagsOf(command: string, entry: string): string[] {
  const words = command.trim().split(/\s+/);
  const at = words.indexOf(entry);
  if (at < 0) throw new Error(`the command "${command}" does not run ${entry}`);
  const node = words.findIndex((w) => w.endsWith('scripts/node.sh') || w === 'node');
  return words.slice(node + 1, at).filter((w) => w.startsWith('--'));
}

/** The Node flags `npm run gateway` gives the gateway. */
export function gatewayNodeFlags(root: string): string[] {
  const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  return nodeFlagsOf(scripts.gateway ?? '', 'gateway/main.ts');
}
