// `serve --watch <file>`: a good save is applied, a bad one is refused with its fields (logged,
// shown in health) while the last good state keeps serving: our DNS server, asked with dns2,
// still answers the old record. Real chokidar on a real file; the debounce timer is injected and
// fired by the test once chokidar's event arrived, so nothing waits a fixed time.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import DNS from 'dns2';
import { FileWatch, configChanges, type Watcher } from '../../src/config/watch.js';
import type { Timers } from '../../src/timers.js';
import { loadConfig } from '../../src/config/load.js';
import { DnsServer } from '../../src/dns/server.js';
import { simulate, transact } from '../../src/store/simulate.js';
import type { StateDeps, StatePlan } from '../../src/state/state.js';
import { StateWatch } from '../../src/state/watch.js';
import { apiFixture, NODE_IP, ZONES, type ApiFixture } from '../helpers/api.js';
import { tempDir } from '../helpers/tmp.js';
import { captureLog } from '../dns/fixture.js';

/** Timers whose one pending callback the test fires; `scheduled` resolves each time one is set. */
function manualTimers() {
  let pending: (() => void) | null = null;
  let waiters: (() => void)[] = [];
  const timers: Timers = {
    setTimeout: (fn) => {
      pending = fn;
      for (const w of waiters) w();
      waiters = [];
      return fn;
    },
    clearTimeout: (h) => {
      if (pending === h) pending = null;
    },
  };
  return {
    timers,
    scheduled: () => (pending ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
    fire: () => {
      const fn = pending;
      pending = null;
      expect(fn, 'a debounce timer is pending').to.not.equal(null);
      fn!();
    },
    get pending() {
      return pending !== null;
    },
  };
}

const stateText = (ip: string) => `version: 1\nrecords:\n  - name: svc.home.arpa.\n    type: A\n    values: [${ip}]\n`;

describe('state: serve --watch', function () {
  this.timeout(30_000);
  let f: ApiFixture;
  let dns: DnsServer;
  let tmp: { dir: string; cleanup: () => void };
  let watch: StateWatch | null = null;

  beforeEach(async () => {
    f = await apiFixture();
    dns = new DnsServer({ host: '127.0.0.1', port: 0, index: f.index, upstreams: [], axfrAllow: [] });
    await dns.start();
    tmp = tempDir();
  });
  afterEach(async () => {
    await watch?.stop();
    watch = null;
    await dns.stop();
    await f.close();
    tmp.cleanup();
  });

  const deps = (): StateDeps => ({
    zones: ZONES,
    nodeIp: NODE_IP,
    records: f.records,
    routes: f.routes,
    views: f.views,
    proxy: f.proxy,
    servedRecords: (z) => f.index.servedRecords(z),
    transaction: (fn) => transact(f.db, [f.records, f.routes, f.views], fn),
    simulate: (fn) => simulate(f.db, [f.records, f.routes, f.views], fn),
    mail: f.mail.deps,
  });
  const answer = async (name: string) => {
    const r = await DNS.UDPClient({ dns: '127.0.0.1', port: dns.address().port })(name, 'A');
    return r.answers.map((x: { address?: string }) => x.address);
  };
  const next = (w: StateWatch) =>
    new Promise<{ applied?: StatePlan; refused?: Error }>((resolve) => {
      w.once('applied', (plan: StatePlan) => resolve({ applied: plan }));
      w.once('refused', (err: Error) => resolve({ refused: err }));
    });

  it('applies the file at start and on each good save; a bad save is refused and the old record keeps answering', async () => {
    const file = join(tmp.dir, 'state.yaml');
    writeFileSync(file, stateText('192.0.2.1'));
    const clock = manualTimers();
    const logged = captureLog();
    watch = new StateWatch({ file, deps: deps(), prune: false, log: logged.log, timers: clock.timers, now: () => new Date('2026-12-07T12:00:00Z') });
    await watch.start();
    expect(watch.health().status).to.equal('ok');
    expect(await answer('svc.home.arpa')).to.deep.equal(['192.0.2.1']);

    // A bad field: refused, logged with the field, shown in health; DNS keeps the old answer.
    writeFileSync(file, stateText('192.0.2.999'));
    await clock.scheduled();
    let outcome = next(watch);
    clock.fire();
    const refused = await outcome;
    expect(refused.refused?.message).to.include('records.0.values.0');
    expect(watch.health().status).to.equal('degraded');
    expect(watch.health().detail).to.include('records.0.values.0').and.include('the last good state keeps serving');
    expect(await answer('svc.home.arpa')).to.deep.equal(['192.0.2.1']);
    const line = logged.lines.find((l) => l.level === 'error') as unknown as { message: string; fields: { path: string }[] };
    expect(line.message).to.equal('state file refused; the last good state keeps serving');
    expect(line.fields.map((x) => x.path)).to.deep.equal(['records.0.values.0']);

    // A wrong version is refused the same way, naming the field.
    writeFileSync(file, stateText('192.0.2.2').replace('version: 1', 'version: 7'));
    await clock.scheduled();
    outcome = next(watch);
    clock.fire();
    expect((await outcome).refused?.message).to.include('version');
    expect(await answer('svc.home.arpa')).to.deep.equal(['192.0.2.1']);

    // A good save is applied: DNS answers the new address.
    writeFileSync(file, stateText('192.0.2.2'));
    await clock.scheduled();
    outcome = next(watch);
    clock.fire();
    const applied = await outcome;
    expect(applied.applied?.plan.records.changed).to.deep.equal(['svc.home.arpa. A']);
    expect(watch.health()).to.deep.equal({ status: 'ok', detail: `${file} applied at 2026-12-07T12:00:00.000Z` });
    expect(await answer('svc.home.arpa')).to.deep.equal(['192.0.2.2']);
  });

  it('a file that cannot be read at start is refused; what is stored keeps serving', async () => {
    await f.app.inject({ method: 'PUT', url: '/api/v1/records/svc/A', headers: f.auth, payload: { name: 'svc', type: 'A', values: ['192.0.2.7'] } });
    watch = new StateWatch({ file: join(tmp.dir, 'missing.yaml'), deps: deps(), prune: false, log: captureLog().log, timers: manualTimers().timers });
    await watch.start();
    expect(watch.health().status).to.equal('degraded');
    expect(watch.health().detail).to.include('ENOENT');
    expect(await answer('svc.home.arpa')).to.deep.equal(['192.0.2.7']);
  });
});

describe('FileWatch: debounced, one run at a time', () => {
  /** A watcher the test drives: emit() stands for chokidar's events. */
  const fakeWatcher = () => {
    let emit: (e: 'change' | 'unlink') => void = () => undefined;
    const watcher: Watcher = (_file, onEvent) => {
      emit = onEvent;
      return { ready: Promise.resolve(), close: async () => undefined };
    };
    return { watcher, emit: (e: 'change' | 'unlink') => emit(e) };
  };

  it('a burst of events is one run; an event during a run runs it once more after', async () => {
    const clock = manualTimers();
    const w = fakeWatcher();
    let runs = 0;
    let release: () => void = () => undefined;
    let started: () => void = () => undefined;
    const onStart = () => new Promise<void>((r) => (started = r));
    let running = onStart();
    const fw = new FileWatch({
      file: 'x',
      timers: clock.timers,
      watcher: w.watcher,
      onChange: () => {
        runs++;
        started();
        return new Promise<void>((r) => (release = r));
      },
    });
    await fw.ready;
    w.emit('change');
    w.emit('change');
    w.emit('change');
    clock.fire();
    expect(clock.pending).to.equal(false);
    await running;
    expect(runs).to.equal(1);
    // A save while the first run is under way: it runs again once that one ends, not alongside.
    running = onStart();
    w.emit('change');
    clock.fire();
    expect(runs).to.equal(1);
    release();
    await running;
    expect(runs).to.equal(2);
    release();
    await fw.close();
  });

  it('unlink is reported, not run', async () => {
    const w = fakeWatcher();
    let unlinked = 0;
    const fw = new FileWatch({ file: 'x', timers: manualTimers().timers, watcher: w.watcher, onChange: async () => undefined, onUnlink: () => unlinked++ });
    w.emit('unlink');
    expect(unlinked).to.equal(1);
    await fw.close();
  });
});

describe('config file changes', () => {
  it('splits what takes effect at once (log level) from what needs a restart', () => {
    const base = loadConfig({ env: { DNSPROXY_NODE_IP: NODE_IP }, interfaces: {} });
    const next = loadConfig({ env: { DNSPROXY_NODE_IP: NODE_IP, DNSPROXY_LOG_LEVEL: 'debug', DNSPROXY_DNS_PORT: '5301', DNSPROXY_MAIL_WORKERS: '8' }, interfaces: {} });
    expect(configChanges(base, next)).to.deep.equal({ live: ['log_level'], restart: ['dns_port', 'mail_workers'] });
    expect(configChanges(base, base)).to.deep.equal({ live: [], restart: [] });
  });
});
