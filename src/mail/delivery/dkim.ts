// DKIM signing of an outgoing message with the sender domain's key (mailauth). Keys: keys.ts.
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import type { DkimKey } from '../store.js';

/** `raw` with a DKIM-Signature header for `key.domain` in front (relaxed/relaxed, rsa-sha256). */
export async function signMessage(raw: Buffer, key: DkimKey): Promise<Buffer> {
  const signer = { signingDomain: key.domain, selector: key.selector, privateKey: key.private_key };
  // mailauth reads the keys from signatureData; its typings also want them at the top level.
  const result = await dkimSign(raw, { ...signer, signatureData: [signer] });
  if (result.errors.length) throw new Error(`DKIM signing failed: ${result.errors.map((e) => e.message).join('; ')}`);
  return Buffer.concat([Buffer.from(result.signatures), raw]);
}
