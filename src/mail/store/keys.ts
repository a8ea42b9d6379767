// Account API keys (credentials/apikeys.ts: format, hash, rotation rules): only their SHA-256 is stored.
import { AppError } from '../../errors.js';
import { prepared } from '../../store/db.js';
import { keyHash, keyState, newKey, rotationPlan } from '../credentials/apikeys.js';
import type { KeyInfo, KeyInput } from '../../model/mail.js';
import { through } from './base.js';
import { DkimStore } from './dkim.js';

/** A mail_account_keys row as read for lists: KeyInfo before its state is worked out. */
type KeyRow = Omit<KeyInfo, 'state'>;

export class KeyStore extends DkimStore {
  // ---- account API keys (apikeys.ts: format, hash, rotation rules) ----

  private keyInfo(r: KeyRow): KeyInfo {
    return { ...r, state: keyState(r.expires_at, this.now().getTime(), r.revoked_at) };
  }

  private requireAccount(name: string): void {
    if (!this.account(name)) throw new AppError('not_found', `no account ${name}`);
  }

  /** The account's keys, oldest first, revoked ones too (404 for an unknown account). Never the key or its hash. */
  keys(account: string): KeyInfo[] {
    this.requireAccount(account);
    const rows = prepared(this.db, 'SELECT id, account, label, created_at, last_used_at, expires_at, revoked_at FROM mail_account_keys WHERE account = ? ORDER BY created_at, id').all(account) as KeyRow[];
    return rows.map((r) => this.keyInfo(r));
  }

  private insertKey(account: string, label: string, expiresAt: string | null, made: { id: string; key: string }): KeyInfo {
    const row: KeyRow = { id: made.id, account, label, created_at: this.now().toISOString(), last_used_at: null, expires_at: expiresAt, revoked_at: null };
    this.write('INSERT INTO mail_account_keys (id, account, label, hash, created_at, expires_at) VALUES (@id, @account, @label, @hash, @created_at, @expires_at)')
      .run({ id: row.id, account, label, hash: keyHash(made.key), created_at: row.created_at, expires_at: expiresAt });
    return this.keyInfo(row);
  }

  /** Adds a key to the account; the returned `key` is shown once and only its hash is stored. */
  addKey(account: string, input: KeyInput, made = newKey()): { info: KeyInfo; key: string } {
    this.requireAccount(account);
    const expiresAt = input.expires_in === undefined ? null : new Date(this.now().getTime() + input.expires_in).toISOString();
    return { info: this.insertKey(account, input.label, expiresAt, made), key: made.key };
  }

  /**
   * One transaction: a new key, and the old ones revoked or set to expire after `keepOldMs`
   * (rotationPlan()). Returns the new key (shown once), the old keys still usable as they now are,
   * and the ids revoked (`removed`).
   */
  rotateKey(account: string, input: { label?: string | undefined; keep_old: number }, made = newKey()): { info: KeyInfo; key: string; kept: KeyInfo[]; removed: string[] } {
    return this.db.transaction(() => {
      const old = this.keys(account).filter((k) => k.state !== 'revoked');
      const plan = rotationPlan(old, this.now().getTime(), input.keep_old);
      const revoke = this.write('UPDATE mail_account_keys SET revoked_at = ? WHERE id = ?');
      for (const id of plan.remove) revoke.run(this.now().toISOString(), id);
      const upd = this.write('UPDATE mail_account_keys SET expires_at = ? WHERE id = ?');
      for (const e of plan.expire) upd.run(e.expires_at, e.id);
      const info = this.insertKey(account, input.label ?? `rotated ${this.now().toISOString().slice(0, 10)}`, null, made);
      return { info, key: made.key, kept: this.keys(account).filter((k) => k.id !== info.id && k.state !== 'revoked'), removed: plan.remove };
    }).immediate();
  }

  /**
   * Revokes one key at once: the relay refuses it from the next AUTH or MAIL FROM, and lists show
   * it as `revoked`. 404 for an unknown key, 409 when it is revoked already.
   */
  revokeKey(account: string, id: string): void {
    this.requireAccount(account);
    const row = prepared(this.db, 'SELECT revoked_at FROM mail_account_keys WHERE account = ? AND id = ?').get(account, id) as { revoked_at: string | null } | undefined;
    if (!row) throw new AppError('not_found', `account ${account} has no key ${id}`);
    if (row.revoked_at !== null) throw new AppError('conflict', `key ${id} of account ${account} was already revoked at ${row.revoked_at}`);
    this.write('UPDATE mail_account_keys SET revoked_at = ? WHERE account = ? AND id = ?').run(this.now().toISOString(), account, id);
  }

  /** The usable (not revoked) key row whose hash is `keyHash(key)`, if any (expired ones too: the caller decides). */
  keyByHash(hash: string): { id: string; account: string; expires_at: string | null } | undefined {
    return prepared(this.db, 'SELECT id, account, expires_at FROM mail_account_keys WHERE hash = ? AND revoked_at IS NULL').get(hash) as { id: string; account: string; expires_at: string | null } | undefined;
  }

  /** Whether key `id` still exists, is not revoked and has not expired at `nowMs`. */
  keyLive(id: string, nowMs: number): boolean {
    const expires = through(this.cached().keyExpiry, id, () => (prepared(this.db, 'SELECT expires_at FROM mail_account_keys WHERE id = ? AND revoked_at IS NULL').get(id) as { expires_at: string | null } | undefined)?.expires_at);
    return expires !== undefined && keyState(expires, nowMs) !== 'expired';
  }

  /** Writes last-used times (key id → Unix ms) in one transaction; ids gone meanwhile are skipped. */
  touchKeys(used: ReadonlyMap<string, number>): void {
    if (!used.size) return;
    const upd = prepared(this.db, 'UPDATE mail_account_keys SET last_used_at = ? WHERE id = ?');
    this.db.transaction(() => {
      for (const [id, ms] of used) upd.run(new Date(ms).toISOString(), id);
    })();
  }
}
