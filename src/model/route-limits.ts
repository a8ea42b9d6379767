// A route's `limits`: how many requests its upstreams get at once, how long a request beyond that
// waits for a free slot, and the largest request body. Rendered by src/proxy/limits.ts.
import { z } from 'zod';

/** Bounds that keep a typo from disabling the limit (or Caddy's timers from overflowing). */
const MAX_CONCURRENT = 100_000;
/** A request waits at most a minute for a slot; longer belongs in a real queue, not a proxy. */
const MAX_QUEUE_WAIT_MS = 60_000;
/** 1 TiB: a body limit above it is no limit. */
const MAX_BODY_BYTES = 2 ** 40;
/** Retry-After at most an hour. */
const MAX_RETRY_AFTER_S = 3600;

const positive = (max: number, what: string) => z.number().int(`must be a whole number of ${what}`).min(1, 'must be at least 1').max(max, `must be at most ${max}`);

export const routeLimits = z
  .object({
    max_concurrent: positive(MAX_CONCURRENT, 'requests').optional().describe('Requests the route sends its upstreams at once (split evenly over its upstreams); beyond it: 503 with Retry-After'),
    queue_wait_ms: positive(MAX_QUEUE_WAIT_MS, 'milliseconds').optional().describe('How long a request beyond max_concurrent waits for a free slot before the 503 (default: none)'),
    max_body_bytes: positive(MAX_BODY_BYTES, 'bytes').optional().describe('Largest request body; beyond it: 413'),
    retry_after_s: positive(MAX_RETRY_AFTER_S, 'seconds').optional().describe('Retry-After of the 503 (default 1)'),
  })
  .strict()
  .superRefine((l, ctx) => {
    if (l.max_concurrent === undefined && l.max_body_bytes === undefined) ctx.addIssue({ code: 'custom', message: 'give max_concurrent, max_body_bytes or both' });
    if (l.max_concurrent === undefined && l.queue_wait_ms !== undefined) ctx.addIssue({ code: 'custom', path: ['queue_wait_ms'], message: 'needs max_concurrent' });
    if (l.max_concurrent === undefined && l.retry_after_s !== undefined) ctx.addIssue({ code: 'custom', path: ['retry_after_s'], message: 'needs max_concurrent' });
  })
  .describe('Concurrency, queue wait and body size limits');
export type RouteLimits = z.infer<typeof routeLimits>;

/** The one line route.ts spreads into routeInput. */
export const routeLimitsShape = { limits: routeLimits.optional() };
