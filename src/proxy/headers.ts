// A route's `headers` (src/model/route-headers.ts) rendered into its reverse_proxy handler:
// request ops on the request sent upstream (reverse_proxy `headers.request`, applied after Caddy
// set X-Forwarded-For/-Proto/-Host, which stay on), response ops on the upstream's answer
// (`headers.response`), the upstream Host header, and `transport.tls` for HTTPS upstreams.
// Checked against Caddy's source (tag v2.6.2): reverseproxy/reverseproxy.go (headers, the
// `{http.reverse_proxy.upstream.hostport}` placeholder), reverseproxy/httptransport.go (TLSConfig).
import type { RouteHeaders } from '../model/route-headers.js';

type Json = Record<string, unknown>;
type Ops = NonNullable<RouteHeaders['request']>;

const asLists = (m: Record<string, string> | undefined): Record<string, string[]> | undefined => (m && Object.keys(m).length ? Object.fromEntries(Object.entries(m).map(([k, v]) => [k, [v]])) : undefined);

/** Caddy's HeaderOps for `ops`, with `set` merged over `base` (ours win: X-Real-IP, Host). */
function headerOps(ops: Ops | undefined, base: Record<string, string[]> = {}): Json | undefined {
  const set = { ...asLists(ops?.set), ...base };
  const out: Json = {};
  const add = asLists(ops?.add);
  if (add) out.add = add;
  if (ops?.delete?.length) out.delete = [...new Set(ops.delete)];
  if (Object.keys(set).length) out.set = set;
  return Object.keys(out).length ? out : undefined;
}

/** The Host value sent upstream, or undefined to keep the client's (Caddy's default). */
function hostValue(h: RouteHeaders): string | undefined {
  if (h.upstream_host === undefined || h.upstream_host === 'keep') return undefined;
  return h.upstream_host === 'upstream' ? '{http.reverse_proxy.upstream.hostport}' : h.upstream_host;
}

/**
 * `proxy` (a route's reverse_proxy handler, shared: never mutated) with `headers` applied, as a
 * new object; `proxy` itself without them.
 */
export function withHeaders(proxy: Json, headers: RouteHeaders | undefined): Json {
  if (!headers) return proxy;
  const old = (proxy.headers as { request?: { set?: Record<string, string[]> } } | undefined) ?? {};
  const host = hostValue(headers);
  const request = headerOps(headers.request, { ...old.request?.set, ...(host ? { Host: [host] } : {}) });
  const response = headerOps(headers.response);
  const out: Json = { ...proxy, headers: { ...(request ? { request } : {}), ...(response ? { response } : {}) } };
  if (headers.upstream_tls && headers.upstream_tls !== 'off') {
    const tls: Json = {};
    if (headers.upstream_tls === 'insecure') tls.insecure_skip_verify = true;
    if (headers.upstream_tls_server_name) tls.server_name = headers.upstream_tls_server_name;
    out.transport = { ...(proxy.transport as Json | undefined), tls };
  }
  return out;
}

/** One line for the Caddyfile export: which headers the route changes (names only). */
export function headersSummary(h: RouteHeaders | undefined): string | null {
  if (!h) return null;
  const ops = (dir: string, o: Ops | undefined) =>
    (['set', 'add'] as const).flatMap((k) => (o?.[k] && Object.keys(o[k]).length ? [`${dir} ${k} ${Object.keys(o[k]).join(', ')}`] : [])).concat(o?.delete?.length ? [`${dir} delete ${o.delete.join(', ')}`] : []);
  const parts = [...ops('request', h.request), ...ops('response', h.response)];
  if (h.upstream_host && h.upstream_host !== 'keep') parts.push(`upstream host ${h.upstream_host}`);
  if (h.upstream_tls && h.upstream_tls !== 'off') parts.push(`upstream tls ${h.upstream_tls}`);
  return parts.length ? `headers: ${parts.join('; ')}` : null;
}
