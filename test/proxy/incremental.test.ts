// The change pipeline keeps desired state, the plain/explicit split and the DNS table of plain
// names up to date per change (src/proxy/state.ts): the result must equal a whole rebuild after
// every change, and a record write with 5,000 proxied names present must cost no pass over all
// of them (counted, not timed).
import { expect } from 'chai';
import { wire, type Wired } from '../../src/controller.js';
import type { PlainUpstreams } from '../../src/dns/upstreams.js';
import { loadConfig } from '../../src/config/load.js';
import { openDb, type Db } from '../../src/store/db.js';
import type { DesiredRoute } from '../../src/proxy/types.js';
import type { RecordWrite } from '../../src/model/record.js';
import { legacyWrite } from '../../src/model/write.js';
import { apiFixture, NODE_IP, ZONES, type ApiFixture } from '../helpers/api.js';
import { prng } from '../helpers/prng.js';
import { tempDir } from '../helpers/tmp.js';
import { setLogLevel } from '../../src/log/index.js';

setLogLevel('warn');

const ZONE = 'home.arpa.';

function rec(name: string, ip: string, proxy?: { upstreams: string[]; tls?: 'off' | 'internal' }): RecordWrite {
  return { name: `${name}.${ZONE}`, zone: ZONE, data: { type: 'A', values: [ip] }, ttl: 300, proxy: proxy ? { enabled: true, upstreams: proxy.upstreams, ...(proxy.tls ? { tls: proxy.tls } : {}) } : null, service_name: null };
}

/** The backends the DNS table gives `host`, as `ip:port` (what Caddy's dynamic route dials). */
function published(plain: PlainUpstreams, host: string): string[] {
  const srv = plain.answer(`_px._tcp.${host}.`, `_px._tcp.${host}.`, 'SRV') ?? [];
  return srv.map((_, i) => {
    const target = `u${i}._px._tcp.${host}.`;
    const rr = (plain.answer(target, target, 'A') ?? plain.answer(target, target, 'AAAA') ?? [])[0] as { data: string } | undefined;
    const port = (srv[i] as { data: { port: number } }).data.port;
    return `${rr?.data ?? '?'}:${port}`;
  });
}

describe('incremental desired state', function () {
  this.timeout(120_000);

  describe('equals a whole rebuild after every change (seeded random changes)', () => {
    let tmp: ReturnType<typeof tempDir>;
    let db: Db;
    let w: Wired;
    let queue: (() => void)[];
    afterEach(async () => {
      while (queue.length) queue.shift()!();
      await w?.pipeline.settled();
      db?.close();
      tmp?.cleanup();
    });

    for (const seed of [1, 2, 3])
      it(`seed ${seed}`, async () => {
        tmp = tempDir();
        db = openDb(tmp.dir);
        queue = [];
        const config = loadConfig({ env: { DNSPROXY_DATA_DIR: tmp.dir, DNSPROXY_NODE_IP: '192.0.2.10' }, interfaces: {} });
        w = wire(config, { db, caddy: null, defer: (fn) => queue.push(fn) });
        w.proxy.useResolver('udp/127.0.0.1:53');
        w.pipeline.start();
        const rnd = prng(seed);
        const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
        const names = Array.from({ length: 12 }, (_, i) => `n${i}`);
        const sub = Array.from({ length: 4 }, (_, i) => `s${i}.sub`);
        const routeIds: string[] = [];
        const ops: (() => void)[] = [
          // plain candidates (literal upstream), several times as likely as the rest
          () => w.records.put([rec(pick([...names, ...sub]), '192.0.2.10', { upstreams: [`198.51.100.${1 + Math.floor(rnd() * 3)}:80`] })]),
          () => w.records.put([rec(pick([...names, ...sub]), '192.0.2.10', { upstreams: [`198.51.100.${1 + Math.floor(rnd() * 3)}:81`] })]),
          () => w.records.put([rec(pick(names), '192.0.2.10', { upstreams: ['198.51.100.9:80'], tls: 'internal' })]),
          // upstream names resolved through our records (and the record they resolve through)
          () => w.records.put([rec(pick(names), '192.0.2.10', { upstreams: ['db.home.arpa:5432'] })]),
          () => w.records.put([rec('db', `198.51.100.${20 + Math.floor(rnd() * 3)}`)]),
          () => {
            try {
              w.records.remove(`db.${ZONE}`);
            } catch {
              // not there
            }
          },
          () => w.records.put([rec(pick(names), '192.0.2.10')]), // proxy off
          () => {
            try {
              w.records.remove(`${pick([...names, ...sub])}.${ZONE}`);
            } catch {
              // not there
            }
          },
          // explicit routes claiming a plain name (the same host, or a wildcard above it)
          () => routeIds.push(w.routes.put({ hosts: [`${pick(names)}.home.arpa`], path: '/admin', upstreams: ['198.51.100.7:80'], tls: 'off' }).route.id),
          () => routeIds.push(w.routes.put({ hosts: ['*.sub.home.arpa'], upstreams: ['198.51.100.8:80'], tls: 'off' }).route.id),
          () => {
            const id = routeIds.splice(Math.floor(rnd() * routeIds.length), 1)[0];
            if (id) w.routes.remove(id);
          },
        ];
        const weights = [4, 3, 1, 1, 1, 1, 1, 2, 1, 1, 2];
        const total = weights.reduce((a, b) => a + b, 0);
        for (let step = 0; step < 250; step++) {
          let r = rnd() * total;
          const op = ops[weights.findIndex((x) => (r -= x) < 0)]!;
          const batch = 1 + Math.floor(rnd() * 3); // sometimes several changes before the pipeline runs
          for (let b = 0; b < batch; b++)
            try {
              op();
            } catch (e) {
              if (!/conflict|already/i.test((e as Error).message)) throw e; // a clash the API would refuse
            }
          while (queue.length) queue.shift()!();
          await w.pipeline.settled();
          const full = w.proxy.classify(w.proxy.build(true).routes);
          const ids = (rs: readonly DesiredRoute[]) => rs.map((x) => x.id);
          const got = w.proxy.split();
          expect(ids(got.explicit), `explicit after step ${step}`).to.deep.equal(ids(full.explicit));
          expect(got.dynamic, `dynamic after step ${step}`).to.deep.equal(full.dynamic);
          expect(w.plain.size, `DNS table size after step ${step}`).to.equal(full.dynamic.length);
          for (const d of full.dynamic) expect(published(w.plain, d.hosts[0]!), `${d.hosts[0]} after step ${step}`).to.deep.equal(d.upstreams);
          expect(w.proxy.desiredAll().routes).to.deep.equal(w.proxy.build(true).routes);
        }
      });
  });

  describe('with 5,000 proxied names', () => {
    const N = 5000;
    let f: ApiFixture;
    before(async () => {
      f = await apiFixture({ resolver: 'udp/127.0.0.1:53' });
      const batch: RecordWrite[] = [];
      for (let i = 0; i < N; i++) {
        batch.push(legacyWrite({ service_name: `h${i}`, name: `h${i}`, ip: NODE_IP, port: 8080, forward_to_ip: '198.51.100.1', proxy_enabled: true }, ZONES, NODE_IP));
        if (batch.length === 1000) f.records.put(batch.splice(0));
      }
      await f.pipeline.settled();
      expect(f.plain.size).to.equal(N);
    });
    after(async () => f?.close());

    it('a record write (add, change, remove) makes no pass over all names, on the request or after it', async () => {
      // Injected counters: every whole read of the stores and every whole-table pass of the pipeline.
      const calls = { scan: 0, proxiedUpstreams: 0, routeList: 0, replace: 0 };
      const count = <O extends object, K extends keyof O & keyof typeof calls>(o: O, key: K) => {
        const orig = (o[key] as (...a: unknown[]) => unknown).bind(o);
        (o as Record<string, unknown>)[key] = (...a: unknown[]) => (calls[key]++, orig(...a));
      };
      count(f.records, 'scan');
      count(f.records, 'proxiedUpstreams');
      const list = f.routes.list.bind(f.routes);
      f.routes.list = () => (calls.routeList++, list());
      count(f.plain as unknown as { replace: () => unknown }, 'replace');
      const before = { ...f.proxy.counts, fullPublishes: f.pipeline.counts.fullPublishes };
      const WRITES = 30;
      const auth = { ...f.auth, 'content-type': 'application/json' };
      for (let i = 0; i < WRITES / 3; i++) {
        const add = await f.app.inject({ method: 'POST', url: '/add-record', headers: auth, payload: { service_name: `new${i}`, name: `new${i}`, ip: NODE_IP, port: 80, forward_to_ip: '198.51.100.2', proxy_enabled: true } });
        expect(add.statusCode, add.body).to.equal(201);
        const change = await f.app.inject({ method: 'POST', url: '/add-record', headers: auth, payload: { service_name: `h${i}`, name: `h${i}`, ip: NODE_IP, port: 81, forward_to_ip: '198.51.100.3', proxy_enabled: true } });
        expect(change.statusCode, change.body).to.equal(200);
        const del = await f.app.inject({ method: 'DELETE', url: `/remove-record?name=h${N - 1 - i}`, headers: f.auth });
        expect(del.statusCode, del.body).to.equal(200);
        await f.pipeline.settled();
      }
      expect(calls).to.deep.equal({ scan: 0, proxiedUpstreams: 0, routeList: 0, replace: 0 });
      expect(f.proxy.counts.fullSplits - before.fullSplits, 'whole splits').to.equal(0);
      expect(f.proxy.counts.fullRouteBuilds - before.fullRouteBuilds, 'whole route builds').to.equal(0);
      expect(f.proxy.counts.materialized - before.materialized, 'sorted lists of every route').to.equal(0);
      expect(f.pipeline.counts.fullPublishes - before.fullPublishes, 'whole DNS table publishes').to.equal(0);
      // Per write: the changed name built once, and placed once.
      expect(f.proxy.counts.evaluated - before.evaluated).to.be.at.most(2 * WRITES);
      // And the result is what it should be.
      expect(published(f.plain, 'new0.home.arpa')).to.deep.equal(['198.51.100.2:80']);
      expect(published(f.plain, 'h0.home.arpa')).to.deep.equal(['198.51.100.3:81']);
      expect(f.plain.has(`h${N - 1}.home.arpa`)).to.equal(false);
      expect(f.plain.size).to.equal(N);
    });
  });
});
