import { expect } from 'chai';
import { ZoneIndex } from '../../src/dns/index.js';
import { exportZone } from '../../src/dns/zonefile.js';
import { apiFixture, NODE_IP, type ApiFixture } from '../helpers/api.js';
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { DnsServer } from '../../src/dns/server.js';
import { lookup } from '../../src/dns/lookup.js';
import type { RecordChange } from '../../src/model/record.js';
import { captureLog, query } from '../dns/fixture.js';

/** `count` A records h0… in one zone file. */
const aRecords = (count: number) => ['$TTL 300', ...Array.from({ length: count }, (_, i) => `h${i} IN A 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)].join('\n') + '\n';

describe('api: /api/v1/zones import and export', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  const importZone = (text: string, zone = 'home.arpa') =>
    f.app.inject({ method: 'POST', url: `/api/v1/zones/${zone}/import`, headers: { ...f.auth, 'content-type': 'text/plain' }, payload: text });

  it('refuses an AAAA value with an IPv6 zone id, naming the line; nothing applied', async () => {
    const res = await importZone('ok AAAA 2001:db8::1\nll AAAA fe80::1%eth0\n');
    expect(res.statusCode, res.body).to.equal(400);
    expect(res.json().error.code).to.equal('invalid_zone_file');
    expect(res.json().error.fields).to.have.length(1);
    expect(res.json().error.fields[0].path).to.equal('line 2');
    expect(res.json().error.fields[0].message).to.include('zone id');
    expect(f.records.count()).to.equal(0);
  });

  it('an AAAA with a zone id stored by older code is not served, and the export of a restarted index imports back', async () => {
    expect((await importZone('ok AAAA 2001:db8::1\n')).statusCode).to.equal(200);
    f.db.prepare(`INSERT INTO records (name, type, zone, ttl, data, proxy, service_name, created_at, updated_at) VALUES ('ll.home.arpa.', 'AAAA', 'home.arpa.', 300, '["fe80::1%eth0"]', NULL, NULL, 't', 't')`).run();
    const list = (await f.app.inject({ method: 'GET', url: '/api/v1/records', headers: f.auth })).json();
    expect(list.invalid.map((r: { name: string }) => r.name)).to.deep.equal(['ll.home.arpa.']);
    // As the controller loads its DNS index at start: from what the store lists.
    const index = new ZoneIndex([{ name: 'home.arpa.', nameservers: ['ns1.home.arpa.'], hostmaster: 'hostmaster.home.arpa.', nodeIp: NODE_IP }]);
    index.load('home.arpa.', f.records.serial('home.arpa.'), f.records.list({ zone: 'home.arpa.' }));
    const text = exportZone('home.arpa.', index.servedRecords('home.arpa.'));
    expect(text).to.include('2001:db8::1');
    expect(text).not.to.include('%');
    const again = await importZone(text);
    expect(again.statusCode, again.body).to.equal(200);
  });
});

describe('api: /api/v1/zones/{zone}/import', function () {
  // Each import starts a thread; under tsx that thread compiles its modules first (a second or two).
  this.timeout(60_000);
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  const imp = (text: string, query = '') => f.app.inject({ method: 'POST', url: `/api/v1/zones/home.arpa/import${query}`, headers: { ...f.auth, 'content-type': 'text/plain' }, payload: text });
  const kind = (name: string, type = 'A') => lookup(f.index, name, type).kind;

  it('merges: creates and replaces sets, keeps proxy settings and service names, leaves synthesised NS and glue alone', async () => {
    const put = await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: { name: 'web', type: 'A', values: ['192.0.2.1'], service_name: 'web', proxy: { enabled: true, upstreams: ['192.0.2.50:8080'] } } });
    expect(put.statusCode, put.body).to.equal(201);
    const before = f.records.serial('home.arpa.');
    // What our own export holds for the apex NS and its glue, plus two sets.
    const res = await imp('$ORIGIN home.arpa.\n@ 3600 IN NS ns1.home.arpa.\nns1 3600 IN A 192.0.2.10\nweb 60 IN A 192.0.2.2\nnew IN TXT "a b" "c"\n');
    expect(res.statusCode, res.body).to.equal(200);
    expect(res.json()).to.deep.equal({ applied: 2, created: 1, removed: 0, serial: before + 1 });
    expect(f.records.get('web.home.arpa.', 'A')).to.deep.include({ values: ['192.0.2.2'], ttl: 60, service_name: 'web', proxy: { enabled: true, upstreams: ['192.0.2.50:8080'] } });
    expect(f.records.get('new.home.arpa.', 'TXT')).to.deep.include({ values: [['a b', 'c']] });
    expect(f.records.get('home.arpa.', 'NS')).to.equal(undefined);
    // Served by DNS by the time the response came.
    expect([kind('new.home.arpa.', 'TXT'), f.index.serial('home.arpa.')]).to.deep.equal(['success', before + 1]);
  });

  it('replace removes every other set; a dry run shows the plan (DNS and routes) and changes nothing', async () => {
    for (const [name, proxied] of [['web', true], ['old', false]] as const) {
      const r = await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: { name, type: 'A', values: ['192.0.2.1'], ...(proxied ? { proxy: { enabled: true, upstreams: ['192.0.2.50:8080'] } } : {}) } });
      expect(r.statusCode, r.body).to.equal(201);
    }
    const serial = f.records.serial('home.arpa.');
    const dry = await imp('$ORIGIN home.arpa.\nold IN A 192.0.2.3\nfresh IN A 192.0.2.4\n', '?mode=replace&dry_run=true');
    expect(dry.statusCode, dry.body).to.equal(200);
    expect(dry.headers['content-type']).to.match(/^application\/json/);
    const plan = dry.json().plan;
    expect(dry.json().dry_run).to.equal(true);
    expect(plan.dns).to.deep.equal({ added: ['fresh.home.arpa. A'], changed: ['old.home.arpa. A'], removed: ['web.home.arpa. A'] });
    expect(plan.routes.removed.map((r: { id: string }) => r.id)).to.deep.equal(['record:web.home.arpa']);
    expect([f.records.count('home.arpa.'), f.records.serial('home.arpa.'), kind('fresh.home.arpa.')]).to.deep.equal([2, serial, 'nxdomain']);

    const real = await imp('$ORIGIN home.arpa.\nold IN A 192.0.2.3\nfresh IN A 192.0.2.4\n', '?mode=replace');
    expect(real.json()).to.deep.equal({ applied: 2, created: 1, removed: 1, serial: serial + 1 });
    expect(f.records.list({ zone: 'home.arpa.' }).map((r) => r.name)).to.deep.equal(['fresh.home.arpa.', 'old.home.arpa.']);
    expect([kind('web.home.arpa.'), kind('fresh.home.arpa.')]).to.deep.equal(['nxdomain', 'success']);
  });

  it('keeps an imported SOA (MNAME, RNAME, timers) while managing the serial, never below the file\'s; names like sub.*.<zone> import', async () => {
    const soaLine = (serial: number) => `@ 7200 IN SOA NS.Example.COM. admin.example.com. ${serial} 1800 900 1209600 120`;
    const text = (serial: number) => `$ORIGIN home.arpa.\n$TTL 300\n${soaLine(serial)}\n*.home.arpa. TXT "this is a wildcard"\nsub.*.home.arpa. TXT "this is not a wildcard"\n`;
    const fields = { mname: 'ns.example.com.', rname: 'admin.example.com.', refresh: 1800, retry: 900, expire: 1209600, minimum: 120, ttl: 7200 };
    // A file serial above ours: the zone jumps to it.
    const high = 3_000_000_000;
    const first = await imp(text(high));
    expect(first.statusCode, first.body).to.equal(200);
    expect(first.json().serial).to.equal(high);
    expect(f.records.soa('home.arpa.')).to.deep.equal(fields);
    const zones = (await f.app.inject({ method: 'GET', url: '/api/v1/zones', headers: f.auth })).json().zones as { name: string; soa: unknown }[];
    expect(zones.map((z) => [z.name, z.soa])).to.deep.equal([['home.arpa.', fields], ['lab.example.', null]]);
    // A hand-edited SOA that does not parse: the configured one is served (logged, no 500).
    f.db.prepare(`UPDATE zones SET soa = '{"mname": 1}' WHERE name = 'lab.example.'`).run();
    expect(f.records.soa('lab.example.')).to.equal(null);
    f.db.prepare(`UPDATE zones SET soa = NULL WHERE name = 'lab.example.'`).run();
    expect(f.index.soa('home.arpa.')).to.deep.equal({ ...fields, serial: high });
    expect(lookup(f.index, 'sub.*.home.arpa.', 'TXT').answer.map((a) => a.data)).to.deep.equal(['this is not a wildcard']);
    expect(lookup(f.index, 'ghost.*.home.arpa.', 'TXT').kind).to.equal('nxdomain');
    // A file serial below ours: ours goes on from where it was.
    const second = await imp(text(1));
    expect(second.json().serial).to.equal(high + 1);
    // Other writes keep the imported fields and bump the serial.
    const put = await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: { name: 'x', type: 'A', values: ['192.0.2.1'] } });
    expect(put.statusCode, put.body).to.equal(201);
    expect(f.index.soa('home.arpa.')).to.deep.equal({ ...fields, serial: high + 2 });
    // The export carries them, and a restarted index (as the controller loads it) serves them.
    const exported = await f.app.inject({ method: 'GET', url: '/api/v1/zones/home.arpa/export', headers: f.auth });
    const soa = exported.body.split('\n').join(' ').replace(/;[^;]*?(?=\s\d|\s\)|$)/g, ' ').replace(/[()\s]+/g, ' ');
    expect(soa).to.include(`7200 IN SOA ns.example.com. admin.example.com. ${high + 2} 1800 900 1209600 120 `);
    const index = new ZoneIndex([{ name: 'home.arpa.', nameservers: ['ns1.home.arpa.'], hostmaster: 'hostmaster.home.arpa.', nodeIp: NODE_IP }]);
    index.load('home.arpa.', f.records.serial('home.arpa.'), f.records.list({ zone: 'home.arpa.' }), f.records.soa('home.arpa.'));
    expect(index.soa('home.arpa.')).to.deep.equal({ ...fields, serial: high + 2 });
    // A proxied record cannot sit at such a name: Caddy would read its "*" as a wildcard.
    const proxied = await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: { name: 'sub.*.home.arpa', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['192.0.2.9:80'] } } });
    expect(proxied.statusCode).to.equal(400);
    expect(proxied.json().error.fields[0]).to.deep.include({ path: 'name' });
  });

  it('applies nothing when a line is wrong (400 naming every line) or a set conflicts (409)', async () => {
    const bad = await imp('$ORIGIN home.arpa.\nok1 300 IN A 192.0.2.1\nbroken 300 IN A 999.1.1.1\nalso 300 IN WHAT x\n');
    expect(bad.statusCode).to.equal(400);
    expect(bad.json().error).to.deep.include({ code: 'invalid_zone_file' });
    expect(bad.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['line 3', 'line 4']);
    await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: { name: 'x', type: 'A', values: ['192.0.2.1'] } });
    const conflict = await imp('$ORIGIN home.arpa.\nok2 IN A 192.0.2.2\nx IN CNAME ok2.home.arpa.\n');
    expect(conflict.statusCode, conflict.body).to.equal(409);
    expect(conflict.json().error.message).to.include('x.home.arpa. CNAME');
    expect(f.records.list({ zone: 'home.arpa.' }).map((r) => r.name)).to.deep.equal(['x.home.arpa.']);
    // The store's turn was given back: writes go on.
    const after = await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: { name: 'y', type: 'A', values: ['192.0.2.1'] } });
    expect(after.statusCode).to.equal(201);
  });

  it('other writes wait for the import holding the store, so the DNS index gets changes in commit order', async () => {
    const heard: number[] = [];
    f.records.onChange((c: RecordChange) => heard.push(c.serial));
    const release = await f.records.lock(); // as an import thread about to write
    const serial = f.records.serial('home.arpa.');
    const pending = f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: { name: 'late', type: 'A', values: ['192.0.2.1'] } });
    // What the import committed on its own connection (its serial came first).
    f.db.prepare('UPDATE zones SET serial = serial + 1 WHERE name = ?').run('home.arpa.');
    await release({ zone: 'home.arpa.', serial: serial + 1, upserted: [], removed: [] });
    expect((await pending).statusCode).to.equal(201);
    expect(heard).to.deep.equal([serial + 1, serial + 2]);
  });

  it('keeps DNS answering while a 30,000-line import is parsed, written and swapped in (real UDP queries)', async function () {
    const server = new DnsServer({ host: '127.0.0.1', port: 0, index: f.index, upstreams: [], axfrAllow: [], log: captureLog().log });
    await server.start();
    const sock = dgram.createSocket('udp4');
    try {
      const port = server.address().port;
      const sent = new Map<number, number>();
      const latencies: number[] = [];
      sock.on('message', (m) => {
        const t = sent.get(m.readUInt16BE(0));
        if (t !== undefined) latencies.push(performance.now() - t);
        sent.delete(m.readUInt16BE(0));
      });
      let id = 0;
      /** Queries every 10 ms (ns1.home.arpa. A, glue: always there) until `until` settles; latencies in ms. */
      const probe = async (until: Promise<unknown>) => {
        latencies.length = 0;
        let done = false;
        void until.finally(() => (done = true));
        while (!done) {
          const q = query('ns1.home.arpa', 'A', { id: ++id & 0xffff });
          sent.set(id & 0xffff, performance.now());
          sock.send(q, port, '127.0.0.1');
          await new Promise((r) => setTimeout(r, 10));
        }
        while (sent.size) await new Promise((r) => setTimeout(r, 10)); // every answer in (a lost one fails the test's timeout)
        return [...latencies].sort((a, b) => a - b);
      };
      const p99 = (sorted: number[]) => sorted[Math.floor(sorted.length * 0.99)] ?? Infinity;
      const baseline = p99(await probe(new Promise((r) => setTimeout(r, 1000))));
      let status = 0;
      const during = await probe(imp(aRecords(30_000)).then((r) => (status = r.statusCode)));
      expect(status).to.equal(200);
      // Before, the import held the main thread for all of its run (seconds: every query waited).
      // The target, 50 ms at 150,000 lines, is measured by bench/dns/import.mjs; here, on a box
      // other test runs share, the bound is 100 ms, or four times the p99 of the same probe
      // without an import when the box is that loaded.
      const bound = Math.max(100, 4 * baseline);
      expect(during.length).to.be.greaterThan(50);
      expect(p99(during), `p99 during the import (baseline p99 ${baseline.toFixed(1)} ms, max ${during.at(-1)?.toFixed(1)} ms, ${during.length} queries)`).to.be.below(bound);
      expect(kind('h29999.home.arpa.')).to.equal('success'); // served once the response came
    } finally {
      sock.close();
      await server.stop();
    }
  });
});
