// src/store/backup.ts: a backup taken during writes is one committed state; restore only with the
// stack stopped, only a good file, the old database kept.
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RecordWrite } from '../../src/model/record.js';
import { BackupError, backupInto, checkBackup, restoreDb } from '../../src/store/backup.js';
import { DB_FILE, openDb } from '../../src/store/db.js';
import { DataDirLocked, lockDataDir } from '../../src/store/lock.js';
import { RecordStore } from '../../src/store/records.js';
import { tempDir } from '../helpers/tmp.js';

const a = (i: number): RecordWrite => ({ name: `w${i}.home.arpa.`, zone: 'home.arpa.', data: { type: 'A', values: [`192.0.2.${i % 250}`] }, ttl: 300, proxy: null, service_name: null });
const names = (db: Database.Database) => (db.prepare("SELECT name FROM records WHERE name LIKE 'w%'").all() as { name: string }[]).map((r) => Number(r.name.slice(1).split('.')[0])).sort((x, y) => x - y);

describe('store: backup and restore', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  it('a backup taken during a burst of writes (this connection and another) restores to one committed state', async () => {
    const src = join(tmp.dir, 'src');
    const db = openDb(src);
    const store = new RecordStore(db, ['home.arpa.']);
    const FIRST = 40_000;
    store.put(Array.from({ length: FIRST }, (_, i) => a(i))); // enough pages that the backup takes several steps
    const other = new RecordStore(openDb(src), ['home.arpa.']); // the relay's connection stands for any other writer
    /** The zone's serial right after write i committed. */
    const serials = [store.serial('home.arpa.')];
    let next = FIRST;
    let writing = true;
    const burst = (async () => {
      while (writing) {
        const by = next % 4 ? other : store;
        by.put([a(next)]);
        serials[next - FIRST + 1] = by.serial('home.arpa.');
        next++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    const { file, pages, restarts } = await backupInto(db, src);
    writing = false;
    await burst;
    expect(pages).to.be.greaterThan(256);
    console.log(`      backup: ${pages} pages, ${restarts} restart(s), ${next - FIRST} writes meanwhile`);
    expect(restarts, "the other connection's writes restarted the copy; it finished anyway").to.be.greaterThan(0);
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    expect(next, 'writes went on during the backup').to.be.greaterThan(FIRST + 1);

    const dest = join(tmp.dir, 'dest');
    expect(restoreDb(dest, file).kept).to.equal(null);
    const restored = new Database(join(dest, DB_FILE), { readonly: true });
    try {
      expect(restored.pragma('integrity_check', { simple: true })).to.equal('ok');
      const got = names(restored);
      // One committed state: the writes up to some point, none missing in between.
      expect(got.length).to.be.at.least(FIRST);
      expect(got).to.deep.equal(got.map((_, i) => i));
      // The zone's serial moves in the same transaction as each write: it is the one written with the last row present.
      const serial = restored.prepare("SELECT serial FROM zones WHERE name = 'home.arpa.'").pluck().get() as number;
      expect(serial).to.equal(serials[got.length - FIRST]);
    } finally {
      restored.close();
      db.close();
    }
  });

  it('restore refuses while the controller or the relay runs on the data dir; nothing changes', async () => {
    const db = openDb(tmp.dir);
    new RecordStore(db, ['home.arpa.']).put([a(1)]);
    const { file } = await backupInto(db, tmp.dir);
    db.close();
    for (const role of ['controller', 'mail'] as const) {
      const held = lockDataDir(tmp.dir, role);
      try {
        expect(() => restoreDb(tmp.dir, file)).to.throw(DataDirLocked).with.property('role', role);
      } finally {
        held.release();
      }
    }
    expect(readdirSync(tmp.dir).filter((f) => f.includes('before-restore'))).to.deep.equal([]);
  });

  it('restore refuses what is no backup of ours, or one from a newer schema; nothing changes', async () => {
    const db = openDb(tmp.dir);
    new RecordStore(db, ['home.arpa.']).put([a(7)]);
    db.close();
    const junk = join(tmp.dir, 'junk.sqlite');
    writeFileSync(junk, 'not a database at all, just text that is long enough to be read as a header.......');
    expect(() => restoreDb(tmp.dir, junk)).to.throw(BackupError, /not a dnsproxy backup|cannot open/);
    const foreign = join(tmp.dir, 'foreign.sqlite');
    const f = new Database(foreign);
    f.exec('CREATE TABLE t (x)');
    f.close();
    expect(() => restoreDb(tmp.dir, foreign)).to.throw(BackupError, /not a dnsproxy database/);
    const newer = join(tmp.dir, 'newer.sqlite');
    const n = openDb(join(tmp.dir, 'n'));
    await n.backup(newer);
    n.close();
    const bump = new Database(newer);
    bump.pragma('user_version = 9999');
    bump.close();
    expect(() => checkBackup(newer)).to.throw(BackupError, /made by a newer dnsproxy \(schema 9999/);
    expect(() => restoreDb(tmp.dir, newer)).to.throw(BackupError);
    const still = openDb(tmp.dir);
    expect(names(still)).to.deep.equal([7]);
    still.close();
  });

  it('restore keeps the database it replaces (WAL folded in) and puts the backup in place', async () => {
    const db = openDb(tmp.dir);
    const store = new RecordStore(db, ['home.arpa.']);
    store.put([a(1)]);
    const { file } = await backupInto(db, tmp.dir);
    store.put([a(2)]); // after the backup: in the kept copy only
    db.close();
    const { kept } = restoreDb(tmp.dir, file, () => new Date('2026-12-07T15:00:00Z'));
    expect(kept).to.equal(join(tmp.dir, `${DB_FILE}.before-restore-2026-12-07T15-00-00-000Z`));
    expect(existsSync(join(tmp.dir, `${DB_FILE}-wal`))).to.equal(false);
    const now = openDb(tmp.dir);
    expect(names(now)).to.deep.equal([1]);
    now.close();
    const old = new Database(kept!, { readonly: true });
    expect(names(old)).to.deep.equal([1, 2]);
    old.close();
  });
});
