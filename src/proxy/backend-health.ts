// Backend health as Caddy 2.6.2 knows it, merged with our by-hand dead flag and the backends the
// controller took out after failed requests (recovery.ts) (issue 15, item 3). Pure: parsing of
// Caddy's answers and the merge; the reads are CaddyAdmin.upstreams() and /metrics text.
import type { Backends } from '../model/route-backends.js';
import { recoveryReason, type HealthDead } from './recovery.js';

/**
 * One dial address in Caddy's upstream pool. From 2.6.2's admin `GET /reverse_proxy/upstreams`
 * (admin.go `upstreamStatus`: `address`, `num_requests`, `fails` — live, but no active-check
 * state) and, when given, `/metrics` `caddy_reverse_proxy_upstreams_healthy{upstream}` (metrics.go:
 * `Upstream.Healthy()`, active and passive, refreshed only every 10 s).
 */
export interface UpstreamStatus {
  requests: number;
  fails: number;
  /** From /metrics: false when Caddy counted it unhealthy at its last 10 s update; undefined: not known. */
  healthy?: boolean;
}

export type BackendState = 'up' | 'failing' | 'down' | 'dead' | 'unknown';

export interface BackendHealth {
  /** The upstream as written in the route. */
  address: string;
  /** dead: out of rotation by hand; down: taken out after failed requests and probed back (recovery.ts), or Caddy's health says unhealthy; failing: passive failures counted now; unknown: Caddy has no state for it. */
  state: BackendState;
  fails: number;
  requests: number;
  /** Only for a backend the controller took out: why (`failed requests; probed every 60s`). */
  reason?: string;
  /** Only for a backend the controller took out: when (ISO 8601). */
  since?: string;
  /** Only for a backend the controller took out: when it is probed next (ISO 8601). */
  next_probe_at?: string;
}

/** `GET /reverse_proxy/upstreams` body → dial → status; throws on another shape. */
export function parseUpstreams(body: unknown): Map<string, UpstreamStatus> {
  if (!Array.isArray(body)) throw new Error('reverse_proxy/upstreams: not a JSON array');
  const out = new Map<string, UpstreamStatus>();
  for (const item of body as unknown[]) {
    const u = item as { address?: unknown; num_requests?: unknown; fails?: unknown };
    if (typeof u.address !== 'string' || typeof u.num_requests !== 'number' || typeof u.fails !== 'number') throw new Error('reverse_proxy/upstreams: an entry lacks address, num_requests or fails');
    out.set(u.address, { requests: u.num_requests, fails: u.fails });
  }
  return out;
}

/** Adds `healthy` from Prometheus text (`caddy_reverse_proxy_upstreams_healthy{upstream="…"} 0|1`) to `pool`. */
export function withMetrics(pool: Map<string, UpstreamStatus>, metrics: string): Map<string, UpstreamStatus> {
  const out = new Map(pool);
  for (const m of metrics.matchAll(/^caddy_reverse_proxy_upstreams_healthy\{upstream="([^"]*)"\} ([0-9.e+-]+)$/gm)) {
    const dial = m[1]!;
    out.set(dial, { ...(out.get(dial) ?? { requests: 0, fails: 0 }), healthy: Number(m[2]) === 1 });
  }
  return out;
}

/**
 * Each upstream of a route as written, with its state: `dead` by hand first; then `down` when one
 * of its dial addresses (`dialsOf`: a name in our zones may have several) is marked in `healthDead`
 * (with reason, since and next probe); else over its dials the worst of Caddy's states.
 */
export function backendHealth(
  upstreams: readonly string[],
  backends: Backends | undefined,
  dialsOf: (upstream: string) => string[],
  pool: Map<string, UpstreamStatus>,
  healthDead: ReadonlyMap<string, HealthDead> = new Map(),
): BackendHealth[] {
  return upstreams.map((address) => {
    const dials = dialsOf(address);
    const known = dials.map((d) => pool.get(d)).filter((s): s is UpstreamStatus => s !== undefined);
    const fails = known.reduce((n, s) => n + s.fails, 0);
    const requests = known.reduce((n, s) => n + s.requests, 0);
    const marks = dials.map((d) => healthDead.get(d)).filter((m): m is HealthDead => m !== undefined);
    let state: BackendState;
    if (backends?.[address]?.dead) state = 'dead';
    else if (marks.length) {
      // The earliest mark and the soonest probe over the name's addresses.
      const since = Math.min(...marks.map((m) => m.since));
      const next = Math.min(...marks.map((m) => m.nextProbeAt));
      return { address, state: 'down', fails, requests, reason: recoveryReason(marks[0]!.intervalMs), since: new Date(since).toISOString(), next_probe_at: new Date(next).toISOString() };
    }
    else if (known.length === 0) state = 'unknown';
    else if (fails > 0) state = 'failing';
    else if (known.some((s) => s.healthy === false)) state = 'down';
    else state = 'up';
    return { address, state, fails, requests };
  });
}
