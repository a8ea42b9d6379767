// /api/v1/tokens: create (secret shown once), list, revoke. Admin only: a token list says who can
// reach the API, and a token that could mint or revoke tokens could make itself an admin.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { logger } from '../log/index.js';
import { DEFAULT_TOKEN_SCOPE, tokenName, tokenScope } from '../model/token.js';
import type { ApiDeps } from './app.js';
import { applyOrPlan, DRY_RUN_ONLY } from './mail-plan.js';
import { DRY_RUN, successes } from './openapi.js';

export const tokenRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const log = logger('tokens');
    const tags = ['tokens'];
    const config = { scope: 'admin' as const };
    app.get('/api/v1/tokens', { config, schema: { summary: 'List API tokens (admin)', response: successes({ 200: 'the tokens, without secrets' }), tags, description: 'Tokens with their scope (never the secret); admin only' } }, async () => ({ tokens: deps.tokens.list() }));
    app.post(
      '/api/v1/tokens',
      {
        config,
        schema: {
          summary: 'Create an API token (admin)',
          response: successes({ 201: 'created; the secret is shown this once', 200: DRY_RUN }),
          tags,
          body: z.object({ name: tokenName, scope: tokenScope.default(DEFAULT_TOKEN_SCOPE) }).strict(),
          querystring: DRY_RUN_ONLY,
          description: `Create a token (the secret is in this response only); scope defaults to ${DEFAULT_TOKEN_SCOPE}; admin only`,
        },
      },
      async (req, reply) => {
        const out = applyOrPlan(deps, req, 'tokens', () => {
          const made = deps.tokens.create(req.body.name, req.body.scope);
          return { result: made, plan: { added: [`token ${made.info.id} ${made.info.name} (scope ${made.info.scope})`] } };
        });
        if ('dry_run' in out) return out;
        const { token, info } = out;
        log.info('token created', { id: info.id, name: info.name, scope: info.scope, by: req.token?.id });
        return reply.code(201).send({ token, ...info });
      },
    );
    app.delete('/api/v1/tokens/:id', { config, schema: { summary: 'Revoke an API token (admin)', response: successes({ 204: 'revoked', 200: DRY_RUN }), tags, params: z.object({ id: z.string().regex(/^[0-9a-f]{1,32}$/, 'must be a token id') }), querystring: DRY_RUN_ONLY, description: 'Revoke a token now; admin only' } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'tokens', () => ({ result: deps.tokens.revoke(req.params.id), plan: { removed: [`token ${req.params.id}`] } }));
      if (out) return out;
      log.info('token revoked', { id: req.params.id, by: req.token?.id });
      return reply.code(204).send();
    });
  };
