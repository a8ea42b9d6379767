// RecordStore keeps what each row parsed to: an unchanged row is not parsed again, and a row that
// changed in any column (another connection, a hand edit, a rolled-back write) is parsed anew.
import { expect } from 'chai';
import type { RecordStore } from '../../src/store/records.js';
import { simulate } from '../../src/store/simulate.js';
import { aRecord as a, eachRecordStore, type OpenStore } from '../helpers/records.js';

describe('store: records, parsed rows reused', () => {
  let db: OpenStore['db'];
  let store: RecordStore;
  eachRecordStore((s) => ({ db, store } = s));

  it('an unchanged row reads back as the same parsed set (get and list alike)', () => {
    store.put([a('x.home.arpa.'), a('y.home.arpa.', '192.0.2.2')]);
    const first = store.get('x.home.arpa.', 'A');
    expect(first?.values).to.deep.equal(['192.0.2.1']);
    expect(store.get('x.home.arpa.', 'A')).to.equal(first);
    expect(store.list({ type: 'A' })[0]).to.equal(first);
  });

  it('a row changed behind the store is parsed again: a hand edit that no longer parses is not served', () => {
    store.put([a('x.home.arpa.')]);
    expect(store.get('x.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.1']);
    // Same updated_at, other data: only the data column differs.
    db.prepare("UPDATE records SET data = ? WHERE name = 'x.home.arpa.'").run(JSON.stringify(['192.0.2.77']));
    expect(store.get('x.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.77']);
    db.prepare("UPDATE records SET data = ? WHERE name = 'x.home.arpa.'").run(JSON.stringify(['not an address']));
    expect(store.get('x.home.arpa.', 'A')).to.equal(undefined);
    expect(store.scan().invalid.map((r) => r.name)).to.deep.equal(['x.home.arpa.']);
    db.prepare("UPDATE records SET ttl = 60, data = ? WHERE name = 'x.home.arpa.'").run(JSON.stringify(['192.0.2.1']));
    expect(store.get('x.home.arpa.', 'A')).to.include({ ttl: 60 });
  });

  it('what a rolled-back write read is not served after the rollback', () => {
    store.put([a('x.home.arpa.')]);
    const inside = simulate(db, [store], () => {
      store.put([a('x.home.arpa.', '192.0.2.9')]);
      return store.get('x.home.arpa.', 'A')?.values;
    });
    expect(inside).to.deep.equal(['192.0.2.9']);
    expect(store.get('x.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.1']);
  });
});
