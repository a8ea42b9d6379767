// Reverse-proxy routes: explicit ones from /api/v1/routes, and the ones proxied records imply.
import { z } from 'zod';
import { ACME_HINT, acmeNameProblem, hostNameProblem } from './certname.js';
import { nameProblem, upstream } from './name.js';
import { routeAuthShape, type PublicAuth, type RouteAuth } from './route-auth.js';
import { routeHeadersShape, type RouteHeaders } from './route-headers.js';
import { routeLimitsShape, type RouteLimits } from './route-limits.js';
import { listenGroup, type RouteListen } from './route-listen.js';
import { backendsFields, backendsIssues, type Backends } from './route-backends.js';
import { balancingFields, type Balancing } from './route-balancing.js';
import { healthFields, type Health } from './route-health.js';

/** TLS for a proxied host: none, Caddy's local CA, or a public ACME CA. */
export const TLS_MODES = ['off', 'internal', 'acme'] as const;
export type TlsMode = (typeof TLS_MODES)[number];

/** Hosts or upstreams one route may list; bounds the rendered config per route. */
const MAX_ITEMS = 100;

export const hostName = z
  .string()
  .max(254)
  .superRefine((v, ctx) => {
    const problem = nameProblem(v, { wildcard: true });
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform((v) => v.toLowerCase().replace(/\.$/, ''))
  .describe('Host name served by the route (wildcard * allowed as the leftmost label)');

/**
 * Why a path prefix is unusable, or null. Caddy matches the cleaned request path (no `//`, `.`
 * or `..` segments), so a prefix holding one would never match; and the stored form must parse
 * again ("//" once became "", which no schema accepts).
 */
export function pathProblem(v: string): string | null {
  if (v === '/') return null;
  const segments = v.slice(1).split('/');
  if (segments.at(-1) === '') segments.pop(); // one trailing "/" is dropped
  if (segments.some((s) => s === '')) return 'must not hold an empty segment ("//")';
  if (segments.some((s) => s === '.' || s === '..')) return 'must not hold "." or ".." segments (Caddy matches the cleaned path)';
  return null;
}

// Letters, digits and - . _ ~ / only: nothing that could break out of Caddy JSON matchers or a Caddyfile.
export const pathPrefix = z
  .string()
  .max(200)
  .regex(/^\/[A-Za-z0-9._~/-]*$/, 'must start with "/" and hold only letters, digits and - . _ ~ /')
  .superRefine((v, ctx) => {
    const problem = pathProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform((v) => (v.length > 1 && v.endsWith('/') ? v.slice(0, -1) : v));

export const routeInput = z
  .object({
    hosts: z.array(hostName).min(1, 'at least one host is required').max(MAX_ITEMS),
    path: pathPrefix.optional().describe('Path prefix, e.g. /app; the whole host when omitted'),
    upstreams: z.array(upstream).min(1, 'at least one upstream is required').max(MAX_ITEMS).describe('host:port; a host inside our zones is resolved through our records'),
    tls: z.enum(TLS_MODES).default('off'),
    health_path: pathPrefix.optional().describe('Active health check: GET this path on each upstream'),
    ...routeAuthShape,
    ...routeHeadersShape,
    ...routeLimitsShape,
    listen: listenGroup.optional(),
    ...balancingFields,
    ...backendsFields,
    ...healthFields,
  })
  .strict();
export type RouteInput = z.infer<typeof routeInput>;

/**
 * A route as clients send it: routeInput plus the rules for hosts that get certificates (certname.ts).
 * Not used to read stored rows, so a route stored before these rules still loads.
 */
export const routeBody = routeInput.superRefine((r, ctx) => {
  for (const issue of backendsIssues(r.upstreams, r.backends)) ctx.addIssue({ code: 'custom', ...issue });
  // Both set how long Caddy keeps a request looking for a backend: with a concurrency limit that is the queue wait.
  if (r.limits?.max_concurrent !== undefined && r.balancing?.try_duration !== undefined)
    ctx.addIssue({ code: 'custom', path: ['balancing', 'try_duration'], message: 'cannot be combined with limits.max_concurrent: a request then waits limits.queue_wait_ms for a free backend (failover to another backend still follows balancing.retries)' });
  r.hosts.forEach((host, i) => {
    const problem = hostNameProblem(host);
    if (problem) ctx.addIssue({ code: 'custom', path: ['hosts', i], message: problem });
  });
  if (r.tls === 'acme')
    for (const host of r.hosts) {
      const problem = acmeNameProblem(host);
      if (problem) ctx.addIssue({ code: 'custom', path: ['tls'], message: `acme: ${problem}; ${ACME_HINT}` });
    }
});

/**
 * A fixed answer Caddy serves itself (its `static_response` handler) instead of proxying: for
 * text this project generates from validated fields (the MTA-STS policy of a mail domain), never
 * from a client's text. Printable ASCII and CR LF only, no `{` `}` (Caddy would expand a
 * placeholder in it), and bounded.
 */
export const STATIC_CONTENT_TYPES = ['text/plain; charset=utf-8'] as const;
/** The largest body a static route may carry (an MTA-STS policy with a few mx lines is ~100 bytes). */
const MAX_STATIC_BODY = 4096;
export const staticResponse = z
  .object({
    status: z.literal(200),
    content_type: z.enum(STATIC_CONTENT_TYPES),
    body: z
      .string()
      .max(MAX_STATIC_BODY)
      .regex(/^[\x20-\x7a|~\r\n]*$/, 'must hold printable ASCII and line breaks only, no { or }'),
  })
  .strict();
export type StaticResponse = z.infer<typeof staticResponse>;

/** One reverse-proxy route, every field validated: what the proxy renders (DesiredRoute) and the core of a stored one. */
export interface RouteShape {
  /** Stable id: `api:<id>` for /api/v1/routes, `record:<fqdn without dot>` for proxied records. */
  id: string;
  /** Lower-case host names without trailing dot; `*.x` allowed as the leftmost label. */
  hosts: string[];
  /** Path prefix (`/app`), or null for the whole host. */
  path: string | null;
  /** Dial addresses `host:port` / `[v6]:port`; several → load-balanced with passive health checks. */
  upstreams: string[];
  tls: TlsMode;
  /** Active health check path (GET, 2xx/3xx = healthy) or null. */
  health_path: string | null;
  /** Load balancing (model/route-balancing.ts); absent: round robin. A non-default one makes the route explicit. */
  balancing?: Balancing;
  /** Per-upstream weight / by-hand dead flag, keyed by the upstream as written (model/route-backends.ts). Stored routes and records only. */
  backends?: Backends;
  /** Passive and active health checks (model/route-health.ts); absent: the defaults (passive with several upstreams, `health_path`). */
  health?: Health;
  /** Render input only (buildDesired): dial → weight > 1; such a dial is listed that many times. Dead backends are already left out of `upstreams`. */
  weights?: Record<string, number>;
  /** Caddy answers this itself instead of proxying (`upstreams` is then empty); never set from an API body. */
  respond?: StaticResponse;
  /** Who may reach the upstreams (route-auth.ts; stored with hashes/tokens, never passwords); absent: anyone. */
  auth?: RouteAuth;
  /** Request/response headers, upstream Host and TLS to the upstreams (route-headers.ts); absent: the defaults. */
  headers?: RouteHeaders;
  /** Concurrency, queue wait and body size limits (route-limits.ts); absent: none. */
  limits?: RouteLimits;
  /** An extra port the route is served on (route-listen.ts); absent: only http_port / https_port. */
  listen?: RouteListen;
}

/** An explicit route as stored (`api:<id>`): routeInput with its defaults filled in. */
export interface StoredRoute extends RouteShape {
  created_at: string;
  updated_at: string;
}

/** A stored row that does not parse: what can be shown of it (a StoredRoute), and why it is not served. */
export interface BrokenRoute extends StoredRoute {
  reason: string;
}

export const ROUTE_STATUSES = ['pending', 'active', 'error'] as const;
export type RouteStatus = (typeof ROUTE_STATUSES)[number];

/** What the proxy reports for a route it tried to serve (`pending` is only ever shown, never reported). */
export interface AppliedStatus {
  status: Exclude<RouteStatus, 'pending'>;
  error: string | null;
}

/**
 * How a route is served. `dynamic`: a plain name (whole host, address upstreams, no handler of its
 * own) answered by Caddy's static catch-all route through DNS, so changing it needs no Caddy
 * reload. `explicit`: its own route in the config Caddy loads.
 */
export const ROUTE_MODES = ['dynamic', 'explicit'] as const;
export type RouteMode = (typeof ROUTE_MODES)[number];

/** A route as the API shows it. `source: record` routes follow their record and are changed through it. */
export interface Route {
  id: string;
  source: 'api' | 'record';
  hosts: string[];
  path: string | null;
  upstreams: string[];
  tls: TlsMode;
  health_path: string | null;
  /** Its auth without secrets (user names, a token count): never a password, hash or token. */
  auth?: PublicAuth;
  headers?: RouteHeaders;
  limits?: RouteLimits;
  listen?: RouteListen;
  balancing?: Balancing;
  backends?: Backends;
  health?: Health;
  /** Each upstream's state as Caddy reports it, merged with the dead flag (src/proxy/backend-health.ts); only when the controller can ask Caddy. */
  backend_health?: { address: string; state: 'up' | 'failing' | 'down' | 'dead' | 'unknown'; fails: number; requests: number; reason?: string; since?: string; next_probe_at?: string }[];
  /** Absent for a stored row that does not parse (never served). */
  mode?: RouteMode;
  status: RouteStatus;
  error: string | null;
  created_at: string;
  updated_at: string;
}
