// Accounts: name, email, allowed MAIL FROM domains, the scrypt password hash.
import { AppError } from '../../errors.js';
import { prepared } from '../../store/db.js';
import { hashPassword } from '../credentials/password.js';
import type { Account, AccountInput, AccountUpdate } from '../../model/mail.js';
import { through, isUnique, StoreBase } from './base.js';

interface AccountRow {
  name: string;
  email: string;
  password_hash: string;
  allowed_domains: string;
  created_at: string;
  updated_at: string;
}

const account = (r: AccountRow): Account => ({
  name: r.name,
  email: r.email,
  allowed_domains: JSON.parse(r.allowed_domains) as string[],
  created_at: r.created_at,
  updated_at: r.updated_at,
});

export class AccountStore extends StoreBase {
  // ---- accounts ----

  /** Creates an account; the password is hashed (async) before the one-row insert. */
  async addAccount(input: AccountInput): Promise<Account> {
    return this.insertAccount(input, await hashPassword(input.password));
  }

  /** addAccount() with the password hashed already (the API hashes before its transaction). */
  insertAccount(input: Omit<AccountInput, 'password'>, hash: string): Account {
    const at = this.now().toISOString();
    const domains = JSON.stringify([...new Set(input.allowed_domains)].sort());
    try {
      this.write('INSERT INTO mail_accounts (name, email, password_hash, allowed_domains, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(input.name, input.email, hash, domains, at, at);
    } catch (e) {
      if (isUnique(e)) throw new AppError('conflict', `an account named ${input.name} or with email ${input.email} exists`);
      throw e;
    }
    return this.account(input.name)!;
  }

  accounts(): Account[] {
    return (prepared(this.db, 'SELECT * FROM mail_accounts ORDER BY name').all() as AccountRow[]).map(account);
  }

  /** Cached: the relay asks at every MAIL FROM, RCPT TO and end of DATA. Do not modify the result. */
  account(name: string): Account | undefined {
    return through(this.cached().accounts, name, () => this.readAccount(name));
  }

  private readAccount(name: string): Account | undefined {
    const row = prepared(this.db, 'SELECT * FROM mail_accounts WHERE name = ?').get(name) as AccountRow | undefined;
    return row && account(row);
  }

  /** The account an SMTP username (account name or email) logs in as, with its password hash. */
  login(username: string): { account: Account; hash: string } | undefined {
    const u = username.toLowerCase();
    const row = prepared(this.db, 'SELECT * FROM mail_accounts WHERE name = ? OR email = ?').get(u, u) as AccountRow | undefined;
    return row && { account: account(row), hash: row.password_hash };
  }

  /**
   * Changes an account's email, allowed domains and/or password (`hash`, made by the caller off
   * the event loop). A new password ends no session; the relay's login cache forgets the old one
   * when the row changes (settings version). 404 for an unknown account, 409 for a taken email.
   */
  updateAccount(name: string, patch: Omit<AccountUpdate, 'password'>, hash?: string): Account {
    const old = this.readAccount(name);
    if (!old) throw new AppError('not_found', `no account ${name}`);
    const email = patch.email ?? old.email;
    const domains = JSON.stringify([...new Set(patch.allowed_domains ?? old.allowed_domains)].sort());
    try {
      this.write('UPDATE mail_accounts SET email = ?, allowed_domains = ?, password_hash = COALESCE(?, password_hash), updated_at = ? WHERE name = ?').run(email, domains, hash ?? null, this.now().toISOString(), name);
    } catch (e) {
      if (isUnique(e)) throw new AppError('conflict', `another account has email ${email}`);
      throw e;
    }
    return this.readAccount(name)!;
  }

  removeAccount(name: string): void {
    if (this.write('DELETE FROM mail_accounts WHERE name = ?').run(name).changes === 0) throw new AppError('not_found', `no account ${name}`);
  }
}
