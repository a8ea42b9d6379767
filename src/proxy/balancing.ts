// A route's `balancing` (src/model/route-balancing.ts) → Caddy 2.6.2's reverse_proxy
// `load_balancing`. Pure; render.ts calls it once per route handler.
import { balancingIsDefault, type Balancing } from '../model/route-balancing.js';

/** How long a request may keep trying other upstreams after one fails to connect (when the route sets no try_duration). */
export const TRY_DURATION = '1s';

/**
 * Methods retried after a connection to a backend was made (the request may have reached it):
 * the idempotent ones without a body. Caddy 2.6.2 retries a dial error always and otherwise only
 * what `retry_match` matches (GET alone when it is absent, reverseproxy.go `tryAgain`). PUT and
 * DELETE are idempotent too, but 2.6.2 does not buffer a request body for a second try, so a
 * retried PUT could arrive without its body: left out.
 */
export const RETRY_METHODS = ['GET', 'HEAD', 'OPTIONS'] as const;

/**
 * Whether the route's upstreams keep the order they were written in: `first` takes the first
 * available one, so order is meaning there; every other policy is order-free (render sorts).
 */
export const keepsUpstreamOrder = (b: Balancing | undefined): boolean => b?.policy === 'first' || b?.policy === 'least_latency';

/** Caddy's policy for ours: `least_latency` is `first` over the upstreams in the order latency.ts ranked them. */
const caddyPolicy = (b: Balancing): string => (b.policy === 'least_latency' ? 'first' : b.policy);

/**
 * The `load_balancing` of a route's reverse_proxy, or undefined when it needs none (one
 * upstream and default balancing). Default balancing over several upstreams is what every route
 * had before issue 15 (round robin, try_duration 1s), so such routes render unchanged.
 */
export function loadBalancing(b: Balancing | undefined, upstreams: number): Record<string, unknown> | undefined {
  if (balancingIsDefault(b) || !b) return upstreams > 1 ? { selection_policy: { policy: 'round_robin' }, try_duration: TRY_DURATION } : undefined;
  // Keys in sorted order: render() shares handler objects as they are built (canonical JSON).
  if (b.retries === 0) return { selection_policy: { policy: caddyPolicy(b) } }; // no second try at all (the schema refuses try_duration with it)
  const lb: Record<string, unknown> = {};
  if (b.retries !== undefined) lb.retries = b.retries;
  lb.retry_match = [{ method: [...RETRY_METHODS] }];
  lb.selection_policy = { policy: caddyPolicy(b) };
  lb.try_duration = b.try_duration ?? TRY_DURATION;
  return lb;
}
