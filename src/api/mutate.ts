// Shared by every mutating route: proxy host clash checks, and ?dry_run=true plans.
import { z } from 'zod';
import { AppError } from '../errors.js';
import type { RecordWrite, StoredRecord } from '../model/record.js';
import { hostClash, recordRouteId } from '../proxy/desired.js';
import { planRoutes, type RoutePlan } from '../proxy/plan.js';
import type { DesiredRoute } from '../proxy/types.js';
import type { ApiDeps } from './app.js';

export const dryRunQuery = z.object({ dry_run: z.enum(['true', 'false']).default('false').describe('Validate and show the plan without applying') });

export interface DnsPlan {
  added: string[];
  changed: string[];
  removed: string[];
}

export interface DryRun {
  dry_run: true;
  plan: { dns: DnsPlan; routes: RoutePlan };
}

const key = (r: { name: string; type: string }) => `${r.name} ${r.type}`;

export function dnsPlan(put: { record: StoredRecord; created: boolean }[], removed: readonly { name: string; type: string }[] = []): DnsPlan {
  return { added: put.filter((p) => p.created).map((p) => key(p.record)), changed: put.filter((p) => !p.created).map((p) => key(p.record)), removed: removed.map(key) };
}

/** Runs `mutate` for real, or (dryRun) inside a rolled-back transaction and returns what it would change. */
export function mutate<T>(deps: ApiDeps, dryRun: boolean, run: () => { result: T; dns: DnsPlan }): T | DryRun {
  if (!dryRun) return run().result;
  return deps.simulate(() => {
    const before = deps.proxy.build(true).routes;
    const { dns } = run();
    return { dry_run: true as const, plan: { dns, routes: planRoutes(before, deps.proxy.build(true).routes) } };
  });
}

type RouteKey = Pick<DesiredRoute, 'id' | 'hosts' | 'path'>;

/**
 * 409 when `route` would serve a host+path another route already serves. Looks only at the
 * explicit routes and at the records named like `route`'s hosts, so a burst of adds stays linear.
 */
export function assertNoClash(deps: ApiDeps, route: RouteKey): void {
  const existing: RouteKey[] = deps.routes.list();
  for (const host of route.hosts)
    for (const type of ['A', 'AAAA'] as const)
      if (deps.records.get(`${host}.`, type)?.proxy?.enabled) existing.push({ id: recordRouteId(`${host}.`), hosts: [host], path: null });
  const clash = hostClash(route, existing);
  if (clash) throw new AppError('conflict', `host ${clash.host}${route.path ?? ''} is already served by route ${clash.id}`);
}

/** For record writes that enable the proxy: their implied route must not clash with another route. */
export function assertRecordsNoClash(deps: ApiDeps, writes: readonly RecordWrite[]): void {
  for (const w of writes) if (w.proxy?.enabled) assertNoClash(deps, { id: recordRouteId(w.name), hosts: [w.name.replace(/\.$/, '')], path: null });
}
