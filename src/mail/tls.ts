// The STARTTLS key and certificate: the configured files, else a self-signed pair kept in
// <data_dir>/mail/tls and made again when missing, expiring within a day, or for another name.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { selfSignedCert } from './cert.js';

export interface TlsFiles {
  key: string;
  cert: string;
  /** True when made on this start. */
  generated: boolean;
}

const RENEW_BEFORE_MS = 86400_000;

/** The pair belongs together, names `hostname` and lives at least another day. */
function usable(certPem: string, keyPem: string, hostname: string, now: Date): boolean {
  try {
    const x = new X509Certificate(certPem);
    return x.checkPrivateKey(createPrivateKey(keyPem)) && new Date(x.validTo).getTime() - now.getTime() > RENEW_BEFORE_MS && x.checkHost(hostname) !== undefined;
  } catch {
    return false;
  }
}

export async function loadTls(opts: { dataDir: string; hostname: string; certFile?: string | undefined; keyFile?: string | undefined; now?: Date }): Promise<TlsFiles> {
  if (opts.certFile && opts.keyFile) return { cert: readFileSync(opts.certFile, 'utf8'), key: readFileSync(opts.keyFile, 'utf8'), generated: false };
  const now = opts.now ?? new Date();
  const dir = join(opts.dataDir, 'mail', 'tls');
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  if (existsSync(certPath) && existsSync(keyPath)) {
    const cert = readFileSync(certPath, 'utf8');
    const key = readFileSync(keyPath, 'utf8');
    if (usable(cert, key, opts.hostname, now)) return { cert, key, generated: false };
  }
  const pair = await selfSignedCert(opts.hostname, now);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Each file is replaced whole (rename); a crash between the two leaves a mismatched pair, which
  // usable() rejects on the next start.
  writeFileSync(`${keyPath}.tmp`, pair.key, { mode: 0o600 });
  renameSync(`${keyPath}.tmp`, keyPath);
  writeFileSync(`${certPath}.tmp`, pair.cert);
  renameSync(`${certPath}.tmp`, certPath);
  return { ...pair, generated: true };
}
