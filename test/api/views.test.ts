// Split horizon end to end: views and per-view values through the API, answers by source address
// from a real DNS server over UDP and TCP (127.0.0.2 and 127.0.0.3 stand in for a tailnet and a
// LAN client: Linux routes all of 127/8 to lo), dig, the response cache, and the refusals.
import { expect } from 'chai';
import { DnsServer } from '../../src/dns/server.js';
import { exportZone } from '../../src/dns/zonefile.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { captureLog, decode, dig, hasDig, query, tcpExchange, udpExchange } from '../dns/fixture.js';

const TAILNET_CLIENT = '127.0.0.2';
const LAN_CLIENT = '127.0.0.3';

describe('api + dns: split-horizon views', function () {
  this.timeout(30_000);
  let f: ApiFixture;
  let server: DnsServer;
  let port: number;

  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    f.app.inject({ method, url, headers: f.auth, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
  /** The A (or `type`) values a client at `from` gets for `name`, over UDP or TCP. */
  const ask = async (name: string, from: string, tcp = false, type = 'A'): Promise<string[]> => {
    const q = query(name, type, { id: 0x4242 });
    const reply = tcp ? (await tcpExchange(port, Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q]), 1, 2000, from))[0] : await udpExchange(port, q, 2000, from);
    const r = decode(reply);
    expect(r.rcode).to.equal('NOERROR');
    return r.answers.filter((a) => a.type === type).map((a) => String(a.data)).sort();
  };

  beforeEach(async () => {
    f = await apiFixture();
    server = new DnsServer({ host: '127.0.0.1', port: 0, index: f.index, upstreams: [], axfrAllow: ['127.0.0.1'], log: captureLog().log, views: f.viewTable });
    await server.start();
    port = server.address().port;
    for (const [name, cidrs] of [['tailnet', ['100.64.0.0/10', 'fd7a:115c:a1e0::/48', `${TAILNET_CLIENT}/32`]], ['lan', ['192.168.1.0/24', LAN_CLIENT]]] as const) {
      const res = await call('POST', '/api/v1/views', { name, cidrs });
      expect(res.statusCode, res.body).to.equal(201);
    }
  });
  afterEach(async () => {
    await server.stop();
    await f.close();
  });

  it('answers each client with its view\'s values over UDP and TCP, others with the set\'s own; cache kept per view', async () => {
    const put = await call('POST', '/api/v1/records', { name: 'nas', type: 'A', values: ['192.0.2.20'], views: { tailnet: { values: ['100.64.0.5'] }, lan: { values: ['192.168.1.5', '192.168.1.6', '192.168.1.5'] } } });
    expect(put.statusCode, put.body).to.equal(201);
    expect(put.json().record.views).to.deep.equal({ lan: { values: ['192.168.1.5', '192.168.1.6'] }, tailnet: { values: ['100.64.0.5'] } });
    expect(put.json().warnings).to.deep.equal(['views.lan.values.2 repeats values.0 ("192.168.1.5"): stored once (RFC 2181 §5)']);
    await f.pipeline.settled();
    // Twice each, interleaved: the second of each is a cache hit, and must still be the client's own.
    for (let round = 0; round < 2; round++)
      for (const tcp of [false, true]) {
        expect(await ask('nas.home.arpa', TAILNET_CLIENT, tcp)).to.deep.equal(['100.64.0.5']);
        expect(await ask('nas.home.arpa', LAN_CLIENT, tcp)).to.deep.equal(['192.168.1.5', '192.168.1.6']);
        expect(await ask('nas.home.arpa', '127.0.0.1', tcp)).to.deep.equal(['192.0.2.20']);
        expect(await ask('nas.home.arpa', '127.0.0.9', tcp)).to.deep.equal(['192.0.2.20']);
      }
    // A view's networks change: the next query follows (nothing stale from the cache).
    const moved = await call('PUT', '/api/v1/views/lan', { name: 'lan', cidrs: ['192.168.1.0/24', '127.0.0.9'] });
    expect(moved.statusCode, moved.body).to.equal(200);
    expect(await ask('nas.home.arpa', LAN_CLIENT)).to.deep.equal(['192.0.2.20']);
    expect(await ask('nas.home.arpa', '127.0.0.9')).to.deep.equal(['192.168.1.5', '192.168.1.6']);
  });

  it('AAAA, wildcards and the additional section follow the view; AXFR and export carry the default values', async () => {
    for (const body of [
      { name: 'nas', type: 'AAAA', values: ['2001:db8::20'], views: { tailnet: { values: ['fd7a:115c:a1e0::5'] } } },
      { name: '*.apps.home.arpa', type: 'A', values: ['192.0.2.30'], views: { tailnet: { values: ['100.64.0.30'] } } },
      { name: 'mx1', type: 'A', values: ['192.0.2.25'], views: { lan: { values: ['192.168.1.25'] } } },
      { name: '@', type: 'MX', values: [{ preference: 10, exchange: 'mx1.home.arpa' }] },
    ]) {
      const res = await call('POST', '/api/v1/records', body);
      expect(res.statusCode, res.body).to.equal(201);
    }
    await f.pipeline.settled();
    expect(await ask('nas.home.arpa', TAILNET_CLIENT, false, 'AAAA')).to.deep.equal(['fd7a:115c:a1e0::5']);
    expect(await ask('nas.home.arpa', LAN_CLIENT, true, 'AAAA')).to.deep.equal(['2001:db8::20']);
    expect(await ask('x.apps.home.arpa', TAILNET_CLIENT)).to.deep.equal(['100.64.0.30']);
    expect(await ask('x.apps.home.arpa', LAN_CLIENT)).to.deep.equal(['192.0.2.30']);
    const mx = decode(await udpExchange(port, query('home.arpa', 'MX'), 2000, LAN_CLIENT));
    expect(mx.additionals.filter((a) => a.type === 'A').map((a) => a.data)).to.deep.equal(['192.168.1.25']);
    const text = exportZone('home.arpa.', f.index.servedRecords('home.arpa.'));
    expect(text).to.include('192.0.2.30').and.not.include('100.64.0.30');
    const own = await tcpExchange(port, Buffer.concat([Buffer.from([0, query('home.arpa', 'AXFR').length]), query('home.arpa', 'AXFR')]), (r) => r.flatMap((m) => decode(m).answers).filter((a) => a.type === 'SOA').length >= 2);
    const data = own.flatMap((m) => decode(m).answers).filter((a) => a.name.startsWith('mx1')).map((a) => a.data);
    expect(data).to.deep.equal(['192.0.2.25']);
  });

  it('dig from each source address gets its view\'s answer (UDP and TCP)', async function () {
    if (!hasDig) return this.skip();
    const res = await call('POST', '/api/v1/records', { name: 'web', type: 'A', values: ['192.0.2.40'], views: { tailnet: { values: ['100.64.0.40'] }, lan: { values: ['192.168.1.40'] } } });
    expect(res.statusCode, res.body).to.equal(201);
    await f.pipeline.settled();
    for (const tcp of [[], ['+tcp']]) {
      expect((await dig(port, ['-b', TAILNET_CLIENT, ...tcp, 'web.home.arpa', 'A'])).answer.map((a) => a.data)).to.deep.equal(['100.64.0.40']);
      expect((await dig(port, ['-b', LAN_CLIENT, ...tcp, 'web.home.arpa', 'A'])).answer.map((a) => a.data)).to.deep.equal(['192.168.1.40']);
      expect((await dig(port, [...tcp, 'web.home.arpa', 'A'])).answer.map((a) => a.data)).to.deep.equal(['192.0.2.40']);
    }
  });

  it('refuses overlapping views, bad networks and names with 400 naming the field; unknown views on records too', async () => {
    const overlap = await call('POST', '/api/v1/views', { name: 'office', cidrs: ['10.0.0.0/8', '100.100.0.0/16'] });
    expect(overlap.statusCode).to.equal(400);
    expect(overlap.json().error.fields).to.deep.equal([{ path: 'cidrs.1', message: '100.100.0.0/16 overlaps 100.64.0.0/10 of view "tailnet": a client must be in one view at most' }]);
    const v6 = await call('POST', '/api/v1/views', { name: 'office', cidrs: ['fd7a:115c:a1e0:ab::/64'] });
    expect(v6.json().error.fields[0].path).to.equal('cidrs.0');
    const wide = await call('POST', '/api/v1/views', { name: 'office', cidrs: ['0.0.0.0/0'] });
    expect(wide.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['cidrs.0']);
    for (const [cidr, message] of [['10.0.0.0/33', 'prefix length'], ['10.0.0', 'IP address'], ['fe80::1%eth0', 'IP address'], ['::/129', 'prefix length']]) {
      const bad = await call('POST', '/api/v1/views', { name: 'office', cidrs: ['10.9.0.0/16', cidr] });
      expect(bad.statusCode).to.equal(400);
      expect(bad.json().error.fields[0].path).to.equal('cidrs.1');
      expect(bad.json().error.fields[0].message).to.include(message);
    }
    const name = await call('POST', '/api/v1/views', { name: 'Office!', cidrs: ['10.9.0.0/16'] });
    expect(name.json().error.fields[0].path).to.equal('name');
    const none = await call('POST', '/api/v1/views', { name: 'office', cidrs: [] });
    expect(none.json().error.fields[0].path).to.equal('cidrs');
    expect((await call('POST', '/api/v1/views', { name: 'lan', cidrs: ['10.9.0.0/16'] })).statusCode).to.equal(409);
    expect((await call('PUT', '/api/v1/views/lan', { name: 'other', cidrs: ['10.9.0.0/16'] })).json().error.fields[0].path).to.equal('name');
    // Its own networks may overlap each other, and a replace does not overlap itself.
    expect((await call('PUT', '/api/v1/views/lan', { name: 'lan', cidrs: ['192.168.0.0/16', '192.168.1.0/24'] })).statusCode).to.equal(200);
    const unknown = await call('POST', '/api/v1/records', { name: 'x', type: 'A', values: ['192.0.2.1'], views: { nope: { values: ['10.0.0.1'] } } });
    expect(unknown.statusCode).to.equal(400);
    expect(unknown.json().error.fields[0].path).to.equal('views.nope');
    const wrongFamily = await call('POST', '/api/v1/records', { name: 'x', type: 'A', values: ['192.0.2.1'], views: { lan: { values: ['2001:db8::1'] } } });
    expect(wrongFamily.json().error.fields[0].path).to.equal('views.lan.values.0');
    const onTxt = await call('POST', '/api/v1/records', { name: 'x', type: 'TXT', values: ['a'], views: { lan: { values: ['b'] } } });
    expect(onTxt.statusCode).to.equal(400);
    expect(f.records.count()).to.equal(0);
  });

  it('a view still named by a record set cannot be removed (409); the view list and dry runs', async () => {
    expect((await call('POST', '/api/v1/records', { name: 'nas', type: 'A', values: ['192.0.2.20'], views: { lan: { values: ['192.168.1.5'] } } })).statusCode).to.equal(201);
    const busy = await call('DELETE', '/api/v1/views/lan');
    expect(busy.statusCode).to.equal(409);
    expect(busy.json().error.message).to.include('nas.home.arpa. A');
    const dry = await call('DELETE', '/api/v1/views/tailnet?dry_run=true');
    expect(dry.json()).to.deep.equal({ dry_run: true, plan: { views: { added: [], changed: [], removed: ['view tailnet'] } } });
    // A hand-edited row that does not parse is left out (it matches no client), not a 500.
    f.db.prepare(`INSERT INTO views (name, cidrs, created_at, updated_at) VALUES ('broken', '["10.0.0.0/99"]', 't', 't')`).run();
    expect((await call('GET', '/api/v1/views')).json().views.map((v: { name: string }) => v.name)).to.deep.equal(['lan', 'tailnet']);
    f.db.prepare(`DELETE FROM views WHERE name = 'broken'`).run();
    expect((await call('DELETE', '/api/v1/views/tailnet')).statusCode).to.equal(204);
    expect((await call('GET', '/api/v1/views/tailnet')).statusCode).to.equal(404);
    expect((await call('DELETE', '/api/v1/views/tailnet')).statusCode).to.equal(404);
    expect((await call('GET', '/api/v1/views/lan')).json().view.cidrs).to.deep.equal(['192.168.1.0/24', LAN_CLIENT]);
    // A zone import replacing the set keeps its per-view values (a zone file has none).
    const imp = await f.app.inject({ method: 'POST', url: '/api/v1/zones/home.arpa/import', headers: { ...f.auth, 'content-type': 'text/plain' }, payload: 'nas 300 IN A 192.0.2.21\n' });
    expect(imp.statusCode, imp.body).to.equal(200);
    expect(f.records.get('nas.home.arpa.', 'A')).to.deep.include({ values: ['192.0.2.21'], views: { lan: { values: ['192.168.1.5'] } } });
    // Once no set names it, it goes.
    expect((await call('PUT', '/api/v1/records/nas/A', { name: 'nas', type: 'A', values: ['192.0.2.20'] })).statusCode).to.equal(200);
    expect((await call('DELETE', '/api/v1/views/lan')).statusCode).to.equal(204);
  });
});
