// The change pipeline (src/proxy/pipeline.ts) through the controller's own wiring (wire()):
// stage order, nothing rendered on the writer's stack, no stale push whatever the start order.
import { expect } from 'chai';
import { wire, type Wired } from '../../src/controller.js';
import { loadConfig } from '../../src/config/load.js';
import { openDb, type Db } from '../../src/store/db.js';
import { zoneResolver } from '../../src/proxy/resolve.js';
import { FakeCaddy } from './reconcile-fixture.js';
import { tempDir } from '../helpers/tmp.js';
import { setLogLevel } from '../../src/log/index.js';
import { proxyPasses } from '../../src/metrics.js';
import { ManualClock } from '../helpers/clock.js';

setLogLevel('warn');

const ZONE = 'home.arpa.';
const a = (name: string, ip: string, proxy?: { upstreams: string[] }) => ({
  name: `${name}.${ZONE}`,
  zone: ZONE,
  data: { type: 'A' as const, values: [ip] },
  ttl: 300,
  proxy: proxy ? { enabled: true, upstreams: proxy.upstreams } : null,
  service_name: null,
});

/** dnsproxy_proxy_passes_total for one outcome (the process-wide counter: compare before and after). */
const passes = async (outcome: string) => (await proxyPasses.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

/** Dials in a config Caddy runs (any depth). */
function dials(config: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if (k === 'dial' && typeof x === 'string') out.push(x);
        else walk(x);
      }
  };
  walk(config);
  return out.sort();
}

describe('change pipeline', function () {
  this.timeout(30_000);
  let tmp: ReturnType<typeof tempDir>;
  let db: Db;
  let w: Wired;
  let caddy: FakeCaddy;
  let queue: (() => void)[];
  const drain = () => {
    while (queue.length) queue.shift()!();
  };

  let clock = 1_000_000;
  function setup(resolver?: string, manual?: ManualClock): void {
    tmp = tempDir();
    db = openDb(tmp.dir);
    caddy = new FakeCaddy();
    queue = [];
    const config = loadConfig({ env: { DNSPROXY_DATA_DIR: tmp.dir, DNSPROXY_NODE_IP: '192.0.2.10' }, interfaces: {} });
    const reconciler = manual ? { debounceMs: 150, maxWaitMs: 1_000, driftPollMs: 60_000, now: manual.now, timers: manual } : { debounceMs: 0, maxWaitMs: 0, driftPollMs: 60_000, now: () => clock };
    w = wire(config, { db, caddy, reconciler, defer: (fn) => queue.push(fn) });
    if (resolver) w.proxy.useResolver(resolver);
  }
  afterEach(async () => {
    drain();
    await w?.pipeline.settled();
    await w?.reconciler?.stop();
    db?.close();
    tmp?.cleanup();
  });

  async function settle(): Promise<void> {
    for (let i = 0; i < 20 && queue.length; i++) {
      drain();
      await w.pipeline.settled();
    }
    await w.reconciler!.flush();
  }

  it('runs index → desired → reconcile in that order, off the writer stack', async () => {
    setup();
    const order: string[] = [];
    const apply = w.index.apply.bind(w.index);
    w.index.apply = (c, cb) => (order.push('index'), apply(c, cb));
    const split = w.proxy.split.bind(w.proxy);
    w.proxy.split = () => (order.push('desired'), split());
    const trigger = w.reconciler!.trigger.bind(w.reconciler!);
    w.reconciler!.trigger = () => (order.push('reconcile'), trigger());
    w.pipeline.start();
    w.reconciler!.start();
    await settle();
    order.length = 0;
    const loads = caddy.loads.length;
    w.api.transaction(() => w.records.put([a('app', '192.0.2.10', { upstreams: ['192.0.2.7:8080'] })]));
    // The write returned: the index has it, nothing was rendered or pushed yet.
    expect(order).to.deep.equal(['index']);
    expect(caddy.loads.length).to.equal(loads);
    await settle();
    expect(order.slice(0, 3)).to.deep.equal(['index', 'desired', 'reconcile']);
    expect(dials(caddy.running)).to.deep.equal(['192.0.2.7:8080']);
  });

  for (const first of ['reconciler', 'pipeline'] as const)
    it(`an upstream name in our zone is pushed with its new address (${first} started first)`, async () => {
      setup();
      w.records.put([a('db', '192.0.2.1')]);
      w.routes.put({ hosts: ['app.home.arpa'], upstreams: ['db.home.arpa:5432'], tls: 'off' });
      if (first === 'reconciler') w.reconciler!.start();
      w.pipeline.start();
      if (first === 'pipeline') w.reconciler!.start();
      await settle();
      expect(dials(caddy.running)).to.deep.equal(['192.0.2.1:5432']);
      // The reconciler reads desired state whenever it likes: it must never see the old address
      // once the index serves the new one.
      const resolve = zoneResolver(w.index);
      let stale = 0;
      const desired = w.proxy.desired.bind(w.proxy);
      w.proxy.desired = () => {
        const d = desired();
        if (resolve('db.home.arpa')?.[0] === '192.0.2.2' && dials(d.routes.map((r) => r.upstreams.map((dial) => ({ dial })))).includes('192.0.2.1:5432')) stale++;
        return d;
      };
      w.api.transaction(() => w.records.put([a('db', '192.0.2.2')]));
      await w.reconciler!.flush(); // a push forced before the pipeline ran
      await settle();
      expect(stale).to.equal(0);
      expect(dials(caddy.running)).to.deep.equal(['192.0.2.2:5432']);
    });

  it('a plain record change goes to the DNS table only: the reconciler is not triggered', async () => {
    setup('udp/127.0.0.1:53');
    w.pipeline.start();
    w.reconciler!.start();
    await settle();
    const triggers = w.pipeline.counts.triggers;
    const loads = caddy.loads.length;
    const [unchanged, triggered] = [await passes('unchanged'), await passes('trigger')];
    w.api.transaction(() => w.records.put([a('plain', '192.0.2.10', { upstreams: ['192.0.2.8:80'] })]));
    await settle();
    expect(w.pipeline.counts.triggers).to.equal(triggers);
    // /metrics shows the pass ran and asked nothing of Caddy.
    expect(await passes('unchanged')).to.equal(unchanged + 1);
    expect(await passes('trigger')).to.equal(triggered);
    expect(caddy.loads.length).to.equal(loads);
    expect(w.plain.answer('_px._tcp.plain.home.arpa.', '_px._tcp.plain.home.arpa.', 'SRV')).to.have.length(1);
    expect(w.proxy.views().find((r) => r.id === 'record:plain.home.arpa')).to.include({ mode: 'dynamic', status: 'active' });
    // A route of its own for the same host makes the name explicit: one trigger, DNS entry gone.
    w.api.transaction(() => w.routes.put({ hosts: ['plain.home.arpa'], path: '/admin', upstreams: ['192.0.2.9:80'], tls: 'off' }));
    await settle();
    expect(w.pipeline.counts.triggers).to.equal(triggers + 1);
    expect(await passes('trigger')).to.equal(triggered + 1);
    expect(w.plain.has('plain.home.arpa')).to.equal(false);
    expect(w.proxy.views().find((r) => r.id === 'record:plain.home.arpa')).to.include({ mode: 'explicit', status: 'active' });
    expect(dials(caddy.running)).to.include('192.0.2.8:80');
  });

  it('removing a plain name that had a websocket loads Caddy once (close_sessions); one that never had one, or whose upgrade predates the last load, stays DNS-only', async () => {
    setup('udp/127.0.0.1:53');
    w.pipeline.start();
    w.reconciler!.start();
    await settle();
    const put = (name: string) => w.api.transaction(() => w.records.put([a(name, '192.0.2.10', { upstreams: ['192.0.2.8:80'] })]));
    const drop = (name: string) => w.api.transaction(() => w.records.remove(`${name}.${ZONE}`, 'A'));
    for (const n of ['ws', 'quiet', 'old']) put(n);
    await settle();
    const loads = () => w.reconciler!.state().loads;
    const base = loads();
    // Caddy's upgrade question for `ws` and `old` (a websocket opened through each); `old`'s before a later load.
    const up = (host: string) => expect(w.plain.answer(`_ws._px._tcp.${host}.`, `_ws._px._tcp.${host}.`, 'SRV')).to.have.length(1);
    up('old.home.arpa');
    clock += 60_000;
    w.api.transaction(() => w.routes.put({ hosts: ['other.home.arpa'], upstreams: ['192.0.2.9:80'], tls: 'off' }));
    await settle();
    expect(loads().change).to.equal(base.change + 1);
    clock += 60_000;
    up('ws.home.arpa');
    // The other names' question kinds are not upgrades.
    expect(w.plain.answer('_px._tcp.quiet.home.arpa.', '_px._tcp.quiet.home.arpa.', 'SRV')).to.have.length(1);

    // A dry run predicts the extra load for `ws` only.
    const all = w.proxy.build().routes;
    const without = (id: string) => all.filter((r) => r.id !== id);
    expect(w.proxy.extraReload(all, without('record:ws.home.arpa'))).to.equal(true);
    expect(w.proxy.extraReload(all, without('record:quiet.home.arpa'))).to.equal(false);
    expect(w.proxy.extraReload(all, without('record:old.home.arpa'))).to.equal(false);
    drop('quiet');
    drop('old');
    await settle();
    expect(loads().close_sessions).to.equal(0);
    expect(caddy.forced).to.equal(0);
    expect(w.pipeline.counts.closeSessions).to.equal(0);

    drop('ws');
    await settle();
    expect(w.pipeline.counts.closeSessions).to.equal(1);
    expect(loads().close_sessions).to.equal(1);
    expect(caddy.forced).to.equal(1);
    expect(loads().change).to.equal(base.change + 1);
    // Loaded once: nothing else is stranded now.
    put('ws');
    await settle();
    drop('ws');
    await settle();
    expect(loads().close_sessions).to.equal(1);
  });

  it('before any load of its own (a config adopted at start), a removed plain name may have sessions: one load', async () => {
    setup('udp/127.0.0.1:53');
    w.api.transaction(() => w.records.put([a('x', '192.0.2.10', { upstreams: ['192.0.2.8:80'] })]));
    w.pipeline.start();
    drain();
    await w.pipeline.settled();
    // No reconciler start: it has loaded nothing, so lastLoadAt() is null.
    expect(w.reconciler!.lastLoadAt()).to.equal(null);
    w.api.transaction(() => w.records.remove(`x.${ZONE}`, 'A'));
    drain();
    await w.pipeline.settled();
    expect(w.pipeline.counts.closeSessions).to.equal(1);
  });

  it('the first TLS plain name brings the on-demand HTTPS part (one load, predicted by a dry run); later ones change DNS only', async () => {
    setup();
    w.proxy.useResolver('udp/127.0.0.1:53', { issuer: 'internal', ask: 'http://127.0.0.1:1/ask', rateLimit: { interval: '1m', burst: 60 } });
    w.pipeline.start();
    w.reconciler!.start();
    await settle();
    const https = () => Boolean((caddy.running?.apps as { http: { servers: Record<string, unknown> } }).http.servers['dnsproxy-https']);
    expect(https()).to.equal(false);
    const tlsRec = (name: string) => ({ ...a(name, '192.0.2.10'), proxy: { enabled: true, upstreams: ['192.0.2.8:443'], tls: 'internal' as const } });
    const route = (name: string) => ({ id: `record:${name}.home.arpa`, hosts: [`${name}.home.arpa`], path: null, upstreams: ['192.0.2.8:443'], tls: 'internal' as const, health_path: null });
    expect(w.proxy.extraReload([], [route('s1')])).to.equal(true);
    const loads = caddy.loads.length;
    w.api.transaction(() => w.records.put([tlsRec('s1')]));
    await settle();
    expect(caddy.loads.length).to.equal(loads + 1);
    expect(https()).to.equal(true);
    expect(w.proxy.views().find((r) => r.id === 'record:s1.home.arpa')).to.include({ mode: 'dynamic', status: 'active' });
    expect(w.plain.get('s1.home.arpa')?.tls).to.equal('internal');
    expect(w.proxy.extraReload([route('s1')], [route('s1'), route('s2')])).to.equal(false);
    w.api.transaction(() => w.records.put([tlsRec('s2')]));
    await settle();
    w.api.transaction(() => w.records.remove(`s1.${ZONE}`, 'A'));
    await settle();
    expect(caddy.loads.length).to.equal(loads + 1);
    expect(https()).to.equal(true);
  });

  // The reconciler's debounce on a clock the test moves: how many loads a burst of explicit route
  // adds costs depends on their spacing in time only, never on how busy the machine is.
  for (const [spacingMs, expected] of [
    [1, 1], // 300 adds in 0.3 s: one debounce window → one load
    [8, 3], // 300 adds in 2.4 s: the 1 s max wait forces a load per second → three
  ] as const)
    it(`300 explicit route adds ${spacingMs} ms apart (manual clock) cost exactly ${expected} Caddy load(s)`, async function () {
      this.timeout(120_000); // each add is a durable commit and rebuilds the explicit routes (as a real one does)
      const clock = new ManualClock();
      setup(undefined, clock);
      w.pipeline.start();
      w.reconciler!.start();
      drain();
      await w.pipeline.settled();
      await w.reconciler!.flush();
      const loads = caddy.loads.length;
      for (let i = 0; i < 300; i++) {
        w.api.transaction(() => w.routes.put({ hosts: [`r${i}.home.arpa`], upstreams: ['192.0.2.7:8080'], tls: 'off' }));
        drain(); // the pipeline's run: the explicit routes changed, so it triggers the reconciler
        await w.pipeline.settled();
        clock.advance(spacingMs);
        await new Promise((r) => setImmediate(r)); // a push the clock started goes out
      }
      clock.advance(1_000);
      await w.reconciler!.flush();
      expect(caddy.loads.length - loads).to.equal(expected);
      expect(dials(caddy.running)).to.have.length(300);
    });
});
