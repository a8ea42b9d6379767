// Bearer-token check on every route except the open probes.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import type { TokenStore } from '../store/tokens.js';

/** Routes a load balancer, supervisor or Prometheus reaches without a token. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/health', '/ready', '/metrics']);

/** The bearer token a request carries, if any. */
export const bearerOf = (req: FastifyRequest): string | undefined => /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];

export function installAuth(app: FastifyInstance, tokens: TokenStore): void {
  app.addHook('onRequest', async (req, reply) => {
    if (OPEN_PATHS.has(req.url.split('?')[0] ?? '')) return;
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const id = m?.[1] ? tokens.verify(m[1]) : undefined;
    if (!id) {
      void reply.header('www-authenticate', 'Bearer realm="dnsproxy"');
      throw new AppError('unauthorized', m ? 'the bearer token is not valid (revoked or mistyped)' : 'send Authorization: Bearer <token>');
    }
  });
}
