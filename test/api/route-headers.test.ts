// Route headers through the API (src/model/route-headers.ts): 400 naming the field for CR/LF in a
// header name or value, placeholders other than the listed ones, headers the proxy owns, a bad
// upstream Host; a valid one is stored, shown, exported, and makes the route explicit.
import { expect } from 'chai';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: route headers', function () {
  this.timeout(30_000);
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture({ resolver: 'udp/127.0.0.1:5300' })));
  afterEach(async () => f.close());

  const req = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });
  const base = { hosts: ['app.home.arpa'], upstreams: ['192.0.2.5:3000'] };
  const fieldsOf = (body: string) => (JSON.parse(body) as { error: { fields: { path: string }[] } }).error.fields.map((x) => x.path);

  it('bad headers are a 400 naming the field', async () => {
    const cases: [object, string][] = [
      [{ request: { set: { 'X-Bad\r\nInjected': 'v' } } }, 'headers.request.set.X-Bad\r\nInjected'],
      [{ request: { set: { 'X-Ok': 'v\r\nInjected: yes' } } }, 'headers.request.set.X-Ok'],
      [{ response: { add: { 'X-Ok': 'line\nbreak' } } }, 'headers.response.add.X-Ok'],
      [{ request: { delete: ['X-Bad Name'] } }, 'headers.request.delete.0'],
      [{ request: { set: { 'X-Secret': '{env.DNSPROXY_ADMIN_TOKEN}' } } }, 'headers.request.set.X-Secret'],
      [{ request: { set: { 'X-File': '{file./etc/shadow}' } } }, 'headers.request.set.X-File'],
      [{ response: { set: { 'X-Half': 'a {http.request.host' } } }, 'headers.response.set.X-Half'],
      [{ request: { set: { 'X-Forwarded-For': '1.2.3.4' } } }, 'headers.request.set.X-Forwarded-For'],
      [{ request: { delete: ['X-Real-IP'] } }, 'headers.request.delete.0'],
      [{ request: { set: { Host: 'other' } } }, 'headers.request.set.Host'],
      [{ request: { set: { 'X-A': 'a', 'x-a': 'b' } } }, 'headers.request.set.x-a'],
      [{ upstream_host: 'evil host' }, 'headers.upstream_host'],
      [{ upstream_host: '{http.request.header.X}' }, 'headers.upstream_host'],
      [{ upstream_tls: 'maybe' }, 'headers.upstream_tls'],
      [{ upstream_tls_server_name: 'a b' }, 'headers.upstream_tls_server_name'],
      [{ extra: true }, 'headers'],
    ];
    for (const [headers, field] of cases) {
      const res = await req('POST', '/api/v1/routes', { ...base, headers });
      expect(res.statusCode, `${JSON.stringify(headers)}: ${res.body}`).to.equal(400);
      expect(fieldsOf(res.body), JSON.stringify(headers)).to.include(field);
    }
    expect(f.routes.list()).to.deep.equal([]);
  });

  it('stores, shows and exports valid headers; the route is explicit; an export applies again as no change', async () => {
    const headers = {
      request: { set: { 'X-App': 'v1 {http.request.host}' }, add: { 'X-Multi': 'b' }, delete: ['X-Drop'] },
      response: { set: { 'X-Served-By': 'dnsproxy' }, delete: ['Server'] },
      upstream_host: 'upstream',
      upstream_tls: 'insecure',
    };
    const res = await req('POST', '/api/v1/routes', { ...base, headers });
    expect(res.statusCode, res.body).to.equal(201);
    const { route } = res.json();
    expect(route.headers).to.deep.equal(headers);
    expect(route.mode).to.equal('explicit');
    expect(f.proxy.split().explicit.map((r) => r.id)).to.include(route.id);
    const exported = (await req('GET', '/api/v1/state?format=json')).json<{ routes: { id: string; headers?: unknown }[] }>();
    expect(exported.routes.find((r) => r.id === route.id)?.headers).to.deep.equal(headers);
    const again = await req('POST', '/api/v1/state', exported);
    expect(again.statusCode, again.body).to.equal(200);
    expect(again.json().plan.routes).to.deep.include({ added: [], changed: [] });
  });
});
