// Route limits through the API (src/model/route-limits.ts): limits ≤ 0 (or not whole numbers, or a
// queue wait without a limit) are a 400 naming the field; valid ones are stored, shown, exported
// and make the route explicit.
import { expect } from 'chai';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: route limits', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture({ resolver: 'udp/127.0.0.1:5300' })));
  afterEach(async () => f.close());

  const req = (method: 'GET' | 'POST', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });
  const base = { hosts: ['app.home.arpa'], upstreams: ['192.0.2.5:3000'] };
  const fieldsOf = (body: string) => (JSON.parse(body) as { error: { fields: { path: string }[] } }).error.fields.map((x) => x.path);

  it('limits ≤ 0 and other bad limits are a 400 naming the field', async () => {
    const cases: [object, string][] = [
      [{ max_concurrent: 0 }, 'limits.max_concurrent'],
      [{ max_concurrent: -5 }, 'limits.max_concurrent'],
      [{ max_concurrent: 1.5 }, 'limits.max_concurrent'],
      [{ max_concurrent: '10' }, 'limits.max_concurrent'],
      [{ max_concurrent: 10, queue_wait_ms: 0 }, 'limits.queue_wait_ms'],
      [{ max_concurrent: 10, queue_wait_ms: 600_000 }, 'limits.queue_wait_ms'],
      [{ max_body_bytes: 0 }, 'limits.max_body_bytes'],
      [{ max_concurrent: 10, retry_after_s: 0 }, 'limits.retry_after_s'],
      [{ queue_wait_ms: 100, max_body_bytes: 10 }, 'limits.queue_wait_ms'],
      [{}, 'limits'],
      [{ max_rps: 5, max_concurrent: 1 }, 'limits'],
    ];
    for (const [limits, field] of cases) {
      const res = await req('POST', '/api/v1/routes', { ...base, limits });
      expect(res.statusCode, `${JSON.stringify(limits)}: ${res.body}`).to.equal(400);
      expect(fieldsOf(res.body), JSON.stringify(limits)).to.include(field);
    }
    expect(f.routes.list()).to.deep.equal([]);
  });

  it('limits with balancing.try_duration is a 400 naming it; with weights the limit is split over distinct dials by weight', async () => {
    const both = await req('POST', '/api/v1/routes', { ...base, limits: { max_concurrent: 8 }, balancing: { try_duration: '5s' } });
    expect(both.statusCode, both.body).to.equal(400);
    expect(fieldsOf(both.body)).to.include('balancing.try_duration');
    const ok = await req('POST', '/api/v1/routes', { hosts: ['w.home.arpa'], upstreams: ['192.0.2.5:80', '192.0.2.6:80'], backends: { '192.0.2.5:80': { weight: 3 } }, limits: { max_concurrent: 8 } });
    expect(ok.statusCode, ok.body).to.equal(201);
    const route = f.proxy.build().routes.find((r) => r.hosts.includes('w.home.arpa'))!;
    const { render } = await import('../../src/proxy/render.js');
    const text = JSON.stringify(render({ settings: { admin: 'unix//tmp/x.sock', httpPort: 80, httpsPort: 443, listenIp: '127.0.0.1' }, routes: [route] }).config);
    // 192.0.2.5 three times (weight 3), each copy with 6 slots (Caddy counts per dial: 6 in all); 192.0.2.6 with 2.
    expect(text.match(/"dial":"192\.0\.2\.5:80","max_requests":6/g)?.length).to.equal(3);
    expect(text.match(/"dial":"192\.0\.2\.6:80","max_requests":2/g)?.length).to.equal(1);
  });

  it('stores, shows and exports valid limits; the route is explicit', async () => {
    const limits = { max_concurrent: 20, queue_wait_ms: 500, max_body_bytes: 1_048_576, retry_after_s: 5 };
    const res = await req('POST', '/api/v1/routes', { ...base, limits });
    expect(res.statusCode, res.body).to.equal(201);
    expect(res.json().route).to.deep.include({ limits, mode: 'explicit' });
    const exported = (await req('GET', '/api/v1/state?format=json')).json<{ routes: { limits?: unknown }[] }>();
    expect(exported.routes[0]?.limits).to.deep.equal(limits);
  });
});
