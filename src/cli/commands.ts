// API-client commands: records, zones, tokens. Each prints a table, or the API's JSON with --json.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { RECORD_TYPES, recordTypeProblem, type RecordType } from '../model/record.js';
import { DEFAULT_TOKEN_SCOPE, TOKEN_SCOPES } from '../model/token.js';
import { call, CliError, type ApiTarget } from './client.js';
import { printJson, table, valueText } from './output.js';
import { dryQuery, printResult, settleRoute, waitOption } from './routes.js';
import { parseValue } from './values.js';
import { viewValues } from './views.js';

export interface Globals {
  target: () => ApiTarget;
  json: () => boolean;
}

interface RecordView {
  name: string;
  type: string;
  ttl: number;
  values: unknown[];
  proxy: { enabled: boolean; upstreams: string[] } | null;
  service_name: string | null;
  /** A record bound to a tailnet device (`--device`): its name and state (ok, offline, missing, unknown). */
  device?: { name: string; state: string };
  views?: Record<string, { values: unknown[] }>;
}

const recordType = (t: string): RecordType => {
  const up = t.toUpperCase();
  if (recordTypeProblem(up)) throw new CliError(`unknown record type "${t}" (one of ${RECORD_TYPES.join(', ')}, or TYPEnnn)`, 2);
  return up as RecordType;
};
const collect = (v: string, prev: string[]) => [...prev, v];
const enc = encodeURIComponent;

/** ` (tailnet: 100.64.0.5; lan: 192.168.1.5)` for a set with per-view values, else nothing. */
const viewsText = (views: RecordView['views']): string =>
  views && Object.keys(views).length ? ` (${Object.entries(views).map(([v, { values }]) => `${v}: ${values.map(valueText).join(', ')}`).join('; ')})` : '';

function recordRows(records: RecordView[]): string {
  return table(
    ['NAME', 'TYPE', 'TTL', 'VALUE', 'PROXY', 'SERVICE'],
    records.map((r) => [r.name, r.type, String(r.ttl), `${r.values.map(valueText).join(', ')}${viewsText(r.views)}${r.device ? ` (device ${r.device.name}: ${r.device.state})` : ''}`, r.proxy?.enabled ? `→ ${r.proxy.upstreams.join(', ')}` : '-', r.service_name ?? '-']),
  );
}

export function recordCommands(program: Command, g: Globals): void {
  program
    .command('add-record')
    .description('create or replace a record set, e.g. add-record llm 100.64.0.5 --proxy 100.64.0.9:8080, or add-record web --device laptop')
    .argument('<name>', 'single label, @, or a name inside a served zone')
    .argument('[values...]', 'values; MX "10 mail.example.com", SRV "10 5 5060 sip.example.com", CAA "0 issue letsencrypt.org"')
    .option('--device <name>', 'answer a tailnet device\'s addresses instead of values (A: IPv4, AAAA: IPv6), following the device when it moves')
    .option('-t, --type <type>', 'record type', 'A')
    .option('--ttl <seconds>', 'TTL in seconds', (v) => Number(v))
    .option('--proxy <host:port>', 'reverse-proxy this name to an upstream (repeatable)', collect, [] as string[])
    .option('--service <name>', 'service name')
    .option('--view <name=value>', 'split horizon (A/AAAA): clients in view NAME get VALUE instead (repeatable; see `views`)', collect, [] as string[])
    .option('--tls <mode>', 'TLS for the proxied name: off | internal | acme')
    .option('--dry-run', 'validate and show the plan without applying')
    .option('--wait <seconds>', 'with --proxy: wait this long for Caddy to take the route, exit 1 if it ends in error; 0: do not wait (default 20)', waitOption, 20)
    .action(async (name: string, values: string[], o: { type: string; ttl?: number; proxy: string[]; service?: string; view: string[]; tls?: string; dryRun?: boolean; wait: number; device?: string }) => {
      const type = recordType(o.type);
      if ((o.device !== undefined) === (values.length > 0)) throw new CliError('give values or --device <name> (not both)', 2);
      const views = viewValues(o.view);
      const body = {
        name,
        type,
        ...(o.device !== undefined ? { target_device: o.device } : { values: values.map((v) => parseValue(type, v)) }),
        ...(o.ttl !== undefined ? { ttl: o.ttl } : {}),
        ...(o.proxy.length ? { proxy: { enabled: true, upstreams: o.proxy, ...(o.tls ? { tls: o.tls } : {}) } } : {}),
        ...(o.service ? { service_name: o.service } : {}),
        ...(views ? { views } : {}),
      };
      const res = await call(g.target(), 'PUT', `/api/v1/records/${enc(name)}/${type}${dryQuery(o.dryRun)}`, body);
      printResult(g, res, (r: { record: RecordView }) => recordRows([r.record]));
      if (o.dryRun) return;
      const { record, removed_route: removed } = res as { record: RecordView; removed_route?: { id: string; upstreams: string[]; tls: string } };
      // Replacing a proxied name's record set without --proxy takes its route away: say so, and how to keep it.
      if (removed) {
        const keep = [...removed.upstreams.map((u) => `--proxy ${u}`), ...(removed.tls !== 'off' ? [`--tls ${removed.tls}`] : [])].join(' ');
        console.error(`dnsproxy: removed route ${removed.id} → ${removed.upstreams.join(', ')}: the new record set has no --proxy (add ${keep} to keep it)`);
      }
      // --json prints the record alone (one document); a route in error still exits 1.
      if (record.proxy?.enabled) await settleRoute(g, `record:${record.name.replace(/\.$/, '')}`, o.wait, !g.json());
    });

  program
    .command('list')
    .description('list record sets')
    .option('--zone <zone>')
    .option('--name <name>')
    .option('-t, --type <type>')
    .option('--service <name>')
    .action(async (o: { zone?: string; name?: string; type?: string; service?: string }) => {
      const q = new URLSearchParams();
      if (o.zone) q.set('zone', o.zone);
      if (o.name) q.set('name', o.name);
      if (o.type) q.set('type', recordType(o.type));
      if (o.service) q.set('service_name', o.service);
      const res = (await call(g.target(), 'GET', `/api/v1/records${q.size ? `?${q.toString()}` : ''}`)) as { records: RecordView[] };
      if (g.json()) printJson(res);
      else console.log(recordRows(res.records));
    });

  program
    .command('remove')
    .description('remove the record sets at a name (only TYPE when given)')
    .argument('<name>')
    .argument('[type]')
    .option('--dry-run', 'show the plan without applying')
    .action(async (name: string, type: string | undefined, o: { dryRun?: boolean }) => {
      const path = type ? `/api/v1/records/${enc(name)}/${recordType(type)}` : `/api/v1/records/${enc(name)}`;
      const res = await call(g.target(), 'DELETE', `${path}${dryQuery(o.dryRun)}`);
      printResult(g, res || { removed: true }, () => `removed ${name}${type ? ` ${type.toUpperCase()}` : ''}`);
    });
}

export function zoneCommands(program: Command, g: Globals): void {
  const zone = program.command('zone').description('zones: list, export, import');
  zone.command('list').action(async () => {
    const res = (await call(g.target(), 'GET', '/api/v1/zones')) as { zones: { name: string; serial: number; records: number }[] };
    if (g.json()) printJson(res);
    else console.log(table(['ZONE', 'SERIAL', 'RECORDS'], res.zones.map((z) => [z.name, String(z.serial), String(z.records)])));
  });
  zone
    .command('export')
    .description('print the zone as an RFC 1035 master file')
    .argument('[zone]', 'zone name', 'home.arpa')
    .option('-o, --output <file>', 'write to a file instead of stdout')
    .action(async (name: string, o: { output?: string }) => {
      const text = (await call(g.target(), 'GET', `/api/v1/zones/${enc(name)}/export`)) as string;
      if (o.output) writeFileSync(o.output, text);
      else process.stdout.write(text);
    });
  zone
    .command('import')
    .description('apply an RFC 1035 master file; nothing is applied if any line has an error')
    .argument('<file>', 'zone file, or - for stdin')
    .option('--zone <zone>', 'zone name', 'home.arpa')
    .option('--replace', 'also remove record sets that are not in the file')
    .option('--dry-run', 'validate only')
    .action(async (file: string, o: { zone: string; replace?: boolean; dryRun?: boolean }) => {
      const text = readFileSync(file === '-' ? 0 : file, 'utf8');
      const q = new URLSearchParams({ mode: o.replace ? 'replace' : 'merge', dry_run: o.dryRun ? 'true' : 'false' });
      const res = await call(g.target(), 'POST', `/api/v1/zones/${enc(o.zone)}/import?${q.toString()}`, text, 'text/plain');
      printResult(g, res, (r: Record<string, unknown>) => Object.entries(r).map(([k, v]) => `${k}: ${String(v)}`).join('\n'));
    });
}

export function tokenCommands(program: Command, g: Globals): void {
  const token = program.command('token').description('API tokens (admin only): create, list, revoke');
  token
    .command('create')
    .description(`create a token; scope ${TOKEN_SCOPES.join(' | ')} (default ${DEFAULT_TOKEN_SCOPE}): read can only GET, admin manages tokens and mail credentials`)
    .argument('<name>')
    .option('--scope <scope>', `${TOKEN_SCOPES.join(' | ')}`)
    .action(async (name: string, o: { scope?: string }) => {
      if (o.scope !== undefined && !(TOKEN_SCOPES as readonly string[]).includes(o.scope)) throw new CliError(`unknown scope "${o.scope}" (one of ${TOKEN_SCOPES.join(', ')})`, 2);
      const res = (await call(g.target(), 'POST', '/api/v1/tokens', { name, ...(o.scope ? { scope: o.scope } : {}) })) as { token: string; id: string; scope: string };
      if (g.json()) printJson(res);
      else console.log(`token ${res.id} (${name}, scope ${res.scope}), shown once:\n${res.token}`);
    });
  token.command('list').action(async () => {
    const res = (await call(g.target(), 'GET', '/api/v1/tokens')) as { tokens: { id: string; name: string; scope: string; created_at: string; last_used_at: string | null }[] };
    if (g.json()) printJson(res);
    else console.log(table(['ID', 'NAME', 'SCOPE', 'CREATED', 'LAST USED'], res.tokens.map((t) => [t.id, t.name, t.scope, t.created_at, t.last_used_at ?? '-'])));
  });
  token
    .command('revoke')
    .argument('<id>')
    .action(async (id: string) => {
      await call(g.target(), 'DELETE', `/api/v1/tokens/${enc(id)}`);
      if (g.json()) printJson({ revoked: id });
      else console.log(`revoked ${id}`);
    });
}
