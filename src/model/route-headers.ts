// A route's `headers`: request headers the upstream gets and response headers the client gets
// (set, add, delete), the Host header sent upstream, and TLS to the upstreams. Rendered into the
// route's reverse_proxy (src/proxy/headers.ts).
import { z } from 'zod';
import { headerName } from './route-auth.js';

/** Header operations per direction: bounds the rendered handler. */
const MAX_HEADERS = 32;
/** Longest header value taken (a typical server limit for one field is 4–8 KiB; ours stays far below). */
const MAX_VALUE = 1024;

/**
 * Placeholders a header value may use; Caddy expands `{…}` in header values, so any other brace
 * is refused: `{env.*}` or `{file.*}` would put a secret of the host into a header, and an
 * unknown one reaches the client literally.
 */
export const HEADER_PLACEHOLDERS = [
  '{http.request.host}',
  '{http.request.hostport}',
  '{http.request.scheme}',
  '{http.request.method}',
  '{http.request.uri}',
  '{http.request.uri.path}',
  '{http.request.remote.host}',
  '{http.request.remote.port}',
  '{http.request.proto}',
  '{http.reverse_proxy.upstream.hostport}',
] as const;

/** Names the proxy sets itself (they stay on, as the issue asks), or that frame the message: refused in `set`/`add`/`delete`. */
const RESERVED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip', 'host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive']);

const allowedName = headerName.superRefine((n, ctx) => {
  if (RESERVED.has(n.toLowerCase())) ctx.addIssue({ code: 'custom', message: `${n} is set by the proxy or frames the message (Host: use upstream_host)` });
});

/** Why a header value is refused, or null: printable ASCII and tabs only (no CR/LF), braces only as a listed placeholder. */
export function headerValueProblem(v: string): string | null {
  if (!/^[\x20-\x7e\t]*$/.test(v)) return 'must hold printable ASCII only (no CR, LF or other control characters)';
  let rest = v;
  for (const p of HEADER_PLACEHOLDERS) rest = rest.split(p).join('');
  if (/[{}]/.test(rest)) return `may hold { } only as one of the placeholders ${HEADER_PLACEHOLDERS.join(' ')}`;
  return null;
}

const headerValue = z
  .string()
  .max(MAX_VALUE)
  .superRefine((v, ctx) => {
    const problem = headerValueProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** Keys are checked as names (a record's keys are not checked by z.record's value schema alone). */
const headerMap = z.record(z.string(), headerValue).superRefine((m, ctx) => {
  const keys = Object.keys(m);
  if (keys.length > MAX_HEADERS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_HEADERS} headers` });
  const seen = new Set<string>();
  for (const k of keys) {
    const r = allowedName.safeParse(k);
    if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ code: 'custom', path: [k], message: issue.message });
    if (seen.has(k.toLowerCase())) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is listed twice` });
    seen.add(k.toLowerCase());
  }
});

const headerOps = z
  .object({
    set: headerMap.optional().describe('Replace (or add) these headers'),
    add: headerMap.optional().describe('Add a value beside any already there'),
    delete: z.array(allowedName).max(MAX_HEADERS).optional().describe('Remove these headers'),
  })
  .strict();

/** `keep` (default): the client's Host; `upstream`: the upstream's host:port; or this name. */
const upstreamHost = z.union([
  z.enum(['keep', 'upstream']),
  z
    .string()
    .max(253)
    .regex(/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?(:[0-9]{1,5})?$/, 'must be keep, upstream, or a host name (optionally :port)'),
]);

/** TLS to the upstreams: `off` (plain HTTP, default), `verify` (HTTPS, certificate checked), `insecure` (HTTPS, not checked). */
export const UPSTREAM_TLS = ['off', 'verify', 'insecure'] as const;

export const routeHeaders = z
  .object({
    request: headerOps.optional().describe('Headers of the request sent to the upstream'),
    response: headerOps.optional().describe('Headers of the response sent to the client'),
    upstream_host: upstreamHost.optional().describe('Host header sent upstream: keep (default), upstream (its host:port), or a name'),
    upstream_tls: z.enum(UPSTREAM_TLS).optional().describe('HTTPS to the upstreams: verify, insecure (no certificate check) or off'),
    upstream_tls_server_name: z
      .string()
      .max(253)
      .regex(/^[A-Za-z0-9.-]+$/, 'must be a host name')
      .optional()
      .describe('SNI and the name the upstream certificate must carry (default: the dialled host)'),
  })
  .strict()
  .describe('Request and response headers, the upstream Host header, and TLS to the upstreams');
export type RouteHeaders = z.infer<typeof routeHeaders>;

/** The one line route.ts spreads into routeInput. */
export const routeHeadersShape = { headers: routeHeaders.optional() };
