import { expect } from 'chai';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: /api/v1/records', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  const post = (payload: unknown) => f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: payload as object });

  const good: Record<string, unknown>[] = [
    { name: 'www', type: 'A', values: ['192.0.2.1', '192.0.2.2'], proxy: { enabled: true, upstreams: ['192.0.2.50:8080', '[2001:db8::5]:80', 'nas-box:5000'] } },
    { name: 'www', type: 'AAAA', values: ['2001:db8::1'] },
    { name: 'alias', type: 'CNAME', values: ['www.home.arpa'] },
    { name: 'txt', type: 'TXT', values: ['v=spf1 -all', 'x'.repeat(600)] },
    { name: '@', type: 'MX', values: [{ preference: 10, exchange: 'mail.home.arpa.' }] },
    { name: '_sip._tcp.home.arpa', type: 'SRV', values: [{ priority: 10, weight: 5, port: 5060, target: 'sip.home.arpa' }] },
    { name: '1.2.0.192.in-addr.arpa.lab.example', type: 'PTR', values: ['www.home.arpa'] },
    { name: '@', type: 'CAA', values: [{ flags: 0, tag: 'issue', value: 'letsencrypt.org' }] },
    { name: 'sub', type: 'NS', values: ['ns.sub.home.arpa'] },
    { name: '*.apps.home.arpa', type: 'A', values: ['192.0.2.9'], ttl: 60 },
  ];
  for (const body of good) {
    it(`creates ${String(body.type)} ${String(body.name)} (201) and reads it back`, async () => {
      const res = await post(body);
      expect(res.statusCode, res.body).to.equal(201);
      const rec = res.json().record;
      expect(rec.type).to.equal(body.type);
      expect(rec.name).to.match(/\.$/);
      const got = await f.app.inject({ method: 'GET', url: `/api/v1/records/${encodeURIComponent(rec.name)}/${rec.type}`, headers: f.auth });
      expect(got.statusCode).to.equal(200);
      expect(got.json().record.values).to.deep.equal(rec.values);
    });
  }

  it('stores target names absolute and lower-case', async () => {
    const res = await post({ name: 'Alias', type: 'CNAME', values: ['WWW.Home.Arpa'] });
    expect(res.json().record).to.include({ name: 'alias.home.arpa.' });
    expect(res.json().record.values).to.deep.equal(['www.home.arpa.']);
  });

  const bad: [string, Record<string, unknown>, string, number][] = [
    ['bad AAAA', { name: 'x', type: 'AAAA', values: ['192.0.2.1'] }, 'values.0', 400],
    ['AAAA with an IPv6 zone id', { name: 'x', type: 'AAAA', values: ['2001:db8::1', 'fe80::1%eth0'] }, 'values.1', 400],
    ['empty values', { name: 'x', type: 'A', values: [] }, 'values', 400],
    ['two CNAME targets', { name: 'x', type: 'CNAME', values: ['a.home.arpa', 'b.home.arpa'] }, 'values', 400],
    ['MX exchange with a space', { name: 'x', type: 'MX', values: [{ preference: 1, exchange: 'mail x' }] }, 'values.0.exchange', 400],
    ['SRV port out of range', { name: 'x', type: 'SRV', values: [{ priority: 1, weight: 1, port: 70000, target: 't.home.arpa' }] }, 'values.0.port', 400],
    ['a TXT list string over 255 bytes', { name: 'x', type: 'TXT', values: [['ok', 'x'.repeat(256)]] }, 'values.0.1', 400],
    ['CAA bad tag', { name: 'x', type: 'CAA', values: [{ flags: 0, tag: 'is sue', value: 'x' }] }, 'values.0.tag', 400],
    ['unknown type', { name: 'x', type: 'SPF', values: ['x'] }, 'type', 400],
    ['negative ttl', { name: 'x', type: 'A', values: ['192.0.2.1'], ttl: -1 }, 'ttl', 400],
    ['proxy on TXT', { name: 'x', type: 'TXT', values: ['a'], proxy: { enabled: true, upstreams: ['a:1'] } }, '', 400],
    ['proxy enabled without upstreams', { name: 'x', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true } }, 'proxy.upstreams', 400],
    ['upstream injection', { name: 'x', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['a"}:80'] } }, 'proxy.upstreams.0', 400],
    ['name outside zones', { name: 'x.example.net', type: 'A', values: ['192.0.2.1'] }, 'name', 400],
    // RFC 4592 §2.1.1: a "*" below the leftmost label is an ordinary label, so `a.*.home.arpa` is a
    // valid owner; proxying it is refused (Caddy would read the "*" as a wildcard).
    ['proxied name with a "*" label not leftmost', { name: 'a.*.home.arpa', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['192.0.2.9:80'] } }, 'name', 400],
    ['"*" inside a label', { name: 'a*.home.arpa', type: 'A', values: ['192.0.2.1'] }, 'name', 400],
    ['CNAME to an IPv4 address', { name: 'x', type: 'CNAME', values: ['100.1.1.2'] }, 'values.0', 400],
    ['CNAME to an IPv6 address', { name: 'x', type: 'CNAME', values: ['2001:db8::1'] }, 'values.0', 400],
    ['CNAME to an all-digit top-level label', { name: 'x', type: 'CNAME', values: ['10.0.0'] }, 'values.0', 400],
    ['MX exchange that is an address', { name: '@', type: 'MX', values: [{ preference: 10, exchange: '192.0.2.25' }] }, 'values.0.exchange', 400],
    ['SRV target that is an address', { name: '_sip._tcp.home.arpa', type: 'SRV', values: [{ priority: 1, weight: 1, port: 5060, target: '192.0.2.5.' }] }, 'values.0.target', 400],
    ['NS target that is an address', { name: 'sub', type: 'NS', values: ['192.0.2.53'] }, 'values.0', 400],
    ['PTR target that is an address', { name: '5.2.0.192.in-addr.arpa.lab.example', type: 'PTR', values: ['192.0.2.5'] }, 'values.0', 400],
    ['a proxied name with "_"', { name: 'my_app', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['192.0.2.5:80'] } }, 'name', 400],
    ['tls acme for a home.arpa name', { name: 'www', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['192.0.2.5:80'], tls: 'acme' } }, 'proxy.tls', 400],
    ['tls acme for a .example name', { name: 'www.lab.example', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['192.0.2.5:80'], tls: 'acme' } }, 'proxy.tls', 400],
  ];
  for (const [what, body, field, status] of bad) {
    it(`${status} for ${what} (field "${field}")`, async () => {
      const res = await post(body);
      expect(res.statusCode, res.body).to.equal(status);
      expect(res.json().error.fields.map((x: { path: string }) => x.path)).to.include(field);
      expect(f.records.count()).to.equal(0);
    });
  }

  it('says what to do instead: an A record for an address, tls internal for a private name', async () => {
    const cname = await post({ name: 'x', type: 'CNAME', values: ['100.1.1.2'] });
    expect(cname.json().error.fields[0].message).to.equal('100.1.1.2 is an IP address, but a CNAME target must be a host name: for an address use an A record (AAAA for IPv6) at this name');
    const acme = await post({ name: 'www', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['192.0.2.5:80'], tls: 'acme' } });
    expect(acme.json().error.fields[0].message).to.include('no public CA issues a certificate for www.home.arpa').and.include('use tls internal');
    // "_" is fine where no web site lives: SRV and DKIM-style owner names, unproxied.
    expect((await post({ name: '_dmarc', type: 'TXT', values: ['v=DMARC1; p=none'] })).statusCode).to.equal(201);
    expect((await post({ name: 'my_box', type: 'A', values: ['192.0.2.1'] })).statusCode).to.equal(201);
    expect((await post({ name: 'digits', type: 'CNAME', values: ['100.1.1.2.home.arpa'] })).statusCode).to.equal(201);
  });

  it('a replacement without the proxy block names the route it removed (and its upstreams); the dry run shows it', async () => {
    const put = (body: object, q = '') => f.app.inject({ method: 'PUT', url: `/api/v1/records/nas/A${q}`, headers: f.auth, payload: body });
    const proxied = { name: 'nas', type: 'A', values: ['192.0.2.20'], proxy: { enabled: true, upstreams: ['192.0.2.31:8000'], tls: 'internal' } };
    const first = await put(proxied);
    expect(first.statusCode).to.equal(201);
    expect(first.json()).not.to.have.property('removed_route');
    const same = await put({ ...proxied, values: ['192.0.2.21'] });
    expect(same.json()).not.to.have.property('removed_route');
    const dry = (await put({ name: 'nas', type: 'A', values: ['192.0.2.20'] }, '?dry_run=true')).json();
    expect(dry.plan.routes.removed.map((r: { id: string; upstreams: string[] }) => [r.id, r.upstreams])).to.deep.equal([['record:nas.home.arpa', ['192.0.2.31:8000']]]);
    const plain = await put({ name: 'nas', type: 'A', values: ['192.0.2.20'] });
    expect(plain.statusCode).to.equal(200);
    expect(plain.json().removed_route).to.deep.equal({ id: 'record:nas.home.arpa', hosts: ['nas.home.arpa'], upstreams: ['192.0.2.31:8000'], tls: 'internal' });
    expect(f.proxy.views()).to.deep.equal([]);
    expect((await put({ name: 'nas', type: 'A', values: ['192.0.2.22'] })).json()).not.to.have.property('removed_route');
  });

  it('409 for a duplicate POST, CNAME beside data, data beside CNAME, CNAME at the apex', async () => {
    expect((await post({ name: 'a', type: 'A', values: ['192.0.2.1'] })).statusCode).to.equal(201);
    const dup = await post({ name: 'a', type: 'A', values: ['192.0.2.2'] });
    expect(dup.statusCode).to.equal(409);
    expect(dup.json().error.message).to.include('use PUT');
    const cname = await post({ name: 'a', type: 'CNAME', values: ['b.home.arpa'] });
    expect(cname.statusCode).to.equal(409);
    expect(cname.json().error.message).to.include('cannot sit beside');
    expect((await post({ name: 'c', type: 'CNAME', values: ['a.home.arpa'] })).statusCode).to.equal(201);
    expect((await post({ name: 'c', type: 'TXT', values: ['x'] })).statusCode).to.equal(409);
    expect((await post({ name: '@', type: 'CNAME', values: ['a.home.arpa'] })).statusCode).to.equal(409);
    expect(f.records.list().map((r) => `${r.name} ${r.type}`)).to.deep.equal(['a.home.arpa. A', 'c.home.arpa. CNAME']);
  });

  it('PUT creates (201) then replaces (200); the URL and body must agree', async () => {
    const url = '/api/v1/records/db/A';
    const body = { name: 'db', type: 'A', values: ['192.0.2.7'] };
    expect((await f.app.inject({ method: 'PUT', url, headers: f.auth, payload: body })).statusCode).to.equal(201);
    const res = await f.app.inject({ method: 'PUT', url, headers: f.auth, payload: { ...body, values: ['192.0.2.8'] } });
    expect(res.statusCode).to.equal(200);
    expect(res.json().record.values).to.deep.equal(['192.0.2.8']);
    const mismatch = await f.app.inject({ method: 'PUT', url, headers: f.auth, payload: { ...body, name: 'other' } });
    expect(mismatch.statusCode).to.equal(400);
    expect(mismatch.json().error.fields[0].path).to.equal('name');
  });

  it('GET/DELETE unknown → 404; DELETE → 204; bad type in the path → 400', async () => {
    expect((await f.app.inject({ method: 'GET', url: '/api/v1/records/nope/A', headers: f.auth })).statusCode).to.equal(404);
    await post({ name: 'a', type: 'A', values: ['192.0.2.1'] });
    expect((await f.app.inject({ method: 'DELETE', url: '/api/v1/records/a.home.arpa./A', headers: f.auth })).statusCode).to.equal(204);
    expect((await f.app.inject({ method: 'DELETE', url: '/api/v1/records/a/A', headers: f.auth })).statusCode).to.equal(404);
    const badType = await f.app.inject({ method: 'GET', url: '/api/v1/records/a/XYZ', headers: f.auth });
    expect(badType.statusCode).to.equal(400);
    expect(badType.json().error.code).to.equal('invalid_params');
  });

  it('lists with filters', async () => {
    await post({ name: 'a', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['192.0.2.5:80'] }, service_name: 'web' });
    await post({ name: 'a', type: 'TXT', values: ['x'] });
    await post({ name: 'b.lab.example', type: 'A', values: ['192.0.2.2'] });
    const names = async (q: string) => (await f.app.inject({ method: 'GET', url: `/api/v1/records${q}`, headers: f.auth })).json().records.map((r: { name: string; type: string }) => `${r.name} ${r.type}`);
    expect(await names('')).to.have.length(3);
    expect(await names('?zone=lab.example')).to.deep.equal(['b.lab.example. A']);
    expect(await names('?type=TXT')).to.deep.equal(['a.home.arpa. TXT']);
    expect(await names('?name=a')).to.deep.equal(['a.home.arpa. A', 'a.home.arpa. TXT']);
    expect(await names('?proxied=true')).to.deep.equal(['a.home.arpa. A']);
    expect(await names('?service_name=web')).to.deep.equal(['a.home.arpa. A']);
    expect((await f.app.inject({ method: 'GET', url: '/api/v1/records?type=BAD', headers: f.auth })).statusCode).to.equal(400);
  });

  it('bumps the zone serial on every change, including two within one second', async () => {
    const before = f.records.serial('home.arpa.');
    await post({ name: 'a', type: 'A', values: ['192.0.2.1'] });
    await post({ name: 'b', type: 'A', values: ['192.0.2.1'] });
    await f.app.inject({ method: 'DELETE', url: '/api/v1/records/a/A', headers: f.auth });
    expect(f.records.serial('home.arpa.')).to.equal(before + 3);
    expect(f.records.serial('lab.example.')).to.be.lessThan(before + 1);
  });

  it('a stored set that no longer parses is listed apart under "invalid", not served, and can be replaced or removed', async () => {
    expect((await post({ name: 'ok', type: 'A', values: ['192.0.2.1'] })).statusCode).to.equal(201);
    f.db.prepare(`INSERT INTO records (name, type, zone, ttl, data, proxy, service_name, created_at, updated_at) VALUES ('bad.home.arpa.', 'A', 'home.arpa.', 300, '["not-an-address"]', NULL, NULL, 't', 't')`).run();
    const get = (url: string) => f.app.inject({ method: 'GET', url, headers: f.auth });
    const list = await get('/api/v1/records');
    expect(list.statusCode, list.body).to.equal(200);
    expect(list.json().records.map((r: { name: string }) => r.name)).to.deep.equal(['ok.home.arpa.']);
    expect(list.json().invalid).to.have.length(1);
    expect(list.json().invalid[0]).to.deep.include({ name: 'bad.home.arpa.', type: 'A' });
    expect(list.json().invalid[0].reason).to.include('values.0');
    expect((await get('/api/v1/records?zone=lab.example')).json()).to.deep.equal({ records: [] });
    for (const url of ['/list-records', '/api/v1/routes', '/api/v1/plan', '/api/v1/zones/home.arpa/export']) expect((await get(url)).statusCode, url).to.equal(200);
    expect((await get('/api/v1/records/bad/A')).statusCode).to.equal(404);
    const replaced = await f.app.inject({ method: 'PUT', url: '/api/v1/records/bad/A', headers: f.auth, payload: { name: 'bad', type: 'A', values: ['192.0.2.2'] } });
    expect(replaced.statusCode, replaced.body).to.be.oneOf([200, 201]);
    expect((await get('/api/v1/records')).json().invalid).to.equal(undefined);
    f.db.prepare(`UPDATE records SET data = 'not json' WHERE name = 'bad.home.arpa.'`).run();
    expect((await get('/api/v1/records')).json().invalid[0].reason).to.include('unreadable');
    expect((await f.app.inject({ method: 'DELETE', url: '/api/v1/records/bad/A', headers: f.auth })).statusCode).to.equal(204);
    expect((await get('/api/v1/records')).json().invalid).to.equal(undefined);
  });

  it('never answers 500 to garbage bodies', async () => {
    const bodies = ['null', '[]', '"x"', '1', '{"type":null}', '{"name":{},"type":"A","values":"x"}', '{"name":"a","type":"MX","values":[null]}', '{"name":"a","type":"A","values":[1e400]}'];
    for (const payload of bodies) {
      const res = await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: { ...f.auth, 'content-type': 'application/json' }, payload });
      expect(res.statusCode, payload).to.be.within(400, 499);
    }
  });
});
