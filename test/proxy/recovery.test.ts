// Backends taken out after failed requests and probed back (issue 15, item 3, "default recovery
// probing every 60 s"): the watcher's decisions on a manual clock and a fake upstream pool (the
// shape Caddy 2.6.2's /reverse_proxy/upstreams gives), the model's 400s, the views.
import { expect } from 'chai';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type tls from 'node:tls';
import { upstreamText } from '../../src/cli/routes.js';
import { routeBody } from '../../src/model/route.js';
import { backendHealth, type UpstreamStatus } from '../../src/proxy/backend-health.js';
import { caddyfileExport } from '../../src/proxy/caddyfile.js';
import { BACKOFF_CAP, FLAP_WINDOW_MS, httpRecoveryProbe, probeTarget, probeTlsOptions, RECOVERY_PROBE_TIMEOUT_MS, RECOVERY_WATCH_MS, RecoveryWatcher, type ProbeTarget, type RecoveryRun } from '../../src/proxy/recovery.js';
import type { DesiredProxy, DesiredRoute } from '../../src/proxy/types.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { makeCa, makeLeaf } from '../helpers/certs.js';
import { ManualTimers } from '../helpers/tailscale.js';
import { route } from './fixture.js';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';
const SETTINGS = { httpPort: 8001, httpsPort: 8002, listenIp: '127.0.0.1', admin: '127.0.0.1:2999' };

function harness(routes: DesiredRoute[]) {
  const h = {
    clock: 1_000_000,
    routes,
    pool: new Map<string, UpstreamStatus>(),
    poolFails: false,
    alive: new Set<string>(),
    /** A status a dial answers instead of 200 when alive. */
    status: new Map<string, number>(),
    probed: [] as ProbeTarget[],
    changes: 0,
    reads: 0,
    timers: new ManualTimers(),
    watcher: null as unknown as RecoveryWatcher,
    fails(dial: string, n: number) {
      h.pool.set(dial, { requests: 0, fails: n });
    },
  };
  h.watcher = new RecoveryWatcher({
    now: () => h.clock,
    timers: h.timers,
    routes: () => h.routes,
    pool: () => (h.reads++, h.poolFails ? Promise.reject(new Error('connect ECONNREFUSED')) : Promise.resolve(h.pool)),
    probe: (t) => (h.probed.push(t), Promise.resolve(h.alive.has(t.dial) ? (h.status.get(t.dial) ?? 200) : null)),
    onChange: () => h.changes++,
  });
  return h;
}

describe('proxy/recovery: the watcher', () => {
  it('marks a backend at max_fails, leaves it out of the route, and never the last one', async () => {
    const h = harness([route('api:r', ['r.example.test'], [A, B, C])]);
    h.fails(A, 1);
    expect((await h.watcher.run()).marked).to.deep.equal([`api:r ${A}`]);
    expect(h.changes).to.equal(1);
    const desired: DesiredProxy = { settings: SETTINGS, routes: h.routes };
    expect(h.watcher.apply(desired).routes[0]!.upstreams).to.deep.equal([B, C]);
    expect(h.watcher.apply(desired).routes[0], 'the same object while nothing changed').to.equal(h.watcher.apply(desired).routes[0]);
    // B and C fail too: B goes, C is the last one and stays.
    h.fails(B, 3);
    h.fails(C, 3);
    expect((await h.watcher.run()).marked).to.deep.equal([`api:r ${B}`]);
    expect(h.watcher.apply(desired).routes[0]!.upstreams).to.deep.equal([C]);
    expect([...h.watcher.marks('api:r').keys()]).to.deep.equal([A, B]);
    expect(h.changes).to.equal(2);
    // Nothing new: no change signalled.
    await h.watcher.run();
    expect(h.changes).to.equal(2);
  });

  it('honours max_fails from health.passive', async () => {
    const h = harness([route('api:m', ['m.example.test'], [A, B], { health: { passive: { max_fails: 3 } } })]);
    h.fails(A, 2);
    expect((await h.watcher.run()).marked).to.deep.equal([]);
    h.fails(A, 3);
    expect((await h.watcher.run()).marked).to.deep.equal([`api:m ${A}`]);
  });

  it('skips routes with an active check, routes without passive health, and a pool it cannot read', async () => {
    const h = harness([
      route('api:active', ['a.example.test'], [A, B], { health: { active: { path: '/hz' } } }),
      route('api:hp', ['hp.example.test'], [A, B], { health_path: '/hz' }),
      route('api:one', ['one.example.test'], [A]),
      route('api:onepassive', ['op.example.test'], [A], { health: { passive: {} } }),
    ]);
    h.fails(A, 5);
    expect((await h.watcher.run()).marked, 'a single upstream is never marked, passive or not').to.deep.equal([]);
    expect(h.reads, 'api:onepassive is watched').to.equal(1);
    const idle = harness([route('api:active', ['a.example.test'], [A, B], { health: { active: { path: '/hz' } } })]);
    await idle.watcher.run();
    expect(idle.reads, 'no watched route: Caddy is not asked').to.equal(0);
    h.routes.push(route('api:plain', ['p.example.test'], [A, B]));
    h.poolFails = true;
    const run = await h.watcher.run();
    expect(run.marked).to.deep.equal([]);
    expect(run.poolError).to.match(/ECONNREFUSED/);
    h.poolFails = false;
    expect((await h.watcher.run()).marked).to.deep.equal([`api:plain ${A}`]);
  });

  it('probes every recovery_interval (default 60s): down stays out, alive comes back', async () => {
    const h = harness([route('api:d', ['d.example.test', 'x.example.test'], [A, B]), route('api:f', ['f.example.test'], [A, B], { health: { passive: { fail_duration: '60s' }, recovery_interval: '15s' } })]);
    h.fails(A, 1);
    const marked = h.clock;
    expect((await h.watcher.run()).marked).to.deep.equal([`api:d ${A}`, `api:f ${A}`]);
    expect(h.watcher.marks('api:d').get(A)).to.deep.equal({ since: marked, nextProbeAt: marked + 60_000, intervalMs: 60_000 });
    expect(h.watcher.marks('api:f').get(A)!.nextProbeAt).to.equal(marked + 15_000);
    expect(h.probed.map((t) => t.host), 'each marked after its own confirming probe failed').to.deep.equal(['d.example.test', 'f.example.test']);
    h.probed.length = 0;
    // Before an interval: no probe.
    h.clock = marked + 14_999;
    expect((await h.watcher.run()).stillDown).to.deep.equal([]);
    expect(h.probed).to.deep.equal([]);
    // api:f's interval has passed: probed (still down), next in 15 s; api:d not yet.
    h.clock = marked + 15_000;
    expect((await h.watcher.run()).stillDown).to.deep.equal([`api:f ${A}`]);
    expect(h.probed).to.deep.equal([{ dial: A, host: 'f.example.test', tls: 'off' }]);
    expect(h.watcher.marks('api:f').get(A)!.nextProbeAt).to.equal(marked + 30_000);
    const changes = h.changes;
    // It answers now: api:d's probe is due at +60 s; api:f's at +30 s comes first.
    h.alive.add(A);
    h.clock = marked + 30_000;
    expect((await h.watcher.run()).revived).to.deep.equal([`api:f ${A}`]);
    expect(h.changes).to.equal(changes + 1);
    expect(h.watcher.marks('api:f').size).to.equal(0);
    expect(h.watcher.marks('api:d').size).to.equal(1);
    // Caddy still counts the old failure: not marked again at once (it was just probed alive)…
    expect((await h.watcher.run()).marked).to.deep.equal([]);
    h.clock = marked + 60_000;
    expect((await h.watcher.run()).revived).to.deep.equal([`api:d ${A}`]);
    expect(h.probed.at(-1)).to.deep.equal({ dial: A, host: 'd.example.test', tls: 'off' });
    // …until the count fell below max_fails: then a new failure is probed; it answers, so it stays in (no load).
    h.fails(A, 0);
    await h.watcher.run();
    h.fails(A, 1);
    const changed = h.changes;
    expect(await h.watcher.run()).to.deep.include({ marked: [], spared: [`api:d ${A}`, `api:f ${A}`] });
    expect(h.changes).to.equal(changed);
    // While Caddy still counts that failure it is not probed again each watch.
    const probes = h.probed.length;
    await h.watcher.run();
    expect(h.probed.length).to.equal(probes);
    // A new failure its probe confirms: marked, and within 5 minutes of its comeback its interval doubles.
    h.fails(A, 0);
    await h.watcher.run();
    h.fails(A, 1);
    h.alive.delete(A);
    expect((await h.watcher.run()).marked).to.deep.equal([`api:d ${A}`, `api:f ${A}`]);
    expect(h.watcher.marks('api:d').get(A)!.intervalMs).to.equal(120_000);
    expect(h.watcher.marks('api:f').get(A)!.intervalMs).to.equal(30_000);
  });

  it('a failure count that stays up ends the wait after fail_duration', async () => {
    const h = harness([route('api:c', ['c.example.test'], [A, B], { health: { passive: { fail_duration: '2s' }, recovery_interval: '1s' } })]);
    h.fails(A, 1);
    await h.watcher.run();
    h.alive.add(A);
    h.clock += 1000;
    expect((await h.watcher.run()).revived).to.have.length(1);
    h.clock += 1000;
    expect((await h.watcher.run()).marked).to.deep.equal([]);
    h.clock += 1000;
    h.alive.delete(A);
    expect((await h.watcher.run()).marked).to.deep.equal([`api:c ${A}`]);
  });

  it('a backend dead by hand is never probed; marks go with their route, dial or passive watch', async () => {
    // buildDesired leaves a by-hand dead backend out of upstreams before the watcher sees the route: B is not here.
    const h = harness([route('api:h', ['h.example.test'], [A, C]), route('api:gone', ['g.example.test'], [A, C])]);
    h.fails(A, 1);
    h.fails(B, 9);
    await h.watcher.run();
    h.clock += 3_600_000;
    await h.watcher.run();
    expect(h.probed.map((t) => `${t.host} ${t.dial}`), 'two confirming probes, two recovery probes').to.deep.equal([`h.example.test ${A}`, `g.example.test ${A}`, `h.example.test ${A}`, `g.example.test ${A}`]);
    expect(h.watcher.all().some(([, dial]) => dial === B)).to.equal(false);
    const changes = h.changes;
    h.routes = [route('api:h', ['h.example.test'], [A, C], { health: { active: { path: '/hz' } } })];
    await h.watcher.run();
    expect(h.watcher.all()).to.deep.equal([]);
    expect(h.changes, 'a route still there changed its Caddy upstreams').to.equal(changes + 1);
    expect(h.watcher.apply({ settings: SETTINGS, routes: h.routes }).routes).to.equal(h.routes);
  });

  it('runs on its timers: the watch interval, then as soon as a probe is due; stop() ends it', async () => {
    const h = harness([route('api:t', ['t.example.test'], [A, B], { health: { recovery_interval: '2s' } })]);
    h.fails(A, 1);
    h.watcher.start();
    h.watcher.start();
    expect(h.timers.pending.size).to.equal(1);
    const ran = new Promise((resolve) => h.watcher.once('run', resolve));
    h.timers.fire();
    await ran;
    await new Promise((r) => setImmediate(r));
    expect(h.watcher.marks('api:t').size).to.equal(1);
    expect(h.timers.pending.size, 'the next run is scheduled').to.equal(1);
    await h.watcher.stop();
    expect(h.timers.pending.size).to.equal(0);
    expect(RECOVERY_WATCH_MS).to.equal(5_000);
  });

  it('apply() never empties a route that lost upstreams since it was marked; the next run drops such marks', async () => {
    const h = harness([route('api:e', ['e.example.test'], [A, B])]);
    h.fails(A, 1);
    await h.watcher.run();
    h.routes = [route('api:e', ['e.example.test'], [A])];
    expect(h.watcher.apply({ settings: SETTINGS, routes: h.routes }).routes[0]!.upstreams).to.deep.equal([A]);
    // Caddy serves A again: it is not shown down, at once, and the next run drops the mark.
    expect(h.watcher.marks('api:e').size).to.equal(0);
    expect(h.watcher.all()).to.have.length(1);
    await h.watcher.run();
    expect(h.watcher.all()).to.deep.equal([]);
  });

  it('a transient failure: one confirming probe answers, nothing marked, no Caddy load', async () => {
    const h = harness([route('api:t', ['t.example.test'], [A, B])]);
    h.fails(A, 1);
    h.alive.add(A);
    expect(await h.watcher.run()).to.deep.include({ marked: [], spared: [`api:t ${A}`] });
    expect(h.changes).to.equal(0);
    expect(h.probed.map((t) => t.dial)).to.deep.equal([A]);
  });

  it("the probes judge by the route's passive criteria: unhealthy_status is down", async () => {
    const h = harness([route('api:s', ['s.example.test'], [A, B], { health: { passive: { unhealthy_status: [429, 404] }, recovery_interval: '1s' } }), route('api:p', ['p.example.test'], [A, B])]);
    h.fails(A, 1);
    h.alive.add(A);
    h.status.set(A, 429);
    const run = await h.watcher.run();
    expect(run.marked, '429 is a failure for api:s only').to.deep.equal([`api:s ${A}`]);
    expect(run.spared).to.deep.equal([`api:p ${A}`]);
    // Its recovery probe gets 404 (also listed): still down; 200: back.
    h.status.set(A, 404);
    h.clock += 1000;
    expect((await h.watcher.run()).stillDown).to.deep.equal([`api:s ${A}`]);
    h.status.delete(A);
    h.clock += 1000;
    expect((await h.watcher.run()).revived).to.deep.equal([`api:s ${A}`]);
  });

  it('backoff: marked again within 5 minutes of coming back doubles the interval (at most 10x); 5 minutes healthy resets it', async () => {
    const h = harness([route('api:b', ['b.example.test'], [A, B])]);
    const intervals: number[] = [];
    const flap = async () => {
      h.fails(A, 0);
      await h.watcher.run();
      h.fails(A, 1);
      h.alive.delete(A);
      expect((await h.watcher.run()).marked).to.deep.equal([`api:b ${A}`]);
      const m = h.watcher.marks('api:b').get(A)!;
      intervals.push(m.intervalMs);
      h.clock = m.nextProbeAt;
      h.alive.add(A);
      expect((await h.watcher.run()).revived).to.deep.equal([`api:b ${A}`]);
    };
    for (let i = 0; i < 6; i++) await flap();
    expect(intervals).to.deep.equal([60_000, 120_000, 240_000, 480_000, 600_000, 600_000]);
    expect(FLAP_WINDOW_MS).to.equal(300_000);
    expect(BACKOFF_CAP).to.equal(10);
    // Healthy for the window since its last comeback: back to the route's interval.
    h.clock += FLAP_WINDOW_MS;
    await flap();
    expect(intervals.at(-1)).to.equal(60_000);
    // Just inside the window: doubled again.
    h.clock += FLAP_WINDOW_MS - 1;
    await flap();
    expect(intervals.at(-1)).to.equal(120_000);
  });

  it('reads the pool every min(5s, the smallest watched fail_duration / 2), never below 1s', () => {
    const h = harness([route('api:w', ['w.example.test'], [A, B])]);
    expect(h.watcher.watchMs()).to.equal(RECOVERY_WATCH_MS);
    h.routes.push(route('api:x', ['x.example.test'], [A, B], { health: { passive: { fail_duration: '4s' } } }));
    expect(h.watcher.watchMs()).to.equal(2_000);
    h.routes.push(route('api:y', ['y.example.test'], [A, B], { health: { passive: { fail_duration: '1s' } } }));
    expect(h.watcher.watchMs()).to.equal(1_000);
    // Not watched (an active check brings it back): its fail_duration does not count.
    h.routes = [route('api:z', ['z.example.test'], [A, B], { health: { passive: { fail_duration: '1s' }, active: { path: '/hz' } } })];
    expect(h.watcher.watchMs()).to.equal(RECOVERY_WATCH_MS);
  });
});

/** A backend on loopback whose handler the test drives; `sockets` resolves each connection's close. */
async function slowBackend(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const requests: http.IncomingMessage[] = [];
  const closed: Promise<void>[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    server.emit('seen', req);
    handler(req, res);
  });
  server.on('connection', (sock) => closed.push(new Promise<void>((r) => sock.once('close', () => r()))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    dial: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    requested: () => (requests.length ? Promise.resolve() : (once(server, 'seen').then(() => undefined) as Promise<void>)),
    // Every connection closed, and the server's own count caught up (its close handler may run after ours).
    allClosed: async () => (await Promise.all(closed), await new Promise((r) => setImmediate(r))),
    connections: () => new Promise<number>((r, j) => server.getConnections((e, n) => (e ? j(e) : r(n)))),
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A watcher with the real HTTP probe and manual timers that remember each delay asked for. */
function realWatcher(routes: DesiredRoute[], failing: string) {
  const manual = new ManualTimers();
  const delays: number[] = [];
  const watcher = new RecoveryWatcher({
    now: () => 1_000_000,
    timers: { setTimeout: (fn, ms) => (delays.push(ms), manual.setTimeout(fn)), clearTimeout: manual.clearTimeout },
    routes: () => routes,
    pool: () => Promise.resolve(new Map([[failing, { requests: 1, fails: 1 }]])),
    onChange: () => undefined,
  });
  return { watcher, manual, delays };
}

describe('proxy/recovery: the real probe has a deadline, drops the body, stops with the watcher', () => {
  it('a backend that never sends its headers: down when the deadline (5s, or unhealthy_latency) fires', async () => {
    const slow = await slowBackend(() => undefined);
    try {
      for (const [health, deadline] of [[undefined, RECOVERY_PROBE_TIMEOUT_MS], [{ passive: { unhealthy_latency: '250ms' } }, 250]] as const) {
        const { watcher, manual, delays } = realWatcher([route('api:slow', ['s.example.test'], [slow.dial, B], health ? { health } : {})], slow.dial);
        const run = watcher.run();
        await slow.requested();
        expect(delays).to.deep.equal([deadline]);
        expect(manual.fire()).to.equal(1);
        expect((await run).marked).to.deep.equal([`api:slow ${slow.dial}`]);
      }
      await slow.allClosed();
      expect(await slow.connections()).to.equal(0);
    } finally {
      await slow.close();
    }
  });

  it('a body that streams forever: the status decides at once and the socket is closed', async () => {
    const stream = await slowBackend((_req, res) => {
      res.writeHead(200);
      res.write('x'.repeat(1024));
    });
    try {
      const { watcher, manual } = realWatcher([route('api:st', ['st.example.test'], [stream.dial, B])], stream.dial);
      expect((await watcher.run()).spared).to.deep.equal([`api:st ${stream.dial}`]);
      expect(manual.pending.size, 'its deadline cleared').to.equal(0);
      await stream.allClosed();
      expect(await stream.connections()).to.equal(0);
    } finally {
      await stream.close();
    }
  });

  it('stop() during a probe aborts it and waits for the run: no socket left open, nothing decided', async () => {
    const slow = await slowBackend(() => undefined);
    try {
      const { watcher, manual } = realWatcher([route('api:stop', ['p.example.test'], [slow.dial, B])], slow.dial);
      const runs: RecoveryRun[] = [];
      watcher.on('run', (r: RecoveryRun) => runs.push(r));
      watcher.start();
      manual.fire();
      await slow.requested();
      await watcher.stop();
      expect(runs).to.have.length(1);
      expect(runs[0]!.marked).to.deep.equal([]);
      expect(watcher.all()).to.deep.equal([]);
      await slow.allClosed();
      expect(await slow.connections()).to.equal(0);
      expect(manual.pending.size, 'no timer left: no next run, no deadline').to.equal(0);
    } finally {
      await slow.close();
    }
  });
});

describe('proxy/recovery: probe, views, model', () => {
  it('HTTPS probes send the dialled host as SNI (none for an IP), never the Host header', async () => {
    const ca = makeCa();
    const leaf = makeLeaf(ca, ['backend.internal']);
    const sni: (string | false | null)[] = [];
    const server = https.createServer({ cert: leaf.cert, key: leaf.key }, (_req, res) => res.writeHead(204).end());
    server.on('secureConnection', (s: tls.TLSSocket) => sni.push(s.servername));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const dial = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const never = new AbortController().signal;
    try {
      expect(await httpRecoveryProbe({ dial, host: 'w.example.test', tls: 'insecure' }, never)).to.equal(204);
      expect(await httpRecoveryProbe({ dial, host: 'w.example.test', tls: 'insecure', serverName: 'backend.internal' }, never)).to.equal(204);
      expect(sni).to.deep.equal([false, 'backend.internal']);
      // Verified: the test CA is not trusted, so the handshake fails (down), whatever the name.
      expect(await httpRecoveryProbe({ dial, host: 'w.example.test', tls: 'verify', serverName: 'backend.internal' }, never)).to.equal(null);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    // A dial by name: that name is the SNI and the name verified, as Caddy does it.
    expect(probeTlsOptions({ dial: 'backend.internal:443', host: 'w.example.test', tls: 'verify' }, 'backend.internal')).to.deep.equal({ rejectUnauthorized: true, servername: 'backend.internal' });
    expect(probeTlsOptions({ dial: '[::1]:443', host: 'w.example.test', tls: 'insecure' }, '::1')).to.deep.equal({ rejectUnauthorized: false, servername: '' });
  });

  it('the HTTP probe: below 500 alive, 5xx / refused / timeout down; Host is the route host', async () => {
    let status = 404;
    const seen: string[] = [];
    const server = http.createServer((req, res) => (seen.push(`${req.headers.host} ${req.url}`), res.writeHead(status).end()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const dial = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    try {
      const never = new AbortController().signal;
      expect(await httpRecoveryProbe({ dial, host: 'w.example.test', tls: 'off' }, never)).to.equal(404);
      status = 503;
      expect(await httpRecoveryProbe({ dial, host: 'w.example.test', tls: 'off' }, never)).to.equal(503);
      expect(seen).to.deep.equal(['w.example.test /', 'w.example.test /']);
      // HTTPS to a plain HTTP listener: the handshake fails, so no status.
      expect(await httpRecoveryProbe({ dial, host: 'w.example.test', tls: 'insecure' }, never)).to.equal(null);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    expect(await httpRecoveryProbe({ dial, host: 'w.example.test', tls: 'off' }, new AbortController().signal), 'refused').to.equal(null);
    const r = route('api:w', ['*.w.example.test'], [A], { headers: { upstream_tls: 'verify', upstream_tls_server_name: 'b.example.test' } });
    expect(probeTarget(r, A)).to.deep.equal({ dial: A, host: 'w.example.test', tls: 'verify', serverName: 'b.example.test' });
  });

  it('backend_health shows a health-dead backend as down with reason, since and next probe', () => {
    const marks = new Map([[B, { since: Date.UTC(2026, 0, 1), nextProbeAt: Date.UTC(2026, 0, 1, 0, 1), intervalMs: 60_000 }]]);
    const pool = new Map([[A, { requests: 1, fails: 0 }]]);
    expect(backendHealth([A, B], { [A]: { dead: true } }, (u) => [u], pool, marks)).to.deep.equal([
      { address: A, state: 'dead', fails: 0, requests: 1 },
      { address: B, state: 'down', fails: 0, requests: 0, reason: 'failed requests; probed every 60s', since: '2026-01-01T00:00:00.000Z', next_probe_at: '2026-01-01T00:01:00.000Z' },
    ]);
    // dnsproxy routes: the reason beside the state; by hand stays `(dead)`.
    expect(upstreamText(B, undefined, { state: 'down', reason: 'failed requests; probed every 60s' })).to.equal(`${B} (down: failed requests; probed every 60s)`);
    expect(upstreamText(A, { dead: true }, { state: 'dead' })).to.equal(`${A} (dead)`);
    expect(upstreamText(C, { weight: 2 }, { state: 'failing' })).to.equal(`${C} x2 (failing)`);
    const odd = new Map([[B, { since: 0, nextProbeAt: 1500, intervalMs: 1500 }]]);
    expect(backendHealth([B], undefined, (u) => [u], pool, odd)[0]!.reason).to.equal('failed requests; probed every 1500ms');
  });

  it('health.recovery_interval: a duration of at least 1s, else 400-worthy naming the field; the export mentions it', () => {
    const issues = (health: unknown) => {
      const r = routeBody.safeParse({ hosts: ['a.home.arpa'], upstreams: ['192.0.2.1:80'], health });
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    expect(issues({ recovery_interval: '999ms' })).to.deep.equal(['health.recovery_interval: must be at least 1s']);
    expect(issues({ recovery_interval: 'soon' })).to.deep.equal(['health.recovery_interval: must be a duration such as 250ms, 2s or 1m']);
    expect(issues({ recovery_interval: 60 })[0]).to.match(/^health\.recovery_interval/);
    expect(issues({ recovery_interval: '1s', passive: { max_fails: 2 } })).to.deep.equal([]);
    const text = caddyfileExport({ settings: SETTINGS, routes: [route('api:x', ['x.example.test'], [A, B], { health: { recovery_interval: '90s' } }), route('api:y', ['y.example.test'], [A, B], { health: { active: { path: '/hz' } } })] });
    expect(text).to.include('probed back every 90s');
    expect(text.match(/probed back every/g)).to.have.length(1);
  });
});

describe('api: health.recovery_interval', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());
  const req = (method: 'GET' | 'POST', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });

  it('stores it on routes and records; 400 naming the field under 1s or not a duration', async () => {
    const health = { passive: { max_fails: 2 }, recovery_interval: '30s' };
    const res = await req('POST', '/api/v1/routes', { hosts: ['rc.home.arpa'], upstreams: ['192.0.2.5:80', '192.0.2.6:80'], health });
    expect(res.statusCode, res.body).to.equal(201);
    expect((await req('GET', `/api/v1/routes/${res.json().route.id}`)).json().route.health).to.deep.equal(health);
    for (const bad of ['500ms', '0s', 'a minute']) {
      const r = await req('POST', '/api/v1/routes', { hosts: ['rx.home.arpa'], upstreams: ['192.0.2.5:80'], health: { recovery_interval: bad } });
      expect(r.statusCode, bad).to.equal(400);
      expect(r.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['health.recovery_interval']);
    }
    const rec = await req('POST', '/add-record', { service_name: 'web', name: 'web', port: 80, forward_to_ip: '192.0.2.5', proxy_enabled: true, health: { recovery_interval: '100ms' } });
    expect(rec.statusCode).to.equal(400);
    expect(JSON.stringify(rec.json().error.fields)).to.include('recovery_interval');
  });
});
