// The part every aggregate's store shares: the connection, the clock, and the settings cache the
// relay reads through (valid while mail_settings_version, bumped by triggers on every write, is unchanged).
import { prepared, type Db } from '../../store/db.js';
import type { Account, Provider, Rule } from '../../model/mail.js';

/** A sender domain's DKIM signing key (dkim.ts). */
export interface DkimKey {
  domain: string;
  selector: string;
  private_key: string;
}

/**
 * The settings the relay reads per message, as last read; valid while mail_settings_version is `v`
 * (migration 8: triggers bump it on every write to them, from any connection).
 */
export interface SettingsCache {
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
export function through<K, V>(map: Map<K, V>, key: K, load: () => V): V {
  if (map.has(key)) return map.get(key) as V;
  if (map.size >= CACHE_MAX) map.clear();
  const v = load();
  map.set(key, v);
  return v;
}

const caches = new WeakMap<Db, { cache: SettingsCache; checked: boolean }>();

export const isUnique = (e: unknown) => (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' || (e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY';

export class StoreBase {
  constructor(
    protected readonly db: Db,
    protected readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * The cache (shared by the MailStores on this connection), emptied first when the settings
   * changed since it was filled. The version is read once per event-loop turn (a read costs
   * ~12 µs, and a message asks 4 times): a change committed before a client's command arrived is
   * seen when that command is handled, and this connection's own writes (write()) at once.
   */
  protected cached(): SettingsCache {
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
  protected write(sql: string) {
    const state = caches.get(this.db);
    if (state) state.checked = false;
    return prepared(this.db, sql);
  }
}
