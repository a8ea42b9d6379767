// Per-backend settings of a route (issue 15, "Backends"): an optional weight and a by-hand dead
// flag per upstream, keyed by the upstream as written in `upstreams`. One optional sub-object of a
// route (`backends`) or of a proxied record's `proxy`. Applied by src/proxy/desired.ts (dead ones
// left out) and src/proxy/render.ts (weights).
import { z } from 'zod';
import { upstream } from './name.js';

/**
 * Highest weight. Caddy 2.6.2 has no weighted policy (selectionpolicies.go), so a weight is
 * rendered by listing the upstream that many times: this bounds a route's rendered upstreams
 * (100 upstreams × 10).
 */
export const MAX_WEIGHT = 10;

export const backendWeight = z.number().int('must be a whole number').min(1, 'must be at least 1').max(MAX_WEIGHT, `must be at most ${MAX_WEIGHT}`);

export const backendOptions = z
  .object({
    weight: backendWeight.optional().describe(`Share of the requests relative to the others (1-${MAX_WEIGHT}, default 1); round_robin and random honour it`),
    dead: z.boolean().optional().describe('Taken out of rotation by hand (POST …/backends/{backend}/dead); true until …/alive'),
  })
  .strict();
export type BackendOptions = z.infer<typeof backendOptions>;

export const backendsSchema = z.record(z.string(), backendOptions).describe('Per-upstream settings keyed by the upstream as written in upstreams');
export type Backends = z.infer<typeof backendsSchema>;

/** The route-input fields of this group, spread into routeInput / the record proxy with one line. */
export const backendsFields = { backends: backendsSchema.optional() };

/** Issues for `backends` keys that are not one of `upstreams` (a setting for nothing is a mistake). */
export function backendsIssues(upstreams: readonly string[], backends: Backends | undefined): { path: (string | number)[]; message: string }[] {
  if (!backends) return [];
  const listed = new Set(upstreams);
  return Object.keys(backends)
    .filter((k) => !listed.has(k))
    .map((k) => ({ path: ['backends', k], message: `${k} is not one of the upstreams` }));
}

/** Body of `POST /api/v1/routes/{id}/backends`: add an upstream, or change its weight. */
export const backendBody = z
  .object({
    address: upstream.describe('host:port, as an upstream'),
    weight: backendWeight.optional(),
  })
  .strict();

/** Drops entries that say nothing (weight 1, not dead) so equal settings store equally. */
export function compactBackends(backends: Backends | undefined): Backends | undefined {
  if (!backends) return undefined;
  const out: Backends = {};
  for (const k of Object.keys(backends).sort()) {
    const o = backends[k]!;
    const kept: BackendOptions = {};
    if (o.weight !== undefined && o.weight !== 1) kept.weight = o.weight;
    if (o.dead) kept.dead = true;
    if (Object.keys(kept).length) out[k] = kept;
  }
  return Object.keys(out).length ? out : undefined;
}
