// `dnsproxy views add|list|remove`: split-horizon views (client networks whose queries get a
// record set's per-view values; set them with `add-record … --view NAME=VALUE`).
import type { Command } from 'commander';
import { call, CliError } from './client.js';
import { printJson, table } from './output.js';
import type { Globals } from './commands.js';
import { dryQuery, printResult } from './routes.js';

interface ViewRow {
  name: string;
  cidrs: string[];
  created_at: string;
}

const enc = encodeURIComponent;

/** `--view NAME=VALUE` options (repeatable) → the record body's `views` field; exit 2 on a malformed one. */
export function viewValues(options: readonly string[]): Record<string, { values: string[] }> | undefined {
  if (!options.length) return undefined;
  const out: Record<string, { values: string[] }> = {};
  for (const o of options) {
    const at = o.indexOf('=');
    if (at <= 0 || at === o.length - 1) throw new CliError(`--view ${o}: expected NAME=VALUE, e.g. --view tailnet=100.64.0.5`, 2);
    const name = o.slice(0, at);
    (out[name] ??= { values: [] }).values.push(o.slice(at + 1));
  }
  return out;
}

export function viewCommands(program: Command, g: Globals): void {
  const views = program.command('views').description('split-horizon views: clients in a view\'s networks get the per-view values of record sets (add-record --view NAME=VALUE)');
  views
    .command('add')
    .description('create or replace a view, e.g. views add tailnet 100.64.0.0/10 fd7a:115c:a1e0::/48')
    .argument('<name>', 'view name: lower-case letters, digits, "-"')
    .argument('<cidrs...>', 'client networks (a.b.c.d/n, x::/n, or an address)')
    .option('--dry-run', 'validate and show the plan without applying')
    .action(async (name: string, cidrs: string[], o: { dryRun?: boolean }) => {
      const res = await call(g.target(), 'PUT', `/api/v1/views/${enc(name)}${dryQuery(o.dryRun)}`, { name, cidrs });
      printResult(g, res, (r: { view: ViewRow }) => `view ${r.view.name}: ${r.view.cidrs.join(', ')}`);
    });
  views.command('list').description('list the views').action(async () => {
    const res = (await call(g.target(), 'GET', '/api/v1/views')) as { views: ViewRow[] };
    if (g.json()) printJson(res);
    else console.log(table(['VIEW', 'NETWORKS'], res.views.map((v) => [v.name, v.cidrs.join(', ')])));
  });
  views
    .command('remove')
    .description('remove a view (refused while a record set has values for it)')
    .argument('<name>')
    .option('--dry-run', 'show the plan without applying')
    .action(async (name: string, o: { dryRun?: boolean }) => {
      const res = await call(g.target(), 'DELETE', `/api/v1/views/${enc(name)}${dryQuery(o.dryRun)}`);
      printResult(g, res || { removed: name }, () => `removed view ${name}`);
    });
}
