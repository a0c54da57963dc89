// `podgate links ...`: access links of a pod (orchestrator/access-api.ts). A link's token is shown once, when it
// is created; the list never has it.
import { Command } from 'commander';
import type { AccessLink } from '../shared/access-store.ts';
import { UsageError, type Ctx } from './context.ts';
import { json, keyValues, printable, table } from './output.ts';

interface CreatedLink extends AccessLink {
  url: string;
  token: string;
}

const linksPath = (slug: string, rest = '') => `/v1/pods/${encodeURIComponent(slug)}/links${rest}`;

export function linksCommand(ctx: () => Ctx): Command {
  const links = new Command('links').description("mint, list and revoke a pod's access links");

  links
    .command('create')
    .argument('<slug>')
    .description('mint a link that opens the pod (shown once: keep it)')
    .option('-p, --port <port>', 'only this in-pod port (default: every private port; the URL opens the default port)')
    .option('--expires <duration>', 'lifetime: seconds, or 30m, 12h, 7d (default 7d, at most 365d)')
    .option('--label <text>', 'a note listed with the link')
    .action(async (slug: string, o: { port?: string; expires?: string; label?: string }) => {
      const c = ctx();
      const body: Record<string, unknown> = {};
      // Numbers as numbers; anything else as given, for the API to name the field it does not take.
      if (o.port !== undefined) body.port = /^\d+$/.test(o.port) ? Number(o.port) : o.port;
      if (o.expires !== undefined) body.expiresIn = /^\d+$/.test(o.expires) ? Number(o.expires) : o.expires;
      if (o.label !== undefined) body.label = o.label;
      const link = await c.orchestrator().call<CreatedLink>('POST', linksPath(slug), body);
      if (c.json) return c.out.stdout(json(link));
      c.out.stdout(
        keyValues([
          ['id', link.id],
          ['pod', link.pod],
          ['port', link.port ?? 'every private port'],
          ...(link.label !== undefined ? [['label', link.label] as [string, unknown]] : []),
          ['expires', link.expiresAt],
          ['url', link.url],
        ]),
      );
      c.out.stderr('podgate: the URL carries the link token and is shown only now; revoke with: podgate links revoke ' + `${printable(slug)} ${printable(link.id)}\n`);
    });

  links
    .command('ls')
    .alias('list')
    .argument('<slug>')
    .description("a pod's live links (never their tokens)")
    .action(async (slug: string) => {
      const c = ctx();
      const { links: list } = await c.orchestrator().call<{ links: AccessLink[] }>('GET', linksPath(slug));
      if (c.json) return c.out.stdout(json({ links: list }));
      c.out.stdout(
        list.length === 0
          ? `no live links for ${printable(slug)}\n`
          : table(['ID', 'PORT', 'LABEL', 'CREATED', 'EXPIRES'], list.map((l) => [l.id, l.port ?? 'all', l.label, l.createdAt, l.expiresAt])),
      );
    });

  links
    .command('revoke')
    .argument('<slug>')
    .argument('[id]', 'the link (podgate links ls)')
    .description('revoke one link, or with --all every link of the pod issued so far')
    .option('--all', 'every link of the pod issued so far, listed or not')
    .action(async (slug: string, id: string | undefined, o: { all?: boolean }) => {
      if ((id === undefined) === (o.all !== true)) throw new UsageError('links revoke takes a link id or --all (not both)');
      const c = ctx();
      await c.orchestrator().call('DELETE', linksPath(slug, id === undefined ? '' : `/${encodeURIComponent(id)}`));
      const what = id === undefined ? `every link of ${printable(slug)}` : `link ${printable(id)} of ${printable(slug)}`;
      c.out.stdout(c.json ? json({ revoked: id ?? 'all', pod: slug }) : `revoked ${what}\n`);
    });

  return links;
}
