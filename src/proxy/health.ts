// A route's health checks (`health_path`, and `health` from src/model/route-health.ts) → Caddy
// 2.6.2's reverse_proxy `health_checks` (healthchecks.go at v2.6.2: active uri/interval/timeout/
// expect_status, passive fail_duration/max_fails/unhealthy_status/unhealthy_latency). Pure.
import type { DesiredRoute } from './types.js';

/** Passive health: an upstream that failed a request is skipped for this long. */
export const FAIL_DURATION = '30s';
export const HEALTH_INTERVAL = '10s';
export const HEALTH_TIMEOUT = '5s';

/**
 * The handler's `health_checks`, or undefined. Without `health` this is what every route had
 * before issue 15 (active from `health_path`, passive with several upstreams), so such routes
 * render unchanged. `health.active` replaces the `health_path` check; `health.passive` applies
 * with one upstream too. Keys in sorted order (render() shares the object as built).
 */
export function healthChecks(r: Pick<DesiredRoute, 'health' | 'health_path'>, several: boolean): Record<string, unknown> | undefined {
  const checks: Record<string, unknown> = {};
  const a = r.health?.active;
  if (a) {
    const active: Record<string, unknown> = {};
    if (a.expected_status !== undefined) active.expect_status = a.expected_status;
    active.interval = a.interval ?? HEALTH_INTERVAL;
    active.timeout = a.timeout ?? HEALTH_TIMEOUT;
    active.uri = a.path;
    checks.active = active;
  } else if (r.health_path !== null) checks.active = { interval: HEALTH_INTERVAL, timeout: HEALTH_TIMEOUT, uri: r.health_path };
  const p = r.health?.passive;
  if (p || several) {
    const passive: Record<string, unknown> = { fail_duration: p?.fail_duration ?? FAIL_DURATION };
    if (p?.max_fails !== undefined) passive.max_fails = p.max_fails;
    if (p?.unhealthy_latency !== undefined) passive.unhealthy_latency = p.unhealthy_latency;
    if (p?.unhealthy_status?.length) passive.unhealthy_status = [...new Set(p.unhealthy_status)].sort((x, y) => x - y);
    checks.passive = passive;
  }
  return Object.keys(checks).length ? checks : undefined;
}
