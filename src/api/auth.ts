// Bearer-token check on every route except the open probes and the API docs, and the scope each route needs:
// `config: { scope }` on the route, else `read` for GET/HEAD and `write` for the rest. Checks that
// depend on the body (upstreams reaching this host) are made where the write happens (mutate.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { scopeAllows, type TokenScope } from '../model/token.js';
import type { AccountKeys } from '../mail/credentials/account-keys.js';
import type { TokenStore } from '../store/tokens.js';

export type { AccountKeys };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least token scope the route needs (default: read for GET/HEAD, write otherwise). */
    scope?: TokenScope;
    /** A mail account's API key may call this route (for its own account only: mail-account.ts). */
    account?: boolean;
  }
  interface FastifyRequest {
    /** The request's token, set by the auth hook (null on the open probes). */
    token: { id: string; scope: TokenScope } | null;
    /** The mail account whose API key authenticated the request (null: a token, or none). */
    mailAccount: string | null;
  }
}

/** Routes a load balancer, supervisor or Prometheus reaches without a token. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/health', '/ready', '/metrics']);

/**
 * The API documentation a browser loads before it can hold a token: Swagger UI (its page, JS,
 * CSS, initializer, under DOCS_PREFIX) and the OpenAPI document it renders (`/docs/json`,
 * `/docs/yaml`, `/openapi.json`). They describe the operations and schemas, which are the
 * public source's, and hold no data; the page's Authorize button then sends the bearer token
 * with every call it makes, and those calls are checked like any other. Matched on the route
 * Fastify chose, never on the raw URL, so `/docs/../api/v1/…` or an unknown `/docs/…` path is not open.
 */
export const DOCS_PREFIX = '/docs';
export const isOpenDocsRoute = (method: string, route: string | undefined): boolean =>
  (method === 'GET' || method === 'HEAD') &&
  route !== undefined &&
  (route === '/openapi.json' || route === DOCS_PREFIX || route.startsWith(`${DOCS_PREFIX}/`));

/** The bearer token a request carries, if any. */
export const bearerOf = (req: FastifyRequest): string | undefined => /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];

/** 403 naming the scope needed and the one the token has. */
export function forbidden(need: TokenScope, have: TokenScope, what: string): AppError {
  return new AppError('forbidden', `${what} needs a token with scope ${need} (this token has scope ${have})`);
}

/** Throws 403 unless the request's token has at least `need`. */
export function requireScope(req: FastifyRequest, need: TokenScope, what: string): void {
  const have = req.token?.scope ?? 'read';
  if (!scopeAllows(have, need)) throw forbidden(need, have, what);
}

export function installAuth(app: FastifyInstance, tokens: TokenStore, keys?: AccountKeys): void {
  app.decorateRequest('token', null);
  app.decorateRequest('mailAccount', null);
  app.addHook('onRequest', async (req, reply) => {
    if (OPEN_PATHS.has(req.url.split('?')[0] ?? '')) return;
    if (isOpenDocsRoute(req.method, req.routeOptions.url)) return;
    const secret = bearerOf(req);
    const token = secret ? tokens.authenticate(secret) : undefined;
    const key = !token && secret && keys ? keys.account(secret) : undefined;
    if (key) {
      const wait = keys!.take(key.keyId);
      if (wait !== null) {
        void reply.header('retry-after', String(wait));
        throw new AppError('rate_limited', `this API key made more than ${keys!.perMinute} requests a minute; try again in ${wait} s`);
      }
      req.mailAccount = key.account;
      if (req.routeOptions.url === undefined) return;
      if (!req.routeOptions.config.account)
        throw new AppError('forbidden', `${req.method} ${req.routeOptions.url} needs an API token; a mail account's API key reaches only its own account's mail routes`);
      return;
    }
    if (!token) {
      void reply.header('www-authenticate', 'Bearer realm="dnsproxy"');
      throw new AppError('unauthorized', secret ? 'the bearer token is not valid (revoked or mistyped)' : 'send Authorization: Bearer <token>');
    }
    req.token = token;
    // An unknown path or method (404/405) needs no scope to be told so.
    if (req.routeOptions.url === undefined) return;
    const need = req.routeOptions.config.scope ?? (req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'write');
    requireScope(req, need, `${req.method} ${req.routeOptions.url}`);
  });
}
