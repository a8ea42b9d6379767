// Desired routes → Caddy JSON for `POST /load`. Pure and deterministic: the same DesiredProxy
// (in any route/host/upstream order) gives byte-identical JSON and hash; the input is never
// mutated. Layout and the reasons for it: src/proxy/README.md ("Render").
import { createHash } from 'node:crypto';
import { routeOwnProblem, type OwnEndpoints } from '../model/endpoints.js';
import { PLAIN_SERVICE, srvQuestion, type PlainKind } from '../dns/upstreams.js';
import { issuerFor, type AcmeIssuerSettings } from './acme.js';
import { keepsUpstreamOrder, loadBalancing } from './balancing.js';
import { endpointsOf } from './guard.js';
import { healthChecks } from './health.js';
import { routeHandlers } from './options.js';
import { staticHandler, staticProblem } from './static.js';
import { accessLogging, serverLogs } from './access-log.js';
import { portGroups, portServerName } from './listen.js';
import { ID_PREFIX, type DesiredProxy, type DesiredRoute, type LoadedCertificate, type OnDemandSettings, type Rendered, type TlsMode } from './types.js';
import { nameCovers } from '../model/cert.js';

/** Server names (keys under apps.http.servers). The HTTP server always exists. */
export const SERVER_HTTP = `${ID_PREFIX}http`;
export const SERVER_HTTPS = `${ID_PREFIX}https`;
export const MARKER_PREFIX = `${ID_PREFIX}cfg-`;

/** Caddy's host matcher binary-searches lists longer than this (MatchHost.large), case-sensitively. */
export const CADDY_LARGE_HOST_LIST = 100;
/** At most this many host names are matched by plain per-route leaves; more are grouped (see README). */
export const LEAF_MAX = 16;
/** Children per group route; 16×16 leaves cover 256 hosts per level, 3 levels cover 65k. */
export const GROUP_FANOUT = 16;

/** Idle upstream connections close soon after a reload instead of lingering (caddy-notes). */
export const KEEPALIVE_IDLE = '5s';
/**
 * Idle connections kept per backend: Caddy's own default. Caddy 2.6.2 uses its defaults only
 * when `keep_alive` is absent; setting `idle_timeout` alone leaves Go's 2 per host, so at 20
 * concurrent requests most of them dialled a new connection (and a dynamic route's dial asks
 * our DNS for the SRV target first).
 */
export const KEEPALIVE_CONNS_PER_HOST = 32;
/** TCP keep-alive probes on backend connections: Caddy's own default, for the same reason. */
export const KEEPALIVE_PROBE = '30s';
const KEEP_ALIVE = { idle_timeout: KEEPALIVE_IDLE, max_idle_conns_per_host: KEEPALIVE_CONNS_PER_HOST, probe_interval: KEEPALIVE_PROBE };
export { FAIL_DURATION, HEALTH_INTERVAL, HEALTH_TIMEOUT } from './health.js';
export { TRY_DURATION } from './balancing.js';
export const NO_HOST_BODY = 'no route for this host';
export const NO_PATH_BODY = 'no route for this path';
/** A changed SRV answer (a plain name's backends) is used within this (Caddy caches lookups per name). */
export const DYNAMIC_REFRESH = '1s';
/** Extra tries of the dynamic route: another backend after a dial error; a name without SRV fails fast (no try_duration wait). */
export const DYNAMIC_RETRIES = 2;
/** Set by the dynamic route so its "no upstreams" (a name we do not serve) becomes the catch-all 404, and no other 503 does. */
export const DYNAMIC_VAR = `${ID_PREFIX.replace(/-$/, '')}_dynamic`;
/** The SRV service label Caddy asks for (`_px._tcp.<host>`, src/dns/upstreams.ts); Go adds the underscores. */
const DYNAMIC_SERVICE = PLAIN_SERVICE.replace(/^_/, '');
/** The standard HTTPS port: a browser leaves it out of URLs, and so does Caddy's own redirect. */
export const DEFAULT_HTTPS_PORT = 443;

export interface Skipped {
  id: string;
  reason: string;
}

/** The marker `@id` that a config with this hash carries at its top level. */
export function markerId(hash: string): string {
  return `${MARKER_PREFIX}${hash.slice(0, 16)}`;
}

/**
 * Admin API path whose value is the running config's marker (a JSON string). Drift check:
 * `GET <adminUrl><markerPath()>` equals JSON `markerId(rendered.hash)`, else re-apply (`null` or
 * another value means Caddy restarted, or someone else loaded a config). The marker sits at the
 * top of the config because Caddy 2.6.2 answers a GET of a key inside any object with that key's
 * value or `null`, but a GET whose path crosses a missing key with 400 "invalid traversal path"
 * and an `"error"` line in its log (admin.go unsyncedConfigAccess, handleError): under the
 * bootstrap config (`admin` only) the old path below `apps` did exactly that on every first start.
 */
export function markerPath(): string {
  return '/config/@id';
}

/** JSON with object keys sorted at every depth (code-unit order); `undefined` members dropped. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** sha256 hex of canonicalJson(config). */
export function hashConfig(config: unknown): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex');
}

/** Objects built with their keys already in sorted order (and no undefined members): sorted() keeps them as they are. */
const canonical = new WeakSet<object>();
function canon<T extends object>(value: T): T {
  canonical.add(value);
  return value;
}

/**
 * A deep copy with keys inserted in sorted order, so JSON.stringify(copy) === canonicalJson(copy)
 * (no integer-like keys). Subtrees marked canon() are shared, not copied: never mutate a render's output.
 */
function sorted<T>(value: T): T {
  if (value === null || typeof value !== 'object' || canonical.has(value)) return value;
  if (Array.isArray(value)) return value.map(sorted) as T;
  const obj = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(obj).sort()) if (obj[k] !== undefined) out[k] = sorted(obj[k]);
  return out as T;
}

const uniqSorted = (xs: readonly string[]): string[] => [...new Set(xs)].sort();
export const isWildcard = (host: string): boolean => host.startsWith('*.');

/** A server listen address on `ip` (listen_ip): `127.0.0.1:80`, `[::1]:80`. */
export function listenAddress(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Path matcher for a prefix: `/app` → `/app`, `/app/*` (never `/apple`). */
export function pathPatterns(path: string): string[] {
  return [path, path.endsWith('/') ? `${path}*` : `${path}/*`];
}

/** Order of routes sharing a host: path routes, longest path first; then the host's catch-all. */
export function compareRoutes(a: DesiredRoute, b: DesiredRoute): number {
  if ((a.path === null) !== (b.path === null)) return a.path === null ? 1 : -1;
  const byLength = (b.path?.length ?? 0) - (a.path?.length ?? 0);
  if (byLength !== 0) return byLength;
  const byPath = (a.path ?? '') < (b.path ?? '') ? -1 : (a.path ?? '') > (b.path ?? '') ? 1 : 0;
  return byPath !== 0 ? byPath : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export interface Selection {
  /** Routes that will be served: sorted by id, hosts lower-cased/sorted/unique, upstreams sorted/unique. */
  routes: DesiredRoute[];
  skipped: Skipped[];
  warnings: string[];
}

/** routeOwnProblem() per (normalised) route object, for the endpoint set it was checked against. */
const ownProblems = new WeakMap<DesiredRoute, { own: OwnEndpoints; problem: string | null }>();
function ownProblem(r: DesiredRoute, own: OwnEndpoints): string | null {
  const known = ownProblems.get(r);
  if (known?.own === own) return known.problem;
  const problem = routeOwnProblem(r, own);
  ownProblems.set(r, { own, problem });
  return problem;
}

/**
 * Chooses the routes to serve. Rules, applied in id order (first route wins):
 * a route is left out when its id repeats, it has no host or upstream, it would serve a
 * localhost/loopback host or reach one of our own listeners (the API refuses those; this is the
 * last line of defence for rows already stored, and for names in our zones that resolve to this
 * node), one of its (host, path) pairs is already routed, or one of its hosts is already served
 * with another tls mode. Shared by render() and the Caddyfile export so both serve the same routes.
 */
export function selectRoutes(desired: DesiredProxy): Selection {
  const own = endpointsOf(desired.settings);
  const keyed = desired.routes.map(normalised);
  // Ties on id are broken by content so the winner does not depend on input order.
  keyed.sort((a, b) => (a.r.id < b.r.id ? -1 : a.r.id > b.r.id ? 1 : tieKey(a) < tieKey(b) ? -1 : tieKey(a) > tieKey(b) ? 1 : 0));

  const routes: DesiredRoute[] = [];
  const skipped: Skipped[] = [];
  const warnings: string[] = [];
  // host → the tls mode it is served with and the route that set it; "host path" → the route serving it.
  const hostTls = new Map<string, { tls: TlsMode; id: string }>();
  const served = new Map<string, string>();
  const ids = new Set<string>();
  for (const { r } of keyed) {
    let reason: string | null;
    if (ids.has(r.id)) reason = 'duplicate route id';
    else if (r.hosts.length === 0) reason = 'no hosts';
    else if (r.upstreams.length === 0 && !r.respond) reason = 'no upstreams';
    else reason = staticProblem(r) ?? ownProblem(r, own);
    for (const host of r.hosts) {
      const claim = hostTls.get(host);
      if (reason || !claim) continue;
      const owner = served.get(`${host} ${r.path ?? ''}`);
      if (owner !== undefined) reason = `${host}${r.path ?? ''} is already routed by ${owner}`;
      else if (claim.tls !== r.tls) reason = `${host} is already served with tls ${claim.tls} by ${claim.id}`;
    }
    ids.add(r.id);
    if (reason) {
      skipped.push({ id: r.id, reason });
      warnings.push(`route ${r.id} left out: ${reason}`);
      continue;
    }
    for (const host of r.hosts) {
      served.set(`${host} ${r.path ?? ''}`, r.id);
      if (!hostTls.has(host)) hostTls.set(host, { tls: r.tls, id: r.id });
      if (r.tls === 'acme' && isWildcard(host))
        warnings.push(`route ${r.id}: ${host} with tls acme needs the DNS-01 challenge, which this Caddy build lacks; no certificate will be issued`);
    }
    routes.push(r);
  }
  const { httpPort, httpsPort } = desired.settings;
  if (httpPort === httpsPort) warnings.push(`http and https port are both ${httpPort}; Caddy will refuse the config`);
  return { routes, skipped, warnings };
}

type Json = Record<string, unknown>;

interface Normalised {
  r: DesiredRoute;
  key?: string;
}

/** Per input route object (routes are immutable; ProxyState reuses unchanged ones): hosts lower-cased, hosts and upstreams sorted and unique. */
const normalisedRoutes = new WeakMap<DesiredRoute, Normalised>();
function normalised(route: DesiredRoute): Normalised {
  let n = normalisedRoutes.get(route);
  // `first` fails over in the order written: its upstreams keep their order (duplicates dropped).
  if (!n) {
    const upstreams = keepsUpstreamOrder(route.balancing) ? [...new Set(route.upstreams)] : uniqSorted(route.upstreams);
    normalisedRoutes.set(route, (n = { r: { ...route, hosts: uniqSorted(route.hosts.map((h) => h.toLowerCase())), upstreams } }));
  }
  return n;
}
const tieKey = (n: Normalised): string => (n.key ??= canonicalJson(n.r));

/** Hands out unique @ids: `dnsproxy-route-<id>` (then `~2`, `~3` when a route is split), `dnsproxy-<server>-group-<n>`. */
class Ids {
  private readonly seen = new Map<string, number>();
  next(base: string): string {
    const n = (this.seen.get(base) ?? 0) + 1;
    this.seen.set(base, n);
    return n === 1 ? base : `${base}~${n}`;
  }
  route(r: DesiredRoute): string {
    let base = routeIdBases.get(r);
    if (base === undefined) {
      const safe = /^[A-Za-z0-9_.:*-]{1,200}$/.test(r.id) ? r.id : `x${createHash('sha256').update(r.id).digest('hex').slice(0, 16)}`;
      routeIdBases.set(r, (base = `${ID_PREFIX}route-${safe}`));
    }
    return this.next(base);
  }
}

/** A route's @id base, per route object like the other per-route caches (and gone with it). */
const routeIdBases = new WeakMap<DesiredRoute, string>();

/** A selected route's handler, built once per route object with its keys in sorted order. */
const handlers = new WeakMap<DesiredRoute, Json>();
function proxyHandler(r: DesiredRoute): Json {
  const known = handlers.get(r);
  if (known) return known;
  const several = r.upstreams.length > 1;
  const h: Json = {
    handler: 'reverse_proxy',
    // X-Forwarded-For/-Proto/-Host are set by reverse_proxy itself (checked on 2.6.2).
    headers: { request: { set: { 'X-Real-IP': ['{http.request.remote.host}'] } } },
  };
  const checks = healthChecks(r, several);
  if (checks) h.health_checks = checks;
  const lb = loadBalancing(r.balancing, r.upstreams.length);
  if (lb) h.load_balancing = lb;
  h.transport = { keep_alive: { ...KEEP_ALIVE }, protocol: 'http' };
  // Caddy 2.6.2 has no weighted policy: a dial of weight w is listed w times (route-backends.ts).
  h.upstreams = r.upstreams.flatMap((dial) => Array.from({ length: r.weights?.[dial] ?? 1 }, () => ({ dial })));
  handlers.set(r, canon(h));
  return h;
}

function notFound(id: string, body: string, hosts?: string[]): Json {
  return {
    '@id': id,
    match: hosts ? [{ host: hosts }] : undefined,
    handle: [{ handler: 'static_response', status_code: 404, body }],
    terminal: true,
  };
}

/** One leaf per route claiming any of `hosts`, matching the route's hosts among them; ordered by compareRoutes. */
function leaves(hosts: string[], byHost: Map<string, DesiredRoute[]>, ids: Ids): Json[] {
  const mine = new Map<DesiredRoute, string[]>();
  for (const h of hosts)
    for (const r of byHost.get(h) ?? []) {
      const list = mine.get(r);
      if (list) list.push(h);
      else mine.set(r, [h]);
    }
  return [...mine.keys()].sort(compareRoutes).map((r) => leaf(r, ids.route(r), mine.get(r)!));
}

/** The last leaf built per route object: an unchanged route with the same @id and hosts gets the same (shared, never mutated) leaf. */
const leafOf = new WeakMap<DesiredRoute, Json>();
function leaf(r: DesiredRoute, id: string, hosts: string[]): Json {
  const known = leafOf.get(r);
  if (known && known['@id'] === id) {
    const had = (known.match as { host: string[] }[])[0]!.host;
    if (had.length === hosts.length && had.every((h, i) => h === hosts[i])) return known;
  }
  const built = canon({
    '@id': id,
    handle: r.respond ? [staticHandler({ ...r, respond: r.respond })] : routeHandlers(r, proxyHandler(r)),
    match: [r.path === null ? { host: hosts } : { host: hosts, path: pathPatterns(r.path) }],
    terminal: true,
  });
  leafOf.set(r, built);
  return built;
}

/**
 * Exact hosts (sorted) → routes. Up to LEAF_MAX hosts: plain leaves. More: GROUP_FANOUT group
 * routes, each matching a contiguous slice of hosts and holding a subroute built the same way.
 * Group routes are not terminal: a request whose path no leaf covers falls out to the miss route.
 */
function tree(hosts: string[], byHost: Map<string, DesiredRoute[]>, ids: Ids, server: string): Json[] {
  if (hosts.length <= LEAF_MAX) return leaves(hosts, byHost, ids);
  const size = Math.ceil(hosts.length / Math.min(GROUP_FANOUT, Math.ceil(hosts.length / LEAF_MAX)));
  const out: Json[] = [];
  for (let i = 0; i < hosts.length; i += size) {
    const slice = hosts.slice(i, i + size);
    const id = ids.next(`${server}-group-${out.length}`);
    out.push({ '@id': id, match: [{ host: slice }], handle: [{ handler: 'subroute', routes: tree(slice, byHost, ids, id) }] });
  }
  return out;
}

/** Lower-cases the Host header: Caddy compares large host lists case-sensitively, DNS names are not. */
function lowerCaseHost(server: string): Json {
  const replace = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'].map((c) => ({ search: c, replace: c.toLowerCase() }));
  return {
    '@id': `${server}-lowercase-host`,
    match: [{ header_regexp: { Host: { pattern: '[A-Z]' } } }],
    handle: [{ handler: 'headers', request: { replace: { Host: replace } } }],
  };
}

/**
 * Routes of one server, in order: [Host lower-casing], exact hosts (leaves or groups), 404 for
 * exact hosts without a catch-all route, wildcard leaves, 404 for such wildcards, catch-all 404.
 * Caddy inserts its HTTP→HTTPS redirects after the last route with a host matcher, i.e. just
 * before our catch-all. `otherHosts`: names Caddy's redirect route adds to this server.
 */
function serverRoutes(server: string, routes: DesiredRoute[], otherHosts: number, ids: Ids, beforeCatchAll: Json[] = []): Json[] {
  const byHost = new Map<string, DesiredRoute[]>();
  for (const r of routes)
    for (const h of r.hosts) {
      const list = byHost.get(h);
      if (list) list.push(r);
      else byHost.set(h, [r]);
    }
  const all = [...byHost.keys()].sort();
  const exact = all.filter((h) => !isWildcard(h));
  const wild = all.filter(isWildcard);
  const missing = (hs: string[]) => hs.filter((h) => !byHost.get(h)?.some((r) => r.path === null));
  const out: Json[] = [];
  if (all.length + otherHosts > CADDY_LARGE_HOST_LIST) out.push(lowerCaseHost(server));
  out.push(...tree(exact, byHost, ids, server));
  const exactMiss = missing(exact);
  if (exactMiss.length) out.push(notFound(`${server}-no-path`, NO_PATH_BODY, exactMiss));
  out.push(...leaves(wild, byHost, ids));
  const wildMiss = missing(wild);
  if (wildMiss.length) out.push(notFound(`${server}-no-path-wildcard`, NO_PATH_BODY, wildMiss));
  out.push(...beforeCatchAll);
  out.push(notFound(`${server}-catch-all`, NO_HOST_BODY));
  return out;
}

/** The reverse_proxy of a dynamic route: backends from the SRV question of `kind` (src/dns/upstreams.ts). */
function dynamicProxy(kind: PlainKind, resolver: string): Json {
  const dns = { addresses: [resolver] };
  // The HTTP server's ordinary question keeps Caddy's service/proto form; the others name the SRV owner whole (2.6.2 asks `name` as is when both are empty).
  const srv = kind === 'http' ? { name: '{http.request.host}', proto: 'tcp', service: DYNAMIC_SERVICE } : { name: srvQuestion(kind) };
  return {
    handler: 'reverse_proxy',
    dynamic_upstreams: { ...srv, refresh: DYNAMIC_REFRESH, resolver: dns, source: 'srv' },
    headers: { request: { set: { 'X-Real-IP': ['{http.request.remote.host}'] } } },
    load_balancing: { retries: DYNAMIC_RETRIES, selection_policy: { policy: 'round_robin' } },
    transport: { keep_alive: { ...KEEP_ALIVE }, protocol: 'http', resolver: dns },
  };
}

/**
 * The static routes for plain names: every host no route above claimed is proxied to the
 * backends our DNS lists for it (`[<kind>.]_px._tcp.<host>` SRV, targets resolved through our DNS
 * too). A request with an `Upgrade` header (a websocket being opened) asks its own question, so our
 * DNS sees which names may hold open sessions (src/proxy/README.md, "Sessions of removed names").
 * A host without SRV gets "no upstreams available" (503), which dynamicMiss() turns into the
 * catch-all 404. Never changes with the names it serves, so adding one needs no reload.
 */
function dynamicRoutes(server: string, resolver: string, secure: boolean): Json[] {
  const vars = { handler: 'vars', [DYNAMIC_VAR]: '1' };
  return [
    {
      '@id': `${server}-dynamic-upgrade`,
      match: [{ header: { Upgrade: ['*'] } }],
      handle: [vars, dynamicProxy(secure ? 'httpsUpgrade' : 'httpUpgrade', resolver)],
      terminal: true,
    },
    { '@id': `${server}-dynamic`, handle: [vars, dynamicProxy(secure ? 'https' : 'http', resolver)], terminal: true },
  ];
}

/** Error route: the dynamic route's 503 (no SRV: not a name we serve) answers as the catch-all does. */
function dynamicMiss(server: string): Json {
  return {
    '@id': `${server}-dynamic-miss`,
    match: [{ expression: '{http.error.status_code} == 503', vars: { [DYNAMIC_VAR]: ['1'] } }],
    handle: [{ handler: 'static_response', status_code: 404, body: NO_HOST_BODY }],
    terminal: true,
  };
}

/**
 * HTTP→HTTPS redirect for the TLS hosts, in place of Caddy's automatic one. Caddy 2.6 treats
 * `https_port` as an internal port and leaves it out of its redirect (`:8080` → `https://host/…`),
 * so with a non-443 HTTPS port we render the redirect ourselves, keeping the port; same 308 as Caddy.
 */
function httpsRedirect(hosts: string[], httpsPort: number): Json {
  const port = httpsPort === DEFAULT_HTTPS_PORT ? '' : `:${httpsPort}`;
  return {
    '@id': `${SERVER_HTTP}-https-redirect`,
    match: [{ host: hosts }],
    handle: [
      {
        handler: 'static_response',
        status_code: 308,
        headers: { Location: [`https://{http.request.host}${port}{http.request.uri}`] },
      },
    ],
    terminal: true,
  };
}

/** Body of the 403 a client outside the allowed networks gets (`tailnet_only`). */
export const OUTSIDE_BODY = 'forbidden: this proxy serves the tailnet only\n';

/**
 * First route of a server under `tailnet_only`: a client whose connection comes from outside
 * `ranges` gets 403 before any host route runs. `remote_ip` without `forwarded` reads the TCP
 * peer, never a header a client could set. ACME HTTP-01 challenges are answered by Caddy before
 * routes, so certificates are unaffected.
 */
function clientFilter(server: string, ranges: readonly string[]): Json {
  return {
    '@id': `${server}-tailnet-only`,
    match: [{ not: [{ remote_ip: { ranges: uniqSorted([...ranges]) } }] }],
    handle: [{ handler: 'static_response', status_code: 403, body: OUTSIDE_BODY }],
    terminal: true,
  };
}

/**
 * Explicit TLS routes' policies (their names as subjects, less those a loaded certificate covers),
 * then the catch-all on-demand policy (none match first: Caddy takes the first policy that matches
 * a name). Every ACME issuer carries the `acme_*` settings (acme.ts), so explicit and on-demand
 * names use the same CA.
 */
function tlsPolicies(routes: DesiredRoute[], onDemand: OnDemandSettings | undefined, acme: AcmeIssuerSettings | undefined, loaded: readonly LoadedCertificate[]): Json[] {
  const covered = (host: string) => loaded.some((c) => c.names.some((n) => nameCovers(n, host)));
  const subjects = (mode: TlsMode) => uniqSorted(routes.filter((r) => r.tls === mode).flatMap((r) => r.hosts)).filter((h) => !covered(h));
  const policies: Json[] = (['acme', 'internal'] as const)
    .map((mode) => ({ mode, hosts: subjects(mode) }))
    .filter((p) => p.hosts.length > 0)
    .map((p) => ({ '@id': `${ID_PREFIX}tls-${p.mode}`, subjects: p.hosts, issuers: [issuerFor(p.mode, acme)] }));
  if (onDemand) policies.push({ '@id': `${ID_PREFIX}tls-on-demand`, issuers: [issuerFor(onDemand.issuer, acme)], on_demand: true });
  return policies;
}

/**
 * The whole Caddy config for `desired`. `hash` covers the config without the marker; the
 * marker `@id` (markerId(hash)) is then set at the config's top level (Caddy strips `@id`
 * fields before decoding, RemoveMetaFields). Never throws on valid input.
 */
export function render(desired: DesiredProxy): Rendered {
  const { settings } = desired;
  const selection = selectRoutes(desired);
  const { warnings } = selection;
  // Extra ports (listen.ts): routes on one of our ports, a port held elsewhere, or the other protocol's port are left out whole.
  const ports = portGroups(selection.routes, settings, settings.blockedPorts);
  const routes = ports.kept;
  const skipped = [...selection.skipped, ...ports.skipped];
  const ids = new Ids();
  const plain = routes.filter((r) => r.tls === 'off');
  const secure = routes.filter((r) => r.tls !== 'off');
  const secureHostList = uniqSorted(secure.flatMap((r) => r.hosts));
  const secureHosts = secureHostList.length;
  const dynamic = settings.dynamic;
  const onDemand = dynamic?.onDemand;
  // Caddy's own redirect is right on the default port only (see httpsRedirect); with the
  // on-demand catch-all it would redirect every HTTP request (autohttps.go), so ours then too.
  const ownRedirect = secure.length > 0 && (settings.httpsPort !== DEFAULT_HTTPS_PORT || onDemand !== undefined);

  // No server has `metrics`: in 2.6.2 that wraps every handler of the server in Prometheus
  // instrumentation (routes.go wrapMiddleware), about 8 % of Caddy's CPU per proxied request in
  // bench/proxy, and nothing reads those series (backend health and the drift poll use metrics
  // Caddy keeps without it).
  const servers: Json = {
    [SERVER_HTTP]: {
      listen: [listenAddress(settings.listenIp, settings.httpPort)],
      // tls off: no certificates for these hosts; Caddy still adds its redirects for TLS hosts here.
      automatic_https: { disable: true },
      routes: serverRoutes(SERVER_HTTP, plain, secureHosts, ids, [
        ...(ownRedirect ? [httpsRedirect(secureHostList, settings.httpsPort)] : []),
        ...(dynamic ? dynamicRoutes(SERVER_HTTP, dynamic.resolver, false) : []),
      ]),
      ...(dynamic ? { errors: { routes: [dynamicMiss(SERVER_HTTP)] } } : {}),
    },
  };
  // With on-demand certificates the HTTPS server is there whatever names are served (it must not change with them).
  if (secure.length > 0 || onDemand)
    servers[SERVER_HTTPS] = {
      '@id': SERVER_HTTPS,
      listen: [listenAddress(settings.listenIp, settings.httpsPort)],
      ...(ownRedirect || onDemand ? { automatic_https: { disable_redirects: true } } : {}),
      routes: serverRoutes(SERVER_HTTPS, secure, 0, ids, onDemand && dynamic ? dynamicRoutes(SERVER_HTTPS, dynamic.resolver, true) : []),
      ...(onDemand && dynamic ? { errors: { routes: [dynamicMiss(SERVER_HTTPS)] } } : {}),
    };
  for (const g of ports.groups) {
    const name = portServerName(g.port);
    servers[name] = {
      listen: [listenAddress(settings.listenIp, g.port)],
      // HTTP: never certificates; TLS: Caddy turns TLS on for the hosts (the port is not http_port), without adding redirects.
      automatic_https: g.protocol === 'http' ? { disable: true } : { disable_redirects: true },
      routes: serverRoutes(name, g.routes, 0, ids),
    };
  }
  if (settings.allowClients) for (const [name, server] of Object.entries(servers)) (server as { routes: Json[] }).routes.unshift(clientFilter(name, settings.allowClients));
  const apps: Json = { http: { http_port: settings.httpPort, https_port: settings.httpsPort, servers } };
  const loaded = [...(desired.certificates ?? [])].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (secure.length > 0 || onDemand) {
    const automation: Json = { policies: tlsPolicies(secure, onDemand, settings.acme, loaded) };
    if (onDemand) automation.on_demand = { ask: onDemand.ask, rate_limit: { burst: onDemand.rateLimit.burst, interval: onDemand.rateLimit.interval } };
    apps.tls = { automation };
  }
  // Stored certificates (src/certs): Caddy caches them at provision, before the http app collects
  // names, and skips automatic management of every name one of them covers (2.6.2 autohttps.go,
  // AllMatchingCertificates), so they win over `tls internal|acme` and on-demand for their names.
  if (loaded.length) ((apps.tls ??= {}) as Json).certificates = { load_pem: loaded.map((c) => ({ certificate: c.chain, key: c.key, tags: [`${ID_PREFIX}${c.id}`] })) };
  // The local CA must not try to install its root into the system trust store (needs root, prompts).
  if (secure.some((r) => r.tls === 'internal') || onDemand?.issuer === 'internal') apps.pki = { certificate_authorities: { local: { install_trust: false } } };

  // Per-host stats: every server logs every request to the controller (access-log.ts).
  if (settings.accessLog) for (const server of Object.values(servers)) (server as Json).logs = serverLogs();
  const logging = settings.accessLog ? accessLogging(settings.accessLog) : undefined;
  const unmarked = sorted({ admin: { listen: settings.admin, config: { persist: false } }, apps, logging });
  // `sorted` inserted keys in order, so the native JSON.stringify is the canonical text (hashConfig's result, ~5× faster).
  const text = JSON.stringify(unmarked);
  const hash = createHash('sha256').update(text).digest('hex');
  const marker = markerId(hash);
  // "@id" sorts before every other top-level key ('@' < 'a'), so putting it first keeps the
  // object canonical, and the text gains it right after its opening brace.
  const config = { '@id': marker, ...unmarked };
  // The slice shares the text's characters (a copy would be ~400 KB at 1,000 routes).
  const json = `{"@id":${JSON.stringify(marker)},${text.slice(1)}`;
  return { config, json, hash, warnings, skipped };
}
