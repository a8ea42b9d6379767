// Balancing through the API (issue 15, item 2): stored and shown on routes and proxied records,
// 400 naming the field for bad input, a dry run's plan, the mode a non-default policy gives.
import { expect } from 'chai';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: route balancing', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  const req = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });
  const fields = (res: { json(): { error: { fields: { path: string }[] } } }) => res.json().error.fields.map((x) => x.path);

  it('stores a route\'s balancing, shows it, replaces it, and builds it into the desired route', async () => {
    const res = await req('POST', '/api/v1/routes', { hosts: ['lb.home.arpa'], upstreams: ['192.0.2.5:80', '192.0.2.6:80'], balancing: { policy: 'ip_hash', retries: 2, try_duration: '3s' } });
    expect(res.statusCode, res.body).to.equal(201);
    const id = res.json().route.id as string;
    expect(res.json().route.balancing).to.deep.equal({ policy: 'ip_hash', retries: 2, try_duration: '3s' });
    expect((await req('GET', `/api/v1/routes/${id}`)).json().route.balancing).to.deep.equal({ policy: 'ip_hash', retries: 2, try_duration: '3s' });
    expect(f.proxy.build().routes.find((r) => r.id === id)?.balancing).to.deep.equal({ policy: 'ip_hash', retries: 2, try_duration: '3s' });
    expect(f.routes.get(id)?.balancing).to.deep.equal({ policy: 'ip_hash', retries: 2, try_duration: '3s' });
    // Replaced without balancing: gone (round robin again).
    expect((await req('PUT', `/api/v1/routes/${id}`, { hosts: ['lb.home.arpa'], upstreams: ['192.0.2.5:80'] })).statusCode).to.equal(200);
    expect((await req('GET', `/api/v1/routes/${id}`)).json().route).not.to.have.property('balancing');
  });

  it('400 naming the field for an unknown policy, a bad try_duration or retries', async () => {
    const base = { hosts: ['lb.home.arpa'], upstreams: ['192.0.2.5:80'] };
    for (const [balancing, field] of [
      [{ policy: 'least_latency_x' }, 'balancing.policy'],
      [{ policy: 'first', try_duration: 'soon' }, 'balancing.try_duration'],
      [{ retries: 99 }, 'balancing.retries'],
    ] as const) {
      const res = await req('POST', '/api/v1/routes', { ...base, balancing });
      expect(res.statusCode, res.body).to.equal(400);
      expect(fields(res)).to.deep.equal([field]);
    }
    const rec = await req('POST', '/api/v1/records', { name: 'svc', type: 'A', values: ['192.0.2.9'], proxy: { enabled: true, upstreams: ['192.0.2.5:80'], balancing: { policy: 'weighted' } } });
    expect(rec.statusCode, rec.body).to.equal(400);
    expect(fields(rec)).to.deep.equal(['proxy.balancing.policy']);
    const legacy = await req('POST', '/add-record', { service_name: 'svc', name: 'svc', port: 80, forward_to_ip: '192.0.2.5', proxy_enabled: true, balancing: { policy: 'weighted' } });
    expect(legacy.statusCode, legacy.body).to.equal(400);
    expect(fields(legacy)).to.deep.equal(['balancing.policy']);
    expect(f.routes.list()).to.have.length(0);
  });

  it('a dry run stores nothing and plans the route', async () => {
    const res = await req('POST', '/api/v1/routes?dry_run=true', { hosts: ['lb.home.arpa'], upstreams: ['192.0.2.5:80'], balancing: { policy: 'first' } });
    expect(res.statusCode, res.body).to.equal(200);
    expect(res.json()).to.have.property('dry_run', true);
    expect(f.routes.list()).to.have.length(0);
  });

  it('proxied records carry balancing (/api/v1/records and /add-record); a non-default policy makes them explicit', async () => {
    const rec = await req('POST', '/api/v1/records', { name: 'svc', type: 'A', values: ['192.0.2.9'], proxy: { enabled: true, upstreams: ['192.0.2.5:80', '192.0.2.6:80'], balancing: { policy: 'first' } } });
    expect(rec.statusCode, rec.body).to.equal(201);
    const view = (await req('GET', '/api/v1/routes/record:svc.home.arpa')).json().route;
    expect(view).to.deep.include({ balancing: { policy: 'first' } });
    expect(f.proxy.build().routes.find((r) => r.id === 'record:svc.home.arpa')?.balancing).to.deep.equal({ policy: 'first' });
    expect(f.proxy.split().explicit.map((r) => r.id)).to.include('record:svc.home.arpa');
    const legacy = await req('POST', '/add-record', { service_name: 'web', name: 'web', port: 80, forward_to_ip: '192.0.2.5', proxy_enabled: true, balancing: { policy: 'round_robin', retries: 1 } });
    expect(legacy.statusCode, legacy.body).to.equal(201);
    expect(f.proxy.build().routes.find((r) => r.id === 'record:web.home.arpa')?.balancing).to.deep.equal({ policy: 'round_robin', retries: 1 });
  });
});

describe('api: route balancing in the state file', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  it('exports a route\'s balancing and applies a change of it (nothing lost on a round trip)', async () => {
    const created = await f.app.inject({ method: 'POST', url: '/api/v1/routes', headers: f.auth, payload: { hosts: ['lb.home.arpa'], upstreams: ['192.0.2.5:80', '192.0.2.6:80'], balancing: { policy: 'first' } } });
    const id = created.json().route.id as string;
    const exported = await f.app.inject({ method: 'GET', url: '/api/v1/state?format=json', headers: f.auth });
    const doc = exported.json<{ routes: { id: string; balancing?: unknown }[] }>();
    expect(doc.routes.find((r) => r.id === id)?.balancing).to.deep.equal({ policy: 'first' });
    doc.routes.find((r) => r.id === id)!.balancing = { policy: 'ip_hash' };
    const applied = await f.app.inject({ method: 'POST', url: '/api/v1/state', headers: { ...f.auth, 'content-type': 'application/json' }, payload: JSON.stringify(doc) });
    expect(applied.statusCode, applied.body).to.equal(200);
    expect(f.routes.get(id)?.balancing).to.deep.equal({ policy: 'ip_hash' });
  });
});
