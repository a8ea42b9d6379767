// `dnsproxy mail domain add|remove|list|check|rotate-dkim <domain>`: clients of
// /api/v1/mail/domains. `check` prints a pass/fail table and exits 1 when any row fails.
import type { Command } from 'commander';
import type { MailDomainView } from '../model/mail.js';
import { call, CliError } from './client.js';
import type { Globals } from './commands.js';
import { printJson, table } from './output.js';
import { dryQuery, printResult } from './routes.js';

const enc = encodeURIComponent;
const collect = (v: string, prev: string[] = []) => [...prev, v];

type DomainView = MailDomainView;
interface StoredSet { name: string; type: string }

export function mailDomainCommands(mail: Command, g: Globals): void {
  const domain = mail.command('domain').description('mail-aware domains: our DNS publishes their MX, SPF, DKIM, DMARC, MTA-STS and TLS-RPT records');
  domain
    .command('add')
    .description('publish (or update) the mail records of a domain in a zone we serve; makes its DKIM key if it has none')
    .argument('<domain>')
    .option('--dmarc <policy>', 'DMARC policy: none (default), quarantine or reject')
    .option('--dmarc-rua <address>', 'where DMARC aggregate reports go')
    .option('--tls-rpt-rua <address>', 'where TLS-RPT reports go (default postmaster@<domain>)')
    .option('--mta-sts <mode>', 'MTA-STS mode: testing (default), enforce or none')
    .option('--spf-all <term>', 'SPF for other senders: ~all (default), -all or ?all')
    .option('--spf-include <domain>', 'an extra SPF include: (repeatable)', collect)
    .option('--spf-address <ip>', "an address of this relay for SPF (repeatable; default node_ip)", collect)
    .option('--selector <label>', "the selector of the domain's first DKIM key", 'dnsproxy')
    .option('--dry-run', 'show the records it would publish, apply nothing')
    .action(async (name: string, o: { dmarc?: string; dmarcRua?: string; tlsRptRua?: string; mtaSts?: string; spfAll?: string; spfInclude?: string[]; spfAddress?: string[]; selector: string; dryRun?: boolean }) => {
      const body = {
        selector: o.selector,
        ...(o.dmarc ? { dmarc_policy: o.dmarc } : {}),
        ...(o.dmarcRua ? { dmarc_rua: o.dmarcRua } : {}),
        ...(o.tlsRptRua ? { tls_rpt_rua: o.tlsRptRua } : {}),
        ...(o.mtaSts ? { mta_sts_mode: o.mtaSts } : {}),
        ...(o.spfAll ? { spf_all: o.spfAll } : {}),
        ...(o.spfInclude ? { spf_include: o.spfInclude } : {}),
        ...(o.spfAddress ? { spf_addresses: o.spfAddress } : {}),
      };
      const res = await call(g.target(), 'PUT', `/api/v1/mail/domains/${enc(name)}${dryQuery(o.dryRun)}`, body);
      printResult(g, res, (r: { domain: DomainView; records: StoredSet[]; warnings: string[] }) =>
        [`published ${r.domain.domain}: ${r.records.length ? r.records.map((x) => `${x.name} ${x.type}`).join(', ') : 'no change'}`, ...r.warnings.map((w) => `warning: ${w}`)].join('\n'),
      );
    });
  domain
    .command('remove')
    .description("take away what the domain published (records a user keeps at the same names stay)")
    .argument('<domain>')
    .option('--dry-run', 'show what it would take away, apply nothing')
    .action(async (name: string, o: { dryRun?: boolean }) => {
      const res = await call(g.target(), 'DELETE', `/api/v1/mail/domains/${enc(name)}${dryQuery(o.dryRun)}`);
      printResult(g, res, (r: { removed: StoredSet[]; changed: StoredSet[] }) => `removed ${[...r.removed, ...r.changed].map((x) => `${x.name} ${x.type}`).join(', ') || 'nothing'}`);
    });
  domain
    .command('list')
    .description('list mail-aware domains')
    .action(async () => {
      const res = (await call(g.target(), 'GET', '/api/v1/mail/domains')) as { domains: DomainView[] };
      if (g.json()) return printJson(res);
      console.log(
        table(
          ['DOMAIN', 'ZONE', 'DMARC', 'MTA-STS', 'DKIM', 'ALSO PUBLISHED'],
          res.domains.map((d) => [d.domain, d.zone, d.settings.dmarc_policy, d.settings.mta_sts_mode, d.dkim.signing ?? '-', d.dkim.published.map((p) => `${p.selector} (${p.state} until ${new Date(p.at_ms).toISOString()})`).join(', ') || '-']),
        ),
      );
    });
  domain
    .command('check')
    .description('ask our DNS server what the domain publishes and validate it with mailauth; exit 1 when any row fails')
    .argument('<domain>')
    .action(async (name: string) => {
      const res = (await call(g.target(), 'GET', `/api/v1/mail/domains/${enc(name)}/check`)) as { ok: boolean; server: string; rows: { check: string; result: string; detail: string }[] };
      if (g.json()) printJson(res);
      else console.log(`asked ${res.server}\n${table(['CHECK', 'RESULT', 'DETAIL'], res.rows.map((r) => [r.check, r.result.toUpperCase(), r.detail]))}`);
      if (!res.ok) throw new CliError(`${name}: ${res.rows.filter((r) => r.result !== 'pass').map((r) => r.check).join(', ')} failed`);
    });
  domain
    .command('rotate-dkim')
    .description('publish a new DKIM key now, sign with it after --sign-after, keep the old one published for --grace')
    .argument('<domain>')
    .requiredOption('--selector <label>', 'the new key\'s selector')
    .option('--sign-after <seconds>', 'seconds between publishing and signing (default 3600)', (v) => Number(v))
    .option('--grace <seconds>', 'seconds the old key stays published afterwards (default 604800)', (v) => Number(v))
    .option('--dry-run', 'show what it would publish, apply nothing')
    .action(async (name: string, o: { selector: string; signAfter?: number; grace?: number; dryRun?: boolean }) => {
      const body = { selector: o.selector, ...(o.signAfter !== undefined ? { sign_after: o.signAfter } : {}), ...(o.grace !== undefined ? { grace: o.grace } : {}) };
      const res = await call(g.target(), 'POST', `/api/v1/mail/domains/${enc(name)}/dkim/rotate${dryQuery(o.dryRun)}`, body);
      printResult(g, res, (r: { signs_from: string }) => `published ${o.selector}._domainkey.${name}; it signs from ${r.signs_from}`);
    });
}
