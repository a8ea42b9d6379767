// Desired proxy state from stored data. Pure: the caller passes records, routes and a resolver.
import { ACME_HINT, acmeNameProblem } from '../model/certname.js';
import type { StoredRecord } from '../model/record.js';
import type { Backends } from '../model/route-backends.js';
import { balancingIsDefault } from '../model/route-balancing.js';
import type { StoredRoute } from '../model/route.js';
import type { DesiredRoute, TlsMode } from './types.js';

/**
 * Addresses of `host` in our zones: undefined when the host is not inside a served zone (Caddy
 * dials it by name, e.g. a Tailscale device), [] when it is ours but has no A/AAAA record.
 */
export type Resolver = (host: string) => string[] | undefined;

export interface DesiredBuild {
  /** Routes that can be rendered, sorted by id. */
  routes: DesiredRoute[];
  /** Routes left out, with the reason (e.g. an upstream name that does not resolve). */
  errors: Map<string, string>;
}

export const recordRouteId = (fqdn: string) => `record:${fqdn.replace(/\.$/, '')}`;

/** An upstream host written as an address (`[v6]` or dotted IPv4): dialled as is, never resolved. */
const isAddress = (host: string): boolean => host.startsWith('[') || /^\d+\.\d+\.\d+\.\d+$/.test(host);

/** Turns `host:port` upstreams into dial addresses, expanding names in our zones to their addresses. */
function dials(upstreams: readonly string[], resolve: Resolver): { dials: string[] } | { error: string } {
  const out: string[] = [];
  for (const u of upstreams) {
    const at = u.lastIndexOf(':');
    const host = u.slice(0, at);
    const port = u.slice(at + 1);
    if (isAddress(host)) {
      out.push(u);
      continue;
    }
    const addresses = resolve(host.toLowerCase());
    // A `device:` host is never dialled by name: without a device resolver it cannot be served.
    if (addresses === undefined && host.toLowerCase().startsWith('device:')) return { error: `upstream ${u}: no tailnet device list to resolve it` };
    if (addresses === undefined) out.push(u.toLowerCase());
    else if (addresses.length === 0) return { error: host.toLowerCase().startsWith('device:') ? `upstream ${u}: no device ${host.slice(7)} in the tailnet (never seen)` : `upstream ${u}: ${host} has no A or AAAA record in our zones` };
    else for (const a of addresses) out.push(a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`);
  }
  return { dials: out.length > 1 ? [...new Set(out)] : out };
}

/** Dial → weight for upstreams written with a weight above 1 (each of a name's addresses gets its weight), or undefined. */
function weightsOf(upstreams: readonly string[], backends: Backends | undefined, resolve: Resolver): Record<string, number> | undefined {
  if (!backends) return undefined;
  const out: Record<string, number> = {};
  for (const u of upstreams) {
    const w = backends[u]?.weight ?? 1;
    if (w <= 1) continue;
    const d = dials([u], resolve);
    if ('dials' in d) for (const dial of d.dials) out[dial] = Math.max(out[dial] ?? 1, w);
  }
  return Object.keys(out).length ? out : undefined;
}

/** What buildDesired remembers per source: the route, and whether its dials came from literals only (then it cannot change). */
export interface BuiltRoute {
  route: DesiredRoute;
  literal: boolean;
}


/**
 * `memo` (optional) maps each source record/route object to the route built from it last time.
 * Sources are immutable (a change stores a new object), so a remembered route is reused as is
 * when its upstreams are all addresses, or when its names still resolve to the same dials:
 * unchanged routes keep their identity across builds and callers can cache per-route work
 * (hashes, rendered handlers) by object.
 */
export function buildDesired(records: readonly StoredRecord[], routes: readonly StoredRoute[], resolve: Resolver, memo?: WeakMap<object, BuiltRoute>): DesiredBuild {
  const built: DesiredRoute[] = [];
  const errors = new Map<string, string>();
  const add = (source: object, route: () => Omit<DesiredRoute, 'upstreams'>, written: readonly string[], backends?: Backends) => {
    const known = memo?.get(source);
    if (known?.literal) return void built.push(known.route);
    // Stored before the API refused it: Caddy would ask Let's Encrypt for it forever, and HTTPS fails.
    const acme = known ? null : acmeProblem(route());
    if (acme) return void errors.set(route().id, acme);
    // Backends marked dead by hand are out of rotation: not dialled at all.
    const upstreams = backends ? written.filter((u) => !backends[u]?.dead) : written;
    if (upstreams.length === 0) return void errors.set(route().id, 'every backend is marked dead: bring one back with POST /api/v1/routes/{id}/backends/{backend}/alive');
    const d = dials(upstreams, resolve);
    if ('error' in d) return void errors.set(route().id, d.error);
    const weights = weightsOf(upstreams, backends, resolve);
    if (known && known.route.upstreams.length === d.dials.length && known.route.upstreams.every((u, i) => u === d.dials[i])) return void built.push(known.route);
    const fresh = { ...route(), upstreams: d.dials, ...(weights ? { weights } : {}) };
    memo?.set(source, { route: fresh, literal: upstreams.every((u) => isAddress(u.slice(0, u.lastIndexOf(':')))) });
    built.push(fresh);
  };
  for (const r of records)
    if (r.proxy?.enabled && (r.type === 'A' || r.type === 'AAAA')) {
      const { name, proxy } = r;
      add(r, () => ({ id: recordRouteId(name), hosts: [name.replace(/\.$/, '')], path: null, tls: proxy.tls ?? 'off', health_path: null, ...(proxy.balancing ? { balancing: proxy.balancing } : {}), ...(proxy.health ? { health: proxy.health } : {}) }), proxy.upstreams, proxy.backends);
    }
  for (const r of routes) add(r, () => ({ id: r.id, hosts: r.hosts, path: r.path, tls: r.tls, health_path: r.health_path, ...routeOptions(r), ...(r.listen ? { listen: r.listen } : {}), ...(r.balancing ? { balancing: r.balancing } : {}), ...(r.health ? { health: r.health } : {}) }), r.upstreams, r.backends);
  // A name with both A and AAAA proxied yields one route.
  const byId = new Map(built.map((r) => [r.id, r]));
  return { routes: [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)), errors };
}

/** Why a `tls: acme` route cannot get its certificate (a host no public CA issues for), or null. */
function acmeProblem(route: Pick<DesiredRoute, 'hosts' | 'tls'>): string | null {
  if (route.tls !== 'acme') return null;
  const problem = route.hosts.map(acmeNameProblem).find((p) => p !== null);
  return problem ? `left out: ${problem}; ${ACME_HINT}` : null;
}

/** A stored route's option groups (auth, …) that the proxy renders: absent ones left out, so a route without them is unchanged. */
function routeOptions(r: StoredRoute): Partial<Pick<DesiredRoute, 'auth' | 'headers' | 'limits'>> {
  return { ...(r.auth ? { auth: r.auth } : {}), ...(r.headers ? { headers: r.headers } : {}), ...(r.limits ? { limits: r.limits } : {}) };
}

/** Whether a route uses an option group only its own Caddy route can carry (it is then explicit). */
export const hasRouteOptions = (r: DesiredRoute): boolean => r.auth !== undefined || r.headers !== undefined || r.limits !== undefined;

/** The first existing route already serving one of `route`'s host+path pairs, or undefined. */
export function hostClash(route: Pick<DesiredRoute, 'id' | 'hosts' | 'path'>, existing: readonly Pick<DesiredRoute, 'id' | 'hosts' | 'path'>[]): { id: string; host: string } | undefined {
  const mine = new Set(route.hosts.map((h) => `${h} ${route.path ?? ''}`));
  for (const other of existing) {
    if (other.id === route.id) continue;
    const host = other.hosts.find((h) => mine.has(`${h} ${other.path ?? ''}`));
    if (host) return { id: other.id, host };
  }
  return undefined;
}

/** A dial address `a.b.c.d:port` or `[v6]:port`: the only kind a DNS answer can carry as a backend. */
const isAddressDial = (dial: string): boolean => isAddress(dial.slice(0, dial.lastIndexOf(':')));

/** Whether one of `hosts` (an explicit route's) claims `host`: the same name, or a wildcard one label above it. */
function claimed(host: string, hosts: ReadonlySet<string>): boolean {
  if (hosts.has(host)) return true;
  const dot = host.indexOf('.');
  return dot > 0 && hosts.has(`*${host.slice(dot)}`);
}

/**
 * Splits desired routes into the ones Caddy's config must carry (`explicit`) and the plain names
 * served by the static dynamic route through our DNS (`dynamic`). Plain: a proxied record's route
 * for one exact host, no path, no health check, default balancing, no weights, no health settings (2.6.2 runs no active check for dynamic upstreams), `tls: off` or the tls mode certificates are had on
 * demand for (`onDemandTls`, the catch-all policy's issuer), every upstream an address, and no
 * explicit route claiming the host (its own handlers, or a wildcard that would match first).
 * `enabled` false (no DNS address for Caddy) keeps every route explicit. Pure; order kept.
 */
export function splitRoutes(
  routes: readonly DesiredRoute[],
  enabled: boolean,
  ownProblem: (r: DesiredRoute) => string | null = () => null,
  onDemandTls: TlsMode | null = null,
): { explicit: DesiredRoute[]; dynamic: DesiredRoute[] } {
  if (!enabled) return { explicit: [...routes], dynamic: [] };
  const candidate = (r: DesiredRoute) =>
    r.id.startsWith('record:') &&
    r.hosts.length === 1 &&
    !r.hosts[0]!.startsWith('*.') &&
    r.path === null &&
    r.health_path === null &&
    !hasRouteOptions(r) &&
    r.listen === undefined &&
    balancingIsDefault(r.balancing) &&
    r.weights === undefined &&
    r.health === undefined &&
    (r.tls === 'off' || r.tls === onDemandTls) &&
    r.upstreams.length > 0 &&
    r.upstreams.every(isAddressDial);
  const explicitHosts = new Set<string>();
  for (const r of routes) if (!candidate(r)) for (const h of r.hosts) explicitHosts.add(h.toLowerCase());
  const explicit: DesiredRoute[] = [];
  const dynamic: DesiredRoute[] = [];
  for (const r of routes) (candidate(r) && !claimed(r.hosts[0]!.toLowerCase(), explicitHosts) && ownProblem(r) === null ? dynamic : explicit).push(r);
  return { explicit, dynamic };
}
