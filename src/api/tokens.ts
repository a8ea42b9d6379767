// /api/v1/tokens: create (secret shown once), list, revoke.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { logger } from '../log/index.js';
import type { ApiDeps } from './app.js';

export const tokenRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const log = logger('tokens');
    const tags = ['tokens'];
    app.get('/api/v1/tokens', { schema: { tags } }, async () => ({ tokens: deps.tokens.list() }));
    app.post(
      '/api/v1/tokens',
      { schema: { tags, body: z.object({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'may hold letters, digits, ".", "-", "_" (max 63)') }).strict() } },
      async (req, reply) => {
        const { token, info } = deps.tokens.create(req.body.name);
        log.info('token created', { id: info.id, name: info.name });
        return reply.code(201).send({ token, ...info });
      },
    );
    app.delete('/api/v1/tokens/:id', { schema: { tags, params: z.object({ id: z.string().regex(/^[0-9a-f]{1,32}$/, 'must be a token id') }) } }, async (req, reply) => {
      deps.tokens.revoke(req.params.id);
      log.info('token revoked', { id: req.params.id });
      return reply.code(204).send();
    });
  };
