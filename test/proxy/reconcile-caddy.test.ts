// Reconciler against a real Caddy 2.6: routes serve real HTTP to backends, a route Caddy rejects
// is quarantined while the others keep serving, a SIGKILLed and restarted Caddy is restored
// without any trigger(), and a foreign config loaded behind our back is overwritten.
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import winston from 'winston';
import { CaddyAdmin, validateWithCaddy } from '../../src/proxy/caddy.js';
import { Reconciler, type RouteStatus } from '../../src/proxy/reconcile.js';
import type { DesiredRoute } from '../../src/proxy/types.js';
import { desired, hasCaddy, route, startTestCaddy, testRender, type TestCaddy } from './reconcile-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const silent = winston.createLogger({ silent: true });
/** The brief's bound for restoring every route after Caddy restarts with its bootstrap config. */
const RESTORE_BOUND_MS = 2_000;

/** GET through Caddy with a Host header; status and body, or status 0 when nothing answered. */
function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(2_000, () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end();
  });
}

async function backend(name: string): Promise<{ dial: string; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => res.writeHead(200).end(`backend ${name}`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return { dial: `127.0.0.1:${port}`, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

describe('proxy reconciler with a real Caddy', function () {
  this.timeout(30_000);
  let caddy: TestCaddy | undefined;
  let rec: Reconciler | undefined;
  const backends: { dial: string; close: () => Promise<void> }[] = [];
  let routes: DesiredRoute[] = [];
  let statuses = new Map<string, RouteStatus>();
  const names = ['a', 'b', 'c'];

  const serving = async () => {
    const answers = await Promise.all(names.map((n) => get(caddy!.httpPort, `${n}.example.test`)));
    return answers.every((a, i) => a.status === 200 && a.body === `backend ${names[i]}`);
  };

  before(async function () {
    if (!hasCaddy()) return this.skip();
    caddy = await startTestCaddy();
    for (const n of names) backends.push(await backend(n));
    routes = [
      ...names.map((n, i) => route(n, backends[i]!.dial)),
      route('broken', backends[0]!.dial, { health_path: '/%zz' }),
    ];
    const env = caddy.env;
    rec = new Reconciler({
      desired: () => desired(routes, caddy!.adminListen, caddy!.httpPort),
      render: testRender,
      caddy: new CaddyAdmin(caddy.adminListen),
      validate: (config) => validateWithCaddy(config, { env }),
      onStatus: (s) => (statuses = s),
      debounceMs: 20,
      log: silent,
    });
    rec.start();
    await rec.flush();
  });

  after(async () => {
    await rec?.stop();
    await caddy?.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('serves every good route through Caddy and 404s unknown hosts', async () => {
    expect(await serving()).to.equal(true);
    const unknown = await get(caddy!.httpPort, 'nope.example.test');
    expect(unknown.status).to.equal(404);
    expect(rec!.state()).to.include({ caddyUp: true, inSync: true });
  });

  it('quarantines the route Caddy rejects, with Caddy\'s readable error, while the others serve', async () => {
    expect(statuses.get('broken')?.status).to.equal('error');
    expect(statuses.get('broken')?.error).to.match(/parse "\/%zz": invalid URL escape "%zz"/);
    for (const n of names) expect(statuses.get(n)).to.deep.equal({ status: 'active', error: null });
    expect(rec!.state().quarantined).to.deep.equal(['broken']);
    expect((await get(caddy!.httpPort, 'broken.example.test')).status).to.equal(404);
  });

  it('restores every route within 2 s after SIGKILL and a restart, with no trigger()', async () => {
    const applies = rec!.state().applies;
    await caddy!.kill();
    expect(await get(caddy!.httpPort, 'a.example.test')).to.deep.equal({ status: 0, body: '' });
    const t0 = performance.now();
    await caddy!.restart();
    const started = performance.now() - t0;
    while (!(await serving())) {
      if (performance.now() - t0 > 5_000) throw new Error('routes not restored within 5 s');
      await sleep(10);
    }
    const restored = performance.now() - t0;
    console.log(`      restored ${restored.toFixed(0)} ms after restart began (Caddy answered after ${started.toFixed(0)} ms)`);
    expect(restored).to.be.below(RESTORE_BOUND_MS);
    expect(rec!.state().applies).to.equal(applies + 1);
    expect(statuses.get('broken')?.status).to.equal('error');
  });

  it('detects a foreign config loaded by another process and overwrites it', async () => {
    const foreign = { admin: { listen: caddy!.adminListen, config: { persist: false } }, apps: { http: { servers: { other: { listen: [`127.0.0.1:${caddy!.httpPort}`], routes: [{ handle: [{ handler: 'static_response', body: 'foreign' }] }] } } } } };
    const res = await fetch(`http://${caddy!.adminListen}/load`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(foreign) });
    expect(res.status).to.equal(200);
    expect((await get(caddy!.httpPort, 'a.example.test')).body).to.equal('foreign');
    const t0 = performance.now();
    while (!(await serving())) {
      if (performance.now() - t0 > 5_000) throw new Error('foreign config not overwritten within 5 s');
      await sleep(10);
    }
    expect(rec!.state().inSync).to.equal(true);
  });

  it('applies the quarantined route once it is fixed', async () => {
    routes = routes.map((r) => (r.id === 'broken' ? { ...r, health_path: '/' } : r));
    rec!.trigger();
    await rec!.flush();
    expect(statuses.get('broken')).to.deep.equal({ status: 'active', error: null });
    expect((await get(caddy!.httpPort, 'broken.example.test')).body).to.equal('backend a');
    expect(rec!.state().quarantined).to.deep.equal([]);
  });

  it('a new reconciler (dnsproxy restarted) adopts the running config without reloading Caddy', async () => {
    const second = new Reconciler({
      desired: () => desired(routes, caddy!.adminListen, caddy!.httpPort),
      render: testRender,
      caddy: new CaddyAdmin(caddy!.adminListen),
      onStatus: () => undefined,
      log: silent,
    });
    try {
      await second.flush();
      expect(second.state()).to.include({ applies: 0, inSync: true, lastHash: rec!.state().lastHash });
    } finally {
      await second.stop();
    }
  });
});
