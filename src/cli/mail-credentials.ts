// `dnsproxy mail account rotate-key|key add|list|revoke`: clients of
// /api/v1/mail/accounts/{name}/keys. A new key is the only thing printed on
// stdout (KEY=$(dnsproxy mail account rotate-key app) works); what happened to the old keys goes
// to stderr. --json prints the API answer instead.
import type { Command } from 'commander';
import { call } from './client.js';
import type { Globals } from './commands.js';
import { printJson, table } from './output.js';

const enc = encodeURIComponent;

interface KeyInfo { id: string; account: string; label: string; created_at: string; last_used_at: string | null; expires_at: string | null; state: string }
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
    .description("list the account's keys (never the keys themselves)")
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

