// /api/v1/certificates: the certificate store (src/certs). An upload is checked (key matches the
// leaf, chain order, dates, DNS names) and served by Caddy for its names; an `acme_dns01` order
// is handed to the DNS-01 issuer (src/certs/acme.ts). No response carries a private key.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { logger } from '../log/index.js';
import { certId, certificateCreate } from '../model/cert.js';
import type { ApiDeps } from './app.js';
import { applyOrPlan, DRY_RUN_ONLY, isDryRun, plan } from './mail-plan.js';
import { DRY_RUN, successes } from './openapi.js';

const idParam = z.object({ id: certId });

export const certificateRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const log = logger('api.certificates');
    const tags = ['certificates'];
    // A certificate's key is a credential: writes need admin (auth.ts); reading (never a key) is read.
    const admin = { scope: 'admin' as const };
    const store = deps.certificates;

    app.get('/api/v1/certificates', { schema: { summary: 'List certificates', response: successes({ 200: 'the certificates, never a key' }), tags, description: 'Uploaded and ACME-issued certificates: names, issuer, validity, SHA-256 fingerprint, source. Never a private key.' } }, async () => ({
      certificates: store.list(),
    }));

    app.get('/api/v1/certificates/:id', { schema: { summary: 'Get one certificate', response: successes({ 200: 'the certificate, never its key' }), tags, params: idParam } }, async (req) => {
      const certificate = store.get(req.params.id);
      if (!certificate) throw new AppError('not_found', `no certificate ${req.params.id}`);
      return { certificate };
    });

    app.post(
      '/api/v1/certificates',
      {
        config: admin,
        schema: {
          summary: 'Upload a certificate, or order one with ACME DNS-01 (admin)',
          response: successes({ 201: 'stored (upload) or ordered (acme_dns01)', 200: DRY_RUN }),
          tags,
          body: certificateCreate,
          querystring: DRY_RUN_ONLY,
          description:
            'Upload: `cert` (PEM chain, leaf first) and `key` (PEM, unencrypted). 400 naming `cert` or `key` for a malformed PEM, a key that does not match the leaf, a chain out of order, a certificate expired or not yet valid, or a leaf without DNS names. Order: `{"acme_dns01": {"names": [...]}}` gets one from the ACME CA (acme_ca) answering DNS-01 in our own zones (400 naming `acme_dns01.names.N` for a name outside them; 502 `acme_failed` with the CA\'s reason); the answer comes once it is issued and stored, and the controller renews it at two thirds of its lifetime. Caddy serves either for its names from the next load, in place of any certificate it would get itself.',
        },
      },
      async (req, reply) => {
        const { cert, key, acme_dns01: order } = req.body;
        if (order) {
          const acme = deps.acme;
          if (!acme) throw new AppError('unavailable', 'this controller runs no ACME DNS-01 issuer');
          acme.check(order.names);
          if (isDryRun(req)) return { dry_run: true as const, plan: { certificates: plan({ added: [`certificate for ${order.names.join(', ')} from the ACME CA (DNS-01 in our zones)`] }) } };
          return reply.code(201).send({ certificate: await acme.order(order.names), warnings: [] });
        }
        if (cert === undefined || key === undefined) throw new AppError('invalid_body', 'give cert and key, or acme_dns01');
        const out = applyOrPlan(deps, req, 'certificates', () => {
          const stored = store.add({ cert, key }, 'upload');
          return { result: stored, plan: { added: [`certificate ${stored.certificate.id} for ${stored.certificate.names.join(', ')} (sha256 ${stored.certificate.fingerprint_sha256})`] } };
        });
        if ('dry_run' in out) return out;
        const c = out.certificate;
        log.info('certificate uploaded', { id: c.id, names: c.names, not_after: c.not_after, sha256: c.fingerprint_sha256 });
        return reply.code(201).send(out);
      },
    );

    app.delete('/api/v1/certificates/:id', { config: admin, schema: { summary: 'Remove a certificate (admin)', response: successes({ 204: 'removed', 200: DRY_RUN }), tags, params: idParam, querystring: DRY_RUN_ONLY, description: 'Caddy stops serving it at the next load (and gets its own certificate for routes with tls internal or acme); the mail relay goes back to its own.' } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'certificates', () => {
        const gone = store.remove(req.params.id);
        return { result: gone, plan: { removed: [`certificate ${gone.id} for ${gone.names.join(', ')}`] } };
      });
      if ('dry_run' in out) return out;
      log.info('certificate removed', { id: out.id, names: out.names, sha256: out.fingerprint_sha256 });
      return reply.code(204).send();
    });
  };
