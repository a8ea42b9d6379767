// `dnsproxy mail account|provider|rule|dkim|queue|retry|hold|release|delete|log`: clients of
// /api/v1/mail on the controller. Exit codes as everywhere: 0 ok, 1 refused (404 unknown id, 409
// in flight or final), 2 usage.
// Secrets (account and provider passwords, API keys) come from stdin or a flag, never echoed back.
import type { Command } from 'commander';
import { HTTP_AUTH_DEFAULTS, HTTP_FORMATS, type Account, type Delivery, type Message, type ProviderView as Provider, type ProviderView, type Rule } from '../model/mail.js';
import { call, CliError } from './client.js';
import { accountKeyCommands, mailCertCommand } from './mail-credentials.js';
import { mailDomainCommands } from './mail-domains.js';
import type { Globals } from './commands.js';
import { printJson, table } from './output.js';

const enc = encodeURIComponent;
const collect = (v: string, prev: string[] = []) => [...prev, v];

type ProviderConfig = ProviderView['config'];

/** A secret from the flag, else from stdin (piped), else a usage error. */
async function secret(flag: string | undefined, what: string): Promise<string> {
  if (flag !== undefined) return flag;
  if (process.stdin.isTTY) throw new CliError(`give the ${what} on stdin (e.g. from a file or a password manager) or with its flag`, 2);
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  const value = text.replace(/\r?\n$/, '');
  if (!value) throw new CliError(`the ${what} read from stdin is empty`, 2);
  return value;
}

const show = (g: Globals, res: unknown, human: () => string) => (g.json() ? printJson(res) : console.log(human()));
const logTable = (deliveries: Delivery[]) =>
  table(['TIME', 'PROVIDER', 'OUTCOME', 'CODE', 'MS', 'RESPONSE'], deliveries.map((d) => [new Date(d.at_ms).toISOString(), d.provider ?? '-', d.outcome, String(d.code ?? '-'), String(d.duration_ms), d.response]));
/** Where a message came from, when it is a split-off part or a DSN. */
const origin = (m: Message) => (m.parent_id === null ? '' : m.mail_from === '' ? `\nbounce (DSN) about ${m.parent_id}` : `\nsplit from ${m.parent_id} (the provider answered its recipients differently)`);
const any = (v: string | null) => v ?? '*';

interface ProviderFlags {
  type: string;
  security: string;
  user?: string;
  pass?: string;
  tlsVerify: boolean;
  maxConnections: string;
  port: string;
  format?: string;
  auth?: string;
  header?: string;
  allowPrivate?: boolean;
}

/** The PUT body for `provider add`, and how the saved provider is described; usage errors (exit 2) before anything is read from stdin. */
async function providerBody(target: string | undefined, o: ProviderFlags): Promise<{ body: object; said: string }> {
  const allow = o.allowPrivate ? { allow_private: true } : {};
  const allowSaid = o.allowPrivate ? ', private addresses allowed' : '';
  if (o.type === 'smtp') {
    const m = target ? /^(.+):(\d{1,5})$/.exec(target) : null;
    if (!m) throw new CliError(`${target ?? '(none)'}: expected host:port`, 2);
    const auth = o.user ? { user: o.user, pass: await secret(o.pass, 'provider password') } : undefined;
    return { body: { type: 'smtp', host: m[1], port: Number(m[2]), security: o.security, tls_verify: o.tlsVerify, max_connections: Number(o.maxConnections), ...(auth ? { auth } : {}), ...allow }, said: `${m[1]}:${m[2]}, ${o.security}, ≤ ${o.maxConnections} connections${allowSaid}` };
  }
  if (o.type === 'mx') {
    if (target !== undefined) throw new CliError(`an mx provider has no target (it looks up each recipient domain's MX hosts); got ${target}`, 2);
    return { body: { type: 'mx', port: o.port, ...allow }, said: `direct to each domain's MX hosts, port ${o.port}${allowSaid}` };
  }
  if (o.type !== 'http') throw new CliError(`--type ${o.type}: expected smtp, mx or http`, 2);
  if (!target) throw new CliError('an http provider needs the API URL as its target', 2);
  if (!o.format || !(HTTP_FORMATS as readonly string[]).includes(o.format)) throw new CliError(`--format: expected ${HTTP_FORMATS.join(', ')}`, 2);
  // The same defaults the API fills in (model HTTP_AUTH_DEFAULTS).
  const d = HTTP_AUTH_DEFAULTS[o.format as (typeof HTTP_FORMATS)[number]];
  const scheme = o.auth ?? d.scheme;
  const header = o.header ?? d.name;
  const user = o.user ?? d.user;
  if (scheme === 'header' && !header) throw new CliError('--auth header needs --header <name>', 2);
  if (scheme === 'basic' && !user) throw new CliError('--auth basic needs --user <user>', 2);
  if (!['bearer', 'basic', 'header', 'none'].includes(scheme)) throw new CliError(`--auth ${scheme}: expected bearer, basic, header or none`, 2);
  const auth =
    scheme === 'none'
      ? undefined
      : scheme === 'bearer'
        ? { scheme, token: await secret(o.pass, 'API key') }
        : scheme === 'basic'
          ? { scheme, user, pass: await secret(o.pass, 'API key') }
          : { scheme, name: header, value: await secret(o.pass, 'API key') };
  return { body: { type: 'http', format: o.format, url: target, ...(auth ? { auth } : {}), ...allow }, said: `${o.format} API at ${target}${auth ? `, ${scheme} auth` : ''}${allowSaid}` };
}

/** TARGET, MODE and AUTH of `provider list`. */
function providerColumns(c: ProviderConfig): [string, string, string] {
  const allowed = c.allow_private ? ', private allowed' : '';
  if (c.type === 'smtp') return [`${c.host}:${c.port}`, `${c.security}${c.tls_verify ? '' : ' (unverified)'}${allowed}`, c.auth?.user ?? '-'];
  if (c.type === 'mx') return [`MX hosts:${c.port}`, 'starttls if offered', '-'];
  return [c.url, `${c.format}${allowed}`, c.auth ? [c.auth.scheme, c.auth.user ?? c.auth.name].filter(Boolean).join(' ') : '-'];
}

export function mailAdminCommands(mail: Command, g: Globals): void {
  const account = mail.command('account').description('SMTP accounts: who may submit mail, from which domains');
  account
    .command('add')
    .description('add an account; the password is read from stdin unless --password is given')
    .argument('<name>', 'SMTP username (the email works too)')
    .requiredOption('--email <address>', 'contact address of the account')
    .requiredOption('--domain <domain>', 'a domain MAIL FROM may use, repeatable', collect)
    .option('--password <password>', 'the password (visible in ps and shell history: prefer stdin)')
    .action(async (name: string, o: { email: string; domain: string[]; password?: string }) => {
      const password = await secret(o.password, 'password');
      const res = (await call(g.target(), 'POST', '/api/v1/mail/accounts', { name, email: o.email, password, allowed_domains: o.domain })) as { account: Account };
      show(g, res, () => `added account ${res.account.name} (${res.account.allowed_domains.join(', ')})`);
    });
  account
    .command('list')
    .description('list accounts')
    .action(async () => {
      const res = (await call(g.target(), 'GET', '/api/v1/mail/accounts')) as { accounts: Account[] };
      show(g, res, () => table(['NAME', 'EMAIL', 'DOMAINS'], res.accounts.map((a) => [a.name, a.email, a.allowed_domains.join(',')])));
    });
  account
    .command('remove')
    .description('remove an account; its sessions are refused from the next command')
    .argument('<name>')
    .action(async (name: string) => {
      await call(g.target(), 'DELETE', `/api/v1/mail/accounts/${enc(name)}`);
      show(g, { removed: name }, () => `removed account ${name}`);
    });
  accountKeyCommands(account, g);

  const provider = mail.command('provider').description('providers: where mail is handed to (an SMTP smarthost, the recipient domain\'s MX hosts, or an e-mail API)');
  provider
    .command('add')
    .description('add or replace a provider: an SMTP smarthost (smtp), direct delivery to the MX hosts (mx), or an e-mail API (http)')
    .argument('<name>')
    .argument('[target]', 'smtp: host:port; http: the API URL; mx: none')
    .option('--type <type>', 'smtp | mx | http', 'smtp')
    .option('--security <mode>', 'smtp: starttls (required) | tls (from the first byte, port 465) | none (plain, LAN only)', 'starttls')
    .option('--user <user>', 'smtp: login at the provider; http --auth basic: the user (mailgun: api). The secret is read from stdin unless --pass is given')
    .option('--pass <secret>', 'the provider password or API key (visible in ps: prefer stdin)')
    .option('--no-tls-verify', 'smtp: accept any certificate (a self-signed LAN relay)')
    .option('--max-connections <n>', 'smtp: connections to the provider at once (pooled, reused)', '2')
    .option('--port <port>', 'mx: the port every MX host is dialled on', '25')
    .option('--format <format>', `http: ${HTTP_FORMATS.join(' | ')}`)
    .option('--auth <scheme>', 'http: bearer | basic | header | none (default by format: sendgrid bearer, mailgun basic as api, postmark header X-Postmark-Server-Token, raw none)')
    .option('--header <name>', 'http --auth header: the header carrying the key')
    .option('--allow-private', "smtp, http: allow a loopback, link-local or metadata address, localhost, or this node's own address (refused by default)")
    .action(async (name: string, target: string | undefined, o: ProviderFlags) => {
      const { body, said } = await providerBody(target, o);
      const res = (await call(g.target(), 'PUT', `/api/v1/mail/providers/${enc(name)}`, body)) as { provider: Provider };
      show(g, res, () => `saved provider ${name} (${said})`);
    });
  provider
    .command('list')
    .description('list providers')
    .action(async () => {
      const res = (await call(g.target(), 'GET', '/api/v1/mail/providers')) as { providers: Provider[] };
      show(g, res, () => table(['NAME', 'TYPE', 'TARGET', 'MODE', 'AUTH'], res.providers.map((p) => [p.name, p.config.type, ...providerColumns(p.config)])));
    });
  provider
    .command('remove')
    .description('remove a provider no rule uses')
    .argument('<name>')
    .action(async (name: string) => {
      await call(g.target(), 'DELETE', `/api/v1/mail/providers/${enc(name)}`);
      show(g, { removed: name }, () => `removed provider ${name}`);
    });

  const rule = mail.command('rule').description('routing rules: which provider a message goes to (lowest priority first, first match wins)');
  rule
    .command('add')
    .description('add a rule; unset conditions match anything')
    .argument('<provider>')
    .option('--fallback <provider>', 'used when the provider keeps failing')
    .option('--sender-domain <domain>')
    .option('--recipient-domain <domain>')
    .option('--account <name>')
    .option('--priority <n>', 'lower is tried first', '100')
    .action(async (prov: string, o: { fallback?: string; senderDomain?: string; recipientDomain?: string; account?: string; priority: string }) => {
      const body = { provider: prov, priority: o.priority, fallback_provider: o.fallback ?? null, sender_domain: o.senderDomain ?? null, recipient_domain: o.recipientDomain ?? null, account: o.account ?? null };
      const res = (await call(g.target(), 'POST', '/api/v1/mail/rules', body)) as { rule: Rule };
      show(g, res, () => `added rule ${res.rule.id}`);
    });
  rule
    .command('list')
    .description('list rules in evaluation order')
    .action(async () => {
      const res = (await call(g.target(), 'GET', '/api/v1/mail/rules')) as { rules: Rule[] };
      show(g, res, () =>
        table(['ID', 'PRIORITY', 'ACCOUNT', 'FROM', 'TO', 'PROVIDER', 'FALLBACK'], res.rules.map((r) => [r.id, String(r.priority), any(r.account), any(r.sender_domain), any(r.recipient_domain), r.provider, r.fallback_provider ?? '-'])),
      );
    });
  rule
    .command('remove')
    .argument('<id>')
    .action(async (id: string) => {
      await call(g.target(), 'DELETE', `/api/v1/mail/rules/${enc(id)}`);
      show(g, { removed: id }, () => `removed rule ${id}`);
    });

  mail
    .command('dkim')
    .description('DKIM signing keys of sender domains')
    .command('create')
    .description('make the DKIM signing key of a sender domain (replacing its current one: rotate with a new --selector, keep the old record published until mail signed with it is delivered) and print the TXT record to publish')
    .argument('<domain>')
    .option('--selector <label>', 'DKIM selector', 'dnsproxy')
    .action(async (domain: string, o: { selector: string }) => {
      const res = (await call(g.target(), 'POST', `/api/v1/mail/dkim/${enc(domain)}?selector=${enc(o.selector)}`)) as { dkim: { record: string; txt: string } };
      show(g, res, () => `${res.dkim.record}. TXT "${res.dkim.txt}"`);
    });

  mailCertCommand(mail, g);
  mailDomainCommands(mail, g);

  mail
    .command('queue')
    .description('list queued and recent messages, or show one with its delivery log')
    .argument('[id]')
    .option('--status <status>', 'queued | sending | deferred | delivered | bounced | failed | held')
    .option('--limit <n>', 'at most this many', '100')
    .action(async (id: string | undefined, o: { status?: string; limit: string }) => {
      if (id) {
        const res = (await call(g.target(), 'GET', `/api/v1/mail/queue/${enc(id)}`)) as { message: Message; deliveries: Delivery[] };
        const m = res.message;
        return show(g, res, () =>
          [
            `${m.id}  ${m.status}  ${m.mail_from || '<>'} → ${m.rcpt_to.join(', ')}  attempts ${m.attempts}${origin(m)}${m.last_error ? `\nlast error: ${m.last_error}` : ''}`,
            logTable(res.deliveries),
          ].join('\n'),
        );
      }
      const q = new URLSearchParams({ limit: o.limit, ...(o.status ? { status: o.status } : {}) });
      const res = (await call(g.target(), 'GET', `/api/v1/mail/queue?${q.toString()}`)) as { messages: Message[] };
      show(g, res, () =>
        table(['ID', 'STATUS', 'FROM', 'TO', 'ATTEMPTS', 'PROVIDER', 'NEXT', 'LAST ERROR'], res.messages.map((m) => [m.id, m.status, m.mail_from || '<>', m.rcpt_to.join(','), String(m.attempts), m.provider ?? '-', ['queued', 'deferred'].includes(m.status) ? new Date(m.next_attempt_at).toISOString() : '-', m.last_error ?? ''])),
      );
    });

  const actions: [string, string, (m: Message) => string][] = [
    ['retry', 'make a queued, deferred or held message due now (the relay picks it up within a second)', (m) => `${m.id} is due now (attempts so far: ${m.attempts})`],
    ['hold', 'keep a queued or deferred message from being delivered until released', (m) => `${m.id} is held`],
    ['release', 'put a held message back in the queue, due now', (m) => `${m.id} is queued again, due now`],
  ];
  for (const [action, description, said] of actions)
    mail
      .command(action)
      .description(description)
      .argument('<id>', 'message id (dnsproxy mail queue)')
      .action(async (id: string) => {
        const res = (await call(g.target(), 'POST', `/api/v1/mail/queue/${enc(id)}/${action}`)) as { message: Message };
        show(g, res, () => said(res.message));
      });
  mail
    .command('delete')
    .description('delete a message that is not being delivered, with its delivery log')
    .argument('<id>')
    .action(async (id: string) => {
      await call(g.target(), 'DELETE', `/api/v1/mail/queue/${enc(id)}`);
      show(g, { deleted: id }, () => `deleted ${id}`);
    });
  mail
    .command('log')
    .description("a message's delivery attempts: time, provider, outcome, reply code, duration, reply text")
    .argument('<id>')
    .action(async (id: string) => {
      const res = (await call(g.target(), 'GET', `/api/v1/mail/queue/${enc(id)}/log`)) as { deliveries: Delivery[] };
      show(g, res, () => (res.deliveries.length ? logTable(res.deliveries) : 'no delivery attempts yet'));
    });
}
