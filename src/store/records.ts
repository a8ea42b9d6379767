// Desired DNS state: record sets keyed by (name, type), and each zone's SOA serial.
// Contract: every mutating call is one IMMEDIATE transaction; it either commits entirely (serial
// bumped once per touched zone, listeners told after commit) or throws and changes nothing.
import { AppError } from '../errors.js';
import { recordInput, type Proxy, type RecordChange, type RecordData, type RecordType, type RecordWrite, type StoredRecord } from '../model/record.js';
import { conflictProblem } from '../model/rules.js';
import type { Db } from './db.js';

export interface ListFilter {
  zone?: string;
  name?: string;
  type?: RecordType;
  service_name?: string;
  proxied?: boolean;
}

interface Row {
  name: string;
  type: string;
  zone: string;
  ttl: number;
  data: string;
  proxy: string | null;
  service_name: string | null;
  created_at: string;
  updated_at: string;
}

/** Parses a DB row through the model schema, so a bad row is caught on read, not served. */
function fromRow(row: Row): StoredRecord {
  const proxy = row.proxy === null ? null : (JSON.parse(row.proxy) as Proxy);
  const parsed = recordInput.parse({ name: row.name, type: row.type, ttl: row.ttl, values: JSON.parse(row.data), ...(proxy ? { proxy } : {}) });
  const { name: _n, service_name: _s, proxy: _p, ttl, ...data } = parsed as typeof parsed & { proxy?: Proxy };
  return { ...(data as RecordData), name: row.name, zone: row.zone, ttl, proxy, service_name: row.service_name, created_at: row.created_at, updated_at: row.updated_at };
}

/** Told of each committed change; a promise it returns says when it is done with it (a lock()'s release waits for that). */
export type ChangeListener = (change: RecordChange) => unknown;

/** Ends a turn taken with lock(): tells the listeners of what the other connection committed (null: nothing), and waits for them. */
export type Release = (change: RecordChange | null) => Promise<void>;

export class RecordStore {
  private readonly listeners: ChangeListener[] = [];
  /** Set by simulate(): writes happen inside a transaction that will be rolled back, so nobody is told. */
  muted = false;
  /** Set while a writer on another connection holds the store's turn (lock()): resolves when it gives it back. */
  private held: Promise<void> | null = null;

  constructor(
    private readonly db: Db,
    zones: readonly string[],
    private readonly now: () => Date = () => new Date(),
  ) {
    // A new zone starts at the current Unix time, so a re-created database still moves serials forward.
    const insert = db.prepare('INSERT OR IGNORE INTO zones (name, serial) VALUES (?, ?)');
    const start = Math.floor(now().getTime() / 1000);
    db.transaction(() => zones.forEach((z) => insert.run(z, start)))();
  }

  onChange(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  /** While a writer on another connection holds the turn: a promise that resolves when it is given back; else null. Writers here await it first. */
  get busy(): Promise<void> | null {
    return this.held;
  }

  /** The SQLite file, for a writer on another connection (a zone import's thread). */
  get file(): string {
    return this.db.name;
  }

  /**
   * Takes the store's turn for a write through another connection (a zone import's thread), once
   * no other such writer holds it. Until the release, this store's own writes refuse (503) and
   * callers are meant to await `busy` first: otherwise one of them could commit while the other
   * connection's transaction holds the lock, and its change would reach the listeners (the DNS
   * index) before the other's, out of commit order. The release announces what was committed.
   */
  async lock(): Promise<Release> {
    while (this.held) await this.held;
    let done!: () => void;
    this.held = new Promise<void>((resolve) => (done = resolve));
    return async (change) => {
      try {
        if (change && !this.muted) await Promise.all(this.listeners.map((l) => l(change)));
      } finally {
        this.held = null;
        done();
      }
    };
  }

  serial(zone: string): number {
    const row = this.db.prepare('SELECT serial FROM zones WHERE name = ?').get(zone) as { serial: number } | undefined;
    return row?.serial ?? 0;
  }

  list(filter: ListFilter = {}): StoredRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    for (const key of ['zone', 'name', 'type', 'service_name'] as const)
      if (filter[key] !== undefined) {
        where.push(`${key} = ?`);
        args.push(filter[key]);
      }
    if (filter.proxied !== undefined) where.push(filter.proxied ? "json_extract(proxy, '$.enabled') = 1" : "(proxy IS NULL OR json_extract(proxy, '$.enabled') = 0)");
    const sql = `SELECT * FROM records ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY zone, name, type`;
    return (this.db.prepare(sql).all(...args) as Row[]).map(fromRow);
  }

  get(name: string, type: RecordType): StoredRecord | undefined {
    const row = this.db.prepare('SELECT * FROM records WHERE name = ? AND type = ?').get(name, type) as Row | undefined;
    return row && fromRow(row);
  }

  /** Record sets stored, in `zone` or in all zones. */
  count(zone?: string): number {
    return (zone === undefined ? this.db.prepare('SELECT count(*) FROM records').pluck().get() : this.db.prepare('SELECT count(*) FROM records WHERE zone = ?').pluck().get(zone)) as number;
  }

  /**
   * Stores record sets (create or replace each name+type). With `replaceZone`, every other
   * record of that zone is removed in the same transaction. Throws AppError('conflict') and
   * stores nothing when any set breaks a rule in `conflictProblem`.
   */
  put(writes: readonly RecordWrite[], opts: { replaceZone?: string } = {}): { record: StoredRecord; created: boolean }[] {
    const at = this.now().toISOString();
    return this.write((change) => {
        if (opts.replaceZone !== undefined) {
          const keep = new Set(writes.map((w) => `${w.name} ${w.data.type}`));
          const old = this.db.prepare('SELECT name, type FROM records WHERE zone = ?').all(opts.replaceZone) as { name: string; type: RecordType }[];
          const del = this.db.prepare('DELETE FROM records WHERE name = ? AND type = ?');
          for (const r of old)
            if (!keep.has(`${r.name} ${r.type}`)) {
              del.run(r.name, r.type);
              change(opts.replaceZone).removed.push(r);
            }
        }
        const typesAt = this.db.prepare('SELECT type FROM records WHERE name = ?').pluck();
        const created = this.db.prepare('SELECT created_at FROM records WHERE name = ? AND type = ?').pluck();
        const upsert = this.db.prepare(
          `INSERT INTO records (name, type, zone, ttl, data, proxy, service_name, created_at, updated_at)
           VALUES (@name, @type, @zone, @ttl, @data, @proxy, @service_name, @at, @at)
           ON CONFLICT (name, type) DO UPDATE SET zone = excluded.zone, ttl = excluded.ttl, data = excluded.data,
             proxy = excluded.proxy, service_name = excluded.service_name, updated_at = excluded.updated_at`,
        );
        return writes.map((w) => {
          const problem = conflictProblem(w.data.type, typesAt.all(w.name) as RecordType[], w.name === w.zone);
          if (problem) throw new AppError('conflict', `${w.name} ${w.data.type}: ${problem}`);
          const since = created.get(w.name, w.data.type) as string | undefined;
          upsert.run({ name: w.name, type: w.data.type, zone: w.zone, ttl: w.ttl, data: JSON.stringify(w.data.values), proxy: w.proxy ? JSON.stringify(w.proxy) : null, service_name: w.service_name, at });
          const record = { ...w.data, name: w.name, zone: w.zone, ttl: w.ttl, proxy: w.proxy, service_name: w.service_name, created_at: since ?? at, updated_at: at } as StoredRecord;
          change(w.zone).upserted.push(record);
          return { record, created: since === undefined };
        });
    });
  }

  /** put() for one record set. */
  putOne(write: RecordWrite): { record: StoredRecord; created: boolean } {
    const [result] = this.put([write]);
    if (!result) throw new Error('put() returned no result');
    return result;
  }

  /** Removes the record sets at `name` (only `type` when given). Throws not_found when nothing matched. */
  remove(name: string, type?: RecordType): StoredRecord[] {
    return this.write((change) => {
        const rows = (type ? this.db.prepare('SELECT * FROM records WHERE name = ? AND type = ?').all(name, type) : this.db.prepare('SELECT * FROM records WHERE name = ?').all(name)) as Row[];
        if (rows.length === 0) throw new AppError('not_found', `no ${type ? `${type} ` : ''}record at ${name}`);
        const del = this.db.prepare('DELETE FROM records WHERE name = ? AND type = ?');
        for (const r of rows) {
          del.run(r.name, r.type);
          change(r.zone).removed.push({ name: r.name, type: r.type as RecordType });
        }
        return rows.map(fromRow);
    });
  }

  /**
   * Runs `body` in one IMMEDIATE transaction; `change(zone)` collects what it did per zone.
   * Each touched zone's serial is bumped inside the same transaction; listeners hear of the
   * changes only after the commit.
   */
  private write<T>(body: (change: (zone: string) => RecordChange) => T): T {
    if (this.held) throw new AppError('unavailable', 'a zone import is being written; retry in a moment');
    const changes = new Map<string, RecordChange>();
    const change = (zone: string) => {
      let c = changes.get(zone);
      if (!c) changes.set(zone, (c = { zone, serial: 0, upserted: [], removed: [] }));
      return c;
    };
    const bump = this.db.prepare('UPDATE zones SET serial = serial + 1 WHERE name = ? RETURNING serial').pluck();
    const result = this.db
      .transaction(() => {
        const out = body(change);
        for (const c of changes.values()) c.serial = (bump.get(c.zone) as number | undefined) ?? 0;
        return out;
      })
      .immediate();
    if (!this.muted) for (const c of changes.values()) for (const l of this.listeners) l(c);
    return result;
  }
}
