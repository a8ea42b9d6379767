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
