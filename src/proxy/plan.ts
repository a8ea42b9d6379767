// The diff between two route sets (external-dns style): pure, keyed by route id.
import type { DesiredRoute } from './types.js';

export interface RoutePlan {
  added: DesiredRoute[];
  changed: { id: string; before: DesiredRoute; after: DesiredRoute }[];
  removed: DesiredRoute[];
}

const same = (a: DesiredRoute, b: DesiredRoute) => JSON.stringify(a) === JSON.stringify(b);

export function planRoutes(before: readonly DesiredRoute[], after: readonly DesiredRoute[]): RoutePlan {
  const old = new Map(before.map((r) => [r.id, r]));
  const now = new Map(after.map((r) => [r.id, r]));
  return {
    added: after.filter((r) => !old.has(r.id)),
    changed: after.flatMap((r) => {
      const b = old.get(r.id);
      return b && !same(b, r) ? [{ id: r.id, before: b, after: r }] : [];
    }),
    removed: before.filter((r) => !now.has(r.id)),
  };
}
