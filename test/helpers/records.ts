// A RecordStore on a fresh database for store tests.
import type { RecordWrite } from '../../src/model/record.js';
import { openDb } from '../../src/store/db.js';
import { RecordStore } from '../../src/store/records.js';
import { tempDir } from './tmp.js';

/** An A record `name` → `ip` in home.arpa. (TTL 300, not proxied). */
export const aRecord = (name: string, ip = '192.0.2.1'): RecordWrite => ({ name, zone: 'home.arpa.', data: { type: 'A', values: [ip] }, ttl: 300, proxy: null, service_name: null });

export interface OpenStore {
  db: ReturnType<typeof openDb>;
  store: RecordStore;
}

/**
 * Registers in the enclosing describe a beforeEach that opens a database in a fresh temp dir with a RecordStore
 * for home.arpa. (passed to `opened`, which fills the suite's variables), and an afterEach that closes and removes it.
 */
export function eachRecordStore(opened: (s: OpenStore) => void): void {
  let tmp: ReturnType<typeof tempDir>;
  let db: ReturnType<typeof openDb>;
  beforeEach(() => {
    tmp = tempDir();
    db = openDb(tmp.dir);
    opened({ db, store: new RecordStore(db, ['home.arpa.']) });
  });
  afterEach(() => {
    db.close();
    tmp.cleanup();
  });
}
