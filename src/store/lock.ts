// One process per role and data dir: `dnsproxy serve` and `dnsproxy mail serve` each hold an
// exclusive lock on `<data_dir>/<role>.lock` while they run, so a second controller or relay on
// the same data dir (a copy started by hand beside supervisord's) refuses to start instead of
// serving the same database twice.
//
// The lock is SQLite's own (POSIX fcntl locks through better-sqlite3, which we already ship): an
// EXCLUSIVE transaction on an empty database file, held open and never committed. The kernel drops
// it when the process ends in any way, SIGKILL included, so there is no stale lock to clean up and
// no pid file to trust; two processes starting at once cannot both get it. Like SQLite itself it
// needs a local file system (not NFS).
import Database from 'better-sqlite3';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export type LockRole = 'controller' | 'mail';

const WHAT: Record<LockRole, string> = { controller: 'controller', mail: 'mail relay' };

export class DataDirLocked extends Error {
  constructor(
    readonly role: LockRole,
    readonly file: string,
    /** The holder's pid when /proc/locks shows it. */
    readonly pid: number | undefined,
  ) {
    super(`another ${WHAT[role]}${pid ? ` (pid ${pid})` : ''} already runs on the data dir ${resolve(file, '..')} (it holds ${file})`);
  }
}

export interface DataDirLock {
  file: string;
  release(): void;
}

/** The pid holding a POSIX lock on the file with inode `ino`, from /proc/locks (Linux), if shown. */
function lockHolder(file: string): number | undefined {
  try {
    const ino = statSync(file).ino;
    for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
      // "1: POSIX  ADVISORY  WRITE 1234 fd:01:567890 1073741824 1073741824"
      const m = /^\d+:\s+POSIX\s+\S+\s+\S+\s+(\d+)\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s/.exec(line);
      if (m && Number(m[2]) === ino && Number(m[1]) > 0 && Number(m[1]) !== process.pid) return Number(m[1]);
    }
  } catch {
    // not Linux, or gone meanwhile: the message does without the pid
  }
  return undefined;
}

/** Takes `<dataDir>/<role>.lock` or throws DataDirLocked at once (no waiting). Keep the result until the process stops. */
export function lockDataDir(dataDir: string, role: LockRole): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const file = resolve(join(dataDir, `${role}.lock`));
  const db = new Database(file, { timeout: 0 });
  try {
    // No journal file beside the lock (the default mode writes a 512-byte one); nothing is ever written.
    db.pragma('journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code === 'SQLITE_BUSY') throw new DataDirLocked(role, file, lockHolder(file));
    throw e;
  }
  return { file, release: () => db.close() };
}
