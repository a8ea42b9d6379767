// Backends taken out after failed requests and probed back (issue 15, item 3), end to end through
// the controller's wiring: store → pipeline → reconciler → real Caddy 2.6.2, two real backends,
// the watcher on a manual clock and manual timers (its probes are real HTTP requests). An API
// route with the default passive check (two upstreams) and a proxied record with `health.passive`
// share the backends (Caddy's fail count is per dial address). Skipped without `caddy`.
import { expect } from 'chai';
import { once } from 'node:events';
import { withBackendHealth } from '../../src/api/routes-backends.js';
import type { Wired } from '../../src/controller.js';
import { parseUpstreams } from '../../src/proxy/backend-health.js';
import type { RecoveryRun } from '../../src/proxy/recovery.js';
import { backendBehind, hasCaddy, startBackend, startCaddy, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { ManualTimers } from '../helpers/tailscale.js';
import { wireToCaddy, type WiredCaddy } from '../helpers/wired.js';
import { until } from '../helpers/until.js';

/** Requests per measured split. */
const N = 100;
const HOST = 'rec.home.arpa';
const RECORD = 'svc.home.arpa';

describe('proxy/recovery with a real Caddy: out after failed requests, back after a probe', function () {
  this.timeout(120_000);
  let caddy: RunningCaddy;
  let a: Backend, b: Backend | null;
  let bPort: number;
  let wired: WiredCaddy | undefined;
  let w: Wired;
  let clock = Date.UTC(2026, 11, 8);
  const timers = new ManualTimers();

  before(async function () {
    if (!hasCaddy()) return this.skip();
    caddy = await startCaddy();
    a = await startBackend('a', 0);
    b = await startBackend('b', 0);
    bPort = b.port;
    wired = wireToCaddy(caddy, { recovery: { now: () => clock, timers } });
    w = wired.w;
    w.recovery.start();
    w.routes.put({ hosts: [HOST], upstreams: [a.dial, b.dial], tls: 'off' });
    w.records.put([{ name: `${RECORD}.`, zone: 'home.arpa.', data: { type: 'A', values: ['192.0.2.10'] }, ttl: 300, proxy: { enabled: true, upstreams: [a.dial, b.dial], health: { passive: { fail_duration: '30s' } } }, service_name: null }]);
    await w.pipeline.settled();
    await w.reconciler!.flush();
  });
  after(async () => {
    await w?.recovery.stop();
    await wired?.close();
    await caddy?.stop();
    await Promise.all([a, b].filter((x) => x).map((x) => x!.close()));
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

    b = await startBackend('b', bPort);
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
