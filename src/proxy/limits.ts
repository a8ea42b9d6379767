// A route's `limits` (src/model/route-limits.ts) as Caddy 2.6.2 config. 2.6.2 has no concurrency
// limiter handler, so (checked in its source, reverseproxy/hosts.go, reverseproxy.go, selectionpolicies.go):
// - each upstream gets `max_requests` (max_concurrent split over the distinct dials by weight, at
//   least 1): an upstream with that many requests in flight is not available;
// - `load_balancing.try_duration` = queue_wait_ms: a request finding none available tries again
//   every `try_interval` until then (a wait, not a FIFO queue); then Caddy's 503 "no upstreams available";
// - the route's reverse_proxy sits in a subroute whose `errors` route turns that 503 into ours,
//   with `Retry-After`;
// - `request_body` `max_size` before it: a body read beyond it fails with 413.
import type { RouteLimits } from '../model/route-limits.js';

type Json = Record<string, unknown>;

/** How often a waiting request looks for a free upstream slot (Caddy's default is 250 ms: too coarse for a queue). */
export const QUEUE_POLL = '20ms';
/** Retry-After when the route gives none. */
export const DEFAULT_RETRY_AFTER_S = 1;
export const LIMITED_BODY = 'service busy: too many requests at once, retry later\n';

/** `proxy` with the concurrency limit applied (a new object; `proxy` is shared). */
export function withLimits(proxy: Json, limits: RouteLimits | undefined): Json {
  if (!limits?.max_concurrent) return proxy;
  const upstreams = (proxy.upstreams as Json[] | undefined) ?? [];
  // Caddy counts requests per dial address (every copy of a weighted dial shares one count), so the
  // limit is split over the distinct dials, each by its share of the copies (its weight).
  const copies = new Map<unknown, number>();
  for (const u of upstreams) copies.set(u.dial, (copies.get(u.dial) ?? 0) + 1);
  const share = (dial: unknown) => Math.max(1, Math.floor((limits.max_concurrent! * (copies.get(dial) ?? 1)) / Math.max(1, upstreams.length)));
  const lb = { ...(proxy.load_balancing as Json | undefined) };
  if (limits.queue_wait_ms) {
    lb.try_duration = `${limits.queue_wait_ms}ms`;
    lb.try_interval = QUEUE_POLL;
  } else delete lb.try_duration;
  return { ...proxy, load_balancing: lb, upstreams: upstreams.map((u) => ({ ...u, max_requests: share(u.dial) })) };
}

/**
 * A body read beyond `max_size`: with Content-Length, reverse_proxy wraps the body read's 413 in
 * its own 502 (the message keeps "http: request body too large"); a chunked body hits the limit
 * while it is streamed upstream and the 413 comes through as it is (both measured on 2.6.2).
 */
const BODY_TOO_LARGE = '{http.error.status_code} == 413 || ({http.error.status_code} == 502 && {http.error.message}.contains("http: request body too large"))';

/** The message of an error re-raised from a limited route's subroute (its cause is not kept). */
export const RERAISED_MESSAGE = 'upstream request failed on a route with limits';

/** What a body over max_body_bytes gets. */
export const TOO_LARGE_BODY = 'request body too large\n';

/**
 * The route's handlers around its (limited) reverse_proxy: `request_body` first, then a subroute
 * whose error routes answer Caddy's 503 "no upstreams available" (every slot taken) with ours and
 * `Retry-After`, a body read beyond `max_size` with 413 (BODY_TOO_LARGE), and any other error
 * with its own status.
 */
export function limitHandlers(handlers: Json[], limits: RouteLimits | undefined): Json[] {
  if (!limits) return handlers;
  const out: Json[] = [];
  const errors: Json[] = [];
  if (limits.max_body_bytes) {
    out.push({ handler: 'request_body', max_size: limits.max_body_bytes });
    errors.push({
      match: [{ expression: BODY_TOO_LARGE }],
      handle: [{ handler: 'static_response', status_code: 413, headers: { 'Content-Type': ['text/plain; charset=utf-8'], Connection: ['close'] }, body: TOO_LARGE_BODY }],
      terminal: true,
    });
  }
  if (limits.max_concurrent) {
    const retryAfter = String(limits.retry_after_s ?? DEFAULT_RETRY_AFTER_S);
    errors.push({
      match: [{ expression: '{http.error.status_code} == 503' }],
      handle: [{ handler: 'static_response', status_code: 503, headers: { 'Content-Type': ['text/plain; charset=utf-8'], 'Retry-After': [retryAfter] }, body: LIMITED_BODY }],
      terminal: true,
    });
  }
  // Last: every other error leaves the subroute with its status. A subroute whose error routes
  // match nothing goes on to the rest of the chain (subroute.go), which in 2.6.2 ends in an empty
  // 200: a refused backend on a limited route answered 200 with no body (measured, test).
  // The status is a placeholder (2.6.2 expands it); the message is not (staticerror.go), so it is
  // a fixed text: Caddy's error log then says what failed, not a literal `{http.error.message}`.
  errors.push({ handle: [{ handler: 'error', error: RERAISED_MESSAGE, status_code: '{http.error.status_code}' }] });
  out.push({ handler: 'subroute', routes: [{ handle: handlers }], errors: { routes: errors } });
  return out;
}

/** One line for the Caddyfile export. */
export function limitsSummary(l: RouteLimits | undefined): string | null {
  if (!l) return null;
  const parts = [
    ...(l.max_concurrent ? [`max ${l.max_concurrent} concurrent requests`, `queue wait ${l.queue_wait_ms ?? 0} ms`, `Retry-After ${l.retry_after_s ?? DEFAULT_RETRY_AFTER_S} s`] : []),
    ...(l.max_body_bytes ? [`body at most ${l.max_body_bytes} bytes`] : []),
  ];
  return `limits: ${parts.join(', ')}`;
}
