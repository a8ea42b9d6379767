// API token scopes: what a bearer token may do. Ordered: each scope includes the ones before it.
import { z } from 'zod';

/**
 * - `read`: GET only (the token list excepted).
 * - `write`: records, routes, zones, the legacy endpoints, mail rules and the mail queue.
 * - `admin`: everything, including tokens, mail providers, accounts, keys, DKIM and the STARTTLS
 *   certificate, and routes or records whose upstreams reach this host or a metadata service.
 */
export const TOKEN_SCOPES = ['read', 'write', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/** Scope of a token created without one: enough to manage names and routes, not to mint tokens. */
export const DEFAULT_TOKEN_SCOPE: TokenScope = 'write';

export const tokenScope = z.enum(TOKEN_SCOPES).describe('read: GET only; write: records, routes, zones, mail rules and queue; admin: everything');

/** Whether a token of scope `have` may do what needs `need`. */
export const scopeAllows = (have: TokenScope, need: TokenScope): boolean => TOKEN_SCOPES.indexOf(have) >= TOKEN_SCOPES.indexOf(need);

export const tokenName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'may hold letters, digits, ".", "-", "_" (max 63)');

/** Shortest DNSPROXY_ADMIN_TOKEN taken: 24 random base64 characters are 144 bits, out of reach of guessing. */
export const MIN_ADMIN_TOKEN_CHARS = 24;

/** Why a DNSPROXY_ADMIN_TOKEN value is refused, or null. It must also fit a Bearer header. */
export function adminTokenProblem(value: string): string | null {
  if (!/^[\x21-\x7e]*$/.test(value)) return 'must be printable ASCII without spaces (it is sent as "Authorization: Bearer <token>")';
  if (value.length < MIN_ADMIN_TOKEN_CHARS)
    return `is ${value.length} characters; use at least ${MIN_ADMIN_TOKEN_CHARS} (e.g. the output of: openssl rand -base64 32)`;
  return null;
}
