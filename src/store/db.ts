// Opens the shared SQLite file and brings its schema up to date.
// Contract: WAL mode, synchronous=FULL (a committed write survives kill -9 and power loss),
// busy timeout so the controller and the mail relay can share the file.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { logger } from '../log/index.js';
import { createPrivateFile, DB_FILE, secureDataDir } from './files.js';
import { MIGRATIONS } from './migrations.js';

export { DB_FILE } from './files.js';

export type Db = Database.Database;

const statements = new WeakMap<Db, Map<string, Database.Statement>>();

/**
 * `db.prepare(sql)`, parsed once per connection and reused (parsing was ~10 % of the mail relay's
 * hot paths). The statement is shared: never call pluck(), raw() or expand() on it, nor run it
 * while iterating it.
 */
export function prepared(db: Db, sql: string): Database.Statement {
  let byDb = statements.get(db);
  if (!byDb) statements.set(db, (byDb = new Map<string, Database.Statement>()));
  let stmt = byDb.get(sql);
  if (!stmt) byDb.set(sql, (stmt = db.prepare(sql)));
  return stmt;
}

/** How long a writer waits for the other process's transaction before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating if needed) the database in `dataDir`. The data dir is made private first
 * (secureDataDir: 0700, our files 0600; throws DataDirError when it cannot be), and a new
 * database file is created 0600, a mode SQLite passes on to its -wal and -shm files.
 */
export function openDb(dataDir: string): Db {
  for (const t of secureDataDir(dataDir))
    logger('store').warn('permissions tightened: other users could read this', { path: t.path, from: `0${t.from.toString(8)}`, to: `0${t.to.toString(8)}` });
  const file = join(dataDir, DB_FILE);
  createPrivateFile(file);
  const db = new Database(file);
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

/**
 * Applies every migration above `PRAGMA user_version`, each in its own transaction. The version
 * is read inside the write transaction: the controller and the mail relay start together under
 * supervisord, and the second to get the lock must see the first one's migration as done.
 */
export function migrate(db: Db): void {
  if ((db.pragma('user_version', { simple: true }) as number) >= MIGRATIONS.length) return; // up to date: no write lock
  for (const [i, sql] of MIGRATIONS.entries()) {
    const version = i + 1;
    db.transaction(() => {
      if ((db.pragma('user_version', { simple: true }) as number) >= version) return;
      db.exec(sql);
      db.pragma(`user_version = ${version}`);
    }).immediate();
  }
}
