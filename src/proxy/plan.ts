// The diff between two route sets (external-dns style): pure, keyed by route id.
import { exportedAuth } from '../model/route-auth.js';
import type { DesiredRoute } from './types.js';

export interface RoutePlan {
  added: DesiredRoute[];
  changed: { id: string; before: DesiredRoute; after: DesiredRoute }[];
  removed: DesiredRoute[];
}

const same = (a: DesiredRoute, b: DesiredRoute) => JSON.stringify(a) === JSON.stringify(b);

/** A route as a plan shows it: compared whole, shown without its auth secrets (hashes, tokens). */
const shown = (r: DesiredRoute): DesiredRoute => (r.auth ? { ...r, auth: exportedAuth(r.auth) } : r);

export function planRoutes(before: readonly DesiredRoute[], after: readonly DesiredRoute[]): RoutePlan {
  const old = new Map(before.map((r) => [r.id, r]));
  const now = new Map(after.map((r) => [r.id, r]));
  return {
    added: after.filter((r) => !old.has(r.id)).map(shown),
    changed: after.flatMap((r) => {
      const b = old.get(r.id);
      return b && !same(b, r) ? [{ id: r.id, before: shown(b), after: shown(r) }] : [];
    }),
    removed: before.filter((r) => !now.has(r.id)).map(shown),
  };
}
