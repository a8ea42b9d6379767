// Caddy's ACME issuer for `tls: acme` names (src/proxy/README.md, "ACME issuer"): which CA
// (directory URL), which roots to trust when talking to it (a private CA such as a company's
// step-ca, or pebble in tests), the account's contact address and the challenges offered.
// Checked against Caddy v2.6.2's source (modules/caddytls/acmeissuer.go `ACMEIssuer`):
// `ca`, `email`, `trusted_roots_pem_files`, `challenges.http.disabled`,
// `challenges.tls-alpn.disabled`. The challenge ports are left to Caddy: its HTTP app fills
// `alternate_port` of every ACME issuer from `apps.http.http_port` / `https_port`
// (caddyhttp/autohttps.go fillInACMEIssuer), which are the ports our servers listen on.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const ACME_CHALLENGES = ['http-01', 'tls-alpn-01'] as const;
export type AcmeChallenge = (typeof ACME_CHALLENGES)[number];

export interface AcmeIssuerSettings {
  /** The CA's ACME directory URL; absent: Caddy's default (Let's Encrypt). */
  ca?: string;
  /** PEM files of the roots Caddy trusts when it talks to the CA (absent: the system's trust store). */
  trustedRoots?: readonly string[];
  /** Contact address of the ACME account. */
  email?: string;
  /** Challenge types Caddy may solve; absent: both. */
  challenges?: readonly AcmeChallenge[];
}

/** The issuer object of a `tls: acme` automation policy (`{"module": "acme"}` with no settings). */
export function acmeIssuer(s: AcmeIssuerSettings | undefined): Record<string, unknown> {
  const issuer: Record<string, unknown> = { module: 'acme' };
  if (!s) return issuer;
  if (s.ca !== undefined) issuer.ca = s.ca;
  if (s.email !== undefined) issuer.email = s.email;
  if (s.trustedRoots !== undefined && s.trustedRoots.length > 0) issuer.trusted_roots_pem_files = [...s.trustedRoots];
  if (s.challenges !== undefined) {
    const off = ACME_CHALLENGES.filter((c) => !s.challenges!.includes(c));
    const challenges: Record<string, unknown> = {};
    if (off.includes('http-01')) challenges.http = { disabled: true };
    if (off.includes('tls-alpn-01')) challenges['tls-alpn'] = { disabled: true };
    if (Object.keys(challenges).length > 0) issuer.challenges = challenges;
  }
  return issuer;
}

/** The issuer of a policy for `mode`: the local CA, or the ACME issuer with its settings. */
export function issuerFor(mode: 'internal' | 'acme', s: AcmeIssuerSettings | undefined): Record<string, unknown> {
  return mode === 'acme' ? acmeIssuer(s) : { module: 'internal' };
}

/**
 * Why the PEM file at `path` cannot serve as a trusted root for the ACME CA, or null: Caddy
 * refuses a config whose file is missing or holds no certificate, and would refuse every route
 * with it, so the controller checks at start and names the setting instead.
 */
export function trustedRootProblem(path: string, read: (p: string) => string = (p) => readFileSync(p, 'utf8')): string | null {
  let text: string;
  try {
    text = read(path);
  } catch (e) {
    return `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`;
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (e) {
      return `${path}: certificate ${i + 1} does not parse (${(e as Error).message})`;
    }
  }
  return null;
}
