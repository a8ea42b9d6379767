import { expect } from 'chai';
import { performance } from 'node:perf_hooks';
import { lookup } from '../../src/dns/lookup.js';
import { STAGED_APPLY_RRSETS, ZoneIndex } from '../../src/dns/zone.js';
import { buildIndex, HOME, LAB, rec, ZONES } from './fixture.js';

const a = (name: string, ip = '192.0.2.7') => rec(HOME, name, { type: 'A', values: [ip] });

describe('dns/zone', () => {
  it('tracks empty non-terminals as names are added and removed', () => {
    const idx = new ZoneIndex(ZONES);
    idx.load(HOME, 1, []);
    idx.apply({ zone: HOME, serial: 2, upserted: [a('x.y.z')], removed: [] });
    expect(lookup(idx, 'y.z.home.arpa.', 'A').kind).to.equal('nodata');
    expect(lookup(idx, 'z.home.arpa.', 'A').kind).to.equal('nodata');
    idx.apply({ zone: HOME, serial: 3, upserted: [a('w.y.z')], removed: [{ name: 'x.y.z.home.arpa.', type: 'A' }] });
    expect(lookup(idx, 'x.y.z.home.arpa.', 'A').kind).to.equal('nxdomain');
    expect(lookup(idx, 'y.z.home.arpa.', 'A').kind).to.equal('nodata');
    idx.apply({ zone: HOME, serial: 4, upserted: [], removed: [{ name: 'w.y.z.home.arpa.', type: 'A' }] });
    expect(lookup(idx, 'y.z.home.arpa.', 'A').kind).to.equal('nxdomain');
    expect(lookup(idx, 'z.home.arpa.', 'A').kind).to.equal('nxdomain');
  });

  it('replaces an RRset on upsert, sets the serial and bumps the generation on every change', () => {
    const idx = buildIndex();
    const g0 = idx.generation;
    idx.apply({ zone: HOME, serial: 2026010102, upserted: [a('llm', '192.0.2.11')], removed: [] });
    expect(idx.generation).to.be.greaterThan(g0);
    expect(idx.serial(HOME)).to.equal(2026010102);
    expect(idx.soa(HOME).serial).to.equal(2026010102);
    expect(lookup(idx, 'llm.home.arpa.', 'A').answer.map((r) => (r as { data: unknown }).data)).to.deep.equal(['192.0.2.11']);
    expect(lookup(idx, 'llm.home.arpa.', 'AAAA').kind).to.equal('success');
  });

  it('finds the most specific served zone', () => {
    const idx = new ZoneIndex([...ZONES, { name: 'iot.home.arpa.', nameservers: [], hostmaster: 'hostmaster.home.arpa.', nodeIp: '192.0.2.1' }]);
    expect(idx.zoneFor('x.iot.home.arpa.')).to.equal('iot.home.arpa.');
    expect(idx.zoneFor('x.home.arpa.')).to.equal(HOME);
    expect(idx.zoneFor('app.lab.example.')).to.equal(LAB);
    expect(idx.zoneFor('example.')).to.equal(undefined);
    expect(idx.zoneFor('.')).to.equal(undefined);
  });

  it('skips records outside the zone and says so', () => {
    const idx = new ZoneIndex(ZONES);
    const warnings = idx.load(HOME, 1, [a('ok'), rec(LAB, 'app', { type: 'A', values: ['198.51.100.5'] })]);
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.include('app.lab.example.');
    expect(lookup(idx, 'ok.home.arpa.', 'A').kind).to.equal('success');
  });

  it('lists served records: SOA, synthesised NS and glue, then user records in canonical order', () => {
    const idx = new ZoneIndex(ZONES);
    idx.load(HOME, 7, [a('b'), a('a.b'), rec(HOME, '@', { type: 'MX', values: [{ preference: 10, exchange: 'mail.home.arpa.' }] }), a('a')]);
    const served = idx.servedRecords(HOME).map((r) => `${r.name} ${r.type}`);
    expect(served).to.deep.equal(['home.arpa. SOA', 'home.arpa. NS', 'ns1.home.arpa. A', 'home.arpa. MX', 'a.home.arpa. A', 'b.home.arpa. A', 'a.b.home.arpa. A']);
    expect(idx.servedRecords(HOME)[0]?.values[0]).to.include({ serial: 7, mname: 'ns1.home.arpa.' });
  });

  it('drops synthesised glue and NS when the user defines their own', () => {
    const idx = new ZoneIndex(ZONES);
    idx.load(HOME, 1, [a('ns1', '192.0.2.2'), rec(HOME, '@', { type: 'NS', values: ['ns1.home.arpa.'] })]);
    const served = idx.servedRecords(HOME).map((r) => `${r.name} ${r.type} ${JSON.stringify(r.values)}`);
    expect(served).to.deep.equal(['home.arpa. SOA [{"mname":"ns1.home.arpa.","rname":"hostmaster.home.arpa.","serial":1,"refresh":3600,"retry":600,"expire":604800,"minimum":60,"ttl":300}]', 'home.arpa. NS ["ns1.home.arpa."]', 'ns1.home.arpa. A ["192.0.2.2"]']);
    expect(lookup(idx, 'ns1.home.arpa.', 'A').answer).to.have.length(1);
  });

  it('applies a burst of 500 adds to a 10,000-name zone incrementally', () => {
    const idx = new ZoneIndex(ZONES);
    idx.load(HOME, 1, Array.from({ length: 10_000 }, (_, i) => a(`host${i}.rack${i % 50}`)));
    const t0 = performance.now();
    for (let i = 0; i < 500; i++) idx.apply({ zone: HOME, serial: 2 + i, upserted: [a(`new${i}.rack${i % 50}`)], removed: [] });
    const ms = performance.now() - t0;
    expect(lookup(idx, 'new499.rack49.home.arpa.', 'A').kind).to.equal('success');
    expect(idx.serial(HOME)).to.equal(501);
    // A rebuild per change would cost ~500 × 10k inserts (seconds); incremental is well under 100 ms.
    expect(ms).to.be.lessThan(100);
  });
  describe('a big change (a zone import): staged, then swapped in whole', () => {
    const N = STAGED_APPLY_RRSETS * 3;
    const kind = (idx: ZoneIndex, name: string, type = 'A') => lookup(idx, `${name}.home.arpa.`, type).kind;

    it('answers from the zone as it was until the whole change is in, giving the event loop turns meanwhile', async () => {
      const idx = new ZoneIndex(ZONES);
      idx.load(HOME, 1, [a('keep'), a('both'), rec(HOME, 'both', { type: 'TXT', values: ['old'] }), a('gone.deep')]);
      const g0 = idx.generation;
      const upserted = Array.from({ length: N }, (_, i) => a(`n${i}.rack${i % 40}`));
      upserted.push(rec(HOME, 'both', { type: 'TXT', values: ['new'] }));
      expect(idx.apply({ zone: HOME, serial: 2, upserted, removed: [{ name: 'gone.deep.home.arpa.', type: 'A' }] })).to.deep.equal([]);
      const done = idx.settled();
      let turns = 0;
      let finished = false;
      void done.then(() => (finished = true));
      while (!finished) {
        // What a query sees between two slices: the old zone, all of it.
        expect([kind(idx, 'n0.rack0'), kind(idx, 'rack0'), kind(idx, 'gone.deep'), kind(idx, 'deep'), idx.serial(HOME), idx.generation]).to.deep.equal(['nxdomain', 'nxdomain', 'success', 'nodata', 1, g0]);
        expect(lookup(idx, 'both.home.arpa.', 'TXT').answer.map((r) => String((r as { data: unknown }).data))).to.deep.equal(['old']);
        await new Promise((r) => setImmediate(r));
        turns++;
      }
      expect(turns).to.be.greaterThan(1);
      expect([kind(idx, `n${N - 1}.rack${(N - 1) % 40}`), kind(idx, 'rack0'), kind(idx, 'gone.deep'), kind(idx, 'deep'), kind(idx, 'keep'), idx.serial(HOME), idx.generation]).to.deep.equal(['success', 'nodata', 'nxdomain', 'nxdomain', 'success', 2, g0 + 1]);
      expect(lookup(idx, 'both.home.arpa.', 'TXT').answer.map((r) => String((r as { data: unknown }).data))).to.deep.equal(['new']);
      expect(lookup(idx, 'both.home.arpa.', 'A').kind).to.equal('success');
    });

    it('applies changes that come meanwhile after it, in order, and reports warnings', async () => {
      const idx = new ZoneIndex(ZONES);
      idx.load(HOME, 1, []);
      const warned: string[][] = [];
      const big = Array.from({ length: N }, (_, i) => a(`n${i}`));
      big.push(rec(LAB, 'elsewhere', { type: 'A', values: ['198.51.100.9'] }));
      idx.apply({ zone: HOME, serial: 2, upserted: [...big, a('x', '192.0.2.1')], removed: [] }, (w) => warned.push(w));
      idx.apply({ zone: HOME, serial: 3, upserted: [a('x', '192.0.2.2')], removed: [] });
      idx.apply({ zone: HOME, serial: 4, upserted: [], removed: Array.from({ length: N }, (_, i) => ({ name: `n${i}.home.arpa.`, type: 'A' as const })) });
      expect(kind(idx, 'x')).to.equal('nxdomain');
      await idx.settled();
      expect(lookup(idx, 'x.home.arpa.', 'A').answer.map((r) => (r as { data: unknown }).data)).to.deep.equal(['192.0.2.2']);
      expect([kind(idx, 'n0'), idx.serial(HOME)]).to.deep.equal(['nxdomain', 4]);
      expect(warned).to.deep.equal([['elsewhere.lab.example. A: outside zone home.arpa.; skipped']]);
      await idx.settled(); // nothing under way: at once
    });
  });
});
