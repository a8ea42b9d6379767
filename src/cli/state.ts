// `dnsproxy export` and `dnsproxy apply -f <file>`: the whole desired state as a YAML file, through
// the API (admin token). Secrets are not exported; apply keeps the stored ones a file leaves out.
import { readFileSync, writeFileSync } from 'node:fs';
import { FILE_MODE } from '../store/files.js';
import { AppError } from '../errors.js';
import { parseStateText, toYaml } from '../state/format.js';
import type { Command } from 'commander';
import { call, CliError } from './client.js';
import type { Globals } from './commands.js';
import { printJson } from './output.js';

interface AreaPlan {
  added: string[];
  changed: string[];
  removed: string[];
  not_in_file: string[];
}

interface StatePlanView {
  dry_run: boolean;
  prune: boolean;
  changed: boolean;
  plan: Record<string, AreaPlan>;
  proxy: { caddy_reload: boolean };
}

/** The plan as lines: `+ records www.home.arpa. A`, `~ …`, `- …`, and what --prune would remove. */
export function planLines(out: StatePlanView): string[] {
  const lines: string[] = [];
  for (const [area, p] of Object.entries(out.plan)) {
    for (const x of p.added) lines.push(`+ ${area} ${x}`);
    for (const x of p.changed) lines.push(`~ ${area} ${x}`);
    for (const x of p.removed) lines.push(`- ${area} ${x}`);
    if (!out.prune) for (const x of p.not_in_file) lines.push(`  ${area} ${x} (not in the file: kept; --prune removes it)`);
  }
  if (out.proxy.caddy_reload) lines.push('Caddy loads a new config (open proxied websockets of explicit routes close)');
  return lines;
}

export function stateCommands(program: Command, g: Globals): void {
  program
    .command('export')
    .description('print the whole desired state as YAML (admin token): zones (SOA), views, records (device-bound ones as target_device), routes, mail domains, accounts, providers, rules; secrets are left out. --caddyfile: the routes as a Caddyfile')
    .option('--caddyfile', 'the routes as a Caddyfile instead (passes caddy adapt)')
    .option('-o, --output <file>', 'write to a file instead of stdout')
    .action(async (o: { caddyfile?: boolean; output?: string }) => {
      // The state comes as JSON and is written as YAML here (the same toYaml() as the API's): the controller's thread is spared the YAML.
      const res = await call(g.target(), 'GET', o.caddyfile ? '/api/v1/caddyfile' : '/api/v1/state?format=json');
      const text = o.caddyfile ? String(res) : g.json() ? `${JSON.stringify(res, null, 2)}\n` : toYaml(res);
      if (o.output) writeFileSync(o.output, text, { mode: FILE_MODE });
      else process.stdout.write(text);
    });

  program
    .command('apply')
    .description('apply a state file in one transaction (admin token): creates and replaces what differs; --prune also removes what the file lacks')
    .requiredOption('-f, --file <file>', 'the state file (YAML or JSON), e.g. one written by dnsproxy export; - reads stdin')
    .option('--dry-run', 'show the plan without applying')
    .option('--prune', 'remove what the file lacks (record sets, routes, mail domains, accounts, providers, rules)')
    .action(async (o: { file: string; dryRun?: boolean; prune?: boolean }) => {
      let text: string;
      try {
        text = readFileSync(o.file === '-' ? 0 : o.file, 'utf8');
      } catch (e) {
        throw new CliError(`cannot read ${o.file}: ${(e as Error).message}`);
      }
      // Read as YAML here and sent as JSON: a syntax error is shown without a round trip, and the controller parses JSON only.
      let doc: unknown;
      try {
        doc = parseStateText(text);
      } catch (e) {
        if (e instanceof AppError) throw new CliError(`${o.file}: ${e.message}`);
        throw e;
      }
      const query = [o.dryRun ? 'dry_run=true' : '', o.prune ? 'prune=true' : ''].filter(Boolean).join('&');
      const out = (await call(g.target(), 'POST', `/api/v1/state${query ? `?${query}` : ''}`, doc ?? null)) as StatePlanView;
      if (g.json()) return printJson(out);
      const lines = planLines(out);
      const head = out.dry_run ? 'dry run, nothing applied' : out.changed ? 'applied' : 'nothing to change';
      console.log([`${head}${lines.length ? ':' : ''}`, ...lines].join('\n'));
    });
}
