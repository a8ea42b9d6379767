// Pure: what our DNS publishes for a mail-aware domain (`dnsproxy mail domain add`), and how those
// records merge with the record sets a user keeps at the same names. No I/O: domains.ts applies it.
//
// | name                          | type | value                                             |
// |-------------------------------|------|---------------------------------------------------|
// | <domain>                      | MX   | 10 <mail_hostname>.                               |
// | <domain>                      | TXT  | v=spf1 ip4:<addr>… include:<provider>… ~all       |
// | <selector>._domainkey.<domain>| TXT  | v=DKIM1; k=rsa; p=… (each published selector)     |
// | _dmarc.<domain>               | TXT  | v=DMARC1; p=none[; rua=mailto:…]                  |
// | _mta-sts.<domain>             | TXT  | v=STSv1; id=<hash of the policy>                  |
// | _smtp._tls.<domain>           | TXT  | v=TLSRPTv1; rua=mailto:<tls_rpt_rua>              |
// | mta-sts.<domain>              | A    | node_ip (the host that serves the policy)         |
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { MTA_STS_MAX_AGE, type MailDomainSettings, type Provider, type Rule } from '../../model/mail.js';

export { DEFAULT_SELECTOR, dkimSelector, MTA_STS_MAX_AGE, mailDomainSettings, type MailDomainSettings } from '../../model/mail.js';

/** One record set the domain wants published (values as the record model takes them). */
export interface WantedSet {
  name: string;
  type: 'MX' | 'TXT' | 'A';
  values: unknown[];
}

export interface DomainFacts {
  /** The domain, absolute (trailing dot). */
  domain: string;
  /** The relay's host name (MX target), without the trailing dot. */
  hostname: string;
  nodeIp: string;
  settings: MailDomainSettings;
  /** Providers the rules for mail from this domain use (primary and fallback). */
  providers: readonly Provider[];
  /** DKIM selectors to publish with their TXT values. */
  dkim: readonly { selector: string; txt: string }[];
}

/** SPF include: domains of the e-mail vendors a provider may be (their documented SPF records). */
const VENDOR_SPF: readonly [RegExp, string][] = [
  [/(^|\.)sendgrid\.(net|com)$/, 'sendgrid.net'],
  [/(^|\.)mailgun\.(org|net)$/, 'mailgun.org'],
  [/(^|\.)postmarkapp\.com$/, 'spf.mtasv.net'],
  [/(^|\.)amazonaws\.com$/, 'amazonses.com'],
  [/(^|\.)(gmail|google)\.com$/, '_spf.google.com'],
  [/(^|\.)(office365|outlook)\.com$/, 'spf.protection.outlook.com'],
];

/** The SPF include a provider needs, null when its mail leaves from this host (mx), or UNKNOWN_SPF. */
export const UNKNOWN_SPF = 'unknown';
export function providerSpf(p: Provider): string | null {
  const c = p.config;
  if (c.type === 'mx') return null;
  const host = c.type === 'smtp' ? c.host.toLowerCase() : new URL(c.url).hostname.toLowerCase();
  if (c.type === 'http' && c.format === 'sendgrid') return 'sendgrid.net';
  if (c.type === 'http' && c.format === 'mailgun') return 'mailgun.org';
  if (c.type === 'http' && c.format === 'postmark') return 'spf.mtasv.net';
  for (const [re, include] of VENDOR_SPF) if (re.test(host)) return include;
  return UNKNOWN_SPF;
}

/** The providers (primary and fallback, once each) of the rules that may carry mail from `domain`. */
export function providersFor(domain: string, rules: readonly Rule[], provider: (name: string) => Provider | undefined): Provider[] {
  const bare = domain.replace(/\.$/, '').toLowerCase();
  const names = new Set<string>();
  for (const r of rules) {
    if (r.sender_domain !== null && r.sender_domain !== bare) continue;
    names.add(r.provider);
    if (r.fallback_provider) names.add(r.fallback_provider);
  }
  return [...names].sort().flatMap((n) => provider(n) ?? []);
}

/** The SPF value, and the providers whose senders it cannot name (the caller warns). */
export function spfValue(f: DomainFacts): { value: string; unknown: string[] } {
  const addresses = f.settings.spf_addresses ?? [f.nodeIp];
  const includes = new Set<string>(f.settings.spf_include);
  const unknown: string[] = [];
  for (const p of f.providers) {
    const inc = providerSpf(p);
    if (inc === UNKNOWN_SPF) unknown.push(p.name);
    else if (inc) includes.add(inc);
  }
  const terms = ['v=spf1', ...addresses.map((a) => `${isIP(a) === 6 ? 'ip6' : 'ip4'}:${a}`), ...[...includes].sort().map((i) => `include:${i}`), f.settings.spf_all];
  return { value: terms.join(' '), unknown };
}

/** The MTA-STS policy file served at https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.2). */
export function mtaStsPolicy(f: Pick<DomainFacts, 'hostname' | 'settings'>): string {
  return `version: STSv1\r\nmode: ${f.settings.mta_sts_mode}\r\nmx: ${f.hostname}\r\nmax_age: ${MTA_STS_MAX_AGE}\r\n`;
}

/** The policy's id: changes whenever the policy does (RFC 8461 §3.1: 1-32 letters and digits). */
export const mtaStsId = (policy: string): string => createHash('sha256').update(policy).digest('hex').slice(0, 20);

const bare = (d: string) => d.replace(/\.$/, '');

/** Every record set the domain wants, in a fixed order. */
export function wantedSets(f: DomainFacts): WantedSet[] {
  const d = f.domain;
  const dmarc = [`v=DMARC1; p=${f.settings.dmarc_policy}`, ...(f.settings.dmarc_rua ? [`rua=mailto:${f.settings.dmarc_rua}`] : [])].join('; ');
  return [
    { name: d, type: 'MX', values: [{ preference: 10, exchange: `${bare(f.hostname)}.` }] },
    { name: d, type: 'TXT', values: [spfValue(f).value] },
    ...f.dkim.map((k): WantedSet => ({ name: `${k.selector}._domainkey.${d}`, type: 'TXT', values: [k.txt] })),
    { name: `_dmarc.${d}`, type: 'TXT', values: [dmarc] },
    { name: `_mta-sts.${d}`, type: 'TXT', values: [`v=STSv1; id=${mtaStsId(mtaStsPolicy(f))}`] },
    { name: `_smtp._tls.${d}`, type: 'TXT', values: [`v=TLSRPTv1; rua=mailto:${f.settings.tls_rpt_rua ?? `postmaster@${bare(d)}`}`] },
    { name: `mta-sts.${d}`, type: 'A', values: [f.nodeIp] },
  ];
}

/** A value's identity: JSON with sorted keys (stored values come back with their keys in any order). */
export function valueKey(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(valueKey).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${valueKey(o[k])}`).join(',')}}`;
}

/** The tag a TXT value of ours starts with, per name kind: a user value with the same tag would make two policies. */
function policyTag(v: unknown): string | null {
  const text = typeof v === 'string' ? v : Array.isArray(v) ? v.map((s) => (typeof s === 'string' ? s : '')).join('') : '';
  const m = /^(v=spf1|v=DMARC1|v=DKIM1|v=STSv1|v=TLSRPTv1)(\s|;|$)/i.exec(text);
  return m ? m[1]!.toLowerCase() : null;
}

/**
 * The values a set holds after the domain publishes: the user's own values (those not `owned`)
 * plus the domain's `wanted`. A user value carrying the same policy tag as one of ours (a second
 * SPF record, say, which makes SPF permerror) is a conflict: returned, nothing merged.
 */
export function mergeSet(existing: readonly unknown[], owned: ReadonlySet<string>, wanted: readonly unknown[]): { values: unknown[]; conflict: unknown } {
  const user = existing.filter((v) => !owned.has(valueKey(v)));
  const ourTags = new Set(wanted.map(policyTag).filter((t) => t !== null));
  const clash = user.find((v) => {
    const tag = policyTag(v);
    return tag !== null && ourTags.has(tag);
  });
  if (clash !== undefined) return { values: [...existing], conflict: clash };
  const keys = new Set(user.map(valueKey));
  return { values: [...user, ...wanted.filter((v) => !keys.has(valueKey(v)))], conflict: null };
}
