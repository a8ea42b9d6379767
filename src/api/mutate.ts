// Shared by every mutating route: proxy host clash checks, and ?dry_run=true plans.
import { z } from 'zod';
import { AppError, type FieldIssue } from '../errors.js';
import { routeHostProblem, upstreamOwnProblem } from '../model/endpoints.js';
import type { RecordWrite, StoredRecord } from '../model/record.js';
import { scopeAllows, type TokenScope } from '../model/token.js';
import { hostClash, recordRouteId } from '../proxy/desired.js';
import { endpointsOf } from '../proxy/guard.js';
import { planRoutes, type RoutePlan } from '../proxy/plan.js';
import type { DesiredRoute, TlsMode } from '../proxy/types.js';
import type { ApiDeps } from './app.js';
import { forbidden } from './auth.js';
import { reachChecker } from './reach.js';
import { unknownDeviceFields } from './devices.js';
import { deviceOfHost } from '../model/device.js';

export const dryRunQuery = z.object({ dry_run: z.enum(['true', 'false']).default('false').describe('Validate and show the plan without applying') });

export interface DnsPlan {
  added: string[];
  changed: string[];
  removed: string[];
}

export interface DryRun {
  dry_run: true;
  /** `caddy_reload`: whether applying it makes Caddy load a new config (closing every proxied websocket); plain names change DNS only. */
  plan: { dns: DnsPlan; routes: RoutePlan; caddy_reload: boolean };
}

const key = (r: { name: string; type: string }) => `${r.name} ${r.type}`;

export function dnsPlan(put: { record: StoredRecord; created: boolean }[], removed: readonly { name: string; type: string }[] = []): DnsPlan {
  return { added: put.filter((p) => p.created).map((p) => key(p.record)), changed: put.filter((p) => !p.created).map((p) => key(p.record)), removed: removed.map(key) };
}

/** What mutate() needs of the request: whether it is a dry run, and its token. */
export interface MutateRequest {
  query: { dry_run?: 'true' | 'false' };
  token: { scope: TokenScope } | null;
}

const reachers = new WeakMap<ApiDeps, () => Map<string, string>>();

/**
 * Below admin, `run` must not make any proxy upstream reach this host or a metadata service
 * that did not before (a new route, new upstreams, or a record an upstream name resolves through).
 */
function guarded<T>(deps: ApiDeps, req: MutateRequest, run: () => T): () => T {
  const scope = req.token?.scope ?? 'read';
  if (scopeAllows(scope, 'admin')) return run;
  return () => {
    let reach = reachers.get(deps);
    if (!reach) reachers.set(deps, (reach = reachChecker({ ...deps, resolve: deps.proxy.resolve })));
    const before = reach();
    const out = run();
    for (const [key, why] of reach()) if (!before.has(key)) throw forbidden('admin', scope, why);
    return out;
  };
}

/**
 * Runs `run` (its checks and its writes) in a transaction that commits, or (?dry_run=true) in
 * one that is rolled back, and then returns what it would change. A real write joins the group
 * commit (deps.commit): it runs alone in its savepoint, after the writes that came before it in
 * this turn, and resolves once the commit holding it is durable, so the reply never runs ahead of
 * the disk.
 */
export async function mutate<T>(deps: ApiDeps, req: MutateRequest, run: () => { result: T; dns: DnsPlan }): Promise<T | DryRun> {
  const checked = guarded(deps, req, run);
  if (req.query.dry_run !== 'true') return deps.commit(() => checked().result);
  return deps.simulate(() => {
    const before = deps.proxy.build(true).routes;
    const { dns } = checked();
    const after = deps.proxy.build(true).routes;
    return { dry_run: true as const, plan: { dns, routes: planRoutes(before, after), caddy_reload: reloads(deps, before, after) } };
  });
}

/** Whether going from `before` to `after` (all desired routes) changes what Caddy's config carries. */
export function reloads(deps: Pick<ApiDeps, 'proxy'>, before: readonly DesiredRoute[], after: readonly DesiredRoute[]): boolean {
  const p = planRoutes(deps.proxy.classify(before).explicit, deps.proxy.classify(after).explicit);
  return p.added.length + p.changed.length + p.removed.length > 0 || deps.proxy.extraReload(before, after);
}

/** A record-derived route as a write response names it. */
export interface RecordRoute {
  id: string;
  hosts: string[];
  upstreams: string[];
  tls: TlsMode;
}

/** The route the proxied A/AAAA record sets at `name` imply, or null. */
function recordRouteAt(deps: ApiDeps, name: string): RecordRoute | null {
  for (const type of ['A', 'AAAA'] as const) {
    const proxy = deps.records.get(name, type)?.proxy;
    if (proxy?.enabled) return { id: recordRouteId(name), hosts: [name.replace(/\.$/, '')], upstreams: proxy.upstreams, tls: proxy.tls ?? 'off' };
  }
  return null;
}

/**
 * Stores one record set and names the proxy route the write took away, if any: a record set
 * replaced without its proxy block (re-added without --proxy, or proxy_enabled false) removes the
 * route its name had, and the client must hear of it.
 */
export function putRecord(deps: ApiDeps, write: RecordWrite): { record: StoredRecord; created: boolean; removed_route?: RecordRoute } {
  const before = recordRouteAt(deps, write.name);
  const put = deps.records.putOne(write);
  return before && !recordRouteAt(deps, write.name) ? { ...put, removed_route: before } : put;
}

type RouteKey = Pick<DesiredRoute, 'id' | 'hosts' | 'path'>;

/**
 * 409 when `route` would serve a host+path another route already serves. Looks only at the
 * explicit routes and the records that serve `route`'s hosts, so its cost does not grow with the
 * number of routes or records.
 */
export function assertNoClash(deps: Pick<ApiDeps, 'routes' | 'records'>, route: RouteKey): void {
  const existing: RouteKey[] = deps.routes.withHosts(route.hosts);
  for (const host of route.hosts)
    for (const type of ['A', 'AAAA'] as const)
      if (deps.records.get(`${host}.`, type)?.proxy?.enabled) existing.push({ id: recordRouteId(`${host}.`), hosts: [host], path: null });
  const clash = hostClash(route, existing);
  if (clash) throw new AppError('conflict', `host ${clash.host}${route.path ?? ''} is already served by route ${clash.id}`);
}

/**
 * 400 naming every field whose route host is localhost/loopback or whose upstream is one of this
 * node's own listeners (Caddy's admin API on TCP, the API, DNS, Caddy's ports, the mail relay).
 * `hosts` and `upstreams` are [field path, value] pairs. Runs before any write, dry runs included.
 */
export function assertNotOwnEndpoint(deps: Pick<ApiDeps, 'proxy' | 'devices'>, hosts: readonly [string, string][], upstreams: readonly [string, string][]): void {
  const own = endpointsOf(deps.proxy.settings);
  const fields: FieldIssue[] = [];
  for (const [path, host] of hosts) {
    const problem = routeHostProblem(host);
    if (problem) fields.push({ path, message: problem });
  }
  for (const [path, upstream] of upstreams) {
    const problem = upstreamOwnProblem(upstream, own) ?? deviceOwnProblem(deps, upstream, own);
    if (problem) fields.push({ path, message: problem });
  }
  fields.push(...unknownDeviceFields(deps, upstreams));
  if (fields.length) throw new AppError('invalid_body', undefined, fields);
}

/** A `device:<name>:<port>` upstream whose device's addresses are one of our own listeners (the device is this node). */
function deviceOwnProblem(deps: Pick<ApiDeps, 'proxy' | 'devices'>, upstream: string, own: ReturnType<typeof endpointsOf>): string | null {
  const at = upstream.lastIndexOf(':');
  const host = upstream.slice(0, at);
  if (deviceOfHost(host) === null) return null;
  for (const a of deps.proxy.resolve(host.toLowerCase()) ?? []) {
    const problem = upstreamOwnProblem(`${a.includes(':') ? `[${a}]` : a}${upstream.slice(at)}`, own);
    if (problem) return `${upstream} (${a}): ${problem}`;
  }
  return null;
}

/** Proxy settings of record writes: their name as a route host, their upstreams (assertNotOwnEndpoint). */
export function assertRecordsNotOwnEndpoint(deps: ApiDeps, writes: readonly RecordWrite[], upstreamField = (i: number) => `proxy.upstreams.${i}`): void {
  for (const w of writes)
    if (w.proxy) assertNotOwnEndpoint(deps, w.proxy.enabled ? [['name', w.name]] : [], w.proxy.upstreams.map((u, i) => [upstreamField(i), u]));
}

/** For record writes that enable the proxy: their implied route must not clash with another route. */
export function assertRecordsNoClash(deps: ApiDeps, writes: readonly RecordWrite[]): void {
  for (const w of writes) if (w.proxy?.enabled) assertNoClash(deps, { id: recordRouteId(w.name), hosts: [w.name.replace(/\.$/, '')], path: null });
}
