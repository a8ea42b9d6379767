// Desired DNS state: record sets keyed by (name, type), and each zone's SOA serial.
// Contract: every mutating call is one IMMEDIATE transaction; it either commits entirely (serial
// bumped once per touched zone, listeners told after commit) or throws and changes nothing. Each
// set is read back through the model schema before it is written, so only rows that read back are
// committed. A stored row that no longer parses (a rule tightened since, a hand edit) is never
// served and never fails a list: scan() reports it apart, and a write or remove replaces it.
import { ZodError } from 'zod';
import { AppError, zodFields } from '../errors.js';
import { logger } from '../log/index.js';
import { inZone } from '../model/name.js';
import { recordInput, rrsetSizeProblem, type Proxy, type RecordChange, type RecordType, type RecordWrite, type StoredRecord } from '../model/record.js';
import { conflictProblem } from '../model/rules.js';
import { zoneSoa, type ZoneSoa } from '../model/zone.js';
import type { RecordViews } from '../model/view.js';
import { prepared, type Db } from './db.js';
import { notify, type Notifying } from './simulate.js';

export interface ListFilter {
  zone?: string;
  name?: string;
  type?: RecordType;
  service_name?: string;
  proxied?: boolean;
}

/** A stored row that does not parse: where it is, and why it is not served. */
export interface InvalidRecord {
  name: string;
  type: string;
  zone: string;
  reason: string;
}

interface Row {
  name: string;
  type: string;
  zone: string;
  ttl: number;
  data: string;
  proxy: string | null;
  service_name: string | null;
  views: string | null;
  created_at: string;
  updated_at: string;
}

/** Parses a DB row through the model schema, so a bad row is caught on read, not served. Throws ZodError or SyntaxError. */
function fromRow(row: Row): StoredRecord {
  const proxy = row.proxy === null ? null : (JSON.parse(row.proxy) as Proxy);
  const parsed = recordInput.parse({
    name: row.name,
    type: row.type,
    ttl: row.ttl,
    values: JSON.parse(row.data) as unknown,
    ...(proxy ? { proxy } : {}),
    ...(row.service_name !== null ? { service_name: row.service_name } : {}),
    ...(row.views !== null && row.views !== undefined ? { views: JSON.parse(row.views) as unknown } : {}),
  });
  if (!inZone(row.name, row.zone)) throw new ZodError([{ code: 'custom', path: ['name'], message: `is outside its zone ${row.zone}`, input: row.name }]);
  const { name: _n, service_name: _s, proxy: parsedProxy, views, ttl, ...data } = parsed as typeof parsed & { proxy?: Proxy; views?: RecordViews };
  const tooBig = rrsetSizeProblem(row.name, data);
  if (tooBig) throw new ZodError([{ code: 'custom', path: ['values'], message: tooBig, input: undefined }]);
  return { ...(data), name: row.name, zone: row.zone, ttl, proxy: parsedProxy ?? null, service_name: row.service_name, ...(views ? { views } : {}), created_at: row.created_at, updated_at: row.updated_at };
}

/** Parsed rows kept (RecordStore.parsed): the hot sets of a big zone, a few hundred KiB at most; the oldest entry leaves first. */
const PARSED_CACHE_SIZE = 2048;

const sameRow = (a: Row, b: Row): boolean =>
  a.data === b.data && a.updated_at === b.updated_at && a.ttl === b.ttl && a.zone === b.zone && a.proxy === b.proxy && a.service_name === b.service_name && a.views === b.views && a.created_at === b.created_at;

const reasonOf = (e: unknown): string =>
  e instanceof ZodError ? zodFields(e.issues).map((f) => `${f.path || '(row)'}: ${f.message}`).join('; ') : `unreadable: ${(e as Error).message}`;

/** Told of each committed change; a promise it returns says when it is done with it (a lock()'s release waits for that). */
export type ChangeListener = (change: RecordChange) => unknown;

/** Ends a turn taken with lock(): tells the listeners of what the other connection committed (null: nothing), and waits for them. */
export type Release = (change: RecordChange | null) => Promise<void>;

export class RecordStore implements Notifying {
  private readonly listeners: ChangeListener[] = [];
  muted = false;
  held: (() => void)[] | null = null;
  private readonly log = logger('store.records');
  /** `name type updated_at` of invalid rows already logged: each is logged once, not at every list. */
  private readonly logged = new Set<string>();
  /**
   * Rows already parsed, by `name type`, with what they parsed to: a row read again with the same
   * columns is not parsed again (GET /list-records reads every A row each time; the zod parse of
   * each was ~10 % of the controller's time in bench/api). Compared column by column, so a row
   * changed by anyone (a rolled-back write, another connection, a hand edit) is parsed anew.
   * Callers must not mutate what get()/list() return.
   */
  private readonly parsed = new Map<string, { row: Row; record: StoredRecord }>();
  /** Set while a writer on another connection holds the store's turn (lock()): resolves when it gives it back. */
  private turn: Promise<void> | null = null;

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
    return this.turn;
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
    while (this.turn) await this.turn;
    let done!: () => void;
    this.turn = new Promise<void>((resolve) => (done = resolve));
    return async (change) => {
      try {
        if (change && !this.muted) await Promise.all(this.listeners.map((l) => l(change)));
      } finally {
        this.turn = null;
        done();
      }
    };
  }

  serial(zone: string): number {
    const row = prepared(this.db, 'SELECT serial FROM zones WHERE name = ?').get(zone) as { serial: number } | undefined;
    return row?.serial ?? 0;
  }

  /** The zone's SOA fields from an import, or null (the settings' ones apply). A row that does not parse is logged and ignored. */
  soa(zone: string): ZoneSoa | null {
    const text = (prepared(this.db, 'SELECT soa FROM zones WHERE name = ?').get(zone) as { soa: string | null } | undefined)?.soa;
    if (text === null || text === undefined) return null;
    try {
      return zoneSoa.parse(JSON.parse(text));
    } catch (e) {
      this.log.error('stored SOA fields do not parse; the zone is served with the configured ones', { zone, reason: reasonOf(e) });
      return null;
    }
  }

  /** The stored sets matching `filter`, the ones that parse apart from the ones that do not (each logged once). */
  scan(filter: ListFilter = {}): { records: StoredRecord[]; invalid: InvalidRecord[] } {
    const where: string[] = [];
    const args: unknown[] = [];
    for (const key of ['zone', 'name', 'type', 'service_name'] as const)
      if (filter[key] !== undefined) {
        where.push(`${key} = ?`);
        args.push(filter[key]);
      }
    if (filter.proxied !== undefined) where.push(filter.proxied ? "json_extract(proxy, '$.enabled') = 1" : "(proxy IS NULL OR json_extract(proxy, '$.enabled') = 0)");
    const sql = `SELECT * FROM records ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY zone, name, type`;
    const records: StoredRecord[] = [];
    const invalid: InvalidRecord[] = [];
    // prepared(): one statement per combination of filters (a few dozen at most), parsed once.
    for (const row of prepared(this.db, sql).all(...args) as Row[]) {
      const r = this.read(row);
      if ('reason' in r) invalid.push(r);
      else records.push(r);
    }
    return { records, invalid };
  }

  /** The proxy upstreams of every proxied A/AAAA set as written, without parsing the rest (the API's upstream checks read them per write). */
  proxiedUpstreams(): { name: string; upstreams: string[] }[] {
    const rows = this.db.prepare(`SELECT name, json_extract(proxy, '$.upstreams') AS upstreams FROM records WHERE type IN ('A', 'AAAA') AND json_extract(proxy, '$.enabled') = 1`).all() as { name: string; upstreams: string | null }[];
    return rows.map((r) => {
      let list: unknown = [];
      try {
        list = JSON.parse(r.upstreams ?? '[]');
      } catch {
        // an unreadable row is not served (scan()); it reaches nothing
      }
      return { name: r.name, upstreams: Array.isArray(list) ? list.filter((u): u is string => typeof u === 'string') : [] };
    });
  }

  /** The sets that can be served (invalid rows left out: see scan()). */
  list(filter: ListFilter = {}): StoredRecord[] {
    return this.scan(filter).records;
  }

  /** The set, or undefined when there is none or its row does not parse. */
  get(name: string, type: RecordType): StoredRecord | undefined {
    const row = prepared(this.db, 'SELECT * FROM records WHERE name = ? AND type = ?').get(name, type) as Row | undefined;
    if (!row) return undefined;
    const r = this.read(row);
    return 'reason' in r ? undefined : r;
  }

  private read(row: Row): StoredRecord | InvalidRecord {
    const key = `${row.name} ${row.type}`;
    const hit = this.parsed.get(key);
    if (hit && sameRow(hit.row, row)) return hit.record;
    try {
      const record = fromRow(row);
      if (!hit && this.parsed.size >= PARSED_CACHE_SIZE) this.parsed.delete(this.parsed.keys().next().value!);
      this.parsed.set(key, { row, record });
      return record;
    } catch (e) {
      const bad = { name: row.name, type: row.type, zone: row.zone, reason: `the stored record set does not parse (${reasonOf(e)}); it is not served: replace or remove it` };
      const key = `${row.name} ${row.type} ${row.updated_at}`;
      if (!this.logged.has(key)) {
        this.logged.add(key);
        this.log.error('stored record set does not parse; not served', bad);
      }
      return bad;
    }
  }

  /** Record sets stored, in `zone` or in all zones. */
  count(zone?: string): number {
    // Statements parsed once per connection: GET /api/v1/zones counts every zone at each call.
    return ((zone === undefined ? prepared(this.db, 'SELECT count(*) AS n FROM records').get() : prepared(this.db, 'SELECT count(*) AS n FROM records WHERE zone = ?').get(zone)) as { n: number }).n;
  }

  /**
   * Stores record sets (create or replace each name+type). With `replaceZone`, every other
   * record of that zone is removed in the same transaction. Throws AppError('conflict') and
   * stores nothing when any set breaks a rule in `conflictProblem`.
   */
  put(writes: readonly RecordWrite[], opts: { replaceZone?: string; soa?: { zone: string; fields: ZoneSoa; serial: number } } = {}): { record: StoredRecord; created: boolean }[] {
    const at = this.now().toISOString();
    return this.write((change, floor) => {
        if (opts.soa) {
          // An imported SOA: its fields are kept, and the serial (bumped below) never falls under the file's.
          const fields = zoneSoa.parse(opts.soa.fields);
          this.db.prepare('UPDATE zones SET soa = ? WHERE name = ?').run(JSON.stringify(fields), opts.soa.zone);
          change(opts.soa.zone).soa = fields;
          floor(opts.soa.zone, opts.soa.serial);
        }
        if (opts.replaceZone !== undefined) {
          const keep = new Set(writes.map((w) => `${w.name} ${w.data.type}`));
          const old = this.db.prepare('SELECT name, type FROM records WHERE zone = ?').all(opts.replaceZone) as { name: string; type: RecordType }[];
          const del = prepared(this.db, 'DELETE FROM records WHERE name = ? AND type = ?');
          for (const r of old)
            if (!keep.has(`${r.name} ${r.type}`)) {
              del.run(r.name, r.type);
              change(opts.replaceZone).removed.push(r);
            }
        }
        // Statements parsed once per connection (prepared()): a write's cost must not include parsing SQL.
        const typesAt = prepared(this.db, 'SELECT type FROM records WHERE name = ?');
        const created = prepared(this.db, 'SELECT created_at FROM records WHERE name = ? AND type = ?');
        const upsert = prepared(this.db, 
          `INSERT INTO records (name, type, zone, ttl, data, proxy, service_name, views, created_at, updated_at)
           VALUES (@name, @type, @zone, @ttl, @data, @proxy, @service_name, @views, @at, @at)
           ON CONFLICT (name, type) DO UPDATE SET zone = excluded.zone, ttl = excluded.ttl, data = excluded.data,
             proxy = excluded.proxy, service_name = excluded.service_name, views = excluded.views, updated_at = excluded.updated_at`,
        );
        const viewExists = prepared(this.db, 'SELECT 1 AS one FROM views WHERE name = ?');
        return writes.map((w) => {
          const problem = conflictProblem(w.data.type, (typesAt.all(w.name) as { type: RecordType }[]).map((r) => r.type), w.name === w.zone);
          if (problem) throw new AppError('conflict', `${w.name} ${w.data.type}: ${problem}`);
          // Checked here, in the write's transaction, so a view removed meanwhile cannot be named.
          const unknown = Object.keys(w.views ?? {}).filter((v) => !viewExists.get(v));
          if (unknown.length)
            throw new AppError('invalid_body', undefined, unknown.map((v) => ({ path: `views.${v}`, message: `${w.name} ${w.data.type}: no view "${v}" (define it with POST /api/v1/views)` })));
          const since = (created.get(w.name, w.data.type) as { created_at: string } | undefined)?.created_at;
          const row: Row = {
            name: w.name,
            type: w.data.type,
            zone: w.zone,
            ttl: w.ttl,
            data: JSON.stringify(w.data.values),
            proxy: w.proxy ? JSON.stringify(w.proxy) : null,
            service_name: w.service_name,
            views: w.views && Object.keys(w.views).length ? JSON.stringify(w.views) : null,
            created_at: since ?? at,
            updated_at: at,
          };
          // What is committed must read back: the row goes through the same parse as every read.
          let record: StoredRecord;
          try {
            record = fromRow(row);
          } catch (e) {
            if (!(e instanceof ZodError)) throw e;
            throw new AppError('invalid_body', `${w.name} ${w.data.type}: ${reasonOf(e)}`, zodFields(e.issues));
          }
          upsert.run({ ...row, at });
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

  /**
   * Removes the record sets at `name` (only `type` when given), invalid rows too. Throws not_found
   * when nothing matched. Returns what was removed (an invalid row as far as it can be shown).
   */
  remove(name: string, type?: RecordType): (StoredRecord | InvalidRecord)[] {
    return this.write((change) => {
        const rows = (type ? prepared(this.db, 'SELECT * FROM records WHERE name = ? AND type = ?').all(name, type) : prepared(this.db, 'SELECT * FROM records WHERE name = ?').all(name)) as Row[];
        if (rows.length === 0) throw new AppError('not_found', `no ${type ? `${type} ` : ''}record at ${name}`);
        const del = prepared(this.db, 'DELETE FROM records WHERE name = ? AND type = ?');
        for (const r of rows) {
          del.run(r.name, r.type);
          change(r.zone).removed.push({ name: r.name, type: r.type as RecordType });
        }
        return rows.map((r) => this.read(r));
    });
  }

  /**
   * Runs `body` in one IMMEDIATE transaction; `change(zone)` collects what it did per zone.
   * Each touched zone's serial is bumped inside the same transaction; listeners hear of the
   * changes only after the commit.
   */
  private write<T>(body: (change: (zone: string) => RecordChange, floor: (zone: string, serial: number) => void) => T): T {
    if (this.turn) throw new AppError('unavailable', 'a zone import is being written; retry in a moment');
    const changes = new Map<string, RecordChange>();
    const change = (zone: string) => {
      let c = changes.get(zone);
      if (!c) changes.set(zone, (c = { zone, serial: 0, upserted: [], removed: [] }));
      return c;
    };
    // The lowest serial each zone may have after this write (an imported SOA's).
    const floors = new Map<string, number>();
    const bump = prepared(this.db, 'UPDATE zones SET serial = max(serial + 1, ?) WHERE name = ? RETURNING serial');
    const result = this.db
      .transaction(() => {
        const out = body(change, (zone, serial) => floors.set(zone, serial));
        for (const c of changes.values()) c.serial = (bump.get(floors.get(c.zone) ?? 0, c.zone) as { serial: number } | undefined)?.serial ?? 0;
        return out;
      })
      .immediate();
    notify(this, () => {
      for (const c of changes.values()) for (const l of this.listeners) l(c);
    });
    return result;
  }
}
