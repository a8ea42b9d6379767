// Backend health read from a real Caddy 2.6.2 (issue 15, item 3): the admin upstream pool and the
// /metrics health gauge, merged with the by-hand dead flag. Skipped when `caddy` is not installed.
import { expect } from 'chai';
import http from 'node:http';
import { CaddyAdmin } from '../../src/proxy/caddy.js';
import { backendHealth, parseUpstreams, withMetrics } from '../../src/proxy/backend-health.js';
import { render } from '../../src/proxy/render.js';
import { hasCaddy, startBackend, startCaddy, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { until } from '../helpers/until.js';
import { route } from './fixture.js';

describe('proxy/backend-health with a real Caddy', function () {
  this.timeout(60_000);
  let caddy: RunningCaddy;
  let a: Backend, b: Backend;

  before(async function () {
    if (!hasCaddy()) this.skip();
    caddy = await startCaddy();
    [a, b] = [await startBackend('a'), await startBackend('b')];
  });
  after(async () => {
    await caddy?.stop();
    await Promise.all([a, b].filter(Boolean).map((x) => x.close()));
  });

  const get = () =>
    new Promise<number>((resolve, reject) => {
      const r = http.request({ host: '127.0.0.1', port: caddy.httpPort, path: '/', headers: { host: 'bh.example.test' }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      r.on('error', reject);
      r.end();
    });

  it('a killed backend shows failing (from the live pool), a dead-by-hand one dead, the rest up', async () => {
    const admin = new CaddyAdmin(caddy.adminListen);
    const routes = [route('api:bh', ['bh.example.test'], [a.dial, b.dial], { health: { passive: { fail_duration: '30s' } } })];
    await caddy.load(render({ settings: { httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', admin: caddy.adminListen }, routes }).config);
    for (let i = 0; i < 4; i++) expect(await get()).to.equal(200);
    const dials = (u: string) => [u];
    let pool = parseUpstreams(await admin.upstreams());
    expect(backendHealth([a.dial, b.dial], undefined, dials, pool).map((h) => h.state)).to.deep.equal(['up', 'up']);
    expect(backendHealth([a.dial, b.dial], undefined, dials, pool).reduce((n, h) => n + h.requests, 0)).to.equal(0); // in-flight count: none now

    await b.close();
    // Round robin reaches b within two requests; its dial error is counted (and retried on a).
    for (let i = 0; i < 2; i++) expect(await get()).to.equal(200);
    pool = parseUpstreams(await admin.upstreams());
    const health = backendHealth([a.dial, b.dial, '192.0.2.77:80'], { [a.dial]: { dead: true } }, dials, pool);
    expect(health.map((h) => [h.state, h.fails])).to.deep.equal([['dead', 0], ['failing', 1], ['unknown', 0]]);

    // /metrics: the gauge Caddy refreshes every 10 s; read until it has both upstreams.
    const text = await until('upstream gauge in /metrics', 20_000, async () => {
      const res = await caddy.admin('GET', '/metrics');
      return res.text.includes(`caddy_reverse_proxy_upstreams_healthy{upstream="${b.dial}"}`) ? res.text : undefined;
    }, 200);
    const merged = withMetrics(pool, text);
    expect(merged.get(a.dial)?.healthy).to.be.a('boolean');
  });

  it('parses only the 2.6.2 shape', () => {
    expect(() => parseUpstreams({})).to.throw('not a JSON array');
    expect(() => parseUpstreams([{ address: 'x' }])).to.throw('lacks');
    const pool = withMetrics(parseUpstreams([{ address: '192.0.2.1:80', num_requests: 2, fails: 0 }]), 'caddy_reverse_proxy_upstreams_healthy{upstream="192.0.2.1:80"} 0\ncaddy_reverse_proxy_upstreams_healthy{upstream="192.0.2.2:80"} 1\n');
    expect(backendHealth(['192.0.2.1:80', '192.0.2.2:80'], undefined, (u) => [u], pool).map((h) => h.state)).to.deep.equal(['down', 'up']);
  });
});
