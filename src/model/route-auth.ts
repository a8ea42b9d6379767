// A route's `auth`: who may reach its upstreams. One kind per route: HTTP basic auth (bcrypt
// hashes), a bearer-token check, or forward auth to an external http(s) service. Caddy does the
// checking (src/proxy/auth.ts); Node never sees the proxied requests.
import { z } from 'zod';

/** Accounts one route may hold; Caddy keeps them in memory per route. */
const MAX_ACCOUNTS = 100;
/** Tokens one route may accept at once (room for a rotation: old and new). */
const MAX_TOKENS = 16;
/** Headers forward auth may copy from the auth service's answer. */
const MAX_COPY_HEADERS = 16;
/**
 * Shortest bearer token taken: 32 characters of the token alphabet carry at least ~190 bits when
 * random; a short guessable token would make the check decoration.
 */
export const MIN_TOKEN_LENGTH = 32;

/** bcrypt in Modular Crypt Format (`$2a$`/`$2b$`/`$2y$`, cost 04–31, 53 characters of salt+hash): what Caddy's `bcrypt` compares. */
export const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/;

/** User names Caddy can match: no `:` (basic auth splits on it), no `{`/`}` (Caddy expands placeholders in them). */
const username = z.string().min(1).max(64).regex(/^[A-Za-z0-9._@+-]+$/, 'must hold only letters, digits and . _ @ + -');

/**
 * An account as a client sends it: `password` (hashed by the API with bcrypt, never stored) or
 * `hash` (a bcrypt hash, e.g. from `caddy hash-password`). Neither: only in a state file, where
 * the stored account's hash is kept (an export leaves hashes out).
 */
export const basicAccount = z
  .object({
    username,
    password: z.string().min(1).max(72, 'bcrypt uses at most 72 bytes').optional(),
    hash: z.string().regex(BCRYPT_HASH, 'must be a bcrypt hash ($2a$/$2b$/$2y$, as `caddy hash-password` prints)').optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.password !== undefined && a.hash !== undefined) ctx.addIssue({ code: 'custom', path: ['hash'], message: 'give password or hash, not both' });
    if (a.password !== undefined && Buffer.byteLength(a.password) > 72) ctx.addIssue({ code: 'custom', path: ['password'], message: 'bcrypt uses at most 72 bytes' });
  });
export type BasicAccount = z.infer<typeof basicAccount>;

/** Bearer tokens: RFC 6750 token characters without `*` (Caddy's header matcher takes it as a wildcard) and `=` padding. */
export const bearerToken = z
  .string()
  .min(MIN_TOKEN_LENGTH, `must be at least ${MIN_TOKEN_LENGTH} characters`)
  .max(256)
  .regex(/^[A-Za-z0-9._~+/-]+$/, 'must hold only letters, digits and . _ ~ + / -');

/** A header field name (RFC 9110 token). */
export const headerName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be a header name (letters, digits and ! # $ % & \' * + . ^ _ ` | ~ -; no spaces, CR or LF)');

/** Header names forward auth must not copy: they would let the auth service rewrite how the request is routed or framed. */
const NOT_COPIED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer']);

/** Why `v` is not a usable forward-auth URL, or null: http(s) only, a host, no user info, no fragment. */
export function forwardUrlProblem(v: string): string | null {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return 'must be an absolute http:// or https:// URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `must be an http:// or https:// URL, not ${u.protocol}`;
  if (!u.hostname) return 'must name a host';
  if (u.username || u.password) return 'must not hold user info (it would be kept in the config)';
  if (u.hash) return 'must not hold a fragment';
  let decoded: string;
  try {
    decoded = decodeURIComponent(u.pathname + u.search);
  } catch {
    return 'must not hold a malformed %-escape';
  }
  if (/[{}\s]/.test(decoded)) return 'must not hold { } or white space';
  return null;
}

export const forwardAuth = z
  .object({
    url: z
      .string()
      .max(2048)
      .superRefine((v, ctx) => {
        const problem = forwardUrlProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .describe('The auth service: http(s)://host[:port]/path; asked GET with X-Forwarded-Method/-Uri, a 2xx lets the request through'),
    copy_headers: z
      .array(headerName)
      .max(MAX_COPY_HEADERS)
      .default([])
      .superRefine((names, ctx) => {
        names.forEach((n, i) => {
          if (NOT_COPIED.has(n.toLowerCase())) ctx.addIssue({ code: 'custom', path: [i], message: `${n} cannot be copied` });
        });
      })
      .describe("Headers copied from the auth service's 2xx answer onto the request to the upstream"),
    tls_insecure_skip_verify: z.boolean().default(false).describe("https only: do not verify the auth service's certificate"),
  })
  .strict();

export const routeAuth = z
  .object({
    basic: z
      .object({
        realm: z.string().min(1).max(64).regex(/^[A-Za-z0-9 ._-]+$/, 'must hold only letters, digits, spaces and . _ -').optional(),
        accounts: z.array(basicAccount).min(1, 'at least one account is required').max(MAX_ACCOUNTS),
      })
      .strict()
      .superRefine((b, ctx) => {
        const seen = new Set<string>();
        b.accounts.forEach((a, i) => {
          if (seen.has(a.username)) ctx.addIssue({ code: 'custom', path: ['accounts', i, 'username'], message: `${a.username} is listed twice` });
          seen.add(a.username);
        });
      })
      .optional(),
    bearer: z
      .object({ tokens: z.array(bearerToken).min(1, 'at least one token is required').max(MAX_TOKENS).optional() })
      .strict()
      .optional(),
    forward: forwardAuth.optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    const kinds = (['basic', 'bearer', 'forward'] as const).filter((k) => a[k] !== undefined);
    if (kinds.length !== 1) ctx.addIssue({ code: 'custom', message: kinds.length ? `give one of basic, bearer, forward (not ${kinds.join(' and ')})` : 'give one of basic, bearer, forward' });
  })
  .describe('Who may reach the upstreams: basic (bcrypt accounts), bearer (tokens), or forward (an auth service)');
export type RouteAuth = z.infer<typeof routeAuth>;

/** The one line route.ts spreads into routeInput. */
export const routeAuthShape = { auth: routeAuth.optional() };

/**
 * The fields of `auth` that hold secrets and where, for a request body that must carry them
 * (a new route, or a state-file entry without a stored one): `[field path, message]`.
 */
export function missingSecrets(auth: RouteAuth | undefined | null, prefix = 'auth'): [string, string][] {
  const out: [string, string][] = [];
  auth?.basic?.accounts.forEach((a, i) => {
    if (a.password === undefined && a.hash === undefined) out.push([`${prefix}.basic.accounts.${i}.password`, 'give password or hash']);
  });
  if (auth?.bearer && !auth.bearer.tokens) out.push([`${prefix}.bearer.tokens`, 'give at least one token']);
  return out;
}

/** The auth as the API, exports and logs show it: user names and token fingerprints, never a password, hash or token. */
export interface PublicAuth {
  basic?: { realm?: string; accounts: { username: string }[] };
  bearer?: { tokens: number };
  forward?: z.infer<typeof forwardAuth>;
}

export function publicAuth(auth: RouteAuth): PublicAuth {
  if (auth.basic) return { basic: { ...(auth.basic.realm ? { realm: auth.basic.realm } : {}), accounts: auth.basic.accounts.map((a) => ({ username: a.username })) } };
  if (auth.bearer) return { bearer: { tokens: auth.bearer.tokens?.length ?? 0 } };
  return { forward: auth.forward! };
}

/** The auth as a state file carries it: secrets left out (apply keeps the stored ones). */
export function exportedAuth(auth: RouteAuth): RouteAuth {
  if (auth.basic) return { basic: { ...(auth.basic.realm ? { realm: auth.basic.realm } : {}), accounts: auth.basic.accounts.map((a) => ({ username: a.username })) } };
  if (auth.bearer) return { bearer: {} };
  return auth;
}

/**
 * `given` with the secrets it leaves out taken from `stored` (same user name; the bearer tokens
 * when `given` has none). A state file applied after an export keeps the route's credentials.
 */
export function withStoredAuth(given: RouteAuth, stored: RouteAuth | null | undefined): RouteAuth {
  if (given.basic) {
    const hashes = new Map((stored?.basic?.accounts ?? []).map((a) => [a.username, a.hash]));
    return { ...given, basic: { ...given.basic, accounts: given.basic.accounts.map((a) => (a.password === undefined && a.hash === undefined && hashes.get(a.username) ? { username: a.username, hash: hashes.get(a.username)! } : a)) } };
  }
  if (given.bearer && !given.bearer.tokens && stored?.bearer?.tokens) return { bearer: { tokens: stored.bearer.tokens } };
  return given;
}

/** `host:port` Caddy dials for a forward-auth URL. */
export function forwardDial(url: URL): string {
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return `${url.hostname}:${port}`;
}
