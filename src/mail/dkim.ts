// DKIM: signing an outgoing message with the sender domain's key (mailauth), making keys, and the
// TXT record a domain publishes at <selector>._domainkey.<domain>.
import { createPublicKey, generateKeyPair } from 'node:crypto';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import type { DkimKey } from './store.js';

/** RSA 2048: what every verifier accepts (ed25519 is not yet universal). */
const RSA_BITS = 2048;

/** `raw` with a DKIM-Signature header for `key.domain` in front (relaxed/relaxed, rsa-sha256). */
export async function signMessage(raw: Buffer, key: DkimKey): Promise<Buffer> {
  const signer = { signingDomain: key.domain, selector: key.selector, privateKey: key.private_key };
  // mailauth reads the keys from signatureData; its typings also want them at the top level.
  const result = await dkimSign(raw, { ...signer, signatureData: [signer] });
  if (result.errors.length) throw new Error(`DKIM signing failed: ${result.errors.map((e) => e.message).join('; ')}`);
  return Buffer.concat([Buffer.from(result.signatures), raw]);
}

/** A new RSA private key (PKCS#8 PEM), generated off the event loop. */
export function generateDkimPrivateKey(): Promise<string> {
  return new Promise((resolve, reject) =>
    generateKeyPair('rsa', { modulusLength: RSA_BITS, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }, (err, _pub, priv) =>
      err ? reject(err) : resolve(priv),
    ),
  );
}

/** The TXT value to publish at `<selector>._domainkey.<domain>`. */
export function dkimTxt(privateKeyPem: string): string {
  const spki = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'der' });
  return `v=DKIM1; k=rsa; p=${spki.toString('base64')}`;
}
