// How a route spreads requests over its upstreams (issue 15, "Balancing"): one optional
// sub-object of a route (`balancing`) or of a proxied record's `proxy`. Rendered by
// src/proxy/balancing.ts into Caddy 2.6.2's `load_balancing`.
import { z } from 'zod';

/**
 * Selection policies, each one Caddy 2.6.2 has under http.reverse_proxy.selection_policies
 * (selectionpolicies.go): `first` takes the upstreams in the order written (failover order);
 * `ip_hash` hashes the client's TCP address, never a header. `least_latency` is ours: the
 * controller probes the upstreams and renders Caddy's `first` in ranked order (src/proxy/latency.ts).
 */
export const BALANCING_POLICIES = ['round_robin', 'random', 'ip_hash', 'least_conn', 'first', 'least_latency'] as const;
export type BalancingPolicy = (typeof BALANCING_POLICIES)[number];
export const DEFAULT_POLICY: BalancingPolicy = 'round_robin';

/** Longest `try_duration`: a client waits up to this for a backend that answers; beyond a minute a client has given up. */
export const MAX_TRY_DURATION_MS = 60_000;
/** Most extra tries per request: each is another backend (or the same one after try_interval); 10 covers any route we allow a pool for. */
export const MAX_RETRIES = 10;

/** A Go duration as Caddy takes it, limited to what a user writes: `250ms`, `2s`, `1m`. */
const DURATION = /^(\d{1,6})(ms|s|m)$/;

/** Milliseconds of a duration string this schema accepted. */
export function durationMs(text: string): number {
  const m = DURATION.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

export const duration = (max: number, min = 0) =>
  z
    .string()
    .regex(DURATION, 'must be a duration such as 250ms, 2s or 1m')
    .superRefine((v, ctx) => {
      if (!DURATION.test(v)) return; // the regex said why (zod 4 runs refinements after a failed check)
      const ms = durationMs(v);
      if (ms > max) ctx.addIssue({ code: 'custom', message: `must be at most ${max / 1000}s` });
      if (ms < min) ctx.addIssue({ code: 'custom', message: `must be at least ${min >= 1000 ? `${min / 1000}s` : `${min}ms`}` });
    });

export const balancingSchema = z
  .object({
    // A string checked by refine, not z.enum: an enum miss aborts, and inside the record union
    // (model/record.ts) that would lose the field's path; a failed refine keeps it.
    policy: z
      .string()
      .refine((v) => (BALANCING_POLICIES as readonly string[]).includes(v), `must be one of ${BALANCING_POLICIES.join(', ')}`)
      .transform((v) => v as BalancingPolicy)
      .default(DEFAULT_POLICY)
      .describe('How a backend is chosen: round_robin (default), random, ip_hash (client address), least_conn, first (failover in the order written), least_latency (the fastest by controller probes)'),
    try_duration: duration(MAX_TRY_DURATION_MS).optional().describe('How long a request may keep trying other backends when one fails (e.g. 2s)'),
    retries: z.number().int().min(0).max(MAX_RETRIES).optional().describe('Extra tries on another backend; after a connection was made only GET, HEAD and OPTIONS requests are retried'),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.retries === 0 && b.try_duration !== undefined)
      ctx.addIssue({ code: 'custom', path: ['try_duration'], message: 'retries 0 means no second try: leave try_duration out, or allow retries' });
  })
  .describe('Load balancing over the upstreams');
export type Balancing = z.infer<typeof balancingSchema>;

/** Whether `b` asks for anything beyond the default (round robin, default retries): such a route is served explicitly. */
export function balancingIsDefault(b: Balancing | undefined): boolean {
  return b === undefined || (b.policy === DEFAULT_POLICY && b.try_duration === undefined && b.retries === undefined);
}

/** The route-input fields of this group, spread into routeInput / the record proxy with one line. */
export const balancingFields = { balancing: balancingSchema.optional() };
