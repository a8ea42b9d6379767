// The relay's settings in SQLite: accounts, providers, routing rules and DKIM keys. The
// controller (API, CLI) writes them, the relay reads them on every session/delivery, so a change
// applies to the next connection or attempt without a restart. Every write is one statement.
import { randomBytes } from 'node:crypto';
import { AppError, fieldError } from '../errors.js';
import { prepared, type Db } from '../store/db.js';
import { keyHash, keyState, newKey, rotationPlan } from './credentials/apikeys.js';
import { providerDestinationIssues } from './delivery/destination.js';
import { hashPassword } from './credentials/password.js';
import type { z } from 'zod';
import { providerConfig, type Account, type AccountInput, type AccountUpdate, type KeyInfo, type KeyInput, type Provider, type Rule, type RuleInput } from '../model/mail.js';

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

export interface Suppression {
  address: string;
  source: 'bounce' | 'manual';
  reason: string;
  created_at: string;
}

export interface DkimKey {
  domain: string;
  selector: string;
  private_key: string;
}

/** A mail_account_keys row as read for lists: KeyInfo before its state is worked out. */
type KeyRow = Omit<KeyInfo, 'state'>;

/** Where STARTTLS certificates come from, in order of precedence (tls.ts). */
export type TlsSource = 'operator' | 'configured' | 'self-signed';

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

/**
 * The settings the relay reads per message, as last read; valid while mail_settings_version is `v`
 * (migration 8: triggers bump it on every write to them, from any connection).
 */
interface SettingsCache {
  v: number;
  accounts: Map<string, Account | undefined>;
  rules?: Rule[];
  providers: Map<string, Provider | undefined>;
  dkim: Map<string, DkimKey | undefined>;
  /** Key id → expires_at (null: never), undefined when the key is gone. */
  keyExpiry: Map<string, string | null | undefined>;
}
const emptyCache = (v: number): SettingsCache => ({ v, accounts: new Map(), providers: new Map(), dkim: new Map(), keyExpiry: new Map() });
/** Entries per map at most: past it the map starts over (bounds memory, not correctness). */
const CACHE_MAX = 10_000;

/** `map`'s entry for `key`, read with `load` on a miss. */
function through<K, V>(map: Map<K, V>, key: K, load: () => V): V {
  if (map.has(key)) return map.get(key) as V;
  if (map.size >= CACHE_MAX) map.clear();
  const v = load();
  map.set(key, v);
  return v;
}

const caches = new WeakMap<Db, { cache: SettingsCache; checked: boolean }>();

const isUnique = (e: unknown) => (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' || (e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY';

export class MailStore {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * The cache (shared by the MailStores on this connection), emptied first when the settings
   * changed since it was filled. The version is read once per event-loop turn (a read costs
   * ~12 µs, and a message asks 4 times): a change committed before a client's command arrived is
   * seen when that command is handled, and this connection's own writes (write()) at once.
   */
  private cached(): SettingsCache {
    let state = caches.get(this.db);
    if (!state) caches.set(this.db, (state = { cache: emptyCache(-1), checked: false }));
    if (state.checked) return state.cache;
    const { v } = prepared(this.db, 'SELECT v FROM mail_settings_version WHERE id = 1').get() as { v: number };
    if (v !== state.cache.v) state.cache = emptyCache(v);
    state.checked = true;
    const s = state;
    setImmediate(() => (s.checked = false));
    return state.cache;
  }

  /** Empties the cache (after a rolled-back dry run, whose reads may have filled it). */
  forgetCache(): void {
    caches.delete(this.db);
  }

  /** A statement that changes settings: the cache looks at the version again on its next read. */
  private write(sql: string) {
    const state = caches.get(this.db);
    if (state) state.checked = false;
    return prepared(this.db, sql);
  }

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

  // ---- providers ----

  /**
   * Creates or replaces a provider; its config is parsed here, so omitted settings get their
   * defaults (e.g. max_connections). A host or URL the relay would not connect to (destination.ts:
   * loopback, link-local, metadata, localhost, `ownAddresses`) without allow_private, or an smtp
   * host that is no host name or IP address, is a 400 naming the field, and nothing is written.
   */
  putProvider(input: { name: string; config: z.input<typeof providerConfig> }, opts: { ownAddresses?: readonly string[] } = {}): Provider {
    const config = providerConfig.parse(input.config);
    const issues = providerDestinationIssues(config, new Set(opts.ownAddresses));
    if (issues.length) throw new AppError('invalid_body', undefined, issues);
    const at = this.now().toISOString();
    this.write(
      `INSERT INTO mail_providers (name, type, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET type = excluded.type, config = excluded.config, updated_at = excluded.updated_at`,
    )
    .run(input.name, config.type, JSON.stringify(config), at, at);
    return { name: input.name, config };
  }

  providers(): Provider[] {
    const rows = prepared(this.db, 'SELECT name, config FROM mail_providers ORDER BY name').all() as { name: string; config: string }[];
    return rows.map((r) => ({ name: r.name, config: providerConfig.parse(JSON.parse(r.config)) }));
  }

  /** Cached, like account(). */
  provider(name: string): Provider | undefined {
    return through(this.cached().providers, name, () => this.readProvider(name));
  }

  private readProvider(name: string): Provider | undefined {
    const row = prepared(this.db, 'SELECT config FROM mail_providers WHERE name = ?').get(name) as { config: string } | undefined;
    return row && { name, config: providerConfig.parse(JSON.parse(row.config)) };
  }

  /** Refused (409) while a rule names the provider. */
  removeProvider(name: string): void {
    const used = this.rules().filter((r) => r.provider === name || r.fallback_provider === name);
    if (used.length) throw new AppError('conflict', `provider ${name} is used by rule(s) ${used.map((r) => r.id).join(', ')}; remove them first`);
    if (this.write('DELETE FROM mail_providers WHERE name = ?').run(name).changes === 0) throw new AppError('not_found', `no provider ${name}`);
  }

  // ---- rules ----

  /** Adds a rule; its provider and fallback must exist (400 naming the field otherwise). */
  addRule(input: RuleInput): Rule {
    for (const field of ['provider', 'fallback_provider'] as const) {
      const name = input[field];
      if (name !== null && !this.provider(name)) throw fieldError(field, `no provider named ${name}`);
    }
    const rule: Rule = { ...input, id: randomBytes(4).toString('hex') };
    this.write(
      `INSERT INTO mail_rules (id, priority, sender_domain, recipient_domain, account, provider, fallback_provider, created_at)
       VALUES (@id, @priority, @sender_domain, @recipient_domain, @account, @provider, @fallback_provider, @created_at)`,
    )
    .run({ ...rule, created_at: this.now().toISOString() });
    return rule;
  }

  /** Rules in evaluation order: priority, then creation. Cached, like account(). */
  rules(): readonly Rule[] {
    const cache = this.cached();
    return (cache.rules ??= this.readRules());
  }

  private readRules(): Rule[] {
    return prepared(this.db, 'SELECT id, priority, sender_domain, recipient_domain, account, provider, fallback_provider FROM mail_rules ORDER BY priority, created_at, id')
      .all() as Rule[];
  }

  /** The rule with this id (404 when none). */
  rule(id: string): Rule {
    const rule = this.rules().find((r) => r.id === id);
    if (!rule) throw new AppError('not_found', `no rule ${id}`);
    return rule;
  }

  /** Replaces rule `id` (keeping its id and place among equal priorities); providers checked as for addRule. */
  putRule(id: string, input: RuleInput): Rule {
    this.rule(id);
    for (const field of ['provider', 'fallback_provider'] as const) {
      const name = input[field];
      if (name !== null && !this.provider(name)) throw fieldError(field, `no provider named ${name}`);
    }
    this.write('UPDATE mail_rules SET priority = @priority, sender_domain = @sender_domain, recipient_domain = @recipient_domain, account = @account, provider = @provider, fallback_provider = @fallback_provider WHERE id = @id').run({ ...input, id });
    return { ...input, id };
  }

  removeRule(id: string): void {
    if (this.write('DELETE FROM mail_rules WHERE id = ?').run(id).changes === 0) throw new AppError('not_found', `no rule ${id}`);
  }

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
