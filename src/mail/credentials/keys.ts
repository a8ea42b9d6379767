// DKIM keys: making one, and the TXT record a domain publishes at <selector>._domainkey.<domain>.
// node:crypto only, so the controller can use it without loading the signer.
import { createPublicKey, generateKeyPair } from 'node:crypto';

/** RSA 2048: what every verifier accepts (ed25519 is not yet universal). */
const RSA_BITS = 2048;

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
