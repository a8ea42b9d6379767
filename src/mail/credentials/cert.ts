// A self-signed certificate for STARTTLS, built with node:crypto alone (no openssl binary, which
// the slim container lacks): an ECDSA P-256 key and a minimal X.509 v3 certificate written as DER
// (RFC 5280) with the host name as CN and subjectAltName.
import { generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto';

// ---- DER, just what a certificate needs ----------------------------------------------------

function der(tag: number, body: Buffer): Buffer {
  const n = body.length;
  if (n < 0x80) return Buffer.concat([Buffer.from([tag, n]), body]);
  const len: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) len.unshift(v & 0xff);
  return Buffer.concat([Buffer.from([tag, 0x80 | len.length, ...len]), body]);
}
const seq = (...items: Buffer[]) => der(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => der(0x31, Buffer.concat(items));
/**
 * A non-negative INTEGER from big-endian bytes, minimally encoded as DER requires: leading zero
 * bytes dropped (OpenSSL refuses them: "illegal padding"), one put back when the sign bit is set.
 */
export function derInt(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return der(0x02, (v[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v.length ? v : Buffer.from([0]));
}
const int = derInt;
const utf8 = (s: string) => der(0x0c, Buffer.from(s, 'utf8'));
const octets = (b: Buffer) => der(0x04, b);
const bits = (b: Buffer) => der(0x03, Buffer.concat([Buffer.from([0]), b]));
const explicit = (n: number, b: Buffer) => der(0xa0 + n, b);
const bool = (v: boolean) => der(0x01, Buffer.from([v ? 0xff : 0]));

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const v of rest) {
    const enc = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) enc.unshift(0x80 | (x & 0x7f));
    out.push(...enc);
  }
  return der(0x06, Buffer.from(out));
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  return d.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(iso.slice(2))) : der(0x18, Buffer.from(iso));
}

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
} as const;

/** Self-signed certificates live this long; a restart after that makes a new one. */
export const CERT_VALIDITY_DAYS = 825;

/**
 * A new key and a self-signed certificate for `hostname`, valid from `now` (minus an hour of clock
 * skew) for CERT_VALIDITY_DAYS. Both PEM. Key generation is async (thread pool).
 */
export async function selfSignedCert(hostname: string, now: Date): Promise<{ key: string; cert: string }> {
  const { privateKey, publicKey } = await new Promise<{ privateKey: KeyObject; publicKey: KeyObject }>((resolve, reject) =>
    generateKeyPair('ec', { namedCurve: 'P-256' }, (err, publicKey, privateKey) => (err ? reject(err) : resolve({ publicKey, privateKey }))),
  );
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const name = seq(set(seq(oid(OID.commonName), utf8(hostname))));
  const algorithm = seq(oid(OID.ecdsaWithSha256));
  const notBefore = new Date(now.getTime() - 3600_000);
  const notAfter = new Date(now.getTime() + CERT_VALIDITY_DAYS * 86400_000);
  const extensions = explicit(
    3,
    seq(
      seq(oid(OID.subjectAltName), octets(seq(der(0x82, Buffer.from(hostname, 'ascii'))))), // dNSName
      seq(oid(OID.basicConstraints), bool(true), octets(seq())), // critical, not a CA
    ),
  );
  const tbs = seq(
    explicit(0, int(Buffer.from([2]))), // v3
    int(serial),
    algorithm,
    name,
    seq(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    extensions,
  );
  const certificate = seq(tbs, algorithm, bits(sign('sha256', tbs, privateKey))); // ECDSA signatures are DER already
  const pem = (label: string, body: Buffer) => `-----BEGIN ${label}-----\n${body.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;
  return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), cert: pem('CERTIFICATE', certificate) };
}
