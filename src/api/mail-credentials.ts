// /api/v1/mail/accounts/{name}/keys and /api/v1/mail/cert: an account's API keys (SMTP AUTH
// with a key instead of the password, several per account for rotation) and the STARTTLS
// certificate the relay presents. A key is in exactly one response, the one that creates it;
// the certificate's private key is in none.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { fieldError } from '../errors.js';
import { logger } from '../log/index.js';
import { checkCertPair, describeCert } from '../mail/credentials/certcheck.js';
import { certInput, keyInput, mailName, rotateInput } from '../model/mail.js';
import { TLS_POLL_MS } from '../mail/credentials/tls.js';
import type { ApiDeps } from './app.js';
import { requireOwn } from './mail-account.js';
import { applyOrPlan, DRY_RUN_ONLY } from './mail-plan.js';
import { DRY_RUN, successes } from './openapi.js';

export const mailCredentialRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const log = logger('api.mail');
    const { store } = deps.mail;
    const tags = ['mail'];
    const nameParam = z.object({ name: mailName });
    const keyParam = z.object({ name: mailName, id: z.string().regex(/^[0-9a-f]{12}$/, 'must be a key id') });
    // Keys and the certificate are credentials: admin only (auth.ts); reading them is read.
    const admin = { scope: 'admin' as const };
    // An account's API key manages its own account's keys too (mail-account.ts).
    const mine = { account: true };
    const ownKeys = { ...admin, ...mine };

    app.get('/api/v1/mail/accounts/:name/keys', { config: mine, schema: { summary: "List a mail account's API keys", response: successes({ 200: 'the keys, never the secret' }), tags, params: nameParam, description: "The account's API keys: id, label, created, last used, expiry, state. Never the key." } }, async (req) => {
      requireOwn(req, req.params.name);
      return { keys: store.keys(req.params.name) };
    });
    app.post(
      '/api/v1/mail/accounts/:name/keys',
      { config: ownKeys, schema: { summary: 'Add a mail account API key (admin)', response: successes({ 201: 'created; the key is shown this once', 200: DRY_RUN }), tags, params: nameParam, body: keyInput, querystring: DRY_RUN_ONLY, description: 'Add a key; `key` in the response is shown this once (only its hash is stored). A dry run makes no key.' } },
      async (req, reply) => {
        requireOwn(req, req.params.name);
        const out = applyOrPlan(deps, req, 'mail', () => {
          const made = store.addKey(req.params.name, req.body);
          return { result: made, plan: { added: [`key ${made.info.id} of account ${req.params.name}`] } };
        });
        if ('dry_run' in out) return out;
        const { info, key } = out;
        log.info('mail account key added', { account: info.account, id: info.id, expires_at: info.expires_at });
        return reply.code(201).send({ key, info });
      },
    );
    app.post(
      '/api/v1/mail/accounts/:name/keys/rotate',
      {
        config: ownKeys,
        schema: {
          summary: "Rotate a mail account's API keys (admin)",
          response: successes({ 201: 'the new key (shown this once), kept and removed keys', 200: DRY_RUN }),
          tags,
          params: nameParam,
          body: rotateInput,
          querystring: DRY_RUN_ONLY,
          description: 'Add a new key (shown this once) and revoke the old ones now, or let them expire after keep_old',
        },
      },
      async (req, reply) => {
        requireOwn(req, req.params.name);
        const out = applyOrPlan(deps, req, 'mail', () => {
          const r = store.rotateKey(req.params.name, req.body);
          const of = ` of account ${req.params.name}`;
          return { result: r, plan: { added: [`key ${r.info.id}${of}`], changed: r.kept.map((k) => `key ${k.id}${of}: expires ${k.expires_at ?? 'never'}`), removed: r.removed.map((id) => `key ${id}${of}`) } };
        });
        if ('dry_run' in out) return out;
        const r = out;
        log.info('mail account key rotated', { account: r.info.account, id: r.info.id, kept: r.kept.map((k) => k.id), removed: r.removed });
        return reply.code(201).send({ key: r.key, info: r.info, kept: r.kept, removed: r.removed });
      },
    );
    app.delete('/api/v1/mail/accounts/:name/keys/:id', { config: ownKeys, schema: { summary: 'Revoke a mail account API key (admin)', response: successes({ 204: 'revoked', 200: DRY_RUN }), tags, params: keyParam, querystring: DRY_RUN_ONLY, description: 'Revoke a key now' } }, async (req, reply) => {
      requireOwn(req, req.params.name);
      const out = applyOrPlan(deps, req, 'mail', () => ({ result: store.revokeKey(req.params.name, req.params.id), plan: { changed: [`key ${req.params.id} of account ${req.params.name}: revoked`] } }));
      if (out) return out;
      log.info('mail account key revoked', { account: req.params.name, id: req.params.id });
      return reply.code(204).send();
    });

    // ---- the STARTTLS certificate ----

    const shown = () => {
      const now = Date.now();
      const operator = store.operatorCert();
      const presented = store.presentedCert();
      return {
        // What the relay presents now (as it last recorded), null before its first start.
        presented: presented ? { source: presented.source, since: new Date(presented.since_ms).toISOString(), ...describeCert(presented.cert, now) } : null,
        // The one set with PUT (dnsproxy mail cert --cert --key), null when none is.
        operator: operator ? { set_at: new Date(operator.set_at_ms).toISOString(), ...describeCert(operator.cert, now) } : null,
        // Set but not yet presented: the relay takes it within its poll interval, or at its next start.
        // A store certificate for the host name comes before the operator's (credentials/tls.ts): nothing is pending then.
        pending: operator !== undefined && presented?.source !== 'store' && presented?.operator_set_at_ms !== operator.set_at_ms,
      };
    };
    app.get('/api/v1/mail/cert', { schema: { summary: "Get the relay's STARTTLS certificate", response: successes({ 200: 'the certificate in use and the one set here' }), tags, description: 'The STARTTLS certificate the relay presents, and the one set here (never a private key)' } }, async () => shown());
    app.put(
      '/api/v1/mail/cert',
      {
        config: admin,
        schema: {
          summary: "Set the relay's STARTTLS certificate (admin)",
          response: successes({ 200: `set; with warnings, or ${DRY_RUN}` }),
          tags,
          body: certInput,
          querystring: DRY_RUN_ONLY,
          description: `Set the STARTTLS certificate (PEM chain, leaf first) and its key. 400 when the key does not match, the chain is out of order, or a certificate is expired or not yet valid. The relay presents it from its next STARTTLS (or implicit-TLS connection), within ${TLS_POLL_MS / 1000} s.`,
        },
      },
      async (req) => {
        const check = checkCertPair(req.body.cert, req.body.key, Date.now());
        if (!check.ok) throw fieldError(check.field, check.reason);
        const out = applyOrPlan(deps, req, 'mail', () => {
          const had = store.operatorCert();
          store.setOperatorCert(req.body.cert, req.body.key);
          const what = `STARTTLS certificate ${check.info.subject} (sha256 ${check.info.fingerprint_sha256})`;
          return { result: null, plan: had ? { changed: [what] } : { added: [what] } };
        });
        if (out) return { ...out, warnings: check.warnings };
        log.info('mail STARTTLS certificate set', { subject: check.info.subject, not_after: check.info.not_after, sha256: check.info.fingerprint_sha256 });
        return { ...shown(), warnings: check.warnings };
      },
    );
    app.delete('/api/v1/mail/cert', { config: admin, schema: { summary: 'Remove the STARTTLS certificate set here (admin)', response: successes({ 204: 'removed', 200: DRY_RUN }), tags, querystring: DRY_RUN_ONLY, description: 'Forget the certificate set here: the relay goes back to mail_tls_cert or its self-signed one' } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'mail', () => ({ result: store.removeOperatorCert(), plan: { removed: ['STARTTLS certificate set with dnsproxy mail cert'] } }));
      if (out) return out;
      log.info('mail STARTTLS certificate removed');
      return reply.code(204).send();
    });
  };
