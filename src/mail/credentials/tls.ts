// The key and certificate every listener presents (at STARTTLS, or at connect on the implicit-TLS
// port), first of:
//   0. store      the certificate store's (src/certs: uploaded or ACME-issued) that covers the
//                 relay's host name and has not expired
//   1. operator   set with `dnsproxy mail cert` (PUT /api/v1/mail/cert), kept in SQLite
//   2. configured the mail_tls_cert / mail_tls_key files
//   3. self-signed kept in <data_dir>/mail/tls, made again when missing, expiring within a day,
//                  or for another name
// TlsCertificates loads that at start and polls the operator certificate's stamp and the store's
// version, so a new one (a renewal, an upload, or a removal) reaches the next handshake within
// TLS_POLL_MS, without a restart.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../../log/index.js';
import { DIR_MODE, FILE_MODE } from '../../store/files.js';
import { selfSignedCert } from './cert.js';
import { checkCertPair } from './certcheck.js';
import type { MailStore, OperatorCert, TlsSource } from '../store.js';
import type { CertificateStore } from '../../certs/store.js';

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
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  // Each file is replaced whole (rename); a crash between the two leaves a mismatched pair, which
  // usable() rejects on the next start. A .tmp left by such a crash is removed first: writing
  // into it would keep its old mode.
  for (const [path, pem] of [[keyPath, pair.key], [certPath, pair.cert]] as const) {
    rmSync(`${path}.tmp`, { force: true });
    writeFileSync(`${path}.tmp`, pem, { mode: FILE_MODE });
    renameSync(`${path}.tmp`, path);
  }
  return { ...pair, generated: true };
}

/** How often the relay looks for a certificate set or removed with `dnsproxy mail cert` (one indexed SELECT). */
export const TLS_POLL_MS = 5000;

export interface PresentedTls {
  key: string;
  cert: string;
  source: TlsSource;
  /** The operator certificate's stamp when source = operator, else null. */
  operatorSetAtMs: number | null;
}

export interface TlsChoice {
  dataDir: string;
  hostname: string;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

/**
 * Keeps the certificate the relay presents. Contract: load() once before the listeners exist;
 * poll() afterwards returns the new pair only when it changed (the caller hands it to every
 * listener), and records what is presented in `mail_tls_presented` for `dnsproxy mail cert`.
 * An operator certificate the relay cannot use (edited in the database behind the API) is
 * skipped with an error in the log; an expired one is still presented, with a warning.
 */
export class TlsCertificates {
  private readonly log = logger('mail.tls');
  private current?: PresentedTls;
  /** The operator stamp last acted on (undefined: never looked). */
  private seen: number | null | undefined;
  /** The certificate store's version last acted on, and when the store certificate presented expires. */
  private seenVersion: number | undefined;
  private storeExpiresMs = Infinity;

  constructor(
    private readonly store: MailStore,
    private readonly opts: TlsChoice,
    private readonly now: () => Date = () => new Date(),
    /** The certificate store (src/certs); absent: the relay's own sources only. */
    private readonly certs?: Pick<CertificateStore, 'version' | 'forHost'>,
  ) {}

  async load(): Promise<PresentedTls> {
    const p = await this.choose(this.store.operatorCert());
    this.present(p);
    return p;
  }

  async poll(): Promise<PresentedTls | undefined> {
    const stamp = this.store.operatorCertStamp();
    const version = this.certs?.version();
    if (stamp === this.seen && version === this.seenVersion && this.now().getTime() < this.storeExpiresMs) return undefined;
    const p = await this.choose(stamp === null ? undefined : this.store.operatorCert());
    if (p.cert === this.current?.cert && p.key === this.current.key && p.operatorSetAtMs === this.current.operatorSetAtMs) return undefined;
    this.present(p);
    return p;
  }

  private async choose(operator: OperatorCert | undefined): Promise<PresentedTls> {
    this.seen = operator?.set_at_ms ?? null;
    this.storeExpiresMs = Infinity;
    if (this.certs) {
      this.seenVersion = this.certs.version();
      const stored = this.certs.forHost(this.opts.hostname, this.now().getTime());
      if (stored) {
        this.storeExpiresMs = stored.not_after_ms;
        return { key: stored.key, cert: stored.chain, source: 'store', operatorSetAtMs: null };
      }
    }
    if (operator) {
      const check = checkCertPair(operator.cert, operator.key, this.now().getTime(), { allowExpired: true });
      if (check.ok) {
        if (check.info.expired) this.log.warn('the certificate set with dnsproxy mail cert has expired; clients that verify it will refuse STARTTLS', { not_after: check.info.not_after });
        return { key: operator.key, cert: operator.cert, source: 'operator', operatorSetAtMs: operator.set_at_ms };
      }
      this.log.error('the certificate set with dnsproxy mail cert is unusable; using the next source', { field: check.field, reason: check.reason });
    }
    const files = await loadTls({ ...this.opts, now: this.now() });
    if (files.generated) this.log.info('generated a self-signed STARTTLS certificate', { hostname: this.opts.hostname, dir: join(this.opts.dataDir, 'mail', 'tls') });
    return { key: files.key, cert: files.cert, source: this.opts.certFile && this.opts.keyFile ? 'configured' : 'self-signed', operatorSetAtMs: null };
  }

  private present(p: PresentedTls): void {
    const changed = this.current !== undefined;
    this.current = p;
    try {
      this.store.setPresentedCert({ source: p.source, cert: p.cert, operator_set_at_ms: p.operatorSetAtMs, since_ms: this.now().getTime() });
    } catch (e) {
      this.log.warn('recording the presented certificate failed; dnsproxy mail cert may show an older one', { error: (e as Error).message });
    }
    this.log.info(changed ? 'STARTTLS certificate replaced' : 'STARTTLS certificate', { source: p.source, sha256: new X509Certificate(p.cert).fingerprint256 });
  }
}
