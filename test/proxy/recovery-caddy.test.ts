// Backends taken out after failed requests and probed back (issue 15, item 3), end to end through
// the controller's wiring: store → pipeline → reconciler → real Caddy 2.6.2, two real backends,
// the watcher on a manual clock and manual timers (its probes are real HTTP requests). An API
// route with the default passive check (two upstreams) and a proxied record with `health.passive`
// share the backends (Caddy's fail count is per dial address). Skipped without `caddy`.
import { expect } from 'chai';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { withBackendHealth } from '../../src/api/routes-backends.js';
import { loadConfig } from '../../src/config/load.js';
import { wire, type Wired } from '../../src/controller.js';
import { setLogLevel } from '../../src/log/index.js';
import { parseUpstreams } from '../../src/proxy/backend-health.js';
import { CaddyAdmin } from '../../src/proxy/caddy.js';
import type { RecoveryRun } from '../../src/proxy/recovery.js';
import { openDb, type Db } from '../../src/store/db.js';
import { backendBehind, hasCaddy, startCaddy, type Echo, type RunningCaddy } from '../helpers/caddy.js';
import { ManualTimers } from '../helpers/tailscale.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/until.js';

/** Requests per measured split. */
const N = 100;
const HOST = 'rec.home.arpa';
const RECORD = 'svc.home.arpa';

/** An echo backend on `port` (0: a free one) that can be closed and started again on the same port. */
async function echoOn(name: string, port: number): Promise<{ dial: string; port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const echo: Echo = { backend: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(echo));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  const p = (server.address() as net.AddressInfo).port;
  return { dial: `127.0.0.1:${p}`, port: p, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
}


describe('proxy/recovery with a real Caddy: out after failed requests, back after a probe', function () {
  this.timeout(120_000);
  let caddy: RunningCaddy;
  let a: Awaited<ReturnType<typeof echoOn>>, b: Awaited<ReturnType<typeof echoOn>> | null;
  let bPort: number;
  let tmp: ReturnType<typeof tempDir>;
  let db: Db;
  let w: Wired;
  let clock = Date.UTC(2026, 11, 8);
  const timers = new ManualTimers();

  before(async function () {
    if (!hasCaddy()) return this.skip();
    setLogLevel('warn');
    caddy = await startCaddy();
    a = await echoOn('a', 0);
    b = await echoOn('b', 0);
    bPort = b.port;
    tmp = tempDir();
    db = openDb(tmp.dir);
    const config = loadConfig({
      env: { DNSPROXY_DATA_DIR: tmp.dir, DNSPROXY_NODE_IP: '192.0.2.10', DNSPROXY_CADDY_ADMIN: caddy.adminListen, DNSPROXY_HTTP_PORT: String(caddy.httpPort), DNSPROXY_HTTPS_PORT: String(caddy.httpsPort) },
      interfaces: {},
    });
    w = wire(config, { db, caddy: new CaddyAdmin(caddy.adminListen), recovery: { now: () => clock, timers } });
    w.pipeline.start();
    w.reconciler!.start();
    w.recovery.start();
    w.routes.put({ hosts: [HOST], upstreams: [a.dial, b.dial], tls: 'off' });
    w.records.put([{ name: `${RECORD}.`, zone: 'home.arpa.', data: { type: 'A', values: ['192.0.2.10'] }, ttl: 300, proxy: { enabled: true, upstreams: [a.dial, b.dial], health: { passive: { fail_duration: '30s' } } }, service_name: null }]);
    await w.pipeline.settled();
    await w.reconciler!.flush();
  });
  after(async () => {
    await w?.recovery.stop();
    await w?.reconciler?.stop();
    await w?.pipeline.settled();
    w?.uncount();
    db?.close();
    await caddy?.stop();
    await Promise.all([a, b].filter((x) => x).map((x) => x!.close()));
    tmp?.cleanup();
  });

  /** The watcher's next run: its timer fires on the manual clock; a change is pushed by the reconciler (awaited). */
  async function run(): Promise<RecoveryRun> {
    const done = once(w.recovery, 'run') as Promise<[RecoveryRun]>;
    expect(timers.fire()).to.equal(1);
    const [out] = await done;
    await w.reconciler!.flush();
    return out;
  }

  const configText = async () => JSON.stringify(await caddy.get('/config/'));

  async function split(host: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < N; i++) {
      const name = await backendBehind(caddy.httpPort, host);
      counts[name] = (counts[name] ?? 0) + 1;
    }
    return counts;
  }

  const health = async (id: string) => (await withBackendHealth(w.api, [w.proxy.view(id)!]))[0]!.backend_health!;

  it('both backends serve; a stopped one is counted failed by Caddy, then taken out of its config', async () => {
    expect(await configText()).to.include(b!.dial);
    const before = await split(HOST);
    expect(before.a, JSON.stringify(before)).to.equal(N / 2);
    expect(w.proxy.view(`record:${RECORD}`)?.mode).to.equal('explicit');

    await b!.close();
    b = null;
    // Requests until Caddy has counted b's dial error (round robin reaches it within two; the request itself is retried on a).
    await until('Caddy counts a failure of the stopped backend', 20_000, async () => {
      expect(await backendBehind(caddy.httpPort, HOST)).to.equal('a');
      return (parseUpstreams(await caddy.get('/reverse_proxy/upstreams')).get(`127.0.0.1:${bPort}`)?.fails ?? 0) >= 1 || undefined;
    });
    const out = await run();
    expect(out.marked.sort()).to.deep.equal([`api:${w.proxy.views().find((r) => r.hosts.includes(HOST))!.id.slice(4)} 127.0.0.1:${bPort}`, `record:${RECORD} 127.0.0.1:${bPort}`].sort());
    expect(await configText(), 'the dead backend is gone from Caddy').not.to.include(`127.0.0.1:${bPort}`);
    expect(await split(HOST)).to.deep.equal({ a: N });
    expect(await split(RECORD)).to.deep.equal({ a: N });

    const id = w.proxy.views().find((r) => r.hosts.includes(HOST))!.id;
    const shown = (await health(id)).find((h) => h.address === `127.0.0.1:${bPort}`)!;
    expect(shown).to.deep.include({ state: 'down', reason: 'failed requests; probed every 60s', since: new Date(clock).toISOString(), next_probe_at: new Date(clock + 60_000).toISOString() });
    expect((await health(`record:${RECORD}`)).map((h) => h.state)).to.deep.equal(['up', 'down']);
  });

  it('a probe while it is still down keeps it out; started again on its port, it is back after the next probe', async () => {
    const loads = w.reconciler!.state().loads.change;
    clock += 60_000;
    const down = await run();
    expect(down.stillDown).to.have.length(2);
    expect(down.revived).to.deep.equal([]);
    expect(w.reconciler!.state().loads.change, 'nothing changed: no load').to.equal(loads);
    expect(await configText()).not.to.include(`127.0.0.1:${bPort}`);

    b = await echoOn('b', bPort);
    clock += 59_999;
    expect((await run()).revived, 'not before its interval').to.deep.equal([]);
    clock += 1;
    const up = await run();
    expect(up.revived).to.have.length(2);
    expect(await configText()).to.include(b.dial);
    const counts = await split(HOST);
    expect(counts, JSON.stringify(counts)).to.deep.equal({ a: N / 2, b: N / 2 });
    const rec = await split(RECORD);
    expect(rec.b ?? 0, JSON.stringify(rec)).to.be.at.least(N / 4);
    expect((await health(`record:${RECORD}`)).map((h) => h.state)).to.deep.equal(['up', 'up']);
  });
});
