import { expect } from 'chai';
import { apiFixture, NODE_IP, type ApiFixture } from '../helpers/api.js';

describe('api: original endpoints (/add-record, /list-records, /remove-record)', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  const llm = { service_name: 'llm', name: 'llm', ip: '100.1.1.1', port: 8080, forward_to_ip: '100.2.2.2', proxy_enabled: true };

  it('creates an A record with its proxy block (201), then updates it (200)', async () => {
    const res = await f.app.inject({ method: 'POST', url: '/add-record', headers: f.auth, payload: llm });
    expect(res.statusCode).to.equal(201);
    expect(res.json()).to.include({ status: 'created', name: 'llm.home.arpa', ip: '100.1.1.1', port: 8080, forward_to_ip: '100.2.2.2', proxy_enabled: true });
    const stored = f.records.get('llm.home.arpa.', 'A');
    expect(stored).to.deep.include({ values: ['100.1.1.1'], proxy: { enabled: true, upstreams: ['100.2.2.2:8080'] }, service_name: 'llm' });
    const again = await f.app.inject({ method: 'POST', url: '/add-record', headers: f.auth, payload: { ...llm, ip: '100.1.1.2' } });
    expect(again.statusCode).to.equal(200);
    expect(f.records.get('llm.home.arpa.', 'A')?.values).to.deep.equal(['100.1.1.2']);
  });

  it('re-adding without proxy_enabled names the route it removed', async () => {
    await f.app.inject({ method: 'POST', url: '/add-record', headers: f.auth, payload: llm });
    const res = await f.app.inject({ method: 'POST', url: '/add-record', headers: f.auth, payload: { ...llm, proxy_enabled: false } });
    expect(res.statusCode).to.equal(200);
    expect(res.json()).to.deep.include({ status: 'updated', proxy_enabled: false, removed_route: { id: 'record:llm.home.arpa', hosts: ['llm.home.arpa'], upstreams: ['100.2.2.2:8080'], tls: 'off' } });
  });

  it('a proxied name with "_" is refused (400 naming it)', async () => {
    const proxied = await f.app.inject({ method: 'POST', url: '/add-record', headers: f.auth, payload: { ...llm, name: 'my_llm' } });
    expect(proxied.statusCode).to.equal(400);
    expect(proxied.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['name']);
  });

  it('defaults ip to the node IP and the upstream host to ip', async () => {
    const res = await f.app.inject({ method: 'POST', url: '/add-record', headers: f.auth, payload: { service_name: 'web', name: 'web.home.arpa', port: 3000, proxy_enabled: true } });
    expect(res.statusCode).to.equal(201);
    expect(f.records.get('web.home.arpa.', 'A')).to.deep.include({ values: [NODE_IP], proxy: { enabled: true, upstreams: [`${NODE_IP}:3000`] } });
  });

  it('lists and removes by name (body or query)', async () => {
    await f.app.inject({ method: 'POST', url: '/add-record', headers: f.auth, payload: llm });
    await f.app.inject({ method: 'POST', url: '/add-record', headers: f.auth, payload: { ...llm, name: 'db', proxy_enabled: false } });
    const list = await f.app.inject({ method: 'GET', url: '/list-records', headers: f.auth });
    expect(list.json().records.map((r: { name: string }) => r.name)).to.deep.equal(['db.home.arpa', 'llm.home.arpa']);
    expect((await f.app.inject({ method: 'DELETE', url: '/remove-record', headers: f.auth, payload: { name: 'llm' } })).statusCode).to.equal(200);
    expect((await f.app.inject({ method: 'DELETE', url: '/remove-record?name=db.home.arpa', headers: f.auth })).statusCode).to.equal(200);
    expect(f.records.count()).to.equal(0);
    const gone = await f.app.inject({ method: 'DELETE', url: '/remove-record', headers: f.auth, payload: { name: 'llm' } });
    expect(gone.statusCode).to.equal(404);
    expect(gone.json().error.code).to.equal('not_found');
  });

  // Every bad input is a 400 naming the field; nothing is stored.
  const bad: [string, Record<string, unknown>, string][] = [
    ['bad ip', { ip: '300.1.1.1' }, 'ip'],
    ['ipv6 as ip', { ip: '2001:db8::1' }, 'ip'],
    ['port out of range', { port: 70000 }, 'port'],
    ['port not an integer', { port: 80.5 }, 'port'],
    ['port as string', { port: '8080' }, 'port'],
    ['name outside the zones', { name: 'llm.example.com' }, 'name'],
    ['label over 63 bytes', { name: 'x'.repeat(64) }, 'name'],
    ['name over 253 chars', { name: `${'a'.repeat(50)}.`.repeat(5) + 'home.arpa' }, 'name'],
    ['Caddyfile block injection', { name: 'a.home.arpa {\n}' }, 'name'],
    ['quotes', { name: '"llm"' }, 'name'],
    ['newline', { name: 'llm\nx' }, 'name'],
    ['placeholder', { name: '{$ENV}' }, 'name'],
    ['whitespace', { name: 'l lm' }, 'name'],
    ['upstream injection', { forward_to_ip: '100.2.2.2 {\n}' }, 'forward_to_ip'],
    ['proxy without port', { port: undefined }, 'port'],
    ['missing service_name', { service_name: undefined }, 'service_name'],
    ['unknown field', { extra: 1 }, ''],
    ['proxy_enabled not boolean', { proxy_enabled: 'yes' }, 'proxy_enabled'],
  ];
  for (const [what, patch, field] of bad) {
    it(`400 for ${what} (field "${field}")`, async () => {
      const res = await f.app.inject({ method: 'POST', url: '/add-record', headers: f.auth, payload: { ...llm, ...patch } });
      expect(res.statusCode).to.equal(400);
      const body = res.json();
      expect(body.error.code).to.equal('invalid_body');
      expect(body.error.fields.map((x: { path: string }) => x.path)).to.include(field);
      expect(f.records.count()).to.equal(0);
    });
  }

  it('400 (not 500) for malformed JSON, 415 for other media types', async () => {
    const res = await f.app.inject({ method: 'POST', url: '/add-record', headers: { ...f.auth, 'content-type': 'application/json' }, payload: '{"name": ' });
    expect(res.statusCode).to.equal(400);
    expect(res.json().error.code).to.equal('bad_request');
    const xml = await f.app.inject({ method: 'POST', url: '/add-record', headers: { ...f.auth, 'content-type': 'application/xml' }, payload: '<a/>' });
    expect(xml.statusCode).to.equal(415);
  });

  it('remove-record without a name is a 400 naming the field', async () => {
    const res = await f.app.inject({ method: 'DELETE', url: '/remove-record', headers: f.auth });
    expect(res.statusCode).to.equal(400);
    expect(res.json().error.fields[0].path).to.equal('name');
  });
});
