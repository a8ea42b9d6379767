// Backends of a route (issue 15, item 1): add / re-weight / remove / dead / alive, by id and by
// host, dry runs, 400 naming the field, what the desired routes then carry.
import { expect } from 'chai';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: route backends', () => {
  let f: ApiFixture;
  let id: string;
  beforeEach(async () => {
    f = await apiFixture();
    id = (await req('POST', '/api/v1/routes', { hosts: ['lb.home.arpa'], upstreams: ['192.0.2.5:80', '192.0.2.6:80'] })).json().route.id;
  });
  afterEach(async () => f.close());

  const req = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });
  const fields = (res: { json(): { error: { fields: { path: string }[] } } }) => res.json().error.fields.map((x) => x.path);
  const desired = () => f.proxy.build().routes.find((r) => r.id === id);

  it('adds a backend with a weight (201), re-weights it (200), and the desired route carries the weight', async () => {
    const added = await req('POST', `/api/v1/routes/${id}/backends`, { address: '192.0.2.7:80', weight: 3 });
    expect(added.statusCode, added.body).to.equal(201);
    expect(added.json().route).to.deep.include({ upstreams: ['192.0.2.5:80', '192.0.2.6:80', '192.0.2.7:80'], backends: { '192.0.2.7:80': { weight: 3 } } });
    expect(desired()?.weights).to.deep.equal({ '192.0.2.7:80': 3 });
    const again = await req('POST', `/api/v1/routes/${id}/backends`, { address: '192.0.2.7:80', weight: 1 });
    expect(again.statusCode, again.body).to.equal(200);
    expect(again.json().route).not.to.have.property('backends');
    expect(desired()?.weights).to.equal(undefined);
  });

  it("a backend change keeps the route's other option groups (auth with its hash, headers, limits, listen)", async () => {
    const body = {
      hosts: ['kept.home.arpa'],
      upstreams: ['192.0.2.5:80'],
      auth: { basic: { accounts: [{ username: 'bob', password: 'correct horse battery staple' }] } },
      headers: { request: { set: { 'X-App': 'v1' } } },
      limits: { max_body_bytes: 1024 },
      listen: { port: 18080 },
    };
    const created = await req('POST', '/api/v1/routes', body);
    expect(created.statusCode, created.body).to.equal(201);
    const rid = created.json().route.id as string;
    const before = f.routes.get(rid)!;
    for (const [url, payload] of [[`/api/v1/routes/${rid}/backends`, { address: '192.0.2.6:80', weight: 2 }], [`/api/v1/routes/${rid}/backends/192.0.2.6:80/dead`, undefined]] as const) {
      const res = await req('POST', url, payload);
      expect(res.statusCode, res.body).to.be.oneOf([200, 201]);
    }
    const after = f.routes.get(rid)!;
    expect(after.auth).to.deep.equal(before.auth);
    expect(after.headers).to.deep.equal(before.headers);
    expect(after.limits).to.deep.equal(before.limits);
    expect(after.listen).to.deep.equal({ port: 18080 });
    expect(after.backends).to.deep.equal({ '192.0.2.6:80': { weight: 2, dead: true } });
  });

  it('400 naming the field for weight <= 0, a bad address, a backends key that is no upstream', async () => {
    for (const [body, field] of [
      [{ address: '192.0.2.7:80', weight: 0 }, 'weight'],
      [{ address: '192.0.2.7:80', weight: -2 }, 'weight'],
      [{ address: '192.0.2.7:80', weight: 1.5 }, 'weight'],
      [{ address: 'no port' }, 'address'],
    ] as const) {
      const res = await req('POST', `/api/v1/routes/${id}/backends`, body);
      expect(res.statusCode, res.body).to.equal(400);
      expect(fields(res)).to.deep.equal([field]);
    }
    const put = await req('PUT', `/api/v1/routes/${id}`, { hosts: ['lb.home.arpa'], upstreams: ['192.0.2.5:80'], backends: { '192.0.2.5:80': { weight: 0 }, '192.0.2.9:80': {} } });
    expect(put.statusCode).to.equal(400);
    expect(fields(put).sort()).to.deep.equal(['backends.192.0.2.5:80.weight', 'backends.192.0.2.9:80']);
    const rec = await req('POST', '/api/v1/records', { name: 'svc', type: 'A', values: ['192.0.2.9'], proxy: { enabled: true, upstreams: ['192.0.2.5:80'], backends: { '192.0.2.5:80': { weight: 0 } } } });
    expect(rec.statusCode, rec.body).to.equal(400);
    expect(fields(rec)).to.deep.equal(['proxy.backends.192.0.2.5:80.weight']);
    expect(f.routes.get(id)?.upstreams).to.deep.equal(['192.0.2.5:80', '192.0.2.6:80']);
  });

  it('dead takes a backend out of rotation (persisted), alive brings it back; all dead is an error status', async () => {
    const dead = await req('POST', `/api/v1/routes/${id}/backends/192.0.2.5:80/dead`);
    expect(dead.statusCode, dead.body).to.equal(200);
    expect(dead.json().route.backends).to.deep.equal({ '192.0.2.5:80': { dead: true } });
    expect(f.routes.get(id)?.backends).to.deep.equal({ '192.0.2.5:80': { dead: true } });
    expect(desired()?.upstreams).to.deep.equal(['192.0.2.6:80']);
    await req('POST', `/api/v1/routes/${id}/backends/192.0.2.6:80/dead`);
    expect(desired()).to.equal(undefined);
    expect((await req('GET', `/api/v1/routes/${id}`)).json().route).to.include({ status: 'error' }).and.have.property('error').that.includes('every backend is marked dead');
    expect((await req('POST', `/api/v1/routes/${id}/backends/192.0.2.5:80/alive`)).statusCode).to.equal(200);
    expect(desired()?.upstreams).to.deep.equal(['192.0.2.5:80']);
    expect((await req('POST', `/api/v1/routes/${id}/backends/192.0.2.99:80/dead`)).statusCode).to.equal(404);
  });

  it('removes a backend (and its settings); refuses to remove the last one (409)', async () => {
    await req('POST', `/api/v1/routes/${id}/backends`, { address: '192.0.2.6:80', weight: 2 });
    const res = await req('DELETE', `/api/v1/routes/${id}/backends/192.0.2.6:80`);
    expect(res.statusCode, res.body).to.equal(200);
    expect(res.json().route.upstreams).to.deep.equal(['192.0.2.5:80']);
    expect(res.json().route).not.to.have.property('backends');
    expect((await req('DELETE', `/api/v1/routes/${id}/backends/192.0.2.5:80`)).statusCode).to.equal(409);
    expect((await req('DELETE', `/api/v1/routes/${id}/backends/192.0.2.6:80`)).statusCode).to.equal(404);
  });

  it('every operation works by host too; a dry run stores nothing and answers the plan', async () => {
    expect((await req('GET', '/api/v1/routes/by-host/lb.home.arpa')).json().route.id).to.equal(id);
    expect((await req('GET', '/api/v1/routes/by-host/nope.home.arpa')).statusCode).to.equal(404);
    const dry = await req('POST', '/api/v1/routes/by-host/lb.home.arpa/backends?dry_run=true', { address: '192.0.2.8:80', weight: 2 });
    expect(dry.statusCode, dry.body).to.equal(200);
    expect(dry.json()).to.have.property('dry_run', true);
    expect(dry.json().plan.routes.changed.map((c: { id: string }) => c.id)).to.deep.equal([id]);
    expect(f.routes.get(id)?.upstreams).to.deep.equal(['192.0.2.5:80', '192.0.2.6:80']);
    expect((await req('POST', '/api/v1/routes/by-host/lb.home.arpa/backends', { address: '192.0.2.8:80' })).statusCode).to.equal(201);
    expect((await req('POST', '/api/v1/routes/by-host/lb.home.arpa/backends/192.0.2.8:80/dead')).json().route.backends).to.deep.equal({ '192.0.2.8:80': { dead: true } });
    expect((await req('POST', '/api/v1/routes/by-host/lb.home.arpa/backends/192.0.2.8:80/alive')).json().route).not.to.have.property('backends');
    expect((await req('DELETE', '/api/v1/routes/by-host/LB.home.arpa/backends/192.0.2.8:80')).json().route.upstreams).to.deep.equal(['192.0.2.5:80', '192.0.2.6:80']);
  });

  it('record routes change through their record (409 naming proxy.backends); their proxy.backends applies', async () => {
    await req('POST', '/api/v1/records', { name: 'svc', type: 'A', values: ['192.0.2.9'], proxy: { enabled: true, upstreams: ['192.0.2.5:80', '192.0.2.6:80'], backends: { '192.0.2.5:80': { dead: true } } } });
    const res = await req('POST', '/api/v1/routes/record:svc.home.arpa/backends/192.0.2.6:80/dead');
    expect(res.statusCode).to.equal(409);
    expect(res.json().error.message).to.include('proxy.backends');
    expect(f.proxy.build().routes.find((r) => r.id === 'record:svc.home.arpa')?.upstreams).to.deep.equal(['192.0.2.6:80']);
    expect((await req('GET', '/api/v1/routes/record:svc.home.arpa')).json().route.backends).to.deep.equal({ '192.0.2.5:80': { dead: true } });
  });
});

describe('api: backend health in route views', () => {
  let f: ApiFixture;
  afterEach(async () => f.close());

  it('GET /api/v1/routes/{id}, by-host and the list show each upstream as Caddy reports it, with dead by hand', async () => {
    // Caddy's pool as 2.6.2 answers GET /reverse_proxy/upstreams (and the /metrics gauge for down).
    const pool = new Map([
      ['192.0.2.5:80', { requests: 1, fails: 0 }],
      ['192.0.2.6:80', { requests: 0, fails: 2 }],
      ['192.0.2.20:80', { requests: 0, fails: 0, healthy: false }],
    ]);
    f = await apiFixture({ upstreamPool: () => Promise.resolve(pool) });
    await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: { name: 'nas', type: 'A', values: ['192.0.2.20'] } });
    const res = await f.app.inject({ method: 'POST', url: '/api/v1/routes', headers: f.auth, payload: { hosts: ['lb.home.arpa'], upstreams: ['192.0.2.5:80', '192.0.2.6:80', 'nas.home.arpa:80', '192.0.2.7:80'], backends: { '192.0.2.7:80': { dead: true } } } });
    const id = res.json().route.id as string;
    const expected = [
      { address: '192.0.2.5:80', state: 'up', fails: 0, requests: 1 },
      { address: '192.0.2.6:80', state: 'failing', fails: 2, requests: 0 },
      { address: 'nas.home.arpa:80', state: 'down', fails: 0, requests: 0 },
      { address: '192.0.2.7:80', state: 'dead', fails: 0, requests: 0 },
    ];
    expect((await f.app.inject({ method: 'GET', url: `/api/v1/routes/${id}`, headers: f.auth })).json().route.backend_health).to.deep.equal(expected);
    expect((await f.app.inject({ method: 'GET', url: '/api/v1/routes/by-host/lb.home.arpa', headers: f.auth })).json().route.backend_health).to.deep.equal(expected);
    expect((await f.app.inject({ method: 'GET', url: '/api/v1/routes', headers: f.auth })).json().routes[0].backend_health).to.deep.equal(expected);
  });

  it('without a Caddy to ask (or when it does not answer) routes carry no backend_health', async () => {
    f = await apiFixture({ upstreamPool: () => Promise.resolve(null) });
    const res = await f.app.inject({ method: 'POST', url: '/api/v1/routes', headers: f.auth, payload: { hosts: ['lb.home.arpa'], upstreams: ['192.0.2.5:80'] } });
    expect((await f.app.inject({ method: 'GET', url: `/api/v1/routes/${res.json().route.id}`, headers: f.auth })).json().route).not.to.have.property('backend_health');
  });
});
