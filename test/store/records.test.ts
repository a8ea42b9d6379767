import { expect } from 'chai';
import { AppError } from '../../src/errors.js';
import type { RecordChange, RecordWrite } from '../../src/model/record.js';
import { openDb } from '../../src/store/db.js';
import { RecordStore } from '../../src/store/records.js';
import { aRecord as a, eachRecordStore, type OpenStore } from '../helpers/records.js';
import { tempDir } from '../helpers/tmp.js';


describe('store: records', () => {
  it('applies a batch all-or-nothing: a conflict in the second write stores neither', () => {
    const tmp = tempDir();
    const db = openDb(tmp.dir);
    const store = new RecordStore(db, ['home.arpa.']);
    store.put([a('x.home.arpa.')]);
    const serial = store.serial('home.arpa.');
    const heard: RecordChange[] = [];
    store.onChange((c) => heard.push(c));
    const cname: RecordWrite = { name: 'x.home.arpa.', zone: 'home.arpa.', data: { type: 'CNAME', values: ['y.home.arpa.'] }, ttl: 300, proxy: null, service_name: null };
    expect(() => store.put([a('new.home.arpa.'), cname])).to.throw(AppError).with.property('code', 'conflict');
    expect(store.get('new.home.arpa.', 'A')).to.equal(undefined);
    expect(store.serial('home.arpa.')).to.equal(serial);
    expect(heard).to.have.length(0);
    db.close();
    tmp.cleanup();
  });

  it('replaceZone removes what the batch does not hold, in one change with one serial bump', () => {
    const tmp = tempDir();
    const db = openDb(tmp.dir);
    const store = new RecordStore(db, ['home.arpa.']);
    store.put([a('x.home.arpa.'), a('y.home.arpa.')]);
    const serial = store.serial('home.arpa.');
    const heard: RecordChange[] = [];
    store.onChange((c) => heard.push(c));
    store.put([a('y.home.arpa.', '192.0.2.2'), a('z.home.arpa.')], { replaceZone: 'home.arpa.' });
    expect(store.list().map((r) => r.name)).to.deep.equal(['y.home.arpa.', 'z.home.arpa.']);
    expect(heard).to.have.length(1);
    expect(heard[0]).to.deep.include({ serial: serial + 1, removed: [{ name: 'x.home.arpa.', type: 'A' }] });
    db.close();
    tmp.cleanup();
  });

  it('keeps data and serial across reopen; migrations are idempotent', () => {
    const tmp = tempDir();
    let db = openDb(tmp.dir);
    const store = new RecordStore(db, ['home.arpa.']);
    store.put([a('x.home.arpa.')]);
    const serial = store.serial('home.arpa.');
    db.close();
    db = openDb(tmp.dir);
    const again = new RecordStore(db, ['home.arpa.']);
    expect(again.get('x.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.1']);
    expect(again.serial('home.arpa.')).to.equal(serial);
    expect(db.pragma('journal_mode', { simple: true })).to.equal('wal');
    db.close();
    tmp.cleanup();
  });
});

describe('store: records that do not read back', () => {
  let db: OpenStore['db'];
  let store: RecordStore;
  eachRecordStore((s) => ({ db, store } = s));

  it('put() refuses a set whose row would not read back: nothing stored, serial kept, nobody told', () => {
    store.put([a('x.home.arpa.')]);
    const serial = store.serial('home.arpa.');
    const heard: RecordChange[] = [];
    store.onChange((c) => heard.push(c));
    const bad = [a('y.home.arpa.'), a('z.home.arpa.', 'not-an-address')];
    expect(() => store.put(bad)).to.throw(AppError).with.property('code', 'invalid_body');
    const outside: RecordWrite = { ...a('w.lab.example.'), zone: 'home.arpa.' };
    expect(() => store.put([outside])).to.throw(AppError).with.property('code', 'invalid_body');
    expect(store.list().map((r) => r.name)).to.deep.equal(['x.home.arpa.']);
    expect(store.serial('home.arpa.')).to.equal(serial);
    expect(heard).to.have.length(0);
  });

  it('a stored row that no longer parses is left out of list() and get(), reported by scan(), and removable', () => {
    store.put([a('x.home.arpa.')]);
    db.prepare(`INSERT INTO records (name, type, zone, ttl, data, proxy, service_name, created_at, updated_at) VALUES ('bad.home.arpa.', 'A', 'home.arpa.', 300, '["not-an-address"]', NULL, NULL, 't', 't')`).run();
    expect(store.list().map((r) => r.name)).to.deep.equal(['x.home.arpa.']);
    expect(store.get('bad.home.arpa.', 'A')).to.equal(undefined);
    const { invalid } = store.scan({ zone: 'home.arpa.' });
    expect(invalid).to.have.length(1);
    expect(invalid[0]).to.deep.include({ name: 'bad.home.arpa.', type: 'A', zone: 'home.arpa.' });
    expect(invalid[0]?.reason).to.match(/does not parse \(values\.0: /);
    expect(store.remove('bad.home.arpa.').map((r) => r.name)).to.deep.equal(['bad.home.arpa.']);
    expect(store.scan().invalid).to.deep.equal([]);
  });
});
