// Suppressed recipients (migration 13): refused at RCPT TO.
import { AppError } from '../../errors.js';
import { prepared } from '../../store/db.js';
import { KeyStore } from './keys.js';

export interface Suppression {
  address: string;
  source: 'bounce' | 'manual';
  reason: string;
  created_at: string;
}

export class SuppressionStore extends KeyStore {
  // ---- suppressions (migration 13): recipients refused at RCPT TO ----

  /** The suppression of `address` (case-insensitive), if any: one indexed read per RCPT TO. */
  suppression(address: string): Suppression | undefined {
    return prepared(this.db, 'SELECT address, source, reason, created_at FROM mail_suppressions WHERE address = ?').get(address.toLowerCase()) as Suppression | undefined;
  }

  suppressions(): Suppression[] {
    return prepared(this.db, 'SELECT address, source, reason, created_at FROM mail_suppressions ORDER BY address').all() as Suppression[];
  }

  /** Suppresses `address` (replacing an earlier entry); returns whether it was new. */
  suppress(address: string, source: Suppression['source'], reason: string): boolean {
    const had = this.suppression(address);
    prepared(this.db, 'INSERT INTO mail_suppressions (address, source, reason, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET source = excluded.source, reason = excluded.reason, created_at = excluded.created_at')
      .run(address.toLowerCase(), source, reason, this.now().toISOString());
    return !had;
  }

  /** 404 when the address is not suppressed. */
  unsuppress(address: string): void {
    if (prepared(this.db, 'DELETE FROM mail_suppressions WHERE address = ?').run(address.toLowerCase()).changes === 0) throw new AppError('not_found', `${address} is not suppressed`);
  }
}
