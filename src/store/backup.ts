// Backup and restore of the data dir's database (the controller's and the relay's one file).
//
// Backup runs while serving: SQLite's online backup API (better-sqlite3 `db.backup()`) copies the
// database page by page between turns of the event loop and starts over when another connection
// writes meanwhile, so the copy is one committed state, never half of a transaction. The copy is
// written beside the database (same file system, owner-only) and then handed out whole.
//
// Restore runs with the stack stopped: it takes both data-dir locks (lock.ts), so neither the
// controller nor the relay can be running, checks the file (SQLite's integrity check, a schema
// this version knows), keeps the current database as `dnsproxy.sqlite.before-restore-<time>`, and
// moves the backup into place with a rename (all or nothing). The next start migrates it if the
// backup came from an older version.
import Database from 'better-sqlite3';
import { chmodSync, closeSync, copyFileSync, existsSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Db } from './db.js';
import { DB_FILE, FILE_MODE } from './files.js';
import { lockDataDir } from './lock.js';
import { MIGRATIONS } from './migrations.js';

export class BackupError extends Error {}

/** Pages copied per step of a backup (each step between two turns of the event loop). */
const STEP_PAGES = 256;
/**
 * A write by another connection (the relay's) restarts the copy from the first page. After this
 * many restarts the rest is copied in one step (a read transaction of a few hundred ms at 100 MB),
 * or a relay writing all the time would keep the backup from ever finishing.
 */
const MAX_RESTARTS = 3;

/** Writes a consistent copy of `db` to `dest` (owner-only). Other writes go on meanwhile. */
export async function backupDb(db: Db, dest: string): Promise<{ pages: number; restarts: number }> {
  let restarts = 0;
  let last = Infinity;
  const out = await db.backup(dest, {
    progress: ({ remainingPages }) => {
      if (remainingPages >= last) restarts++; // a restart copies its first step again: no progress
      last = remainingPages;
      return restarts >= MAX_RESTARTS ? 0x7fffffff : STEP_PAGES;
    },
  });
  chmodSync(dest, FILE_MODE);
  return { pages: out.totalPages, restarts };
}

/** A backup of `db` into a new owner-only file in `dir` (beside the database: same file system, same permissions). */
export async function backupInto(db: Db, dir: string): Promise<{ file: string; pages: number; restarts: number }> {
  const file = join(dir, `.backup-${randomUUID()}.sqlite`);
  try {
    return { file, ...(await backupDb(db, file)) };
  } catch (e) {
    rmSync(file, { force: true });
    throw e;
  }
}

/** Why `file` is no database this version can restore, or its schema version. */
export function checkBackup(file: string): { version: number } {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (e) {
    throw new BackupError(`${file}: cannot open it as a SQLite database (${(e as Error).message})`);
  }
  try {
    let ok: unknown;
    try {
      ok = db.pragma('integrity_check', { simple: true });
    } catch (e) {
      throw new BackupError(`${file}: not a dnsproxy backup (${(e as Error).message})`);
    }
    if (ok !== 'ok') throw new BackupError(`${file}: SQLite's integrity check failed: ${String(ok)}`);
    const version = db.pragma('user_version', { simple: true }) as number;
    const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name));
    if (version < 1 || !tables.has('records')) throw new BackupError(`${file}: not a dnsproxy database (no records table, schema version ${version})`);
    if (version > MIGRATIONS.length) throw new BackupError(`${file}: made by a newer dnsproxy (schema ${version}; this one knows up to ${MIGRATIONS.length}): restore it with that version`);
    return { version };
  } finally {
    db.close();
  }
}

/**
 * Replaces `<dataDir>/dnsproxy.sqlite` with the backup `file`. Throws DataDirLocked when the
 * controller or the relay runs, BackupError when the file is no usable backup (nothing changed).
 * Returns where the replaced database was kept (null when there was none).
 */
export function restoreDb(dataDir: string, file: string, now: () => Date = () => new Date()): { kept: string | null; version: number } {
  const locks = [lockDataDir(dataDir, 'controller')];
  try {
    locks.push(lockDataDir(dataDir, 'mail'));
    const { version } = checkBackup(file);
    const target = join(dataDir, DB_FILE);
    const staged = `${target}.restoring`;
    rmSync(staged, { force: true });
    copyFileSync(file, staged);
    chmodSync(staged, FILE_MODE);
    const fd = openSync(staged, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    let kept: string | null = null;
    if (existsSync(target)) {
      // Fold the write-ahead log into the file first, so the copy kept is whole on its own.
      const old = new Database(target);
      try {
        old.pragma('wal_checkpoint(TRUNCATE)');
      } finally {
        old.close();
      }
      kept = `${target}.before-restore-${now().toISOString().replace(/[:.]/g, '-')}`;
      renameSync(target, kept);
    }
    for (const side of ['-wal', '-shm']) rmSync(`${target}${side}`, { force: true });
    renameSync(staged, target);
    return { kept, version };
  } finally {
    for (const l of locks.reverse()) l.release();
  }
}
