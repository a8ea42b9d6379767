// A route's `auth` (src/model/route-auth.ts) as Caddy 2.6.2 handlers placed before the route's
// reverse_proxy: Caddy checks every request, Node never sees them. Checked against Caddy's source
// (tag v2.6.2): caddyauth/basicauth.go, caddyhttp/matchers.go (header matcher),
// reverseproxy/forwardauth/caddyfile.go (the JSON the forward_auth shortcut expands to).
import bcrypt from 'bcryptjs';
import { isIP } from 'node:net';
import { forwardDial, type RouteAuth } from '../model/route-auth.js';
import type { RouteHeaders } from '../model/route-headers.js';

export { forwardDial };

type Json = Record<string, unknown>;

/**
 * bcrypt cost of hashes the API makes: 2^12 rounds (~0.2-0.3 s here in JS, once per write; Caddy
 * pays it once per distinct password thanks to `hash_cache`). Hashes given by a client keep theirs.
 */
export const BCRYPT_COST = 12;
/** The realm basic auth names when the route gives none (Caddy's own default). */
export const DEFAULT_REALM = 'restricted';
/** Body of the 401 a request without a valid bearer token gets. */
export const BEARER_DENIED_BODY = 'unauthorized: a valid bearer token is required\n';

/**
 * `input` with every basic-auth password replaced by its bcrypt hash (async: bcryptjs yields to the
 * event loop). A password that matches `stored`'s hash for the same user keeps that hash, so
 * applying the same state file again changes nothing.
 */
export async function hashPasswords<T extends { auth?: RouteAuth | undefined }>(input: T, stored?: RouteAuth | null, cost = BCRYPT_COST): Promise<T> {
  const basic = input.auth?.basic;
  if (!basic?.accounts.some((a) => a.password !== undefined)) return input;
  const had = new Map((stored?.basic?.accounts ?? []).map((a) => [a.username, a.hash]));
  const hashOf = async (username: string, password: string): Promise<string> => {
    const old = had.get(username);
    if (old && (await bcrypt.compare(password, old))) return old;
    return bcrypt.hash(password, cost);
  };
  const accounts = await Promise.all(basic.accounts.map(async (a) => (a.password === undefined ? a : { username: a.username, hash: await hashOf(a.username, a.password) })));
  return { ...input, auth: { ...input.auth, basic: { ...basic, accounts } } };
}

/** Deep copy with object keys in sorted order (the renderer's canonical form). */
export function sortedKeys<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(sortedKeys) as T;
  const obj = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(obj).sort()) if (obj[k] !== undefined) out[k] = sortedKeys(obj[k]);
  return out as T;
}

/** Basic auth: bcrypt accounts, `hash_cache` on (without it every request pays a bcrypt compare). */
function basicHandlers(basic: NonNullable<RouteAuth['basic']>): Json[] {
  return [
    {
      handler: 'authentication',
      providers: {
        http_basic: {
          // hash only: the API stores no password; a hash starting with `$` is taken as is (no base64).
          accounts: basic.accounts.map((a) => ({ username: a.username, password: a.hash })),
          hash: { algorithm: 'bcrypt' },
          hash_cache: {},
          realm: basic.realm ?? DEFAULT_REALM,
        },
      },
    },
  ];
}

/** The upstream never sees the client's credentials (the handler form; see withoutCredentials). */
function stripAuthorization(): Json {
  return { handler: 'headers', request: { delete: ['Authorization'] } };
}

const isAuthorization = (name: string) => name.toLowerCase() === 'authorization';

/**
 * Basic and bearer auth: the upstream never sees the client's Authorization. Removed in the
 * route's reverse_proxy header ops (one more `delete`), not by a `headers` handler of its own: a
 * handler more per request cost about 5 % of Caddy's throughput in bench/proxy. Caddy applies
 * add, then set, then delete (headers.go `ApplyTo`), so a route that sets Authorization for its
 * upstream replaces the client's anyway (no delete: it would remove the route's own value), and
 * one that adds it keeps the separate handler, which strips before the add (`before`).
 * `proxy` is shared and never mutated: a changed one is a new object.
 */
export function withoutCredentials(proxy: Json, auth: RouteAuth | undefined, headers: RouteHeaders | undefined): { proxy: Json; before: Json[] } {
  if (!auth?.basic && !auth?.bearer) return { proxy, before: [] };
  if (Object.keys(headers?.request?.add ?? {}).some(isAuthorization)) return { proxy, before: [stripAuthorization()] };
  if (Object.keys(headers?.request?.set ?? {}).some(isAuthorization)) return { proxy, before: [] };
  const ops = (proxy.headers as { request?: { delete?: string[] } } | undefined) ?? {};
  const request = { ...ops.request, delete: [...(ops.request?.delete ?? []).filter((h) => !isAuthorization(h)), 'Authorization'] };
  return { proxy: sortedKeys({ ...proxy, headers: { ...ops, request } }), before: [] };
}

/**
 * Bearer tokens: 2.6.2 has no bearer handler, so a subroute answers 401 to any request whose
 * Authorization is not exactly `Bearer <token>` for one of the tokens. The header matcher compares
 * whole values (no `*` in a token, so never a wildcard; no `{` so no placeholder).
 */
function bearerHandlers(bearer: NonNullable<RouteAuth['bearer']>): Json[] {
  const allowed = (bearer.tokens ?? []).flatMap((t) => [`Bearer ${t}`, `bearer ${t}`]);
  return [
    {
      handler: 'subroute',
      routes: [
        {
          match: [{ not: [{ header: { Authorization: allowed } }] }],
          handle: [
            {
              handler: 'static_response',
              status_code: 401,
              headers: { 'Content-Type': ['text/plain; charset=utf-8'], 'Www-Authenticate': [`Bearer realm="${DEFAULT_REALM}"`] },
              body: BEARER_DENIED_BODY,
            },
          ],
          terminal: true,
        },
      ],
    },
  ];
}

/** A copied header whose placeholder Caddy could not expand (the auth service did not send it). */
const UNEXPANDED = '^\\{http\\.reverse_proxy\\.header\\.';


/**
 * Forward auth, the JSON Caddy's `forward_auth` shortcut expands to: a reverse_proxy to the auth
 * service with the method rewritten to GET (no body sent) and the URI to the service's path,
 * `X-Forwarded-Method`/`-Uri` added; a 2xx answer runs the `handle_response` route (copy the chosen
 * headers onto the request) and falls through to the route's own reverse_proxy; any other answer
 * is copied to the client (the service's 401/403/redirect). The chosen headers are deleted from
 * the client's request first, so a client cannot send them itself when the service leaves them out.
 */
function forwardHandlers(forward: NonNullable<RouteAuth['forward']>): Json[] {
  const url = new URL(forward.url);
  const copy = [...new Set(forward.copy_headers)];
  const transport: Json = { protocol: 'http' };
  if (url.protocol === 'https:')
    transport.tls = {
      ...(isIP(url.hostname.replace(/^\[(.*)\]$/, '$1')) === 0 ? { server_name: url.hostname } : {}),
      ...(forward.tls_insecure_skip_verify ? { insecure_skip_verify: true } : {}),
    };
  const out: Json[] = [];
  if (copy.length) out.push({ handler: 'headers', request: { delete: copy } });
  out.push({
    handler: 'reverse_proxy',
    handle_response: [
      {
        match: { status_code: [2] },
        // At least one route: reverse_proxy skips a response handler without routes. 2.6.2's
        // headers handler leaves an unknown placeholder as it is (ReplaceKnown), so a header the
        // service did not send would reach the upstream as the literal `{http.reverse_proxy…}`:
        // such a value is deleted again.
        routes: [
          { handle: [{ handler: 'headers', request: { set: Object.fromEntries(copy.map((h) => [h, [`{http.reverse_proxy.header.${canonicalHeader(h)}}`]])) } }] },
          ...copy.map((h) => ({ match: [{ header_regexp: { [h]: { pattern: UNEXPANDED } } }], handle: [{ handler: 'headers', request: { delete: [h] } }] })),
        ],
      },
    ],
    headers: { request: { set: { 'X-Forwarded-Method': ['{http.request.method}'], 'X-Forwarded-Uri': ['{http.request.uri}'] } } },
    rewrite: { method: 'GET', uri: `${url.pathname}${url.search}` },
    transport,
    upstreams: [{ dial: forwardDial(url) }],
  });
  return out;
}

/** Go's http.CanonicalHeaderKey for a token: the replacer keys response headers by it. */
export function canonicalHeader(name: string): string {
  return name
    .toLowerCase()
    .split('-')
    .map((p) => (p ? p[0]!.toUpperCase() + p.slice(1) : p))
    .join('-');
}

/** Handlers that run before the route's reverse_proxy (keys sorted), or [] without auth. */
export function authHandlers(auth: RouteAuth | undefined): Json[] {
  if (!auth) return [];
  const handlers = auth.basic ? basicHandlers(auth.basic) : auth.bearer ? bearerHandlers(auth.bearer) : auth.forward ? forwardHandlers(auth.forward) : [];
  return handlers.map(sortedKeys);
}

/** One line for the Caddyfile export: what the route checks, without a hash or token. */
export function authSummary(auth: RouteAuth | undefined): string | null {
  if (!auth) return null;
  if (auth.basic) return `basic auth: ${auth.basic.accounts.map((a) => a.username).join(', ')} (bcrypt hashes not exported)`;
  if (auth.bearer) return `bearer token check: ${auth.bearer.tokens?.length ?? 0} token(s) (not exported)`;
  return `forward auth: ${auth.forward!.url}${auth.forward!.copy_headers.length ? ` copying ${auth.forward!.copy_headers.join(', ')}` : ''}`;
}
