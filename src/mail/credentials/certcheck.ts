// Checking and describing a STARTTLS certificate: pure (node:crypto and node:tls only, clock as an
// argument), so the controller validates `dnsproxy mail cert` input with the same code the relay
// uses before it swaps a certificate in.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { CertInfo } from '../../model/mail.js';

/** A certificate expiring sooner than this gets a warning when it is set. */
const EXPIRY_WARNING_MS = 30 * 86_400_000;

export type { CertInfo };

/** The PEM CERTIFICATE blocks of `pem`, in order. */
export function pemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

const oneLine = (dn: string) => dn.split('\n').filter(Boolean).join(', ');
const iso = (openssl: string) => new Date(openssl).toISOString();

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

export type PairCheck = { ok: true; info: CertInfo; warnings: string[] } | { ok: false; field: 'cert' | 'key'; reason: string };

/**
 * Whether `certPem` (leaf first, then intermediates) and `keyPem` make a usable STARTTLS pair at
 * `nowMs`, with the first reason when not. Checks, in order: the PEM parses; the key is not
 * encrypted and parses; it is the leaf's key; each certificate is issued and signed by the next;
 * none is expired or not yet valid (unless `allowExpired`: the relay keeps presenting an operator
 * certificate that expired after it was set, and says so in its log); node:tls accepts the pair.
 */
export function checkCertPair(certPem: string, keyPem: string, nowMs: number, opts: { allowExpired?: boolean } = {}): PairCheck {
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
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key)) return { ok: false, field: 'key', reason: `the private key does not match the certificate (${oneLine(leaf.subject) || 'no subject'}, sha256 ${leaf.fingerprint256})` };
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
  return { ok: true, info: described, warnings };
}
