// `podgate routes`: the route table as gateways see it (GET /v1/routes; never the pods' router keys).
import { Command } from 'commander';
import type { Route } from '../shared/route.ts';
import type { Ctx } from './context.ts';
import { json, table } from './output.ts';

export function routesCommand(ctx: () => Ctx): Command {
  return new Command('routes').description('the route table as gateways see it').action(async () => {
    const c = ctx();
    const { routes } = await c.orchestrator().call<{ routes: Omit<Route, 'routerKey'>[] }>('GET', '/v1/routes');
    if (c.json) return c.out.stdout(json({ routes }));
    c.out.stdout(
      routes.length === 0
        ? 'no routes\n'
        : table(
            ['SLUG', 'STATUS', 'TARGET', 'DEFAULT PORT', 'ACCESS', 'GENERATION', 'UPDATED'],
            routes.map((r) => [r.slug, r.status, `${r.host}:${r.port}`, r.defaultPort, r.access?.default ?? 'private', r.generation, r.updatedAt]),
          ),
    );
  });
}
