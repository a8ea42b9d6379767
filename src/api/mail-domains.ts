// /api/v1/mail/domains: mail-aware domains. Our DNS publishes MX, SPF, DKIM, DMARC, MTA-STS and
// TLS-RPT for each (src/mail/domains/domain.ts); removing one takes away exactly what it published. DKIM
// rotation publishes the new selector before it signs. `check` asks our DNS server and validates
// what it answers with mailauth. Writes are admin; every one takes ?dry_run=true (mutate()).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { logger } from '../log/index.js';
import { checkDomain } from '../mail/domains/domain-check.js';
import { dkimSelector, mailDomainSettings, mtaStsId } from '../mail/domains/domain.js';
import { generateDkimPrivateKey } from '../mail/credentials/keys.js';
import { dns2Resolver } from '../mail/resolver.js';
import { mailDomain } from '../model/mail.js';
import { placeName } from '../model/write.js';
import type { ApiDeps } from './app.js';
import { dnsPlan, mutate } from './mutate.js';
import { DRY_RUN_ONLY } from './mail-plan.js';
import { DRY_RUN, successes } from './openapi.js';

/** A new DKIM key signs after this by default: our records' TTL (300 s) many times over. */
export const DEFAULT_SIGN_AFTER_S = 3600;
/** The old key stays published this long by default: mail in flight and queued elsewhere still verifies. */
export const DEFAULT_GRACE_S = 7 * 86_400;

export const mailDomainRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const log = logger('api.mail');
    const { domains, store } = deps.mail;
    const tags = ['mail'];
    const admin = { scope: 'admin' as const };
    const domainParam = z.object({ domain: mailDomain });
    /** The domain placed in one of our zones (400 naming `domain` when it is in none). */
    const placed = (domain: string) => {
      const p = placeName(`${domain}.`, deps.zones, 'domain', 'invalid_params');
      return { domain: p.name.replace(/\.$/, ''), zone: p.zone };
    };
    const view = (domain: string) => {
      const md = domains.get(domain);
      if (!md) throw new AppError('not_found', `${domain} is not a mail domain`);
      const signing = store.dkimKey(md.domain);
      return { ...md, dkim: { signing: signing?.selector ?? null, published: domains.selectors(md.domain) }, mta_sts_policy: domains.policy(md.domain) };
    };

    app.get('/api/v1/mail/domains', { schema: { summary: 'List mail-aware domains', response: successes({ 200: 'the domains and their settings' }), tags } }, async () => ({ domains: domains.list().map((d) => view(d.domain)) }));
    app.get('/api/v1/mail/domains/:domain', { schema: { summary: 'Get one mail-aware domain', response: successes({ 200: 'the domain, its settings, DKIM selectors and MTA-STS policy' }), tags, params: domainParam } }, async (req) => ({ domain: view(req.params.domain) }));

    app.put(
      '/api/v1/mail/domains/:domain',
      {
        config: admin,
        schema: {
          summary: 'Make a domain mail-aware: publish MX, SPF, DKIM, DMARC, MTA-STS (admin)',
          response: successes({ 201: 'published', 200: `settings changed, or ${DRY_RUN}` }),
          tags,
          params: domainParam,
          body: mailDomainSettings,
          querystring: DRY_RUN_ONLY,
          description: "Publishes the domain's mail records in our DNS (a DKIM key is made when it has none). A value a user keeps at one of those names stays; a second policy of the same kind (another SPF record, say) is a 409.",
        },
      },
      async (req, reply) => {
        const { domain, zone } = placed(req.params.domain);
        // The key is made before the transaction (off the event loop); a dry run throws it away.
        const key = store.dkimKey(domain) ? null : await generateDkimPrivateKey();
        const out = await mutate(deps, req, () => {
          if (key !== null && !store.dkimKey(domain)) store.putDkimKey({ domain, selector: req.body.selector, private_key: key });
          const r = domains.add(domain, zone, req.body);
          return { result: r, dns: dnsPlan(r.put, r.removed) };
        });
        if ('dry_run' in out) return out;
        log.info('mail domain published', { domain, records: out.put.map((p) => `${p.record.name} ${p.record.type}`), warnings: out.warnings });
        return reply.code(out.created ? 201 : 200).send({ domain: view(domain), records: out.put.map((p) => p.record), removed: out.removed, warnings: out.warnings });
      },
    );

    app.delete(
      '/api/v1/mail/domains/:domain',
      { config: admin, schema: { summary: 'Unpublish a mail domain (admin)', response: successes({ 200: `the record sets changed and removed, or ${DRY_RUN}` }), tags, params: domainParam, querystring: DRY_RUN_ONLY, description: 'Takes away what the domain published; values a user keeps at the same names stay. Its DKIM key is kept (the relay still signs with it).' } },
      async (req) => {
        const domain = req.params.domain;
        const out = await mutate(deps, req, () => {
          const r = domains.remove(domain);
          return { result: r, dns: dnsPlan(r.put, r.removed) };
        });
        if ('dry_run' in out) return out;
        log.info('mail domain unpublished', { domain, removed: out.removed.map((r) => `${r.name} ${r.type}`) });
        return { changed: out.put.map((p) => p.record), removed: out.removed };
      },
    );

    app.post(
      '/api/v1/mail/domains/:domain/dkim/rotate',
      {
        config: admin,
        schema: {
          summary: "Rotate a mail domain's DKIM key (admin)",
          response: successes({ 200: `the new selector, published; or ${DRY_RUN}` }),
          tags,
          params: domainParam,
          querystring: DRY_RUN_ONLY,
          body: z
            .object({
              selector: dkimSelector.describe('The new key\'s selector (must differ from the published ones)'),
              sign_after: z.number().int().min(0).max(30 * 86_400).default(DEFAULT_SIGN_AFTER_S).describe('Seconds between publishing the new key and signing with it'),
              grace: z.number().int().min(0).max(90 * 86_400).default(DEFAULT_GRACE_S).describe('Seconds the old key stays published once the new one signs'),
            })
            .strict(),
          description: 'Publishes the new key now; it signs from sign_after seconds later (the controller switches within a minute), and the old key stays published for grace seconds more.',
        },
      },
      async (req) => {
        const domain = req.params.domain;
        const key = await generateDkimPrivateKey();
        const signFrom = domains.now() + req.body.sign_after * 1000;
        const out = await mutate(deps, req, () => {
          const r = domains.startRotation(domain, req.body.selector, key, signFrom, req.body.grace * 1000);
          return { result: r, dns: dnsPlan(r.put, r.removed) };
        });
        if ('dry_run' in out) return out;
        log.info('mail domain DKIM rotation started', { domain, selector: req.body.selector, signs_from: new Date(signFrom).toISOString() });
        return { domain: view(domain), signs_from: new Date(signFrom).toISOString() };
      },
    );

    app.get(
      '/api/v1/mail/domains/:domain/check',
      { schema: { summary: 'Check what our DNS publishes for a mail domain', response: successes({ 200: 'one row per check: pass or fail' }), tags, params: domainParam, description: 'Asks our DNS server (dns2) and validates with mailauth: MX, SPF for the relay address, DKIM with the signing key, DMARC, MTA-STS, TLS-RPT' } },
      async (req) => {
        const domain = req.params.domain;
        const md = domains.get(domain);
        if (!md) throw new AppError('not_found', `${domain} is not a mail domain`);
        const dns = deps.mail.dnsServer();
        const policy = domains.policy(domain);
        const rows = await checkDomain({
          domain,
          hostname: deps.mail.hostname,
          ip: md.settings.spf_addresses?.[0] ?? deps.nodeIp,
          signing: store.dkimKey(domain),
          extraSelectors: domains.selectors(domain).map((s) => s.selector),
          policy: policy === null ? null : { text: policy, id: mtaStsId(policy) },
          resolver: dns2Resolver(dns.host, dns.port),
          now: new Date(),
        });
        return { domain, server: `${dns.host}:${dns.port}`, ok: rows.every((r) => r.result === 'pass'), rows };
      },
    );
  };
