// `dnsproxy cert add|list|remove`: the certificate store (src/certs). `add --cert --key` uploads a
// PEM chain and its key (checked by the controller); `add --acme-dns01 NAME...` orders one from
// the ACME CA with DNS-01 in our own zones. No command prints a private key: the API has none.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { call, CliError } from './client.js';
import type { Globals } from './commands.js';
import { printJson, table } from './output.js';
import { dryQuery } from './routes.js';

interface CertRow {
  id: string;
  source: string;
  names: string[];
  issuer: string;
  not_before: string;
  not_after: string;
  fingerprint_sha256: string;
  renewal: { due_at: string; last_error: string | null; failures: number } | null;
}

interface DryRunAnswer {
  dry_run: true;
  plan: Record<string, { added: string[]; changed: string[]; removed: string[] }>;
}

const enc = encodeURIComponent;

function readPem(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${flag} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
  }
}

const isDry = (res: unknown): res is DryRunAnswer => Boolean(res && typeof res === 'object' && 'dry_run' in res);

function dryText(res: DryRunAnswer): string {
  const lines = Object.values(res.plan).flatMap((p) => [...p.added.map((x) => `+ ${x}`), ...p.changed.map((x) => `~ ${x}`), ...p.removed.map((x) => `- ${x}`)]);
  return `dry run, nothing applied:\n${lines.length ? lines.join('\n') : 'no changes'}`;
}

const daysLeft = (notAfter: string) => Math.floor((Date.parse(notAfter) - Date.now()) / 86_400_000);

export function certCommands(program: Command, g: Globals): void {
  const cert = program.command('cert').description('certificates Caddy serves for their names and the mail relay presents for its host name: upload, order with ACME DNS-01, list, remove');
  cert
    .command('add')
    .description('upload a certificate (--cert chain.pem --key key.pem), or order one with ACME DNS-01 in our zones (--acme-dns01 NAME...)')
    .option('--cert <file>', 'PEM certificate chain, leaf first, then each issuer')
    .option('--key <file>', 'PEM private key of the leaf (not encrypted)')
    .option('--acme-dns01 <names...>', 'order a certificate for these names (in zones we serve; "*.zone" for a wildcard)')
    .option('--dry-run', 'validate and show the plan without applying')
    .action(async (o: { cert?: string; key?: string; acmeDns01?: string[]; dryRun?: boolean }) => {
      if (o.acmeDns01 && (o.cert !== undefined || o.key !== undefined)) throw new CliError('--acme-dns01 takes no --cert/--key', 2);
      if (!o.acmeDns01 && (o.cert === undefined || o.key === undefined)) throw new CliError('give --cert and --key (an upload) or --acme-dns01 NAME... (an order)', 2);
      const body = o.acmeDns01 ? { acme_dns01: { names: o.acmeDns01 } } : { cert: readPem(o.cert!, '--cert'), key: readPem(o.key!, '--key') };
      const res = (await call(g.target(), 'POST', `/api/v1/certificates${dryQuery(o.dryRun)}`, body)) as DryRunAnswer | { certificate: CertRow; warnings?: string[] };
      if (g.json()) return printJson(res);
      if (isDry(res)) return console.log(dryText(res));
      const c = res.certificate;
      console.log(`certificate ${c.id} (${c.source}) for ${c.names.join(', ')}, valid until ${c.not_after}, sha256 ${c.fingerprint_sha256}`);
      for (const w of res.warnings ?? []) console.log(`warning: ${w}`);
    });
  cert
    .command('list')
    .description('list the certificates (never a key)')
    .action(async () => {
      const res = (await call(g.target(), 'GET', '/api/v1/certificates')) as { certificates: CertRow[] };
      if (g.json()) return printJson(res);
      console.log(
        table(
          ['ID', 'SOURCE', 'NAMES', 'NOT AFTER', 'DAYS', 'ISSUER', 'SHA256'],
          res.certificates.map((c) => [c.id, c.source, c.names.join(', '), c.not_after, String(daysLeft(c.not_after)), c.issuer, c.fingerprint_sha256]),
        ),
      );
      for (const c of res.certificates) if (c.renewal?.last_error) console.log(`${c.id}: renewal failed ${c.renewal.failures} time(s), next try ${c.renewal.due_at}: ${c.renewal.last_error}`);
    });
  cert
    .command('remove')
    .description('remove a certificate: Caddy stops serving it at its next load, the mail relay goes back to its own')
    .argument('<id>', 'the certificate id (crt_…, from cert list)')
    .option('--dry-run', 'show the plan without applying')
    .action(async (id: string, o: { dryRun?: boolean }) => {
      const res = await call(g.target(), 'DELETE', `/api/v1/certificates/${enc(id)}${dryQuery(o.dryRun)}`);
      if (g.json()) return printJson(res || { removed: id });
      if (isDry(res)) return console.log(dryText(res));
      console.log(`removed certificate ${id}`);
    });
}
