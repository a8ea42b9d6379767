// `dnsproxy mail account rotate-key|key add|list|revoke` and `dnsproxy mail cert`: clients of
// /api/v1/mail/accounts/{name}/keys and /api/v1/mail/cert. A new key is the only thing printed on
// stdout (KEY=$(dnsproxy mail account rotate-key app) works); what happened to the old keys goes
// to stderr. --json prints the API answer instead.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { call, CliError } from './client.js';
import type { CertInfo, KeyInfo } from '../model/mail.js';
import type { Globals } from './commands.js';
import { printJson, table } from './output.js';

const enc = encodeURIComponent;

interface CertView {
  presented: (CertInfo & { source: string; since: string }) | null;
  operator: (CertInfo & { set_at: string }) | null;
  pending: boolean;
  warnings?: string[];
}

const describeKey = (k: KeyInfo) => `key ${k.id} (${k.label})${k.expires_at ? `, works until ${k.expires_at}` : ''}`;

/** The new key on stdout alone, everything else on stderr (or the whole answer with --json). */
function printNewKey(g: Globals, res: { key: string; info: KeyInfo }, notes: string[]): void {
  if (g.json()) return printJson(res);
  console.error(`new ${describeKey(res.info)} for account ${res.info.account}; shown once, store it now:`);
  console.log(res.key);
  for (const n of notes) console.error(n);
}

export function accountKeyCommands(account: Command, g: Globals): void {
  account
    .command('rotate-key')
    .description('make a new API key for the account (printed once) and revoke its old keys, now or after --keep-old')
    .argument('<account>')
    .option('--keep-old <duration>', 'let the old keys work this much longer (30m, 24h, 7d); default 0: revoked now')
    .option('--label <label>', 'label of the new key (default: rotated <date>)')
    .action(async (name: string, o: { keepOld?: string; label?: string }) => {
      const body = { ...(o.keepOld !== undefined ? { keep_old: o.keepOld } : {}), ...(o.label !== undefined ? { label: o.label } : {}) };
      const res = (await call(g.target(), 'POST', `/api/v1/mail/accounts/${enc(name)}/keys/rotate`, body)) as { key: string; info: KeyInfo; kept: KeyInfo[]; removed: string[] };
      printNewKey(g, res, [...res.kept.map((k) => `old ${describeKey(k)}`), ...res.removed.map((id) => `old key ${id} revoked`)]);
    });

  const key = account.command('key').description("an account's API keys: SMTP AUTH with a key instead of the password");
  key
    .command('add')
    .description('add an API key (printed once); the account keeps its other keys and its password')
    .argument('<account>')
    .option('--label <label>', 'what the key is for', 'key')
    .option('--expires-in <duration>', 'the key stops working after this (30m, 24h, 90d); default: until revoked')
    .action(async (name: string, o: { label: string; expiresIn?: string }) => {
      const body = { label: o.label, ...(o.expiresIn !== undefined ? { expires_in: o.expiresIn } : {}) };
      const res = (await call(g.target(), 'POST', `/api/v1/mail/accounts/${enc(name)}/keys`, body)) as { key: string; info: KeyInfo };
      printNewKey(g, res, []);
    });
  key
    .command('list')
    .description("list the account's keys, revoked ones too (never the keys themselves)")
    .argument('<account>')
    .action(async (name: string) => {
      const res = (await call(g.target(), 'GET', `/api/v1/mail/accounts/${enc(name)}/keys`)) as { keys: KeyInfo[] };
      if (g.json()) return printJson(res);
      console.log(
        res.keys.length
          ? table(['ID', 'LABEL', 'STATE', 'CREATED', 'LAST USED', 'EXPIRES'], res.keys.map((k) => [k.id, k.label, k.state, k.created_at, k.last_used_at ?? '-', k.expires_at ?? '-']))
          : `account ${name} has no keys (add one with: dnsproxy mail account key add ${name})`,
      );
    });
  key
    .command('revoke')
    .description('revoke a key now: new logins with it get 535, open sessions 530 at their next MAIL FROM')
    .argument('<account>')
    .argument('<id>', 'key id (dnsproxy mail account key list)')
    .action(async (name: string, id: string) => {
      await call(g.target(), 'DELETE', `/api/v1/mail/accounts/${enc(name)}/keys/${enc(id)}`);
      if (g.json()) return printJson({ revoked: id });
      console.log(`revoked key ${id} of account ${name}`);
    });
}

function certLines(c: CertInfo): string[] {
  return [
    `subject:  ${c.subject || '-'}`,
    `names:    ${c.names.join(', ') || '-'}`,
    `issuer:   ${c.self_signed ? 'self-signed' : c.issuer}`,
    `valid:    ${c.not_before} → ${c.not_after}${c.expired ? '  EXPIRED' : ''}`,
    `sha256:   ${c.fingerprint_sha256}`,
    `chain:    ${c.chain_length} certificate${c.chain_length === 1 ? '' : 's'}`,
  ];
}

const SOURCES: Record<string, string> = {
  store: 'the certificate store (dnsproxy cert) for the relay\'s host name',
  operator: 'set with dnsproxy mail cert',
  configured: 'the mail_tls_cert / mail_tls_key files',
  'self-signed': "the relay's self-signed certificate",
};

function certText(v: CertView): string {
  const out: string[] = [];
  if (v.presented) out.push(`presented by the relay since ${v.presented.since}: ${SOURCES[v.presented.source] ?? v.presented.source}`, ...certLines(v.presented));
  else out.push('the relay has not started on this data dir yet (it records the certificate it presents when it does)');
  if (v.pending && v.operator)
    out.push('', `set with dnsproxy mail cert at ${v.operator.set_at}, not presented yet: the running relay takes it within 5 s, or at its next start`, ...certLines(v.operator));
  for (const w of v.warnings ?? []) out.push(`warning: ${w}`);
  return out.join('\n');
}

function readPem(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${flag} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
  }
}

export function mailCertCommand(mail: Command, g: Globals): void {
  mail
    .command('cert')
    .description("show the relay's STARTTLS certificate; with --cert and --key set one (checked: key matches, chain order, not expired); --remove goes back to the default")
    .option('--cert <file>', 'PEM certificate chain, leaf first')
    .option('--key <file>', 'PEM private key of the leaf (not encrypted)')
    .option('--remove', 'forget the certificate set here: the relay uses mail_tls_cert or its self-signed one again')
    .action(async (o: { cert?: string; key?: string; remove?: boolean }) => {
      if ((o.cert === undefined) !== (o.key === undefined)) throw new CliError('--cert and --key go together', 2);
      if (o.remove && o.cert !== undefined) throw new CliError('--remove takes no --cert/--key', 2);
      if (o.remove) {
        await call(g.target(), 'DELETE', '/api/v1/mail/cert');
        if (g.json()) return printJson({ removed: true });
        return console.log('removed the certificate; the relay goes back to mail_tls_cert or its self-signed one within 5 s');
      }
      const res = (
        o.cert !== undefined && o.key !== undefined
          ? await call(g.target(), 'PUT', '/api/v1/mail/cert', { cert: readPem(o.cert, '--cert'), key: readPem(o.key, '--key') })
          : await call(g.target(), 'GET', '/api/v1/mail/cert')
      ) as CertView;
      if (g.json()) return printJson(res);
      console.log(certText(res));
    });
}
