// Test certificates made with the openssl binary: a CA, and leaves it signs for chosen DNS names
// (wildcards too), so tests can upload real chains (leaf, intermediate) and check what is served.
// Expired and not-yet-valid pairs come from selfSignedCert() with a shifted clock.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { tempDir } from './tmp.js';

export interface Pem {
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA (EC P-256), valid for `days`. */
export function makeCa(cn = 'dnsproxy test CA', days = 30): Pem {
  const t = tempDir('certs-');
  try {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', String(days), '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], t.dir);
    return { cert: readFileSync(join(t.dir, 'ca.pem'), 'utf8'), key: readFileSync(join(t.dir, 'ca.key'), 'utf8') };
  } finally {
    t.cleanup();
  }
}

/** A leaf for `names` (subjectAltName DNS entries) signed by `ca`; `cert` is the leaf alone. */
export function makeLeaf(ca: Pem, names: string[], days = 20): Pem {
  const t = tempDir('certs-');
  try {
    writeFileSync(join(t.dir, 'ca.pem'), ca.cert);
    writeFileSync(join(t.dir, 'ca.key'), ca.key, { mode: 0o600 });
    writeFileSync(join(t.dir, 'ext.cnf'), `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${names[0] ?? 'leaf'}`], t.dir);
    openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', String(days), '-extfile', 'ext.cnf'], t.dir);
    return { cert: readFileSync(join(t.dir, 'leaf.pem'), 'utf8'), key: readFileSync(join(t.dir, 'leaf.key'), 'utf8') };
  } finally {
    t.cleanup();
  }
}

/** The lines of a PEM private key's base64 body: a leak check looks for each (JSON escapes the newlines between them). */
export function keyMaterial(keyPem: string): string[] {
  return keyPem.split(/\r?\n/).filter((l) => l.length >= 20 && !l.startsWith('-----'));
}

/** A self-signed certificate for `name` with an RSA-PSS key: Node's TLS takes it, Go's (Caddy) does not. */
export function makeRsaPss(name: string): Pem {
  const t = tempDir('certs-');
  try {
    openssl(['req', '-x509', '-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '10', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`], t.dir);
    return { cert: readFileSync(join(t.dir, 'c.pem'), 'utf8'), key: readFileSync(join(t.dir, 'k.pem'), 'utf8') };
  } finally {
    t.cleanup();
  }
}

/** The SHA-256 fingerprint of the leaf served on 127.0.0.1:`port` for SNI `servername`, read, not verified (null: the handshake failed). */
export function servedFingerprint(port: number, servername: string): Promise<string | null> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().fingerprint256 ?? null);
      s.destroy();
    });
    s.once('error', () => resolve(null));
  });
}
