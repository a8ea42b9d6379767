// Certificates (src/certs): what a client uploads, what the API shows of a stored one, what an
// ACME DNS-01 order asks for, and the one pure check of a PEM chain + key (node:crypto and
// node:tls only, the clock as an argument). The mail relay's STARTTLS certificate is checked by
// the same function (src/mail/credentials/certcheck.ts re-exports it).
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';

/** Private key types both Node's and Go's TLS accept (Caddy loads the pair too). */
const KEY_TYPES: readonly string[] = ['rsa', 'ec', 'ed25519'];
import { z } from 'zod';
import type { CertInfo } from './mail.js';

export type { CertInfo };

/** Where a stored certificate came from. */
export const CERT_SOURCES = ['upload', 'acme-dns01'] as const;
export type CertSource = (typeof CERT_SOURCES)[number];

/** A certificate expiring sooner than this gets a warning when it is set. */
const EXPIRY_WARNING_MS = 30 * 86_400_000;
/** Largest PEM chain accepted: a leaf and a few intermediates are ~2–8 KiB. */
export const MAX_CHAIN_CHARS = 64 * 1024;
/** Largest PEM key accepted: an RSA 8192 key is ~6.5 KiB. */
export const MAX_KEY_CHARS = 16 * 1024;
/** Names per ACME order: pebble and Let's Encrypt allow 100. */
export const MAX_ACME_NAMES = 100;

export const certId = z.string().regex(/^crt_[0-9a-f]{16}$/, 'must be a certificate id (crt_ and 16 hex digits)');

export const certificateUpload = z
  .object({
    cert: z.string().min(1).max(MAX_CHAIN_CHARS).describe('PEM certificate chain, leaf first, then each issuer'),
    key: z.string().min(1).max(MAX_KEY_CHARS).describe('PEM private key of the leaf (unencrypted); stored, never shown'),
  })
  .strict();
export type CertificateUpload = z.infer<typeof certificateUpload>;

/** A DNS name a certificate may be ordered for: host labels, optionally `*.` in front (DNS-01 only). */
const acmeName = z
  .string()
  .min(1)
  .max(253)
  .transform((s) => s.toLowerCase().replace(/\.$/, ''))
  .pipe(z.string().regex(/^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a host name with at least two labels, optionally starting with "*."'));

const acmeDns01 = z
  .object({ names: z.array(acmeName).min(1).max(MAX_ACME_NAMES).describe('names the certificate covers; each in a zone we serve; "*.zone" for a wildcard') })
  .strict()
  .describe('get the certificate from the ACME CA (acme_directory) with DNS-01 challenges published in our own zones');

/**
 * POST /api/v1/certificates: an upload (`cert` + `key`) or an ACME DNS-01 order (`acme_dns01`),
 * never both. One object (not a union) so a missing or extra field is a 400 naming it.
 */
export const certificateCreate = z
  .object({
    cert: certificateUpload.shape.cert.optional(),
    key: certificateUpload.shape.key.optional(),
    acme_dns01: acmeDns01.optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.acme_dns01) {
      for (const f of ['cert', 'key'] as const) if (b[f] !== undefined) ctx.addIssue({ code: 'custom', path: [f], message: 'give either cert and key (an upload) or acme_dns01 (an order), not both' });
      return;
    }
    for (const f of ['cert', 'key'] as const) if (b[f] === undefined) ctx.addIssue({ code: 'custom', path: [f], message: `required: ${f === 'cert' ? 'the PEM chain' : 'the PEM private key'} (or acme_dns01 to order one)` });
  });
export type CertificateCreate = z.infer<typeof certificateCreate>;

/** A stored certificate as the API, the CLI and /metrics show it: never its key. */
export interface CertificateView {
  id: string;
  source: CertSource;
  /** DNS names of the leaf's subjectAltName, lower case (wildcards as `*.zone`). */
  names: string[];
  subject: string;
  issuer: string;
  not_before: string;
  not_after: string;
  fingerprint_sha256: string;
  serial: string;
  chain_length: number;
  created_at: string;
  updated_at: string;
  /** ACME certificates: when the controller renews it, and the last failure (null when none). */
  renewal: { names: string[]; due_at: string; last_error: string | null; failures: number } | null;
}

/** The PEM CERTIFICATE blocks of `pem`, in order. */
export function pemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

const oneLine = (dn: string) => dn.split('\n').filter(Boolean).join(', ');
const iso = (openssl: string) => new Date(openssl).toISOString();

/** The DNS names of a certificate's subjectAltName, lower case, in order, without repeats. */
export function dnsNames(x: X509Certificate): string[] {
  const out: string[] = [];
  for (const entry of (x.subjectAltName ?? '').split(', ')) {
    const m = /^DNS:(.+)$/.exec(entry);
    const name = m?.[1]?.toLowerCase().replace(/\.$/, '');
    if (name && !out.includes(name)) out.push(name);
  }
  return out;
}

/** Whether a certificate name (`a.b`, `*.b`) covers host `host` (RFC 6125: one label for `*`). */
export function nameCovers(certName: string, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (!certName.startsWith('*.')) return certName === h;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === certName.slice(2);
}

function info(chain: X509Certificate[], nowMs: number): CertInfo {
  const leaf = chain[0]!;
  return {
    subject: oneLine(leaf.subject),
    issuer: oneLine(leaf.issuer),
    names: leaf.subjectAltName ? leaf.subjectAltName.split(', ') : [],
    not_before: iso(leaf.validFrom),
    not_after: iso(leaf.validTo),
    fingerprint_sha256: leaf.fingerprint256,
    serial: leaf.serialNumber,
    self_signed: leaf.checkIssued(leaf) && leaf.verify(leaf.publicKey),
    expired: Date.parse(leaf.validTo) <= nowMs,
    chain_length: chain.length,
  };
}

/** Describes the leaf of a PEM chain; throws when it holds no parseable certificate. */
export function describeCert(pem: string, nowMs: number): CertInfo {
  const blocks = pemCertificates(pem);
  if (!blocks.length) throw new Error('no PEM CERTIFICATE block');
  return info(blocks.map((b) => new X509Certificate(b)), nowMs);
}

export type PairCheck = { ok: true; info: CertInfo; dnsNames: string[]; warnings: string[] } | { ok: false; field: 'cert' | 'key'; reason: string };

/**
 * Whether `certPem` (leaf first, then intermediates) and `keyPem` make a usable pair at `nowMs`,
 * with the first reason when not. Checks, in order: the PEM parses; the key is not encrypted and
 * parses; it is the leaf's key; each certificate is issued and signed by the next; none is
 * expired or not yet valid (unless `allowExpired`: the relay keeps presenting an operator
 * certificate that expired after it was set, and says so in its log); with `needNames`, the leaf
 * names at least one DNS name; node:tls accepts the pair. No reason quotes the key.
 */
export function checkCertPair(certPem: string, keyPem: string, nowMs: number, opts: { allowExpired?: boolean; needNames?: boolean } = {}): PairCheck {
  const blocks = pemCertificates(certPem);
  if (!blocks.length) return { ok: false, field: 'cert', reason: 'no PEM certificate found (expected -----BEGIN CERTIFICATE-----)' };
  const chain: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      chain.push(new X509Certificate(block));
    } catch (e) {
      return { ok: false, field: 'cert', reason: `certificate ${i + 1} does not parse: ${(e as Error).message}` };
    }
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyPem))
    return { ok: false, field: 'key', reason: 'the private key is encrypted; give it decrypted (e.g. openssl pkey -in key.pem -out plain.pem)' };
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    return { ok: false, field: 'key', reason: `the private key does not parse: ${(e as Error).message}` };
  }
  // What Go's TLS (Caddy) loads as well as Node's: a DSA or RSA-PSS key would pass here and make Caddy refuse every config.
  if (!KEY_TYPES.includes(key.asymmetricKeyType ?? ''))
    return { ok: false, field: 'key', reason: `a ${key.asymmetricKeyType ?? 'unknown'} key is not supported: give an RSA, ECDSA or Ed25519 key` };
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key)) {
    const at = chain.findIndex((x) => x.checkPrivateKey(key));
    if (at > 0) return { ok: false, field: 'cert', reason: `the chain is out of order: the key belongs to certificate ${at + 1}; put the leaf first, then each issuer` };
    return { ok: false, field: 'key', reason: `the private key does not match the certificate (${oneLine(leaf.subject) || 'no subject'}, sha256 ${leaf.fingerprint256})` };
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    const [child, parent] = [chain[i]!, chain[i + 1]!];
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey))
      return { ok: false, field: 'cert', reason: `certificate ${i + 2} in the chain did not issue certificate ${i + 1} (order: leaf first, then each issuer)` };
  }
  if (!opts.allowExpired)
    for (const [i, x] of chain.entries()) {
      const which = i === 0 ? 'the certificate' : `certificate ${i + 1} in the chain`;
      if (Date.parse(x.validTo) <= nowMs) return { ok: false, field: 'cert', reason: `${which} expired on ${iso(x.validTo)}` };
      if (Date.parse(x.validFrom) > nowMs) return { ok: false, field: 'cert', reason: `${which} is not valid before ${iso(x.validFrom)}` };
    }
  const names = dnsNames(leaf);
  if (opts.needNames && !names.length) return { ok: false, field: 'cert', reason: 'the certificate names no DNS name (subjectAltName DNS entries): it cannot be served for a host' };
  try {
    createSecureContext({ cert: certPem, key: keyPem });
  } catch (e) {
    return { ok: false, field: 'cert', reason: `TLS refuses the pair: ${(e as Error).message}` };
  }
  const described = info(chain, nowMs);
  const warnings: string[] = [];
  const left = Date.parse(described.not_after) - nowMs;
  if (left > 0 && left < EXPIRY_WARNING_MS) warnings.push(`the certificate expires in ${Math.floor(left / 86_400_000)} days (${described.not_after})`);
  if (!described.self_signed && chain.length === 1) warnings.push('only the leaf certificate was given; if its issuer is an intermediate CA, append the intermediates to the file');
  return { ok: true, info: described, dnsNames: names, warnings };
}
