import { expect } from 'chai';
import { AppError } from '../../src/errors.js';
import type { RouteInput } from '../../src/model/route.js';
import { openDb, type Db } from '../../src/store/db.js';
import { RecordStore } from '../../src/store/records.js';
import { RouteStore } from '../../src/store/routes.js';
import { transact } from '../../src/store/simulate.js';
import { tempDir } from '../helpers/tmp.js';

describe('store: routes', () => {
  let tmp: ReturnType<typeof tempDir>;
  let db: Db;
  let routes: RouteStore;
  let heard: number;
  beforeEach(() => {
    tmp = tempDir();
    db = openDb(tmp.dir);
    routes = new RouteStore(db);
    heard = 0;
    routes.onChange(() => heard++);
  });
  afterEach(() => {
    db.close();
    tmp.cleanup();
  });

  const route = (extra: Partial<RouteInput> = {}): RouteInput => ({ hosts: ['a.home.arpa'], upstreams: ['192.0.2.5:80'], tls: 'off', ...extra });

  it('put() refuses a route whose row would not read back: nothing stored, nobody told', () => {
    // An input that got past the edge in a shape the schema does not accept on read (the old "//" → "").
    expect(() => routes.put(route({ path: '' }))).to.throw(AppError).with.property('code', 'invalid_body');
    expect(db.prepare('SELECT count(*) FROM routes').pluck().get()).to.equal(0);
    expect(heard).to.equal(0);
    const { route: ok } = routes.put(route({ path: '/ui' }));
    expect(() => routes.put(route({ health_path: '' }), ok.id)).to.throw(AppError).with.property('code', 'invalid_body');
    expect(routes.get(ok.id)).to.deep.include({ health_path: null, path: '/ui' });
    expect(heard).to.equal(1);
  });

  it('withHosts() finds the routes serving a host exactly (not a longer name holding it), broken rows left out', () => {
    const a = routes.put(route({ hosts: ['a.home.arpa', 'b.home.arpa'] })).route;
    routes.put(route({ hosts: ['ba.home.arpa'] }));
    routes.put(route({ hosts: ['x.a.home.arpa'] }));
    const c = routes.put(route({ hosts: ['c.home.arpa'], path: '/x' })).route;
    expect(routes.withHosts(['a.home.arpa']).map((r) => r.id)).to.deep.equal([a.id]);
    expect(routes.withHosts(['b.home.arpa', 'a.home.arpa', 'c.home.arpa']).map((r) => r.id).sort()).to.deep.equal([a.id, c.id].sort());
    expect(routes.withHosts(['home.arpa', 'z.home.arpa'])).to.deep.equal([]);
    db.prepare("UPDATE routes SET upstreams = 'nope' WHERE id = ?").run(c.id);
    expect(routes.withHosts(['c.home.arpa'])).to.deep.equal([]);
  });

  it('scan() keeps a row that no longer parses apart; list() and get() leave it out; remove() removes it', () => {
    const { route: ok } = routes.put(route());
    db.prepare(`INSERT INTO routes (id, hosts, path, upstreams, tls, health_path, created_at, updated_at) VALUES ('api:00000000', '["b.home.arpa"]', '', '["192.0.2.5:80"]', 'off', NULL, 't', 't')`).run();
    const { routes: good, broken } = routes.scan();
    expect(good.map((r) => r.id)).to.deep.equal([ok.id]);
    expect(broken).to.have.length(1);
    expect(broken[0]).to.deep.include({ id: 'api:00000000', hosts: ['b.home.arpa'], path: '' });
    expect(broken[0]?.reason).to.match(/^the stored route does not parse \(path: /);
    expect(routes.list().map((r) => r.id)).to.deep.equal([ok.id]);
    expect(routes.get('api:00000000')).to.equal(undefined);
    expect(routes.has('api:00000000')).to.equal(true);
    routes.remove('api:00000000');
    expect(routes.scan().broken).to.deep.equal([]);
  });

  it('transact(): a write inside a unit of work that then fails is neither committed nor told; one that commits is told after the commit', () => {
    const records = new RecordStore(db, ['home.arpa.']);
    const told: string[] = [];
    records.onChange((c) => told.push(`records ${c.serial}`));
    routes.onChange(() => told.push(`routes ${db.inTransaction ? 'inside' : 'after'} the transaction`));
    const a = { name: 'x.home.arpa.', zone: 'home.arpa.', data: { type: 'A' as const, values: ['192.0.2.1'] }, ttl: 300, proxy: null, service_name: null };
    expect(() =>
      transact(db, [records, routes], () => {
        records.putOne(a);
        routes.put(route());
        throw new AppError('conflict', 'a check after the writes');
      }),
    ).to.throw(AppError);
    expect(records.count()).to.equal(0);
    expect(routes.list()).to.deep.equal([]);
    expect(told).to.deep.equal([]);
    transact(db, [records, routes], () => {
      records.putOne(a);
      routes.put(route());
    });
    expect(told).to.deep.equal([`records ${records.serial('home.arpa.')}`, 'routes after the transaction']);
  });
});
