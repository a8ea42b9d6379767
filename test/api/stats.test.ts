// GET /api/v1/stats and /api/v1/stats/{host}: the collector's windows with the serving routes' status.
import { expect } from 'chai';
import { STATS_OFF } from '../../src/api/stats.js';
import { HostStats } from '../../src/proxy/stats.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

const line = (host: string, status: number, size: number) =>
  JSON.stringify({ logger: 'http.log.access.dnsproxy-stats', msg: 'handled request', request: { host }, duration: 0.002, size, status });

describe('api: per-host stats', () => {
  let f: ApiFixture;
  let t = 1_000_000_000_000;
  const stats = new HostStats({ now: () => t });
  const get = (url: string, headers: Record<string, string> = f.auth) => f.app.inject({ method: 'GET', url, headers });

  before(async () => {
    f = await apiFixture({ stats });
    const res = await f.app.inject({ method: 'POST', url: '/api/v1/routes', headers: f.auth, payload: { hosts: ['app.home.arpa'], upstreams: ['10.0.0.5:8080'] } });
    expect(res.statusCode, res.body).to.equal(201);
    for (let i = 0; i < 3; i++) stats.ingest(line('app.home.arpa', 200, 10));
    stats.ingest(line('APP.home.arpa:8080', 500, 1));
    stats.ingest(line('other.home.arpa', 404, 5));
  });
  after(() => f.close());

  it('lists every host seen in the last hour with its windows and routes', async () => {
    const res = await get('/api/v1/stats');
    expect(res.statusCode, res.body).to.equal(200);
    const body = res.json<{ hosts: { host: string; minute: { requests: number; status: Record<string, number>; bytes: number }; routes: { id: string; status: string }[] }[]; counts: { lines: number } }>();
    expect(body.hosts.map((h) => h.host)).to.deep.equal(['app.home.arpa', 'other.home.arpa']);
    const app = body.hosts[0]!;
    expect(app.minute.requests).to.equal(4);
    expect(app.minute.status['2xx']).to.equal(3);
    expect(app.minute.status['5xx']).to.equal(1);
    expect(app.minute.bytes).to.equal(31);
    expect(app.routes).to.have.length(1);
    expect(app.routes[0]!.id).to.match(/^api:/);
    expect(body.hosts[1]!.routes).to.deep.equal([]);
    expect(body.counts.lines).to.equal(5);
  });

  it('answers one host, zeros for a host without traffic, and 400 naming the field for a bad name', async () => {
    const one = await get('/api/v1/stats/App.Home.Arpa');
    expect(one.statusCode, one.body).to.equal(200);
    expect(one.json<{ stats: { host: string; hour: { requests: number } } }>().stats).to.include({ host: 'app.home.arpa' });
    expect(one.json<{ stats: { hour: { requests: number } } }>().stats.hour.requests).to.equal(4);
    t += 2 * 3_600_000;
    const gone = await get('/api/v1/stats/app.home.arpa');
    expect(gone.json<{ stats: { hour: { requests: number }; minute: { latency_ms: { p50: number | null } } } }>().stats.hour.requests).to.equal(0);
    expect((await get('/api/v1/stats')).json<{ hosts: unknown[] }>().hosts).to.deep.equal([]);
    const bad = await get('/api/v1/stats/bad_host!');
    expect(bad.statusCode).to.equal(400);
    expect(bad.json<{ error: { fields: { path: string }[] } }>().error.fields[0]!.path).to.equal('host');
  });

  it('needs a token', async () => {
    expect((await get('/api/v1/stats', {})).statusCode).to.equal(401);
  });

  it('ProxyState.useAccessLog puts the writer address into the settings Caddy gets, on-demand pair kept', async () => {
    const g = await apiFixture();
    try {
      g.proxy.useResolver('udp/127.0.0.1:5353', { issuer: 'internal', ask: 'http://127.0.0.1:1/ask', rateLimit: { interval: '1m', burst: 60 } });
      g.proxy.useAccessLog('tcp/127.0.0.1:7777');
      const settings = g.proxy.desired().settings;
      expect(settings.accessLog).to.equal('tcp/127.0.0.1:7777');
      // No TLS name yet: the settings without the on-demand part, still with the access log.
      expect(settings.dynamic?.onDemand).to.equal(undefined);
      expect(g.proxy.settings.dynamic?.onDemand?.issuer).to.equal('internal');
      expect(g.proxy.settings.accessLog).to.equal('tcp/127.0.0.1:7777');
    } finally {
      await g.close();
    }
    const h = await apiFixture();
    try {
      h.proxy.useAccessLog('tcp/127.0.0.1:7778');
      expect(h.proxy.desired().settings.accessLog).to.equal('tcp/127.0.0.1:7778');
    } finally {
      await h.close();
    }
  });

  it('answers 409 feature_off, saying how to turn stats on, while the setting is off', async () => {
    const bare = await apiFixture();
    try {
      for (const url of ['/api/v1/stats', '/api/v1/stats/x.home.arpa']) {
        const res = await bare.app.inject({ method: 'GET', url, headers: bare.auth });
        expect(res.statusCode, url).to.equal(409);
        expect(res.json(), url).to.deep.equal({ error: { code: 'feature_off', message: STATS_OFF } });
      }
      expect(STATS_OFF).to.include('--stats on').and.include('DNSPROXY_STATS=on');
    } finally {
      await bare.close();
    }
  });
});
