// /api/v1/mail/*: the mail relay's accounts, providers, routing rules, DKIM keys and queue. The
// relay (its own process) reads these from the shared SQLite file on every session and attempt.
// Passwords and provider secrets are write-only: no response carries them.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { logger } from '../log/index.js';
import { dkimTxt, generateDkimPrivateKey } from '../mail/credentials/keys.js';
import { hashPassword } from '../mail/credentials/password.js';
import type { OperatorAction } from '../mail/queue/messages.js';
import { accountInput, accountUpdate, mailDomain, mailName, MESSAGE_STATUSES, providerConfig, publicConfig, ruleInput, type Provider, type ProviderConfig } from '../model/mail.js';
import type { ApiDeps } from './app.js';
import { requireOwn } from './mail-account.js';
import { applyOrPlan, DRY_RUN_ONLY, withDryRun, type Plan } from './mail-plan.js';
import { DRY_RUN, successes } from './openapi.js';

/** A provider as shown: passwords, tokens and API keys are never returned. */
const shown = (p: Provider) => ({ name: p.name, config: publicConfig(p.config) });

/** Stands in for a password hash or a private key in a dry run (rolled back, never stored). */
const DRY_RUN_PLACEHOLDER = 'dry-run';

/** Where a provider sends mail, for the log line (never a secret: the URL cannot carry credentials, schema.ts). */
const target = (c: ProviderConfig) => (c.type === 'smtp' ? `${c.host}:${c.port}` : c.type === 'mx' ? `MX hosts, port ${c.port}` : `${c.format} ${new URL(c.url).origin}`);

const DEFAULT_SELECTOR = 'dnsproxy';

export const mailRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const log = logger('api.mail');
    const { store, messages } = deps.mail;
    const tags = ['mail'];
    const nameParam = z.object({ name: mailName });
    // Credentials and keys (accounts, providers, DKIM) are admin; rules and the queue are write (auth.ts).
    const admin = { scope: 'admin' as const };
    /**
     * The SPF records of mail-aware domains name the providers the rules use: after a rule or
     * provider change they are published again, in the same transaction; the plan names them.
     */
    const withDns = (p: Partial<Plan>): Partial<Plan> => {
      const dns = deps.mail.domains.publishAll();
      return { ...p, changed: [...(p.changed ?? []), ...dns.put.map((x) => `dns ${x.record.name} ${x.record.type}`)] };
    };

    // Routes an account's API key may call too, for its own account only (mail-account.ts).
    const mine = { account: true };
    app.get('/api/v1/mail/accounts', { config: mine, schema: { summary: 'List mail submission accounts', response: successes({ 200: 'the accounts (an account key: its own)' }), tags } }, async (req) => ({
      accounts: store.accounts().filter((a) => req.mailAccount === null || a.name === req.mailAccount),
    }));
    app.post('/api/v1/mail/accounts', { config: admin, schema: { summary: 'Create a mail submission account (admin)', response: successes({ 201: 'created', 200: DRY_RUN }), tags, body: accountInput, querystring: DRY_RUN_ONLY } }, async (req, reply) => {
      // A dry run skips the (deliberately slow) scrypt hash: nothing will be stored.
      const hash = req.query.dry_run === 'true' ? DRY_RUN_PLACEHOLDER : await hashPassword(req.body.password);
      const out = applyOrPlan(deps, req, 'mail', () => ({ result: store.insertAccount(req.body, hash), plan: { added: [`account ${req.body.name}`] } }));
      if ('dry_run' in out) return out;
      log.info('mail account added', { name: out.name, domains: out.allowed_domains });
      return reply.code(201).send({ account: out });
    });
    app.get('/api/v1/mail/accounts/:name', { config: mine, schema: { summary: 'Get one mail account', response: successes({ 200: 'the account (never its password)' }), tags, params: nameParam } }, async (req) => {
      requireOwn(req, req.params.name);
      const account = store.account(req.params.name);
      if (!account) throw new AppError('not_found', `no account ${req.params.name}`);
      return { account };
    });
    app.put(
      '/api/v1/mail/accounts/:name',
      { config: { ...admin, ...mine }, schema: { summary: 'Change a mail account: password, email, domains (admin)', response: successes({ 200: `changed, or ${DRY_RUN}` }), tags, params: nameParam, body: accountUpdate, querystring: DRY_RUN_ONLY, description: 'Changes the fields given; a new password applies from the next login (sessions open stay)' } },
      async (req) => {
        const { password, ...patch } = req.body;
        requireOwn(req, req.params.name);
        // An account may change its password, never what it may send as.
        if (req.mailAccount !== null && Object.keys(patch).length)
          throw new AppError('forbidden', `an account's API key may change its password only; ${Object.keys(patch).join(', ')} need an admin token`);
        const dry = req.query.dry_run === 'true';
        const hash = password === undefined ? undefined : dry ? DRY_RUN_PLACEHOLDER : await hashPassword(password);
        const fields = [...Object.keys(patch), ...(password === undefined ? [] : ['password'])];
        const out = applyOrPlan(deps, req, 'mail', () => ({ result: store.updateAccount(req.params.name, patch, hash), plan: { changed: [`account ${req.params.name}: ${fields.join(', ')}`] } }));
        if ('dry_run' in out) return out;
        log.info('mail account changed', { name: out.name, fields });
        return { account: out };
      },
    );
    app.delete('/api/v1/mail/accounts/:name', { config: admin, schema: { summary: 'Delete a mail account (admin)', response: successes({ 204: 'deleted', 200: DRY_RUN }), tags, params: nameParam, querystring: DRY_RUN_ONLY } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'mail', () => {
        const keys = store.keys(req.params.name).map((k) => `key ${k.id} of account ${req.params.name}`);
        store.removeAccount(req.params.name);
        return { result: null, plan: { removed: [`account ${req.params.name}`, ...keys] } };
      });
      if (out !== null) return out;
      log.info('mail account removed', { name: req.params.name });
      return reply.code(204).send();
    });

    app.get('/api/v1/mail/providers', { schema: { summary: 'List delivery providers (secrets hidden)', response: successes({ 200: 'the providers' }), tags } }, async () => ({ providers: store.providers().map(shown) }));
    app.put('/api/v1/mail/providers/:name', { config: admin, schema: { summary: 'Create or replace a delivery provider (admin)', response: successes({ 201: 'created', 200: `replaced, or ${DRY_RUN}` }), tags, params: nameParam, body: providerConfig, querystring: DRY_RUN_ONLY, description: 'Create or replace a provider; admin only' } }, async (req, reply) => {
      const created = !store.provider(req.params.name);
      const out = applyOrPlan(deps, req, 'mail', () => {
        const provider = store.putProvider({ name: req.params.name, config: req.body }, { ownAddresses: [deps.nodeIp] });
        const what = `provider ${req.params.name}`;
        return { result: provider, plan: withDns(created ? { added: [what] } : { changed: [what] }) };
      });
      if ('dry_run' in out) return out;
      const provider = out;
      log.info('mail provider saved', { name: provider.name, type: provider.config.type, target: target(provider.config), ...(provider.config.type !== 'mx' && provider.config.allow_private ? { allow_private: true } : {}) });
      return reply.code(created ? 201 : 200).send({ provider: shown(provider) });
    });
    app.get('/api/v1/mail/providers/:name', { schema: { summary: 'Get one delivery provider (secrets hidden)', response: successes({ 200: 'the provider' }), tags, params: nameParam } }, async (req) => {
      const provider = store.provider(req.params.name);
      if (!provider) throw new AppError('not_found', `no provider ${req.params.name}`);
      return { provider: shown(provider) };
    });
    app.delete('/api/v1/mail/providers/:name', { config: admin, schema: { summary: 'Delete a delivery provider (admin)', response: successes({ 204: 'deleted', 200: DRY_RUN }), tags, params: nameParam, querystring: DRY_RUN_ONLY } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'mail', () => {
        store.removeProvider(req.params.name);
        return { result: null, plan: withDns({ removed: [`provider ${req.params.name}`] }) };
      });
      return out ? out : reply.code(204).send();
    });

    app.get('/api/v1/mail/rules', { schema: { summary: 'List mail routing rules', response: successes({ 200: 'the rules' }), tags } }, async () => ({ rules: store.rules() }));
    app.post('/api/v1/mail/rules', { schema: { summary: 'Add a mail routing rule', response: successes({ 201: 'created', 200: DRY_RUN }), tags, body: ruleInput, querystring: DRY_RUN_ONLY } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'mail', () => {
        const rule = store.addRule(req.body);
        return { result: rule, plan: withDns({ added: [`rule ${rule.id}`] }) };
      });
      return 'dry_run' in out ? out : reply.code(201).send({ rule: out });
    });
    const ruleId = z.object({ id: z.string().regex(/^[0-9a-f]{8}$/, 'must be a rule id') });
    app.get('/api/v1/mail/rules/:id', { schema: { summary: 'Get one mail routing rule', response: successes({ 200: 'the rule' }), tags, params: ruleId } }, async (req) => ({ rule: store.rule(req.params.id) }));
    app.put('/api/v1/mail/rules/:id', { schema: { summary: 'Replace a mail routing rule', response: successes({ 200: `replaced, or ${DRY_RUN}` }), tags, params: ruleId, body: ruleInput, querystring: DRY_RUN_ONLY } }, async (req) => {
      const out = applyOrPlan(deps, req, 'mail', () => ({ result: store.putRule(req.params.id, req.body), plan: withDns({ changed: [`rule ${req.params.id}`] }) }));
      return 'dry_run' in out ? out : { rule: out };
    });
    app.delete('/api/v1/mail/rules/:id', { schema: { summary: 'Delete a mail routing rule', response: successes({ 204: 'deleted', 200: DRY_RUN }), tags, params: z.object({ id: z.string().regex(/^[0-9a-f]{8}$/, 'must be a rule id') }), querystring: DRY_RUN_ONLY } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'mail', () => {
        store.removeRule(req.params.id);
        return { result: null, plan: withDns({ removed: [`rule ${req.params.id}`] }) };
      });
      return out ? out : reply.code(204).send();
    });

    // Suppressed recipients: refused at RCPT TO (550 5.1.1) until removed; hard bounces add themselves.
    const addressParam = z.object({ address: z.string().max(254).regex(/^[^\s@<>]+@[^\s@<>]+$/, 'must be an email address') });
    app.get('/api/v1/mail/suppressions', { schema: { summary: 'List suppressed recipients', response: successes({ 200: 'the suppressed addresses, why and since when' }), tags } }, async () => ({ suppressions: store.suppressions() }));
    app.post(
      '/api/v1/mail/suppressions',
      { schema: { summary: 'Suppress a recipient', response: successes({ 201: 'suppressed', 200: `already suppressed (reason replaced), or ${DRY_RUN}` }), tags, querystring: DRY_RUN_ONLY, body: z.object({ address: addressParam.shape.address, reason: z.string().max(500).regex(/^[\x20-\x7e]*$/, 'printable ASCII only').default('added by an operator') }).strict() } },
      async (req, reply) => {
        const out = applyOrPlan(deps, req, 'mail', () => {
          const created = store.suppress(req.body.address, 'manual', req.body.reason);
          const what = `suppression ${req.body.address.toLowerCase()}`;
          return { result: created, plan: created ? { added: [what] } : { changed: [what] } };
        });
        if (typeof out !== 'boolean') return out;
        log.info('mail recipient suppressed', { address: req.body.address.toLowerCase() });
        return reply.code(out ? 201 : 200).send({ suppression: store.suppression(req.body.address) });
      },
    );
    app.delete('/api/v1/mail/suppressions/:address', { schema: { summary: 'Remove a suppression', response: successes({ 204: 'removed', 200: DRY_RUN }), tags, params: addressParam, querystring: DRY_RUN_ONLY } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'mail', () => ({ result: store.unsuppress(req.params.address), plan: { removed: [`suppression ${req.params.address.toLowerCase()}`] } }));
      if (out) return out;
      log.info('mail suppression removed', { address: req.params.address.toLowerCase() });
      return reply.code(204).send();
    });

    const dkimView = (domain: string, selector: string, privateKey: string) => ({ domain, selector, record: `${selector}._domainkey.${domain}`, txt: dkimTxt(privateKey) });
    const domainParam = z.object({ domain: mailDomain });
    app.get('/api/v1/mail/dkim/:domain', { schema: { summary: "Get a domain's DKIM key's DNS record", response: successes({ 200: 'the selector and TXT record (never the private key)' }), tags, params: domainParam } }, async (req) => {
      const key = store.dkimKey(req.params.domain);
      if (!key) throw new AppError('not_found', `no DKIM key for ${req.params.domain}`);
      return { dkim: dkimView(key.domain, key.selector, key.private_key) };
    });
    app.post(
      '/api/v1/mail/dkim/:domain',
      {
        config: admin,
        schema: {
          summary: "Generate a domain's DKIM key (admin)",
          response: successes({ 201: 'generated; publish the returned TXT record', 200: DRY_RUN }),
          tags,
          params: domainParam,
          querystring: withDryRun({ selector: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a DNS label').default(DEFAULT_SELECTOR) }),
          description: 'Generate (or replace) the domain\'s signing key; publish the returned TXT record',
        },
      },
      async (req, reply) => {
        const dry = req.query.dry_run === 'true';
        const privateKey = dry ? DRY_RUN_PLACEHOLDER : await generateDkimPrivateKey();
        const out = applyOrPlan(deps, req, 'mail', () => {
          const had = store.dkimKey(req.params.domain);
          store.putDkimKey({ domain: req.params.domain, selector: req.query.selector, private_key: privateKey });
          const what = `dkim ${req.query.selector}._domainkey.${req.params.domain}`;
          return { result: null, plan: had ? { changed: [what] } : { added: [what] } };
        });
        if (out) return out;
        log.info('DKIM key generated', { domain: req.params.domain, selector: req.query.selector });
        return reply.code(201).send({ dkim: dkimView(req.params.domain, req.query.selector, privateKey) });
      },
    );

    app.get(
      '/api/v1/mail/queue',
      { config: mine, schema: { summary: 'List queued and sent messages', response: successes({ 200: 'the messages' }), tags, querystring: z.object({ status: z.enum(MESSAGE_STATUSES).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict() } },
      async (req) => ({ messages: messages.list({ ...(req.query.status ? { status: req.query.status } : {}), ...(req.mailAccount !== null ? { account: req.mailAccount } : {}), limit: req.query.limit }) }),
    );
    const idParam = z.object({ id: z.string().regex(/^[0-9a-f]{16}$/, 'must be a message id') });
    /** The message, 404 when there is none or it is another account's (an account key). */
    const found = (id: string, req: { mailAccount: string | null }) => {
      const message = messages.get(id);
      if (!message || (req.mailAccount !== null && message.account !== req.mailAccount)) throw new AppError('not_found', `no message ${id}`);
      return message;
    };
    app.get('/api/v1/mail/queue/:id', { config: mine, schema: { summary: 'Get one message with its deliveries', response: successes({ 200: 'the message' }), tags, params: idParam } }, async (req) => ({ message: found(req.params.id, req), deliveries: messages.deliveries(req.params.id) }));
    app.get('/api/v1/mail/queue/:id/log', { config: mine, schema: { summary: "A message's delivery attempts", response: successes({ 200: 'the attempts, oldest first' }), tags, params: idParam, description: 'The delivery attempts of one message, oldest first' } }, async (req) => {
      found(req.params.id, req);
      return { deliveries: messages.deliveries(req.params.id) };
    });
    // The relay polls every second: a retried or released message goes out within that.
    const actions: [OperatorAction, string, string][] = [
      ['retry', 'Retry a message now', 'Make a queued, deferred or held message due now (409 while in flight or once final)'],
      ['hold', 'Hold a message', 'Keep a queued or deferred message from being delivered until released'],
      ['release', 'Release a held message', 'Put a held message back in the queue, due now'],
    ];
    for (const [action, summary, description] of actions)
      app.post(`/api/v1/mail/queue/:id/${action}`, { config: mine, schema: { summary, response: successes({ 200: `the message, updated, or ${DRY_RUN}` }), tags, params: idParam, querystring: DRY_RUN_ONLY, description } }, async (req) => {
        const out = applyOrPlan(deps, req, 'mail', () => {
          const before = found(req.params.id, req).status;
          const message = messages.operate(req.params.id, action, Date.now());
          return { result: message, plan: { changed: [`message ${message.id}: ${before} -> ${message.status}`] } };
        });
        if ('dry_run' in out) return out;
        const message = out;
        log.info(`mail message ${action}`, { id: message.id, status: message.status });
        return { message };
      });
    app.delete('/api/v1/mail/queue/:id', { config: mine, schema: { summary: 'Delete a message from the queue', response: successes({ 204: 'deleted', 200: DRY_RUN }), tags, params: idParam, querystring: DRY_RUN_ONLY, description: 'Delete a message (not while in flight) with its delivery log' } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'mail', () => {
        found(req.params.id, req);
        const attempts = messages.deliveries(req.params.id).length;
        messages.delete(req.params.id, Date.now());
        return { result: null, plan: { removed: [`message ${req.params.id}`, ...(attempts ? [`${attempts} delivery log entries of message ${req.params.id}`] : [])] } };
      });
      if (out) return out;
      log.info('mail message deleted', { id: req.params.id });
      return reply.code(204).send();
    });
  };
