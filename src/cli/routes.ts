// Proxy commands: add-route, routes, remove-route, plan (export --caddyfile is in state.ts).
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { call, CliError } from './client.js';
import type { Globals } from './commands.js';
import { printJson, table } from './output.js';

interface RouteView {
  id: string;
  source: string;
  hosts: string[];
  path: string | null;
  upstreams: string[];
  tls: string;
  status: string;
  error: string | null;
  /** dynamic (served through DNS, no Caddy reload) or explicit (in Caddy's config). */
  mode?: string;
  /** Per-upstream weight / dead flag (absent: none set). */
  backends?: Record<string, { weight?: number; dead?: boolean }>;
  /** Per-upstream state from Caddy (absent: the server could not ask Caddy). */
  backend_health?: { address: string; state: string; fails: number; reason?: string }[];
}
interface PlanRoute {
  id: string;
  hosts: string[];
  path: string | null;
  upstreams: string[];
}
export interface Plan {
  dns: { added: string[]; changed: string[]; removed: string[] };
  routes: { added: PlanRoute[]; changed: { id: string; before: PlanRoute; after: PlanRoute }[]; removed: PlanRoute[] };
  /** Whether applying it makes Caddy load a new config (older servers leave it out). */
  caddy_reload?: boolean;
}

const enc = encodeURIComponent;
const describe = (r: PlanRoute) => `${r.id}  ${r.hosts.join(',')}${r.path ?? ''} → ${r.upstreams.join(', ')}`;

/** The plan as "+ added / ~ changed / - removed" lines; "no changes" when empty. */
export function planText(plan: Plan): string {
  const lines = [
    ...plan.dns.added.map((k) => `+ dns    ${k}`),
    ...plan.dns.changed.map((k) => `~ dns    ${k}`),
    ...plan.dns.removed.map((k) => `- dns    ${k}`),
    ...plan.routes.added.map((r) => `+ route  ${describe(r)}`),
    ...plan.routes.changed.map((c) => `~ route  ${describe(c.after)}  (was → ${c.before.upstreams.join(', ')})`),
    ...plan.routes.removed.map((r) => `- route  ${describe(r)}`),
  ];
  const reload = plan.caddy_reload === undefined ? [] : [plan.caddy_reload ? 'caddy reload: yes (every proxied websocket is closed)' : 'caddy reload: no'];
  return lines.length ? [...lines, ...reload].join('\n') : 'no changes';
}

/** Prints a mutating command's answer: the plan for --dry-run, else `human(res)`. */
export function printResult(g: Globals, res: unknown, human: (res: never) => string): void {
  if (g.json()) printJson(res);
  else if (res && typeof res === 'object' && 'dry_run' in res) console.log(`dry run, nothing applied:\n${planText((res as unknown as { plan: Plan }).plan)}`);
  else console.log(human(res as never));
}

export const dryQuery = (dryRun?: boolean) => (dryRun ? '?dry_run=true' : '');

/**
 * How long add-route (and add-record --proxy) wait by default for the reconciler to report a new
 * route active or in error: an isolated change is pushed at once (well under 1 s), and a config
 * Caddy rejects is narrowed down to the routes to blame within the reconciler's 15 s budget.
 */
const SETTLE_WAIT_S = 20;
/** Polling the route's status: a local GET, cheap. */
const SETTLE_POLL_MS = 100;
/** After this long still pending, ask whether Caddy answers at all (then waiting longer is pointless). */
const CADDY_CHECK_AFTER_MS = 1000;

export const waitOption = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new CliError(`--wait must be a number of seconds >= 0, not "${v}"`, 2);
  return n;
};

/**
 * Waits (up to `waitS` seconds) until route `id` leaves `pending`, then prints it (`print`). A route that
 * ends in `error` exits 1 with the reason on stderr; one still pending is reported on stderr
 * (it stays stored and applies once Caddy takes it).
 */
export async function settleRoute(g: Globals, id: string, waitS: number, print = true): Promise<void> {
  const deadline = Date.now() + waitS * 1000;
  const started = Date.now();
  let route = ((await call(g.target(), 'GET', `/api/v1/routes/${enc(id)}`)) as { route: RouteView }).route;
  let why = `Caddy has not applied it within ${waitS} s (dnsproxy plan shows what is pending)`;
  while (route.status === 'pending' && Date.now() < deadline) {
    if (Date.now() - started >= CADDY_CHECK_AFTER_MS) {
      const plan = (await call(g.target(), 'GET', '/api/v1/plan')) as { caddy_up: boolean; last_error: string | null };
      if (!plan.caddy_up) {
        why = `Caddy's admin API does not answer${plan.last_error ? ` (${plan.last_error})` : ''}; it applies when Caddy is back`;
        break;
      }
    }
    await new Promise((r) => setTimeout(r, Math.min(SETTLE_POLL_MS, Math.max(0, deadline - Date.now()))));
    route = ((await call(g.target(), 'GET', `/api/v1/routes/${enc(id)}`)) as { route: RouteView }).route;
  }
  if (print && g.json()) printJson({ route });
  else if (print) console.log(routeTable([route]));
  if (route.status === 'error') throw new CliError(`route ${route.id} is in error: ${route.error ?? 'no reason given'}`);
  if (route.status === 'pending' && waitS > 0) console.error(`dnsproxy: route ${route.id} is stored but still pending: ${why}`);
}

/** Route option groups a file may give (`--options`): the API checks each. */
const OPTION_GROUPS = ['auth', 'headers', 'limits'] as const;

/**
 * `auth`/`headers`/`limits` from a YAML or JSON file, or `-` for stdin: credentials never go on
 * the command line (where `ps` and shell history would show them). Anything else is a usage error.
 */
export function readRouteOptions(file: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file === '-' ? 0 : file, 'utf8'));
  } catch (e) {
    throw new CliError(`--options ${file}: ${(e as Error).message}`, 2);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new CliError(`--options ${file}: must hold an object with ${OPTION_GROUPS.join(', ')}`, 2);
  const extra = Object.keys(doc).filter((k) => !(OPTION_GROUPS as readonly string[]).includes(k));
  if (extra.length) throw new CliError(`--options ${file}: unknown key(s) ${extra.join(', ')} (it may hold ${OPTION_GROUPS.join(', ')})`, 2);
  return doc as Record<string, unknown>;
}

const weightOption = (v: string): number => {
  if (!/^-?\d+$/.test(v)) throw new CliError(`--weight must be a whole number, not "${v}"`, 2);
  return Number(v); // the API refuses weights outside 1-10, naming the field
};

const retriesOption = (v: string): number => {
  if (!/^\d+$/.test(v)) throw new CliError(`--retries must be a whole number >= 0, not "${v}"`, 2);
  return Number(v);
};

/** The `balancing` part of a route body from --policy / --try-duration / --retries (the API checks the values). */
export function balancingBody(o: { policy?: string; tryDuration?: string; retries?: number }): { balancing?: Record<string, unknown> } {
  if (o.policy === undefined && o.tryDuration === undefined && o.retries === undefined) return {};
  return { balancing: { ...(o.policy !== undefined ? { policy: o.policy } : {}), ...(o.tryDuration !== undefined ? { try_duration: o.tryDuration } : {}), ...(o.retries !== undefined ? { retries: o.retries } : {}) } };
}

export function routeCommands(program: Command, g: Globals): void {
  program
    .command('add-route')
    .description('proxy a host to upstreams through Caddy, e.g. add-route app.home.arpa 192.0.2.5:3000 192.0.2.6:3000')
    .argument('<host>', 'host name (comma-separated for several)')
    .argument('<upstreams...>', 'host:port; a name in our zones is resolved through our records')
    .option('--path <prefix>', 'only requests under this path prefix')
    .option('--tls <mode>', 'off | internal | acme', 'off')
    .option('--health-path <path>', 'active health check path')
    .option('--options <file>', 'YAML/JSON file (- for stdin) with auth, headers and/or limits (README "Reverse proxy")')
    .option('--listen-port <port>', 'also serve the route on this port (HTTP for --tls off, else TLS)', (v) => Number(v))
    .option('--policy <policy>', 'load balancing: round_robin | random | ip_hash | least_conn | first (failover in the order given) | least_latency (fastest by probes)')
    .option('--try-duration <duration>', 'how long a request may try other upstreams, e.g. 2s')
    .option('--retries <n>', 'extra tries on another upstream (0: none)', retriesOption)
    .option('--dry-run', 'validate and show the plan without applying')
    .option('--wait <seconds>', `wait this long for Caddy to take the route (active), exit 1 if it ends in error; 0: do not wait (default ${SETTLE_WAIT_S})`, waitOption, SETTLE_WAIT_S)
    .action(async (host: string, upstreams: string[], o: { path?: string; tls: string; healthPath?: string; options?: string; listenPort?: number; policy?: string; tryDuration?: string; retries?: number; dryRun?: boolean; wait: number }) => {
      const body = { hosts: host.split(','), upstreams, tls: o.tls, ...(o.path ? { path: o.path } : {}), ...(o.healthPath ? { health_path: o.healthPath } : {}), ...(o.options ? readRouteOptions(o.options) : {}), ...(o.listenPort !== undefined ? { listen: { port: o.listenPort } } : {}), ...balancingBody(o) };
      const res = await call(g.target(), 'POST', `/api/v1/routes${dryQuery(o.dryRun)}`, body);
      if (o.dryRun) printResult(g, res, () => '');
      else await settleRoute(g, (res as { route: RouteView }).route.id, o.wait);
    });

  const routes = program
    .command('routes')
    .description('list proxy routes (explicit and from proxied records) with their status')
    .action(async () => {
      const res = (await call(g.target(), 'GET', '/api/v1/routes')) as { routes: RouteView[] };
      if (g.json()) printJson(res);
      else console.log(routeTable(res.routes));
    });

  // `routes backends add|remove|dead|alive <route> <address>`: <route> is an id (api:…, record:…) or a host.
  const backends = routes.command('backends').description('change one backend of a route: add (or re-weight), remove, dead (out of rotation by hand), alive');
  const base = (route: string) => (/^(api|record):/.test(route) ? `/api/v1/routes/${enc(route)}` : `/api/v1/routes/by-host/${enc(route.toLowerCase().replace(/\.$/, ''))}`);
  const done = async (path: string, method: 'POST' | 'DELETE', dryRun: boolean | undefined, body?: unknown) => {
    const res = await call(g.target(), method, `${path}${dryQuery(dryRun)}`, body);
    printResult(g, res, (r: { route: RouteView }) => routeTable([r.route]));
  };
  backends
    .command('add')
    .description('add a backend to a route, or change its weight')
    .argument('<route>', 'route id or host')
    .argument('<address>', 'host:port')
    .option('--weight <n>', 'share of the requests relative to the others (1-10, default 1)', weightOption)
    .option('--dry-run', 'validate and show the plan without applying')
    .action(async (route: string, address: string, o: { weight?: number; dryRun?: boolean }) => done(`${base(route)}/backends`, 'POST', o.dryRun, { address, ...(o.weight !== undefined ? { weight: o.weight } : {}) }));
  backends
    .command('remove')
    .description('remove a backend from a route')
    .argument('<route>', 'route id or host')
    .argument('<address>', 'host:port as listed')
    .option('--dry-run', 'show the plan without applying')
    .action(async (route: string, address: string, o: { dryRun?: boolean }) => done(`${base(route)}/backends/${enc(address)}`, 'DELETE', o.dryRun));
  for (const state of ['dead', 'alive'] as const)
    backends
      .command(state)
      .description(state === 'dead' ? 'take a backend out of rotation by hand (kept until alive)' : 'put a backend marked dead back into rotation')
      .argument('<route>', 'route id or host')
      .argument('<address>', 'host:port as listed')
      .option('--dry-run', 'show the plan without applying')
      .action(async (route: string, address: string, o: { dryRun?: boolean }) => done(`${base(route)}/backends/${enc(address)}/${state}`, 'POST', o.dryRun));

  program
    .command('remove-route')
    .description('remove an explicit route by id, or by host')
    .argument('<id-or-host>')
    .option('--dry-run', 'show the plan without applying')
    .action(async (target: string, o: { dryRun?: boolean }) => {
      let id = target;
      if (!/^(api|record):/.test(target)) {
        const { routes } = (await call(g.target(), 'GET', '/api/v1/routes')) as { routes: RouteView[] };
        const match = routes.filter((r) => r.hosts.includes(target.toLowerCase().replace(/\.$/, '')));
        if (match.length !== 1) throw new CliError(match.length ? `${target} is served by several routes (${match.map((r) => r.id).join(', ')}): give the id` : `no route serves ${target}`);
        id = match[0]?.id ?? id;
      }
      const res = await call(g.target(), 'DELETE', `/api/v1/routes/${enc(id)}${dryQuery(o.dryRun)}`);
      printResult(g, res, () => `removed ${id}`);
    });

  program
    .command('plan')
    .description('show what Caddy would change to reach the desired state')
    .action(async () => {
      const res = (await call(g.target(), 'GET', '/api/v1/plan')) as { caddy_up: boolean; in_sync: boolean; last_error: string | null; plan: Plan };
      if (g.json()) printJson(res);
      else console.log(`caddy: ${res.caddy_up ? 'up' : 'DOWN'}${res.in_sync ? ', in sync' : ', not in sync'}${res.last_error ? ` (last error: ${res.last_error})` : ''}\n${planText(res.plan)}`);
    });

  // `export --caddyfile` (the routes as a Caddyfile) is in state.ts: `export` alone writes the state file.
}

/** An upstream as listed: `192.0.2.5:80`, with ` x3` for a weight, ` (dead)` when out of rotation by hand, ` (failing)` / ` (down)` as Caddy reports it. */
export function upstreamText(u: string, o: { weight?: number; dead?: boolean } | undefined, h?: { state: string; reason?: string }): string {
  // A backend the controller took out after failed requests says so: `(down: failed requests; probed every 60s)`.
  const health = o?.dead ? ' (dead)' : h?.state === 'failing' || h?.state === 'down' ? ` (${h.state}${h.reason ? `: ${h.reason}` : ''})` : '';
  return `${u}${o?.weight !== undefined && o.weight !== 1 ? ` x${o.weight}` : ''}${health}`;
}

function routeTable(routes: RouteView[]): string {
  return table(
    ['ID', 'HOSTS', 'UPSTREAMS', 'TLS', 'STATUS', 'MODE'],
    routes.map((r) => [r.id, `${r.hosts.join(',')}${r.path ?? ''}`, r.upstreams.map((u) => upstreamText(u, r.backends?.[u], r.backend_health?.find((h) => h.address === u))).join(', '), r.tls, r.error ? `${r.status}: ${r.error}` : r.status, r.mode ?? '-']),
  );
}
