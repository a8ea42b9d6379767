// Health checks of a route's backends (issue 15, "Health"): passive (judged from real requests)
// and active (probes), one optional sub-object of a route (`health`) or of a proxied record's
// `proxy`. Rendered by src/proxy/health.ts into Caddy 2.6.2's reverse_proxy `health_checks`.
import { z } from 'zod';
import { duration } from './route-balancing.js';

/** Shortest probe interval: Caddy probes every backend of the route each interval; below a second that is load, not information. */
export const MIN_INTERVAL_MS = 1000;
/** Longest interval / durations accepted: an hour (a longer one would hide a dead backend for longer than anyone expects). */
export const MAX_DURATION_MS = 3_600_000;
/** How often a backend taken out after failed requests is probed back when `recovery_interval` is not given (the default). */
export const DEFAULT_RECOVERY_INTERVAL = '60s';
/** Most failures counted before a backend is skipped (Caddy counts each within fail_duration). */
export const MAX_FAILS = 100;

const status = z.number().int('must be a whole number').min(100, 'must be an HTTP status (100-599)').max(599, 'must be an HTTP status (100-599)');

export const passiveHealth = z
  .object({
    max_fails: z.number().int('must be a whole number').min(1, 'must be at least 1').max(MAX_FAILS).optional().describe('Failures within fail_duration that take a backend out (default 1)'),
    fail_duration: duration(MAX_DURATION_MS, MIN_INTERVAL_MS).optional().describe('How long a failure counts (default 30s)'),
    unhealthy_status: z.array(status).max(20).optional().describe('Response statuses that count as a failure, e.g. [502, 503]'),
    unhealthy_latency: duration(MAX_DURATION_MS, 1).optional().describe('A response slower than this counts as a failure'),
  })
  .strict();

export const activeHealth = z
  .object({
    // Letters, digits and - . _ ~ / only, as a route path: nothing that could break out of Caddy's JSON or a URI.
    path: z.string().max(200).regex(/^\/[A-Za-z0-9._~/-]*$/, 'must start with "/" and hold only letters, digits and - . _ ~ /').describe('GET this path on each backend'),
    interval: duration(MAX_DURATION_MS, MIN_INTERVAL_MS).optional().describe('How often (at least 1s; default 10s)'),
    timeout: duration(MAX_DURATION_MS, 1).optional().describe('How long a probe may take (default 5s)'),
    expected_status: status.optional().describe('The status a healthy backend answers (default: any 2xx or 3xx)'),
  })
  .strict();

export const healthSchema = z
  .object({
    passive: passiveHealth.optional(),
    active: activeHealth.optional(),
    recovery_interval: duration(MAX_DURATION_MS, MIN_INTERVAL_MS)
      .optional()
      .describe('How often the controller probes a backend it took out after failed requests (routes with passive health and no active check; at least 1s; default 60s)'),
  })
  .strict()
  .describe('Health checks of the backends: passive (from real requests) and active (probes)');
export type Health = z.infer<typeof healthSchema>;

/** The route-input fields of this group, spread into routeInput / the record proxy with one line. */
export const healthFields = { health: healthSchema.optional() };
