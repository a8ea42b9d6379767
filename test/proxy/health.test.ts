// Health checks (issue 15, item 3): the model's checks, render()'s health_checks, the API's 400s.
import { expect } from 'chai';
import { routeBody } from '../../src/model/route.js';
import { splitRoutes } from '../../src/proxy/desired.js';
import { healthChecks } from '../../src/proxy/health.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { route } from './fixture.js';

describe('model/route-health and proxy/health', () => {
  const issues = (health: unknown) => {
    const r = routeBody.safeParse({ hosts: ['a.home.arpa'], upstreams: ['192.0.2.1:80'], health });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('400-worthy input names the field: interval under 1s, bad statuses, bad path, bad durations', () => {
    expect(issues({ active: { path: '/h', interval: '500ms' } })).to.deep.equal(['health.active.interval: must be at least 1s']);
    expect(issues({ active: { path: '/h', interval: '0s' } })).to.deep.equal(['health.active.interval: must be at least 1s']);
    expect(issues({ active: { path: 'h' } })[0]).to.match(/^health\.active\.path/);
    expect(issues({ active: { path: '/h', expected_status: 99 } })[0]).to.match(/^health\.active\.expected_status/);
    expect(issues({ passive: { unhealthy_status: [600] } })[0]).to.match(/^health\.passive\.unhealthy_status\.0/);
    expect(issues({ passive: { max_fails: 0 } })[0]).to.match(/^health\.passive\.max_fails/);
    expect(issues({ passive: { fail_duration: 'long' } })[0]).to.match(/^health\.passive\.fail_duration/);
    expect(issues({ active: { path: '/h', interval: '1s', timeout: '200ms', expected_status: 204 }, passive: { max_fails: 3, fail_duration: '5s', unhealthy_status: [503, 502], unhealthy_latency: '800ms' } })).to.deep.equal([]);
  });

  it('renders every field; without `health` a route renders as before', () => {
    expect(healthChecks({ health_path: null }, false)).to.equal(undefined);
    expect(healthChecks({ health_path: '/hz' }, true)).to.deep.equal({ active: { interval: '10s', timeout: '5s', uri: '/hz' }, passive: { fail_duration: '30s' } });
    const all = healthChecks({ health_path: '/old', health: { active: { path: '/h', interval: '2s', timeout: '1s', expected_status: 204 }, passive: { max_fails: 3, fail_duration: '5s', unhealthy_status: [503, 502, 503], unhealthy_latency: '800ms' } } }, false);
    expect(JSON.stringify(all)).to.equal(
      JSON.stringify({ active: { expect_status: 204, interval: '2s', timeout: '1s', uri: '/h' }, passive: { fail_duration: '5s', max_fails: 3, unhealthy_latency: '800ms', unhealthy_status: [502, 503] } }),
    );
  });

  it('health settings make a proxied record explicit (Caddy 2.6.2 probes no dynamic upstreams)', () => {
    const rec = route('record:a.home.arpa', ['a.home.arpa'], ['192.0.2.1:80'], { health: { passive: { max_fails: 2 } } });
    expect(splitRoutes([rec], true).explicit).to.have.length(1);
  });
});

describe('api: route health', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());
  const req = (method: 'GET' | 'POST', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });

  it('stores and shows health on routes and proxied records; 400 naming the field for an interval under 1s', async () => {
    const health = { active: { path: '/healthz', interval: '2s' }, passive: { fail_duration: '5s', unhealthy_status: [503] } };
    const res = await req('POST', '/api/v1/routes', { hosts: ['h.home.arpa'], upstreams: ['192.0.2.5:80'], health });
    expect(res.statusCode, res.body).to.equal(201);
    expect((await req('GET', `/api/v1/routes/${res.json().route.id}`)).json().route.health).to.deep.equal(health);
    const bad = await req('POST', '/api/v1/routes', { hosts: ['x.home.arpa'], upstreams: ['192.0.2.5:80'], health: { active: { path: '/h', interval: '999ms' } } });
    expect(bad.statusCode).to.equal(400);
    expect(bad.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['health.active.interval']);
    const rec = await req('POST', '/api/v1/records', { name: 'svc', type: 'A', values: ['192.0.2.9'], proxy: { enabled: true, upstreams: ['192.0.2.5:80'], health } });
    expect(rec.statusCode, rec.body).to.equal(201);
    expect((await req('GET', '/api/v1/routes/record:svc.home.arpa')).json().route).to.deep.include({ health, mode: 'explicit' });
    const legacy = await req('POST', '/add-record', { service_name: 'web', name: 'web', port: 80, forward_to_ip: '192.0.2.5', proxy_enabled: true, health });
    expect(legacy.statusCode, legacy.body).to.equal(201);
    expect((await req('GET', '/api/v1/routes/record:web.home.arpa')).json().route.health).to.deep.equal(health);
    const badRec = await req('POST', '/api/v1/records', { name: 'svc2', type: 'A', values: ['192.0.2.9'], proxy: { enabled: true, upstreams: ['192.0.2.5:80'], health: { active: { path: '/h', interval: '100ms' } } } });
    expect(badRec.statusCode).to.equal(400);
    expect(badRec.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['proxy.health.active.interval']);
  });
});
