// DKIM signing keys, one per sender domain.
import { prepared } from '../../store/db.js';
import { through, type DkimKey } from './base.js';
import { RuleStore } from './rules.js';

export type { DkimKey };

export class DkimStore extends RuleStore {
  // ---- DKIM keys ----

  putDkimKey(key: DkimKey): void {
    this.write(
      `INSERT INTO mail_dkim_keys (domain, selector, private_key, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (domain) DO UPDATE SET selector = excluded.selector, private_key = excluded.private_key`,
    )
    .run(key.domain, key.selector, key.private_key, this.now().toISOString());
  }

  /** Cached, like account(). */
  dkimKey(domain: string): DkimKey | undefined {
    return through(this.cached().dkim, domain, () => this.readDkimKey(domain));
  }

  private readDkimKey(domain: string): DkimKey | undefined {
    return prepared(this.db, 'SELECT domain, selector, private_key FROM mail_dkim_keys WHERE domain = ?').get(domain) as DkimKey | undefined;
  }
}
