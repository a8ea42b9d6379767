// The data dir holds what must stay ours alone: the SQLite file (provider passwords, API keys,
// DKIM private keys), the mail relay's TLS key, Caddy's storage (certificates, its CA's key).
// Contract: after secureDataDir() the directory is 0700 and nothing of ours in it grants group or
// other users any access; when that cannot be made so, it throws and the service does not start.
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';

/** The data dir and every directory we make in it: only our user may list or enter them. */
export const DIR_MODE = 0o700;
/** Every file we write under the data dir. */
export const FILE_MODE = 0o600;
/** The database file's name inside the data dir. */
export const DB_FILE = 'dnsproxy.sqlite';
/** Entries of the data dir that are ours: SQLite's files, the relay's (mail/), Caddy's (caddy/) and the ACME account's (acme/) trees. */
const OWN_ENTRIES = [DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`, `${DB_FILE}-journal`, 'mail', 'caddy', 'acme'];

export class DataDirError extends Error {
  override name = 'DataDirError';
}

export interface Tightened {
  path: string;
  /** Permission bits before and after, e.g. 0o644 → 0o600. */
  from: number;
  to: number;
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;

function statOrNull(path: string, follow: boolean): Stats | null {
  try {
    return follow ? statSync(path) : lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Takes group and other bits off `path` (already stat'ed); records the change, or throws when the owner is another user. */
function tighten(path: string, st: Stats, out: Tightened[]): void {
  const mode = st.mode & 0o7777;
  if ((mode & 0o077) === 0) return;
  const to = mode & ~0o077 & 0o7777;
  try {
    chmodSync(path, to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const uid = process.getuid?.();
    throw new DataDirError(
      `${path}: mode ${octal(mode)} lets other users in, and it cannot be changed (${code}): it belongs to uid ${st.uid}, this process runs as uid ${uid ?? '?'}. ` +
        `As root or its owner run: chown -R ${uid ?? '<this user>'} <data_dir> && chmod -R go-rwx <data_dir>`,
    );
  }
  out.push({ path, from: mode, to });
}

/** tighten() on `path` and, for a directory, everything below it. Symbolic links are neither changed nor followed. */
function tightenTree(path: string, out: Tightened[]): void {
  const st = statOrNull(path, false);
  if (!st || st.isSymbolicLink()) return;
  tighten(path, st, out);
  if (st.isDirectory()) for (const name of readdirSync(path)) tightenTree(join(path, name), out);
}

/**
 * Makes `dir` if missing (DIR_MODE, parents too), then tightens it and OWN_ENTRIES inside it
 * (group and other bits removed; other entries are left as they are, behind the 0700 directory).
 * Returns what it changed. Throws DataDirError (with the fix in the message) for a path that is
 * not a directory, a shared sticky directory such as /tmp, or an entry it may not chmod.
 */
export function secureDataDir(dir: string): Tightened[] {
  try {
    mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  } catch (e) {
    throw new DataDirError(`data_dir ${dir}: cannot create it: ${(e as Error).message}`);
  }
  const st = statSync(dir);
  if (!st.isDirectory()) throw new DataDirError(`data_dir ${dir} is not a directory`);
  if (st.mode & 0o1000) throw new DataDirError(`data_dir ${dir} is a shared directory (sticky bit, like /tmp): give dnsproxy a directory of its own, e.g. ${join(dir, 'dnsproxy')}`);
  const out: Tightened[] = [];
  tighten(dir, st, out);
  for (const name of OWN_ENTRIES) tightenTree(join(dir, name), out);
  return out;
}

/** Creates `path` empty with FILE_MODE unless it exists (SQLite would make it 0644, and gives its -wal and -shm the database file's mode). */
export function createPrivateFile(path: string): void {
  closeSync(openSync(path, 'a', FILE_MODE));
}
