// `dnsproxy mail domain check`: asks our DNS server (dns2, resolver.ts) for what a mail domain
// publishes and validates it with mailauth as a receiver would: a message signed with the domain's
// signing key, sent from the relay's address, must pass DKIM, SPF and DMARC. One row per check.
import { authenticate } from 'mailauth';
import { parsePolicy } from 'mailauth/lib/mta-sts.js';
import { signMessage } from '../delivery/dkim.js';
import type { DnsResolver } from '../resolver.js';
import type { DkimKey } from '../store.js';

export interface CheckRow {
  check: string;
  result: 'pass' | 'fail';
  detail: string;
}

export interface CheckInput {
  /** Bare domain. */
  domain: string;
  /** The relay's host name (MX target). */
  hostname: string;
  /** The address SPF must pass for (the relay's). */
  ip: string;
  signing: DkimKey | undefined;
  /** Selectors published beside the signing one (rotation): each must resolve to a DKIM key. */
  extraSelectors: readonly string[];
  /** The MTA-STS policy we serve (null: mode none) and the id its TXT record must carry. */
  policy: { text: string; id: string } | null;
  resolver: DnsResolver;
  now: Date;
}

const row = (check: string, ok: boolean, detail: string): CheckRow => ({ check, result: ok ? 'pass' : 'fail', detail });
const errText = (e: unknown) => (e as { code?: string }).code ?? (e as Error).message;

async function txt(resolver: DnsResolver, name: string): Promise<string[]> {
  const records = (await resolver(name, 'TXT')) as unknown as string[][];
  return records.map((chunks) => chunks.join(''));
}

/** The rows, in a fixed order: MX, SPF, DKIM (each selector), DMARC, MTA-STS, TLS-RPT. */
export async function checkDomain(c: CheckInput): Promise<CheckRow[]> {
  const rows: CheckRow[] = [];
  const d = c.domain;
  try {
    const mx = (await c.resolver(d, 'MX')) as unknown as { exchange: string; priority: number }[];
    const ok = mx.some((m) => m.exchange.replace(/\.$/, '').toLowerCase() === c.hostname.toLowerCase());
    rows.push(row('MX', ok, mx.map((m) => `${m.priority} ${m.exchange}`).join(', ') + (ok ? '' : ` (expected ${c.hostname})`)));
  } catch (e) {
    rows.push(row('MX', false, `lookup failed: ${errText(e)}`));
  }

  // One message as the relay would send it: signed with the signing key, from the relay's address.
  const message = Buffer.from(`From: postmaster@${d}\r\nTo: check@example.invalid\r\nSubject: dnsproxy mail domain check\r\nDate: ${c.now.toUTCString()}\r\nMessage-ID: <check.${c.now.getTime()}@${d}>\r\n\r\nA check of ${d}.\r\n`);
  let signed: Buffer = message;
  if (c.signing) signed = await signMessage(message, c.signing);
  const auth = await authenticate(signed, { ip: c.ip, helo: c.hostname, sender: `postmaster@${d}`, mta: c.hostname, resolver: c.resolver, disableBimi: true, disableArc: true });

  const spf = auth.spf;
  rows.push(row('SPF', spf !== false && spf.status.result === 'pass', spf === false ? 'not checked' : `${spf.status.result} for ${c.ip}${spf.rr ? `: ${spf.rr}` : ''}${spf.status.comment ? ` (${spf.status.comment})` : ''}`));

  if (!c.signing) rows.push(row(`DKIM`, false, `${d} has no signing key`));
  else {
    const r = auth.dkim.results.find((x) => x.selector === c.signing!.selector);
    rows.push(row(`DKIM ${c.signing.selector}`, r?.status.result === 'pass', r ? `${r.status.result}${r.status.comment ? ` (${r.status.comment})` : ''}: a message signed with the signing key verifies against ${c.signing.selector}._domainkey.${d}` : 'no result'));
  }
  for (const sel of c.extraSelectors) {
    try {
      const values = await txt(c.resolver, `${sel}._domainkey.${d}`);
      const ok = values.some((v) => /^v=DKIM1;.*\bp=[A-Za-z0-9+/=]{100,}/.test(v));
      rows.push(row(`DKIM ${sel}`, ok, ok ? 'published (rotation)' : `no DKIM key in ${JSON.stringify(values)}`));
    } catch (e) {
      rows.push(row(`DKIM ${sel}`, false, `lookup failed: ${errText(e)}`));
    }
  }

  const dmarc = auth.dmarc;
  rows.push(
    row(
      'DMARC',
      dmarc !== false && dmarc.status.result === 'pass' && Boolean(dmarc.policy),
      dmarc === false ? 'not checked' : `${dmarc.status.result}, p=${dmarc.policy || '(none found)'}${dmarc.status.comment ? ` (${dmarc.status.comment})` : ''}`,
    ),
  );

  if (c.policy) {
    try {
      const values = await txt(c.resolver, `_mta-sts.${d}`);
      const sts = values.filter((v) => /^v=STSv1\s*;/.test(v));
      const id = /;\s*id=([A-Za-z0-9]{1,32})\s*;?\s*$/.exec(sts[0] ?? '')?.[1];
      const policy = parsePolicy(c.policy.text);
      const ok = sts.length === 1 && id === c.policy.id && policy.mx?.includes(c.hostname) === true;
      rows.push(row('MTA-STS', ok, sts.length === 1 ? `id=${id ?? '?'}${id === c.policy.id ? '' : ` (the policy served has id ${c.policy.id})`}, mode ${policy.mode}` : `${sts.length} v=STSv1 records`));
    } catch (e) {
      rows.push(row('MTA-STS', false, `lookup failed: ${errText(e)}`));
    }
  }
  try {
    const values = (await txt(c.resolver, `_smtp._tls.${d}`)).filter((v) => /^v=TLSRPTv1\s*;/.test(v));
    const ok = values.length === 1 && /;\s*rua=(mailto:|https:)/.test(values[0]!);
    rows.push(row('TLS-RPT', ok, values.join(' | ') || 'no v=TLSRPTv1 record'));
  } catch (e) {
    rows.push(row('TLS-RPT', false, `lookup failed: ${errText(e)}`));
  }
  return rows;
}
