// Which host names can hold a certificate: the rules for route hosts and proxied record names that
// the syntax check (name.ts) does not cover. Pure. Applied to new input at the API edge only, so
// rows stored before a rule existed still load (src/proxy/desired.ts reports such a route as an error).
import { isIP } from 'node:net';

/**
 * Top-level labels no public CA issues certificates under: special-use names (RFC 6761 .test,
 * .localhost, .invalid, .example; RFC 6762 .local; RFC 7686 .onion; .arpa with RFC 8375's
 * home.arpa), .internal (reserved by ICANN for private use, 2024), .home, .corp and .mail (never
 * to be delegated, ICANN 2018), and the private suffixes home routers use. Not every undelegated
 * label is here: this catches the usual ones.
 */
const PRIVATE_TLDS: ReadonlySet<string> = new Set(['arpa', 'internal', 'lan', 'local', 'localhost', 'test', 'invalid', 'example', 'onion', 'home', 'corp', 'mail', 'localdomain', 'intranet', 'private']);

/** Why a certificate for `host` (lower-case or not, trailing dot or not) cannot come from a public CA through Caddy's ACME issuer, or null. */
export function acmeNameProblem(host: string): string | null {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (isIP(h)) return `${h} is an IP address: no public CA issues it a certificate here`;
  if (h.startsWith('*.')) return `${h} is a wildcard: its certificate needs the ACME DNS-01 challenge, which Debian's Caddy lacks`;
  const labels = h.split('.');
  if (labels.length === 1) return `${h} is a single label: no public CA issues it a certificate`;
  const tld = labels[labels.length - 1] ?? '';
  if (PRIVATE_TLDS.has(tld) || /^\d+$/.test(tld)) return `no public CA issues a certificate for ${h} (.${tld} is not a public domain)`;
  return null;
}

/** What to do instead of `tls: acme` for such a name. */
export const ACME_HINT = 'use tls internal (Caddy\'s own CA; trust its root on your devices) for private names';

/**
 * Why `host` is no name for a web site, or null: "_" is valid in DNS labels (SRV, DKIM) but not in
 * host names (RFC 952/1123); public CAs refuse certificates for it and HTTP clients may refuse the name.
 */
export function hostNameProblem(host: string): string | null {
  return host.includes('_') ? 'must not contain "_": a host name (and a certificate for it) allows only letters, digits, "-" and "."' : null;
}
