// Reconciler against an in-memory Caddy: coalescing, skipping, latest-state-wins, quarantine,
// backoff, drift and stop(). Short debounce; what a test says did NOT happen runs on a manual
// clock (injected now/timers), so "nothing more is due" is shown, not slept on.
import { expect } from 'chai';
import winston from 'winston';
import { CaddyRejected } from '../../src/proxy/caddy.js';
import { parseRoutePosition, routesAt } from '../../src/proxy/quarantine.js';
import type { AppliedStatus as RouteStatus } from '../../src/model/route.js';
import { RETRY_MIN_MS, Reconciler, type PollOutcome, type ReconcilerOptions } from '../../src/proxy/reconcile.js';
import type { DesiredProxy } from '../../src/proxy/types.js';
import { FakeCaddy, desired, fakeVerdict, route, testRender } from './reconcile-fixture.js';
import { ManualClock, turn } from '../helpers/clock.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const silent = winston.createLogger({ silent: true });

async function until(cond: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(5);
  }
}

/** Drift poll outcomes as onPoll reports them; `after(n)` resolves once `n` polls were reported in all. */
function pollLog() {
  const seen: PollOutcome[] = [];
  let waiters: { n: number; resolve: () => void }[] = [];
  return {
    seen,
    onPoll: (o: PollOutcome) => {
      seen.push(o);
      waiters = waiters.filter((w) => (seen.length >= w.n ? (w.resolve(), false) : true));
    },
    after: (n: number) => new Promise<void>((resolve) => (seen.length >= n ? resolve() : waiters.push({ n, resolve }))),
    /** Resolves at the first poll from now on that reported `outcome`. */
    next(outcome: PollOutcome): Promise<number> {
      const from = seen.length;
      return new Promise((resolve) => {
        const look = () => {
          const i = seen.indexOf(outcome, from);
          if (i >= 0) return resolve(i);
          waiters.push({ n: seen.length + 1, resolve: look });
        };
        look();
      });
    },
  };
}

function setup(state: DesiredProxy, opts: Partial<ReconcilerOptions> = {}) {
  const caddy = new FakeCaddy();
  const box = { state, statuses: new Map<string, RouteStatus>(), reports: 0 };
  const rec = new Reconciler({
    desired: () => box.state,
    render: testRender,
    caddy,
    onStatus: (s) => {
      box.statuses = s;
      box.reports++;
    },
    debounceMs: 10,
    maxWaitMs: 100,
    driftPollMs: 60_000,
    log: silent,
    ...opts,
  });
  return { caddy, box, rec };
}

describe('proxy reconciler (fake Caddy)', () => {
  let stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(stops.map((s) => s()));
    stops = [];
  });
  const track = <T extends { rec: Reconciler }>(x: T): T => {
    stops.push(() => x.rec.stop());
    return x;
  };

  it('coalesces a burst of 500 triggers into 2 loads: the first at once, then the final state', async () => {
    const clock = new ManualClock();
    const { caddy, box, rec } = track(setup(desired([route('a', '192.0.2.1:80')]), { now: clock.now, timers: clock }));
    rec.start();
    await rec.flush();
    const before = caddy.loads.length;
    // 500 triggers over 50 ms of the clock: every gap below debounceMs (10), the burst inside maxWaitMs (100).
    for (let i = 0; i < 500; i++) {
      box.state = desired([route('a', '192.0.2.1:80'), route(`n${i}`, `192.0.2.2:${1000 + i}`)]);
      rec.trigger();
      if (i % 50 === 0) {
        clock.advance(5);
        await turn();
      }
    }
    clock.advance(10);
    await until(() => rec.state().inSync);
    // In sync: nothing dirty, nothing in flight; and no timer but the drift poll (60 s) is left to push.
    clock.advance(1_000);
    await turn();
    expect(clock.pending).to.equal(1);
    expect(caddy.loads.length - before).to.equal(2);
    expect(caddy.hosts()).to.deep.equal(['a.example.test', 'n499.example.test']);
  });

  it('pushes an isolated change at once (leading edge), then coalesces what follows', async () => {
    const clock = new ManualClock();
    const { caddy, box, rec } = track(setup(desired([route('a', '192.0.2.1:80')]), { debounceMs: 300, maxWaitMs: 1_000, now: clock.now, timers: clock }));
    rec.start();
    await until(() => rec.state().inSync);
    clock.advance(320);
    box.state = desired([route('a', '192.0.2.1:80'), route('b', '192.0.2.2:80')]);
    const t0 = clock.now();
    rec.trigger();
    await until(() => caddy.loads.length === 2);
    // Pushed without waiting for any timer: the clock has not moved.
    expect(clock.now() - t0).to.equal(0);
    for (const id of ['c', 'd', 'e']) {
      box.state = desired([route('a', '192.0.2.1:80'), route(id, '192.0.2.3:80')]);
      rec.trigger();
    }
    // One tick before the debounce runs out, nothing is pushed; at the tick, the last state is.
    clock.advance(299);
    await until(() => caddy.inflight === 0);
    await turn();
    expect(caddy.loads).to.have.length(2);
    clock.advance(1);
    await until(() => caddy.loads.length === 3);
    expect(caddy.hosts()).to.deep.equal(['a.example.test', 'e.example.test']);
  });

  it('does not push an unchanged state again', async () => {
    const clock = new ManualClock();
    const { caddy, rec } = track(setup(desired([route('a', '192.0.2.1:80'), route('b', '192.0.2.2:80')]), { now: clock.now, timers: clock }));
    rec.start();
    await rec.flush();
    expect(caddy.loads).to.have.length(1);
    for (let i = 0; i < 20; i++) rec.trigger();
    // Past maxWaitMs: the coalesced push has run (and found nothing to load).
    clock.advance(100);
    await until(() => rec.state().inSync);
    expect(clock.pending).to.equal(1); // the drift poll only
    await rec.flush();
    expect(caddy.loads).to.have.length(1);
    expect(rec.state()).to.include({ applies: 1, failures: 0, inSync: true, caddyUp: true });
  });

  it('triggers during an in-flight push cause exactly one more push, with the latest state', async () => {
    const clock = new ManualClock();
    const { caddy, box, rec } = track(setup(desired([route('a', '192.0.2.1:80')]), { now: clock.now, timers: clock }));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const load = caddy.load.bind(caddy);
    let first = true;
    // The first load stays in flight until the test releases it.
    caddy.load = async (config, json, force) => {
      if (first) {
        first = false;
        caddy.inflight++;
        await held;
        caddy.inflight--;
      }
      return load(config, json, force);
    };
    rec.start();
    await until(() => caddy.inflight === 1);
    for (const id of ['b', 'c', 'd']) {
      box.state = desired([route('a', '192.0.2.1:80'), route(id, '192.0.2.9:80')]);
      rec.trigger();
      clock.advance(20);
    }
    release();
    await until(() => rec.state().inSync);
    // In sync, and no timer left but the drift poll: no further push can come.
    expect(clock.pending).to.equal(1);
    expect(caddy.loads).to.have.length(2);
    expect(caddy.maxInflight).to.equal(1);
    expect(caddy.hosts()).to.deep.equal(['a.example.test', 'd.example.test']);
  });

  for (const withValidator of [true, false]) {
    it(`quarantines a rejected route with Caddy's message and pushes the others (${withValidator ? 'validator' : 'position parsing only'})`, async () => {
      const validations: number[] = [];
      const validate = async (c: Record<string, unknown>) => (validations.push(1), fakeVerdict(c));
      const { caddy, box, rec } = track(
        setup(desired([route('a', '192.0.2.1:80'), route('b', 'bad:1'), route('c', '192.0.2.3:80')]), withValidator ? { validate } : {}),
      );
      await rec.flush();
      expect(caddy.hosts()).to.deep.equal(['a.example.test', 'c.example.test']);
      expect(box.statuses.get('a')).to.deep.equal({ status: 'active', error: null });
      expect(box.statuses.get('c')).to.deep.equal({ status: 'active', error: null });
      expect(box.statuses.get('b')?.status).to.equal('error');
      expect(box.statuses.get('b')?.error).to.match(/invalid dial "bad:1"/);
      expect(rec.state().quarantined).to.deep.equal(['b']);
      expect(rec.applied()?.routes.map((r) => r.id)).to.deep.equal(['a', 'c']);
      // Only the rejected first load touched Caddy besides the good one; the rest was validated aside.
      expect(caddy.loads).to.have.length(2);
      if (withValidator) expect(validations.length).to.be.within(1, 2);
    });
  }

  it('finds several bad routes by position, each with its own message', async () => {
    const routes = [route('a', 'bad:a'), ...Array.from({ length: 30 }, (_, i) => route(`r${String(i).padStart(2, '0')}`, `192.0.2.${i + 1}:80`)), route('z', 'bad:z')];
    const { caddy, box, rec } = track(setup(desired(routes), { validate: async (c) => fakeVerdict(c) }));
    await rec.flush();
    expect(rec.state().quarantined).to.deep.equal(['a', 'z']);
    expect(box.statuses.get('a')?.error).to.match(/"bad:a"/);
    expect(box.statuses.get('z')?.error).to.match(/"bad:z"/);
    expect(caddy.hosts()).to.have.length(30);
  });

  it('bisects with the validator when the error names no route position', async () => {
    const routes = Array.from({ length: 40 }, (_, i) => route(`r${String(i).padStart(2, '0')}`, i === 27 ? 'badtls:27' : `192.0.2.${i + 1}:80`));
    let validations = 0;
    const { caddy, box, rec } = track(setup(desired(routes), { validate: async (c) => (validations++, fakeVerdict(c)) }));
    await rec.flush();
    expect(rec.state().quarantined).to.deep.equal(['r27']);
    expect(box.statuses.get('r27')?.error).to.match(/unusable upstream badtls:27/);
    expect(caddy.hosts()).to.have.length(39);
    expect(validations).to.be.at.most(2 + Math.ceil(Math.log2(40)) + 1);
  });

  it('blames the new route, not the ones Caddy already ran, when bisecting', async () => {
    const good = Array.from({ length: 10 }, (_, i) => route(`r${i}`, `192.0.2.${i + 1}:80`));
    // Fails only when both r3 and "a-new" are present (an interaction), never by position.
    const validate = async (c: Record<string, unknown>) => {
      const s = JSON.stringify(c);
      return s.includes('r3.example.test') && s.includes('a-new.example.test') ? 'loading tls app module: conflict between r3 and a-new' : null;
    };
    const { caddy, box, rec } = track(setup(desired(good), { validate }));
    await rec.flush();
    caddy.load = async function (this: FakeCaddy, config) {
      const err = await validate(config);
      if (err) throw new CaddyRejected(400, err);
      this.running = config;
    };
    box.state = desired([...good, route('a-new', '192.0.2.99:80')]);
    await rec.flush();
    expect(rec.state().quarantined).to.deep.equal(['a-new']);
    expect(box.statuses.get('r3')?.status).to.equal('active');
  });

  it('without a validator, an error naming no route leaves the old config running and reports it', async () => {
    const { caddy, box, rec } = track(setup(desired([route('a', '192.0.2.1:80')])));
    await rec.flush();
    box.state = desired([route('a', '192.0.2.1:80'), route('b', 'badtls:1')]);
    await rec.flush();
    expect(caddy.hosts()).to.deep.equal(['a.example.test']);
    expect(box.statuses.get('a')).to.deep.equal({ status: 'active', error: null });
    expect(box.statuses.get('b')).to.deep.include({ status: 'error' });
    expect(rec.state().lastError).to.match(/unusable upstream/);
    expect(rec.state().quarantined).to.deep.equal([]);
  });

  it('retries a quarantined route once its content changes, and not before', async () => {
    const { caddy, box, rec } = track(setup(desired([route('a', '192.0.2.1:80'), route('b', 'bad:1')]), { validate: async (c) => fakeVerdict(c) }));
    await rec.flush();
    const loads = caddy.loads.length;
    rec.trigger();
    await rec.flush();
    expect(caddy.loads.length).to.equal(loads);
    box.state = desired([route('a', '192.0.2.1:80'), route('b', '192.0.2.2:80')]);
    await rec.flush();
    expect(rec.state().quarantined).to.deep.equal([]);
    expect(box.statuses.get('b')).to.deep.equal({ status: 'active', error: null });
    expect(caddy.hosts()).to.deep.equal(['a.example.test', 'b.example.test']);
  });

  it('keeps the desired state while Caddy is down, retries with backoff, then applies', async () => {
    const clock = new ManualClock();
    const { caddy, rec } = track(setup(desired([route('a', '192.0.2.1:80')]), { now: clock.now, timers: clock }));
    const at: number[] = [];
    const load = caddy.load.bind(caddy);
    caddy.load = (config, json, force) => (at.push(clock.now()), load(config, json, force));
    caddy.down = true;
    rec.start();
    await until(() => at.length === 1 && !rec.state().caddyUp);
    // Each retry is due exactly one backoff after the refused attempt, doubling from RETRY_MIN_MS.
    clock.advance(RETRY_MIN_MS - 1);
    await turn();
    expect(at).to.have.length(1);
    clock.advance(1);
    await until(() => at.length === 2 && clock.pending === 2); // refused, and the next retry armed (besides the drift poll)
    clock.advance(2 * RETRY_MIN_MS);
    await until(() => at.length === 3);
    expect(rec.state()).to.include({ caddyUp: false, applies: 0, inSync: false });
    expect(at.slice(1).map((t, i) => t - at[i]!)).to.deep.equal([RETRY_MIN_MS, 2 * RETRY_MIN_MS]);
    caddy.down = false;
    clock.advance(4 * RETRY_MIN_MS);
    await until(() => rec.state().inSync);
    expect(caddy.hosts()).to.deep.equal(['a.example.test']);
    expect(rec.state().caddyUp).to.equal(true);
  });

  it('re-applies when the marker disappears (restart) or a foreign config is loaded', async () => {
    const { caddy, rec } = track(setup(desired([route('a', '192.0.2.1:80')]), { driftPollMs: 30 }));
    rec.start();
    await until(() => rec.state().inSync);
    caddy.restart({ admin: { listen: '127.0.0.1:2019' } });
    await until(() => caddy.loads.length === 2 && caddy.hosts().length === 1);
    caddy.foreignLoad({ apps: { http: { servers: { other: { listen: [':1'], routes: [] } } } } });
    await until(() => caddy.loads.length === 3 && caddy.hosts().length === 1);
    expect(rec.state().applies).to.equal(3);
  });

  it("reads only Caddy's revision while it stays put; the marker once after each load, without re-applying", async () => {
    const polls = pollLog();
    const { caddy, box, rec } = track(setup(desired([route('a', '192.0.2.1:80')]), { driftPollMs: 5, onPoll: polls.onPoll }));
    rec.start();
    await rec.flush();
    // The first push read the marker once (adopt check) before loading.
    expect(caddy.markerReads).to.equal(1);
    const first = await polls.next('verified');
    expect(caddy.markerReads).to.equal(2);
    await polls.after(first + 1 + 20);
    expect(polls.seen.slice(first + 1, first + 21)).to.deep.equal(Array(20).fill('unchanged'));
    expect(caddy.markerReads).to.equal(2);
    expect(caddy.revisionReads).to.be.at.least(21);
    // Our own load moves the revision: one marker read, it matches, no re-apply.
    box.state = desired([route('a', '192.0.2.1:80'), route('b', '192.0.2.2:80')]);
    rec.trigger();
    await rec.flush();
    const reads = caddy.markerReads;
    const again = await polls.next('verified');
    await polls.after(again + 1 + 10);
    expect(polls.seen.slice(again + 1, again + 11)).to.deep.equal(Array(10).fill('unchanged'));
    expect(caddy.markerReads).to.equal(reads + 1);
    expect(caddy.loads).to.have.length(2);
    expect(rec.state()).to.include({ applies: 2, inSync: true });
  });

  it('a revision that moved under the same marker (a refused foreign load) costs one marker read, no reload', async () => {
    const polls = pollLog();
    const { caddy, rec } = track(setup(desired([route('a', '192.0.2.1:80')]), { driftPollMs: 5, onPoll: polls.onPoll }));
    rec.start();
    await polls.next('verified');
    await polls.next('unchanged');
    caddy.changes++;
    const i = await polls.next('verified');
    expect(polls.seen.slice(0, i).filter((o) => o === 'drift')).to.deep.equal([]);
    expect(caddy.loads).to.have.length(1);
  });

  it("without a revision (Caddy's /metrics silent) the marker is read at every poll, and drift is still found", async () => {
    const polls = pollLog();
    const { caddy, rec } = track(setup(desired([route('a', '192.0.2.1:80')]), { driftPollMs: 5, onPoll: polls.onPoll }));
    caddy.metrics = false;
    rec.start();
    const first = await polls.next('verified');
    const reads = caddy.markerReads;
    await polls.after(first + 1 + 5);
    expect(polls.seen.slice(first + 1, first + 6)).to.deep.equal(Array(5).fill('verified'));
    expect(caddy.markerReads).to.be.at.least(reads + 5);
    caddy.running = null;
    await polls.next('drift');
    await until(() => rec.state().inSync && caddy.hosts().length === 1);
    expect(rec.state().applies).to.equal(2);
  });

  it('before anything is applied, the poll only probes Caddy, and pushes when it comes back', async () => {
    const polls = pollLog();
    const render = (d: DesiredProxy) => testRender({ ...d, routes: d.routes.map((r) => ({ ...r, upstreams: ['badtls:1'] })) });
    const { caddy, rec } = track(setup(desired([route('a', '192.0.2.1:80')]), { driftPollMs: 5, onPoll: polls.onPoll, render }));
    rec.start();
    await polls.next('idle');
    expect(rec.state()).to.include({ lastHash: null, caddyUp: true });
    const reads = caddy.markerReads;
    await polls.next('idle');
    expect(caddy.markerReads).to.equal(reads);
    caddy.down = true;
    await polls.next('down');
    caddy.down = false;
    await polls.next('drift');
  });

  it('adopts the config Caddy already runs (controller restart) without reloading it', async () => {
    const state = desired([route('a', '192.0.2.1:80')]);
    const { caddy, box, rec } = track(setup(state));
    caddy.running = structuredClone(testRender(state).config);
    await rec.flush();
    expect(caddy.loads).to.have.length(0);
    expect(rec.state()).to.include({ inSync: true, applies: 0, caddyUp: true });
    expect(box.statuses.get('a')).to.deep.equal({ status: 'active', error: null });
  });

  it('does not reload after an outage in which Caddy kept its config', async () => {
    const clock = new ManualClock();
    const polls = pollLog();
    const { caddy, rec } = track(setup(desired([route('a', '192.0.2.1:80')]), { driftPollMs: 30, onPoll: polls.onPoll, now: clock.now, timers: clock }));
    /** Runs the next drift poll and resolves with what it found. */
    const poll = async () => {
      const n = polls.seen.length;
      clock.advance(30);
      await polls.after(n + 1);
      return polls.seen[n];
    };
    rec.start();
    await until(() => rec.state().inSync);
    caddy.down = true;
    // 300 ms of outage: polls find Caddy down (or skip while a retry is trying to load).
    for (let i = 0; i < 10; i++) expect(await poll()).to.be.oneOf(['down', 'skipped']);
    expect(polls.seen).to.include('down');
    expect(rec.state().caddyUp).to.equal(false);
    const refused = caddy.attempts.length;
    caddy.down = false;
    // Back: the marker still matches, so Caddy's config is adopted, not reloaded. In sync (the
    // pending retry ran and found nothing to load) and a poll that finds the revision where the
    // marker last matched: the reconciler has settled on it.
    const from = polls.seen.length;
    while (!((await poll()) === 'unchanged' && rec.state().inSync))
      if (polls.seen.length - from > 100) throw new Error(`not settled: ${polls.seen.slice(from).join(',')}`);
    expect(polls.seen.slice(from)).to.not.include('drift');
    expect(caddy.loads).to.have.length(1);
    expect(refused).to.be.at.least(1); // the retry did try to load while Caddy was down
  });

  it('reports routes the renderer skipped as errors with its reason, and not as applied', async () => {
    const render = (d: DesiredProxy) =>
      Object.assign(testRender({ ...d, routes: d.routes.filter((r) => r.id !== 'x') }), { skipped: [{ id: 'x', reason: 'host clashes with route a' }] });
    const { caddy, box, rec } = track(setup(desired([route('a', '192.0.2.1:80'), route('x', '192.0.2.2:80')]), { render }));
    await rec.flush();
    expect(box.statuses.get('x')).to.deep.equal({ status: 'error', error: 'host clashes with route a' });
    expect(box.statuses.get('a')).to.deep.equal({ status: 'active', error: null });
    expect(rec.applied()?.routes.map((r) => r.id)).to.deep.equal(['a']);
    expect(caddy.hosts()).to.deep.equal(['a.example.test']);
  });

  it('stop() during a push waits for it, then nothing more happens', async () => {
    const clock = new ManualClock();
    const { caddy, box, rec } = setup(desired([route('a', '192.0.2.1:80')]), { driftPollMs: 20, now: clock.now, timers: clock });
    caddy.loadDelayMs = 100;
    rec.start();
    await until(() => caddy.inflight === 1);
    box.state = desired([route('b', '192.0.2.2:80')]);
    rec.trigger();
    await rec.stop();
    expect(caddy.inflight).to.equal(0);
    const n = caddy.loads.length;
    rec.trigger();
    await rec.flush();
    // No timer is left to push or poll, however long the clock runs.
    expect(clock.pending).to.equal(0);
    clock.advance(60_000);
    await turn();
    expect(caddy.loads.length).to.equal(n);
    expect(caddy.inflight).to.equal(0);
    await rec.stop();
  });

  it('stop() before start() and twice is harmless', async () => {
    const clock = new ManualClock();
    const { caddy, rec } = setup(desired([route('a', '192.0.2.1:80')]), { now: clock.now, timers: clock });
    await rec.stop();
    await rec.stop();
    rec.start();
    await turn();
    expect(clock.pending).to.equal(0);
    expect(caddy.attempts).to.have.length(0);
  });
});

describe('Caddy 2.6 error positions', () => {
  const table: [string, { server: string; steps: number[] } | null][] = [
    [
      `loading config: loading new config: loading http app module: provision http: server srv0: setting up route handlers: route 0: loading handler modules: position 0: loading module 'reverse_proxy': provision http.handlers.reverse_proxy: parse "/%zz": invalid URL escape "%zz"`,
      { server: 'srv0', steps: [0] },
    ],
    [
      `loading http app module: provision http: server srv0: setting up route handlers: route 1: loading handler modules: position 0: loading module 'subroute': provision http.handlers.subroute: setting up subroutes: route 1: loading handler modules: position 1: loading module 'reverse_proxy': provision http.handlers.reverse_proxy: parse "/%zz": invalid URL escape "%zz"`,
      { server: 'srv0', steps: [1, 0, 1] },
    ],
    [
      'loading http app module: provision http: server srv0: setting up route matchers: route 1: loading matcher modules: module name \'path_regexp\': provision http.matchers.path_regexp: compiling matcher regexp ((: error parsing regexp: missing closing ): `((`',
      { server: 'srv0', steps: [1] },
    ],
    ['loading tls app module: provision tls: bad', null],
  ];
  for (const [text, want] of table) {
    it(`parses ${want ? want.steps.join('/') : 'no position'}`, () => {
      expect(parseRoutePosition(text)).to.deep.equal(want);
    });
  }

  it('walks nested subroutes to the innermost route object', () => {
    const inner = { match: [{ path: ['/x*'] }], handle: [{ handler: 'vars' }] };
    const outer = { handle: [{ handler: 'subroute', routes: [{ handle: [] }, inner] }] };
    const config = { apps: { http: { servers: { srv0: { routes: [{}, outer] } } } } };
    expect(routesAt(config, { server: 'srv0', steps: [1, 0, 1] })).to.deep.equal([outer, inner]);
    expect(routesAt(config, { server: 'nope', steps: [1] })).to.deep.equal([]);
  });
});
