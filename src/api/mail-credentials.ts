// /api/v1/mail/accounts/{name}/keys: an account's API keys (SMTP AUTH with a key instead of the
// password, several per account for rotation). A key is in exactly one response, the one that
// creates it.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { logger } from '../log/index.js';
import { keyInput, mailName, rotateInput } from '../mail/schema.js';
import type { ApiDeps } from './app.js';

export const mailCredentialRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const log = logger('api.mail');
    const { store } = deps.mail;
    const tags = ['mail'];
    const nameParam = z.object({ name: mailName });
    const keyParam = z.object({ name: mailName, id: z.string().regex(/^[0-9a-f]{12}$/, 'must be a key id') });

    app.get('/api/v1/mail/accounts/:name/keys', { schema: { tags, params: nameParam, description: "The account's API keys: id, label, created, last used, expiry, state. Never the key." } }, async (req) => ({
      keys: store.keys(req.params.name),
    }));
    app.post(
      '/api/v1/mail/accounts/:name/keys',
      { schema: { tags, params: nameParam, body: keyInput, description: 'Add a key; `key` in the response is shown this once (only its hash is stored)' } },
      async (req, reply) => {
        const { info, key } = store.addKey(req.params.name, req.body);
        log.info('mail account key added', { account: info.account, id: info.id, expires_at: info.expires_at });
        return reply.code(201).send({ key, info });
      },
    );
    app.post(
      '/api/v1/mail/accounts/:name/keys/rotate',
      {
        schema: {
          tags,
          params: nameParam,
          body: rotateInput,
          description: 'Add a new key (shown this once) and revoke the old ones now, or let them expire after keep_old',
        },
      },
      async (req, reply) => {
        const r = store.rotateKey(req.params.name, req.body);
        log.info('mail account key rotated', { account: r.info.account, id: r.info.id, kept: r.kept.map((k) => k.id), removed: r.removed });
        return reply.code(201).send({ key: r.key, info: r.info, kept: r.kept, removed: r.removed });
      },
    );
    app.delete('/api/v1/mail/accounts/:name/keys/:id', { schema: { tags, params: keyParam, description: 'Revoke a key now' } }, async (req, reply) => {
      store.revokeKey(req.params.name, req.params.id);
      log.info('mail account key revoked', { account: req.params.name, id: req.params.id });
      return reply.code(204).send();
    });
  };
