// The STARTTLS certificate: the operator's pair and what the relay presents (credentials/tls.ts chooses).
import { AppError } from '../../errors.js';
import { prepared } from '../../store/db.js';
import { SuppressionStore } from './suppressions.js';

/** Where STARTTLS certificates come from, in order of precedence (tls.ts); `store`: the certificate store's (src/certs). */
export type TlsSource = 'store' | 'operator' | 'configured' | 'self-signed';

export interface OperatorCert {
  cert: string;
  key: string;
  set_at_ms: number;
}

export interface PresentedCert {
  source: TlsSource;
  cert: string;
  operator_set_at_ms: number | null;
  since_ms: number;
}

export class CertStore extends SuppressionStore {
  // ---- STARTTLS certificate (tls.ts chooses, certcheck.ts validates) ----

  /** The certificate an operator set (`dnsproxy mail cert`), if any. The caller has validated it. */
  operatorCert(): OperatorCert | undefined {
    return prepared(this.db, 'SELECT cert, key, set_at_ms FROM mail_tls_cert WHERE id = 1').get() as OperatorCert | undefined;
  }

  /** When the operator certificate was set (cheap: what the relay polls), null when none is. */
  operatorCertStamp(): number | null {
    const row = prepared(this.db, 'SELECT set_at_ms FROM mail_tls_cert WHERE id = 1').get() as { set_at_ms: number } | undefined;
    return row?.set_at_ms ?? null;
  }

  /** Sets (replaces) the operator certificate; `set_at_ms` grows strictly, so the relay sees every change. */
  setOperatorCert(cert: string, key: string): OperatorCert {
    return this.db.transaction(() => {
      const set_at_ms = Math.max(this.now().getTime(), (this.operatorCertStamp() ?? 0) + 1);
      prepared(this.db, 'INSERT INTO mail_tls_cert (id, cert, key, set_at_ms) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET cert = excluded.cert, key = excluded.key, set_at_ms = excluded.set_at_ms')
        .run(cert, key, set_at_ms);
      return { cert, key, set_at_ms };
    }).immediate();
  }

  removeOperatorCert(): void {
    if (prepared(this.db, 'DELETE FROM mail_tls_cert WHERE id = 1').run().changes === 0) throw new AppError('not_found', 'no certificate was set with dnsproxy mail cert');
  }

  /** Written by the relay whenever it starts presenting a certificate. */
  setPresentedCert(p: PresentedCert): void {
    prepared(
      this.db,
      `INSERT INTO mail_tls_presented (id, source, cert, operator_set_at_ms, since_ms) VALUES (1, @source, @cert, @operator_set_at_ms, @since_ms)
       ON CONFLICT (id) DO UPDATE SET source = excluded.source, cert = excluded.cert, operator_set_at_ms = excluded.operator_set_at_ms, since_ms = excluded.since_ms`,
    )
    .run(p);
  }

  presentedCert(): PresentedCert | undefined {
    return prepared(this.db, 'SELECT source, cert, operator_set_at_ms, since_ms FROM mail_tls_presented WHERE id = 1').get() as PresentedCert | undefined;
  }
}
