import { expect } from 'chai';
import { chmodSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDb } from '../../src/store/db.js';
import { DataDirError, DB_FILE, secureDataDir } from '../../src/store/files.js';
import { tempDir } from '../helpers/tmp.js';

const mode = (path: string) => statSync(path).mode & 0o7777;

describe('store: files on disk', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  /** Opens the store in `dir` and writes once, so the -wal and -shm files exist (until it is closed). */
  function openAndWrite(dir: string): ReturnType<typeof openDb> {
    const db = openDb(dir);
    db.prepare("INSERT INTO zones (name, serial) VALUES ('home.arpa.', 1)").run();
    for (const f of [DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`]) expect(statSync(join(dir, f)).isFile(), f).to.equal(true);
    return db;
  }

  it('makes a fresh data dir (and missing parents) 0700 and the database, -wal and -shm 0600, whatever the umask', () => {
    const dir = join(tmp.dir, 'a', 'b', 'data');
    const old = process.umask(0o022);
    try {
      const db = openAndWrite(dir);
      expect([mode(join(tmp.dir, 'a')), mode(join(tmp.dir, 'a', 'b')), mode(dir)]).to.deep.equal([0o700, 0o700, 0o700]);
      for (const f of [DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`]) expect([f, mode(join(dir, f))]).to.deep.equal([f, 0o600]);
      db.close();
    } finally {
      process.umask(old);
    }
  });

  it('tightens a data dir left 0755 with 0644 files: ours only, symlinks not followed', () => {
    const dir = join(tmp.dir, 'data');
    const db = openAndWrite(dir);
    const outside = join(tmp.dir, 'outside.txt');
    writeFileSync(outside, 'not ours');
    mkdirSync(join(dir, 'mail', 'tls'), { recursive: true });
    writeFileSync(join(dir, 'mail', 'tls', 'key.pem'), 'PRIVATE');
    mkdirSync(join(dir, 'caddy', 'data', 'caddy', 'pki'), { recursive: true });
    writeFileSync(join(dir, 'caddy', 'data', 'caddy', 'pki', 'root.key'), 'PRIVATE');
    symlinkSync(outside, join(dir, 'mail', 'link'));
    writeFileSync(join(dir, 'notes.txt'), 'the operator’s own file');
    const loose: [string, number][] = [
      ['.', 0o755],
      [DB_FILE, 0o644],
      [`${DB_FILE}-wal`, 0o644],
      [`${DB_FILE}-shm`, 0o666],
      ['mail', 0o755],
      ['mail/tls', 0o775],
      ['mail/tls/key.pem', 0o644],
      ['caddy', 0o755],
      ['caddy/data/caddy/pki/root.key', 0o640],
      ['notes.txt', 0o644],
    ];
    for (const [p, m] of loose) chmodSync(join(dir, p), m);
    chmodSync(outside, 0o644);

    const changed = secureDataDir(dir);
    const want: Record<string, number> = { '.': 0o700, [DB_FILE]: 0o600, [`${DB_FILE}-wal`]: 0o600, [`${DB_FILE}-shm`]: 0o600, mail: 0o700, 'mail/tls': 0o700, 'mail/tls/key.pem': 0o600, caddy: 0o700, 'caddy/data/caddy/pki/root.key': 0o600 };
    for (const [p, m] of Object.entries(want)) expect([p, mode(join(dir, p))]).to.deep.equal([p, m]);
    // Not ours: left alone (the 0700 directory already keeps others out), and a link's target is never changed.
    expect(mode(join(dir, 'notes.txt'))).to.equal(0o644);
    expect(mode(outside)).to.equal(0o644);
    expect(changed.map((c) => [c.path.slice(dir.length + 1) || '.', c.from, c.to])).to.deep.include.members([
      ['.', 0o755, 0o700],
      [DB_FILE, 0o644, 0o600],
      [`${DB_FILE}-shm`, 0o666, 0o600],
      ['mail/tls', 0o775, 0o700],
    ]);
    expect(secureDataDir(dir)).to.deep.equal([]); // nothing left to do
    db.close();
  });

  it('refuses a shared sticky directory such as /tmp, and a path that is a file', () => {
    const shared = join(tmp.dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    expect(() => secureDataDir(shared)).to.throw(DataDirError, /shared directory \(sticky bit, like \/tmp\)/);
    expect(mode(shared)).to.equal(0o1777);
    const file = join(tmp.dir, 'file');
    writeFileSync(file, '');
    expect(() => openDb(file)).to.throw(DataDirError, /is not a directory|cannot create it/);
  });
});
