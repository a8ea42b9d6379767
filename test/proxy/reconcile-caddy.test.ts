// Reconciler with render() against a real Caddy 2.6: routes serve real HTTP to echo backends, a
// route Caddy rejects is quarantined while the others keep serving, a SIGKILLed and restarted
// Caddy is restored without any trigger(), and a foreign config loaded by another process is
// overwritten. The drift poll leaves no line in Caddy's log, and a first start none at "error".
// Skipped when `caddy` is not installed.
import { expect } from 'chai';
import net from 'node:net';
import { join } from 'node:path';
import winston from 'winston';
import { CaddyAdmin, validateWithCaddy } from '../../src/proxy/caddy.js';
import type { AppliedStatus as RouteStatus } from '../../src/model/route.js';
import { Reconciler, type PollOutcome } from '../../src/proxy/reconcile.js';
import { markerId, render } from '../../src/proxy/render.js';
import type { DesiredProxy, DesiredRoute } from '../../src/proxy/types.js';
import { hasCaddy, request, startBackend, startCaddy, type Backend, type Echo, type RunningCaddy } from '../helpers/caddy.js';
import { route } from './reconcile-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const silent = winston.createLogger({ silent: true });
/** The brief's bound for restoring every route after Caddy restarts with its bootstrap config. */
const RESTORE_BOUND_MS = 2_000;
/** How long the waits below poll before failing: generous against a loaded machine. */
const WAIT_MS = 5_000;

/** Caddy's JSON log lines (one object per line; anything else is skipped). */
const logLines = (output: string): Record<string, unknown>[] =>
  output.split('\n').flatMap((l) => {
    try {
      const o = JSON.parse(l) as Record<string, unknown> | null;
      return o && typeof o === 'object' ? [o] : [];
    } catch {
      return [];
    }
  });
/** `METHOD uri` of every admin API request Caddy logged. */
const adminRequests = (output: string): string[] =>
  logLines(output)
    .filter((l) => l.logger === 'admin.api' && l.msg === 'received request')
    .map((l) => `${String(l.method)} ${String(l.uri)}`);
const errorLines = (output: string): string[] =>
  output.split('\n').filter((l) => logLines(l)[0]?.level === 'error');

describe('proxy reconciler with a real Caddy', function () {
  this.timeout(30_000);
  let caddy: RunningCaddy;
  let rec: Reconciler | undefined;
  const backends: Backend[] = [];
  let routes: DesiredRoute[] = [];
  let statuses = new Map<string, RouteStatus>();
  const names = ['a', 'b', 'c'];
  let httpPort = 0;
  const desired = (): DesiredProxy => ({
    settings: { admin: caddy.adminListen, httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1' },
    routes: [...routes].sort((x, y) => (x.id < y.id ? -1 : 1)),
  });

  /** Which backend answered for `host`, or the status when it was not a backend (0: nothing answered). */
  const via = async (host: string): Promise<string | number> => {
    try {
      const res = await request({ port: httpPort, host });
      return res.status === 200 ? (JSON.parse(res.body) as Echo).backend : res.status;
    } catch {
      return 0;
    }
  };
  const serving = async () => (await Promise.all(names.map((n) => via(`${n}.example.test`)))).every((b, i) => b === names[i]);
  const waitServing = async (what: string) => {
    const t0 = performance.now();
    while (!(await serving())) {
      if (performance.now() - t0 > WAIT_MS) throw new Error(`${what}: routes not served within ${WAIT_MS} ms`);
      await sleep(10);
    }
    return performance.now() - t0;
  };

  before(async function () {
    if (!hasCaddy()) return this.skip();
    caddy = await startCaddy();
    httpPort = caddy.httpPort;
    for (const n of names) backends.push(await startBackend(n));
    routes = [...names.map((n, i) => route(n, backends[i]!.dial)), route('broken', backends[0]!.dial, { health_path: '/%zz' })];
    // `caddy validate` with the same storage as the test Caddy, so it never touches the user's.
    const env = { ...process.env, HOME: caddy.dir, XDG_DATA_HOME: join(caddy.dir, 'data'), XDG_CONFIG_HOME: join(caddy.dir, 'config') };
    rec = new Reconciler({
      desired,
      render,
      markerId,
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
    expect(await via('nope.example.test')).to.equal(404);
    expect(rec!.state()).to.include({ caddyUp: true, inSync: true, applies: 1, failures: 1 });
  });

  it("quarantines the route Caddy rejects, with Caddy's readable error, while the others serve", async () => {
    expect(statuses.get('broken')?.status).to.equal('error');
    expect(statuses.get('broken')?.error).to.match(/parse "\/%zz": invalid URL escape "%zz"/);
    for (const n of names) expect(statuses.get(n)).to.deep.equal({ status: 'active', error: null });
    expect(rec!.state().quarantined).to.deep.equal(['broken']);
    expect(rec!.applied()?.routes.map((r) => r.id)).to.deep.equal(names);
    expect(await via('broken.example.test')).to.equal(404);
  });

  it('restores every route within 2 s after SIGKILL and a restart, with no trigger()', async () => {
    const applies = rec!.state().applies;
    await caddy.kill();
    expect(await via('a.example.test')).to.equal(0);
    const t0 = performance.now();
    await caddy.restart();
    const started = performance.now() - t0;
    await waitServing('after restart');
    const restored = performance.now() - t0;
    console.log(`      restored ${restored.toFixed(0)} ms after the restart began (Caddy's admin API answered after ${started.toFixed(0)} ms)`);
    expect(restored).to.be.below(RESTORE_BOUND_MS);
    expect(rec!.state().applies).to.equal(applies + 1);
    expect(statuses.get('broken')?.status).to.equal('error');
  });

  it('detects a foreign config loaded by another client and overwrites it', async () => {
    const applies = rec!.state().applies;
    const foreign = {
      admin: { listen: caddy.adminListen, config: { persist: false } },
      apps: { http: { servers: { other: { listen: [`127.0.0.1:${httpPort}`], routes: [{ handle: [{ handler: 'static_response', status_code: 418 }] }] } } } },
    };
    // Our own connection to the admin API, not the reconciler's. Whether a request still meets the
    // foreign 418 depends on where the 1 s drift poll stands; the extra apply shows the overwrite.
    await caddy.load(foreign);
    const ms = await waitServing('after a foreign load');
    console.log(`      foreign config overwritten after ${ms.toFixed(0)} ms`);
    expect(rec!.state()).to.include({ inSync: true, applies: applies + 1 });
  });

  it('applies the quarantined route once its content changes', async () => {
    routes = routes.map((r) => (r.id === 'broken' ? { ...r, health_path: '/' } : r));
    rec!.trigger();
    await rec!.flush();
    expect(statuses.get('broken')).to.deep.equal({ status: 'active', error: null });
    expect(await via('broken.example.test')).to.equal('a');
    expect(rec!.state().quarantined).to.deep.equal([]);
  });

  it('a new reconciler (dnsproxy restarted) adopts the running config without reloading Caddy', async () => {
    const second = new Reconciler({ desired, render, markerId, caddy: new CaddyAdmin(caddy.adminListen), onStatus: () => undefined, log: silent });
    try {
      await second.flush();
      expect(second.state()).to.include({ applies: 0, inSync: true, lastHash: rec!.state().lastHash });
    } finally {
      await second.stop();
    }
  });

  it('a rejection no route explains (port in use) keeps the old config serving, then applies once the port is free', async () => {
    const held = net.createServer();
    await new Promise<void>((r) => held.listen(0, '127.0.0.1', r));
    const oldPort = httpPort;
    const newPort = (held.address() as net.AddressInfo).port;
    httpPort = newPort;
    rec!.trigger();
    await rec!.flush();
    expect(rec!.state().lastError).to.match(/address already in use/);
    expect(rec!.state()).to.include({ inSync: false });
    expect(rec!.state().quarantined).to.deep.equal([]);
    for (const n of names) expect(statuses.get(n)).to.deep.equal({ status: 'active', error: null });
    httpPort = oldPort;
    expect(await serving()).to.equal(true);
    httpPort = newPort;
    await new Promise((r) => held.close(r));
    await waitServing('after the port was freed');
    expect(rec!.state()).to.include({ inSync: true, lastError: null });
  });
});

describe("proxy reconciler's drift poll and Caddy's log (real Caddy)", function () {
  this.timeout(30_000);
  /** Polls watched after the first marker check: 20 at 1 s would be 20 s of production polling. */
  const POLLS = 20;
  let caddy: RunningCaddy | undefined;
  let rec: Reconciler | undefined;
  let backend: Backend | undefined;
  const seen: PollOutcome[] = [];
  let waiters: (() => void)[] = [];
  /** Resolves with the index of the first poll at or after `from` that satisfies `pred`. */
  const pollWhere = (from: number, pred: (o: PollOutcome, i: number) => boolean): Promise<number> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no such drift poll within ${WAIT_MS} ms; seen: ${seen.join(',')}`)), WAIT_MS);
      const look = () => {
        const i = seen.findIndex((o, j) => j >= from && pred(o, j));
        if (i >= 0) {
          clearTimeout(timer);
          return resolve(i);
        }
        waiters.push(look);
      };
      look();
    });

  let sentinels = 0;
  /**
   * Caddy's log up to now: makes one logged admin request of its own and waits until its line
   * has come through the pipe (Caddy writes its log in order), then returns the whole output.
   */
  const logSoFar = async (): Promise<{ output: string; sentinel: string }> => {
    const uri = `/config/admin/listen?sentinel=${++sentinels}`;
    expect((await caddy!.admin('GET', uri)).status).to.equal(200);
    const t0 = performance.now();
    while (!adminRequests(caddy!.output()).includes(`GET ${uri}`)) {
      if (performance.now() - t0 > WAIT_MS) throw new Error(`Caddy's log line for ${uri} did not arrive within ${WAIT_MS} ms`);
      await sleep(10);
    }
    return { output: caddy!.output(), sentinel: `GET ${uri}` };
  };

  before(async function () {
    if (!hasCaddy()) return this.skip();
    caddy = await startCaddy();
    backend = await startBackend('a');
    const c = caddy;
    const routes = [route('a', backend.dial)];
    rec = new Reconciler({
      desired: () => ({ settings: { admin: c.adminListen, httpPort: c.httpPort, httpsPort: c.httpsPort, listenIp: '127.0.0.1' }, routes }),
      render,
      markerId,
      caddy: new CaddyAdmin(c.adminListen),
      onStatus: () => undefined,
      // Short, so the test sees many polls quickly; what each poll asks Caddy does not depend on it.
      driftPollMs: 25,
      onPoll: (o) => {
        seen.push(o);
        const w = waiters;
        waiters = [];
        for (const f of w) f();
      },
      log: silent,
    });
    rec.start();
    await rec.flush();
  });

  after(async () => {
    await rec?.stop();
    await caddy?.stop();
    await backend?.close();
  });

  it('the first start (Caddy on its bootstrap config) leaves no "error" line in Caddy\'s log', async () => {
    expect(rec!.state()).to.include({ inSync: true, applies: 1 });
    expect((await request({ port: caddy!.httpPort, host: 'a.example.test' })).status).to.equal(200);
    const { output } = await logSoFar();
    expect(errorLines(output)).to.deep.equal([]);
  });

  it(`${POLLS} drift polls in a row add no admin request line to Caddy's log, and no error`, async () => {
    // The first poll after our load reads the marker once (the load moved Caddy's revision).
    const first = await pollWhere(0, (o) => o === 'verified');
    const before = await logSoFar();
    const last = await pollWhere(first + 1, (_o, i) => i >= first + POLLS);
    expect(seen.slice(first + 1, last + 1)).to.deep.equal(Array(POLLS).fill('unchanged'));
    const after = await logSoFar();
    expect(adminRequests(after.output)).to.deep.equal([...adminRequests(before.output), after.sentinel]);
    // The polls did reach Caddy: its own count of /metrics requests.
    const metrics = (await caddy!.admin('GET', '/metrics')).text;
    const polled = Number(/^caddy_admin_http_requests_total\{code="200",handler="metrics",method="GET",path="\/metrics"\} (\d+)$/m.exec(metrics)?.[1]);
    expect(polled).to.be.at.least(POLLS);
    // All the reconciler asked Caddy with a logged request since Caddy started: the adopt check
    // before the first push, the push, and the poll's marker read after it (the helper's start
    // probes `GET /config/`, our sentinels `?sentinel=`).
    const ours = adminRequests(after.output).filter((r) => r !== 'GET /config/' && !r.includes('?sentinel='));
    expect(ours).to.deep.equal(['GET /config/%40id', 'POST /load', 'GET /config/%40id']);
    console.log(`      Caddy logged ${ours.length} admin requests of the reconciler (${ours.join(', ')}); ${polled} drift polls left no line`);
    expect(errorLines(after.output)).to.deep.equal([]);
    expect(rec!.state()).to.include({ inSync: true, applies: 1 });
  });
});
