// Caddy benchmark helper, run by bench/caddy/run.sh with `npx tsx` (needs dist/ built and caddy + wrk on PATH).
//
// Per N (ROUTES, default 100,1000,5000), with a fresh private Caddy ("ours"), our controller
// (`bin/dnsproxy serve --caddy-admin/--http-port/--https-port` at that Caddy) and a second private
// Caddy ("raw") next to it, one echo backend for all:
//   1. preload N explicit routes, one host each (POST /api/v1/routes, PRELOAD_CONCURRENCY in flight;
//      proxied records would be plain names served through DNS, never loaded: dynamic.ts), wait for in_sync;
//      load render() of the equivalent desired state into the raw Caddy (hash checked against ours);
//   2. K times, interleaved: ours = one POST /api/v1/routes → first 200 from the backend through Caddy
//      for that Host (fresh connection every POLL_MS, from the moment the call is sent); raw = POST
//      /load of render(N + one more route), pre-serialised, → first 200 through the raw Caddy, polled
//      the same way. Ours is split with the API's answer (= commit) and the controller's log ("caddy
//      apply" timestamp minus its durationMs = push start) and Caddy's log ("received request" for
//      /load = rx, "load complete"), both Caddies' logs giving Caddy's own /load time;
//   3. RSS (VmRSS / VmHWM) of both Caddies and the controller;
//   4. the controller's per-push CPU work timed offline on its own database (same sources, in
//      this process): buildDesired, per-route hashes, render (incl. sha256), JSON.stringify;
//   5. at the largest N (WRK_AT): wrk -t1 -c20 -d WRK_DURATION through our Caddy for the first/last
//      host in sorted and in creation order, and the same hosts on a flat one-route-per-host
//      layout (NAIVE=1) in the raw Caddy.
// Also reported: % of both cores used by other processes during the timed parts (shared box).
// Everything started here is stopped in `finally` and on SIGINT/SIGTERM; PIDs are also appended to
// $BENCH_PIDFILE so run.sh's EXIT trap can kill them if this process dies hard.
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { request, startBackend, startCaddy, type Backend, type RunningCaddy } from '../../test/helpers/caddy.js';
import { startController, TOKEN, type Running } from '../../test/helpers/controller.js';
import { tempDir } from '../../test/helpers/tmp.js';
// The same sources the controller's dist/ is built from (run.sh builds it first).
import { buildDesired } from '../../src/proxy/desired.js';
import { routeHash } from '../../src/proxy/quarantine.js';
import { markerId, markerPath, render } from '../../src/proxy/render.js';
import type { DesiredProxy, DesiredRoute, ProxySettings as Settings } from '../../src/proxy/types.js';
import { openDb } from '../../src/store/db.js';
import { RouteStore } from '../../src/store/routes.js';

const env = process.env;
const ROUTES = (env.ROUTES ?? '100,1000,5000').split(',').map(Number);
// 30 apply samples per N: one Caddy load varies ±30 % from the next, so medians of 10 moved the ratio by ±0.1 between runs.
const K = Number(env.K ?? 30);
const POLL_MS = Number(env.POLL_MS ?? 2);
const PRELOAD_CONCURRENCY = Number(env.PRELOAD_CONCURRENCY ?? 20);
const WRK_AT = Number(env.WRK_AT ?? Math.max(...ROUTES));
const WRK_DURATION = env.WRK_DURATION ?? '5s';
const WRK_ROUNDS = Number(env.WRK_ROUNDS ?? 2);
const NAIVE = env.NAIVE !== '0';
const QUIET_WAIT = Number(env.QUIET_WAIT ?? 60);
const QUIET_PCT = Number(env.QUIET_PCT ?? 15);
const ZONE = 'home.arpa';
const PIDFILE = env.BENCH_PIDFILE;
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

// ---- small utilities --------------------------------------------------------------------------
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const nowEpoch = () => performance.timeOrigin + performance.now();
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const med = (xs: number[]) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const stat = (xs: number[]) => `median ${f1(med(xs))} ms, p90 ${f1(quantile(xs, 0.9))} ms`;
function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}
function notePid(pid: number | undefined): void {
  if (PIDFILE && pid && pid > 0) appendFileSync(PIDFILE, `${pid}\n`);
}
function procKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

/** Machine busy % (all cores) over `ms`, from /proc/stat. */
async function busyPct(ms = 1000): Promise<number> {
  const read = () => {
    const v = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = v[3]! + v[4]!;
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return { idle, total };
  };
  const a = read();
  await sleep(ms);
  const b = read();
  return b.total > a.total ? 100 * (1 - (b.idle - a.idle) / (b.total - a.total)) : 0;
}
/** Machine-wide CPU ticks (busy, total) and the ticks used by `pids` (all threads), for "other work" during a measurement. */
function ticks(pids: number[]): { busy: number; total: number; mine: number } {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  let mine = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      mine += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch {
      // gone
    }
  }
  return { busy: total - v[3]! - v[4]!, total, mine };
}
/** % of the whole machine used by processes other than `pids` between two ticks() readings. */
const otherPct = (a: ReturnType<typeof ticks>, b: ReturnType<typeof ticks>) =>
  b.total > a.total ? Math.max(0, (100 * (b.busy - a.busy - (b.mine - a.mine))) / (b.total - a.total)) : 0;

/** Waits up to QUIET_WAIT s for the machine to be at most QUIET_PCT % busy; returns the last reading. */
async function waitQuiet(what: string): Promise<number> {
  const deadline = Date.now() + QUIET_WAIT * 1000;
  let pct = await busyPct();
  while (pct > QUIET_PCT && Date.now() < deadline) pct = await busyPct();
  if (pct > QUIET_PCT) out(`  note: machine still ${pct.toFixed(0)}% busy before ${what} (other work on the box); figures may be low`);
  return pct;
}

/**
 * Host label for the i-th record: a bijective scramble of i (odd multiplier mod 2^32), so creation
 * order and sorted order differ and first/last in each are different hosts.
 */
const label = (i: number) => `svc-${(Math.imul(i + 1, 2654435761) >>> 0).toString(36)}`;
const fqdn = (i: number) => `${label(i)}.${ZONE}`;

function routeFor(host: string, dial: string): DesiredRoute {
  return { id: `record:${host}`, hosts: [host], path: null, upstreams: [dial], tls: 'off', health_path: null };
}
function desiredOf(hosts: string[], dial: string, settings: Settings, stored: readonly DesiredRoute[] = []): DesiredProxy {
  const have = new Set(stored.flatMap((r) => r.hosts));
  const routes = [...stored, ...hosts.filter((h) => !have.has(h)).map((h) => routeFor(h, dial))].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { settings, routes };
}

/** Polls `host` through `port` (fresh connection each time, ~POLL_MS apart) until the backend answers; epoch ms of that answer. */
async function untilServed(port: number, host: string, backendName: string, limitMs = 60_000): Promise<{ at: number; polls: number }> {
  const start = Date.now();
  let polls = 0;
  for (;;) {
    polls++;
    const r = await request({ port, host }).catch(() => null);
    if (r && r.status === 200 && r.body.includes(backendName)) return { at: nowEpoch(), polls };
    if (Date.now() - start > limitMs) throw new Error(`${host} not served through :${port} within ${limitMs} ms`);
    await sleep(POLL_MS);
  }
}

/** POST a pre-serialised body to Caddy's /load on a fresh connection; resolves with the status. */
function postLoad(adminListen: string, body: string): Promise<number> {
  const [host, port] = adminListen.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port: Number(port), method: 'POST', path: '/load', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(200) : reject(new Error(`POST /load ${res.statusCode}: ${text.slice(0, 300)}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * One explicit route for the i-th host (POST /api/v1/routes). A proxied record would be a plain
 * name served through DNS, with no Caddy load at all (dynamic.ts): the reload path is measured
 * with explicit routes, which Caddy's config carries like the raw Caddy's.
 */
async function addRoute(api: string, i: number, dial: string): Promise<number> {
  const res = await fetch(`${api}/api/v1/routes`, { method: 'POST', headers: auth, body: JSON.stringify({ hosts: [fqdn(i)], upstreams: [dial] }) });
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`route ${fqdn(i)} answered ${res.status}`);
  return res.status;
}

/** The explicit routes the controller holds, as desired routes (their ids are the controller's). */
async function storedRoutes(api: string): Promise<DesiredRoute[]> {
  const res = await fetch(`${api}/api/v1/routes`, { headers: { authorization: auth.authorization } });
  const { routes } = (await res.json()) as { routes: (DesiredRoute & { source: string })[] };
  return routes.filter((r) => r.source === 'api').map((r) => ({ id: r.id, hosts: r.hosts, path: r.path, upstreams: r.upstreams, tls: r.tls, health_path: r.health_path }));
}

async function plan(api: string): Promise<{ in_sync: boolean; caddy_up: boolean }> {
  const res = await fetch(`${api}/api/v1/plan`, { headers: { authorization: auth.authorization } });
  return (await res.json()) as { in_sync: boolean; caddy_up: boolean };
}
async function untilInSync(api: string, limitMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    if ((await plan(api).catch(() => ({ in_sync: false }))).in_sync) return Date.now() - start;
    if (Date.now() - start > limitMs) throw new Error(`controller not in sync within ${limitMs} ms`);
    await sleep(50);
  }
}
async function appliesOk(api: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`)).text();
  return Number(/^dnsproxy_caddy_applies_total\{result="ok"\} (\d+)/m.exec(text)?.[1] ?? 0);
}

interface LogLine {
  timestamp: string;
  message: string;
  [k: string]: unknown;
}
function logLines(c: Running): LogLine[] {
  const lines: LogLine[] = [];
  for (const l of c.output().split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(l) as LogLine);
    } catch {
      // partial line
    }
  }
  return lines;
}
const ts = (l: LogLine) => Date.parse(l.timestamp);

/** `POST /load` requests in a Caddy's log from `sinceMs` (epoch) on: when its handler started ("received request") and "load complete". */
function caddyLoads(output: string, sinceMs: number): { rx: number; done: number }[] {
  const found: { rx: number; done: number }[] = [];
  let rx: number | null = null;
  for (const l of output.split('\n')) {
    if (!l.startsWith('{')) continue;
    let e: { ts?: number; msg?: string; uri?: string; logger?: string };
    try {
      e = JSON.parse(l) as typeof e;
    } catch {
      continue;
    }
    if (typeof e.ts !== 'number' || e.ts * 1000 < sinceMs - 1) continue;
    if (e.logger === 'admin.api' && e.msg === 'received request' && e.uri === '/load') rx = e.ts * 1000;
    else if (e.logger === 'admin.api' && e.msg === 'load complete' && rx !== null) {
      found.push({ rx, done: e.ts * 1000 });
      rx = null;
    }
  }
  return found;
}

/** Collects the leaf routes (reverse_proxy) of a rendered config, in order, descending into subroutes. */
function leafRoutes(routes: unknown[]): Record<string, unknown>[] {
  const outList: Record<string, unknown>[] = [];
  for (const r of routes as { handle?: { handler: string; routes?: unknown[] }[] }[]) {
    for (const h of r.handle ?? []) {
      if (h.handler === 'subroute') outList.push(...leafRoutes(h.routes ?? []));
      else if (h.handler === 'reverse_proxy') outList.push(r as Record<string, unknown>);
    }
  }
  return outList;
}
/** render()'s config with its host tree flattened: one terminal route per host, in render's (sorted) order, then the catch-all. */
function naiveLayout(config: Record<string, unknown>): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(config)) as { apps: { http: { servers: Record<string, { routes: Record<string, unknown>[] }> } } };
  const server = copy.apps.http.servers['dnsproxy-http']!;
  const catchAll = server.routes[server.routes.length - 1]!;
  server.routes = [...leafRoutes(server.routes), catchAll];
  return copy as unknown as Record<string, unknown>;
}

function runWrk(
  port: number,
  host: string,
  account: (a: ReturnType<typeof ticks>, b: ReturnType<typeof ticks>) => void,
  pids: () => number[],
): Promise<{ rps: number; non2xx: number; errors: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('wrk', ['-t1', '-c20', `-d${WRK_DURATION}`, '-H', `Host: ${host}`, `http://127.0.0.1:${port}/`], { stdio: ['ignore', 'pipe', 'pipe'] });
    notePid(p.pid);
    current.add(p);
    // Sampled while wrk runs (its ticks vanish once it is reaped); the last partial interval is dropped.
    let prev = ticks(pids());
    const sampler = setInterval(() => {
      const now = ticks(pids());
      account(prev, now);
      prev = now;
    }, 250);
    let text = '';
    p.stdout.on('data', (c: Buffer) => (text += c.toString()));
    p.stderr.on('data', (c: Buffer) => (text += c.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      clearInterval(sampler);
      current.delete(p);
      const rps = Number(/Requests\/sec:\s+([0-9.]+)/.exec(text)?.[1]);
      if (code !== 0 || !Number.isFinite(rps)) return reject(new Error(`wrk failed (${code}):\n${text}`));
      resolve({ rps, non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0), errors: /Socket errors:[^\n]*/.exec(text)?.[0] ?? '' });
    });
  });
}

// ---- cleanup ----------------------------------------------------------------------------------
const current = new Set<{ kill: (s?: NodeJS.Signals) => boolean }>();
const cleanups: (() => Promise<void> | void)[] = [];
async function cleanupAll(): Promise<void> {
  for (const p of current) p.kill('SIGKILL');
  while (cleanups.length) {
    const fn = cleanups.pop()!;
    await Promise.resolve()
      .then(fn)
      .catch((e: unknown) => process.stderr.write(`cleanup: ${(e as Error).message}\n`));
  }
}
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    process.stderr.write(`bench/caddy: ${sig}, cleaning up\n`);
    void cleanupAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  });

// ---- one N ------------------------------------------------------------------------------------
interface PhaseResult {
  n: number;
  ours: number[];
  raw: number[];
  /** Segment name → one value per iteration (see the table header). */
  seg: Record<string, number[]>;
  offline: Record<string, number>;
  otherPct: number;
  jsonBytes: number;
  rss: Record<string, { rss: number; hwm: number }>;
}

async function phase(n: number, backend: Backend, doWrk: boolean): Promise<PhaseResult> {
  out(`\n== N = ${n} routes`);
  const keep = cleanups.length;
  const data = tempDir('dnsproxy-bench-data-');
  cleanups.push(() => data.cleanup());
  const ours: RunningCaddy = await startCaddy();
  notePid(ours.pid);
  cleanups.push(() => ours.stop());
  const raw: RunningCaddy = await startCaddy({ admin: 'tcp' }); // postLoad() speaks TCP
  notePid(raw.pid);
  cleanups.push(() => raw.stop());
  const c = await startController(data.dir, {
    DNSPROXY_CADDY_ADMIN: ours.adminListen,
    DNSPROXY_HTTP_PORT: String(ours.httpPort),
    DNSPROXY_HTTPS_PORT: String(ours.httpsPort),
  });
  notePid(c.proc.pid);
  cleanups.push(async () => {
    await c.stop();
  });
  const api = c.apiUrl;
  // The empty config is pushed at start: the catch-all answers 404.
  await untilInSync(api, 20_000);

  // 1. preload
  await waitQuiet(`preload N=${n}`);
  const loads0 = await appliesOk(api);
  const t0 = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(PRELOAD_CONCURRENCY, n) }, async () => {
      while (next < n) await addRoute(api, next++, backend.dial);
    }),
  );
  const acked = Date.now() - t0;
  const sync = await untilInSync(api, 300_000);
  const preloadLoads = (await appliesOk(api)) - loads0;
  out(`preload: ${n} adds acknowledged in ${(acked / 1000).toFixed(1)} s (${((n * 1000) / acked).toFixed(0)}/s), in sync ${sync} ms later, ${preloadLoads} Caddy loads`);
  for (const i of [0, n - 1]) await untilServed(ours.httpPort, fqdn(i), backend.name, 5000);

  // The same N routes for the raw Caddy: render() of the equivalent desired state.
  const hosts = Array.from({ length: n }, (_, i) => fqdn(i));
  const stored = await storedRoutes(api);
  // The controller serves plain names through its DNS server: its config carries the dynamic
  // route asking that resolver (read back from the config our Caddy runs), so the raw one does too.
  const resolver = /"resolver":\{"addresses":\["([^"]+)"\]/.exec(JSON.stringify(await ours.get('/config/')))?.[1];
  const dynamic = resolver ? { dynamic: { resolver } } : {};
  const check = render(desiredOf(hosts, backend.dial, { httpPort: ours.httpPort, httpsPort: ours.httpsPort, listenIp: '127.0.0.1', admin: ours.adminListen, ...dynamic }, stored));
  const running = (await ours.get(markerPath())) as string;
  const same = running === markerId(check.hash);
  out(`equivalent desired state: render() marker ${markerId(check.hash)} ${same ? '==' : '!='} our Caddy's ${running}`);
  if (!same) throw new Error('the equivalent desired state does not render to what the controller pushed; raw would not be comparable');
  const rawSettings: Settings = { httpPort: raw.httpPort, httpsPort: raw.httpsPort, listenIp: '127.0.0.1', admin: raw.adminListen, ...dynamic };
  const rawBase = render(desiredOf(hosts, backend.dial, rawSettings, stored));
  const jsonBytes = JSON.stringify(rawBase.config).length;
  await postLoad(raw.adminListen, JSON.stringify(rawBase.config));
  await untilServed(raw.httpPort, fqdn(n - 1), backend.name, 5000);
  // Pre-serialised raw configs (N + 1 … N + K routes, each with a new host), not timed.
  const rawExtra = Array.from({ length: K }, (_, k) => fqdn(n + 1000 + k));
  const rawBodies = rawExtra.map((_, k) => JSON.stringify(render(desiredOf([...hosts, ...rawExtra.slice(0, k + 1)], backend.dial, rawSettings, stored)).config));

  const rss = () => ({
    caddy_ours: { rss: procKiB(ours.pid, 'VmRSS'), hwm: procKiB(ours.pid, 'VmHWM') },
    caddy_raw: { rss: procKiB(raw.pid, 'VmRSS'), hwm: procKiB(raw.pid, 'VmHWM') },
    controller: { rss: procKiB(c.proc.pid!, 'VmRSS'), hwm: procKiB(c.proc.pid!, 'VmHWM') },
  });
  const rssLoaded = rss();

  // 2. apply latency, ours and raw interleaved
  await waitQuiet(`apply runs N=${n}`);
  const r: PhaseResult = { n, ours: [], raw: [], seg: {}, offline: {}, otherPct: NaN, jsonBytes, rss: {} };
  const seg = (k: string, v: number) => {
    if (Number.isFinite(v)) (r.seg[k] ??= []).push(v);
  };
  out(`apply latency, K = ${K} (ms). ours = POST /api/v1/routes sent → first 200 through Caddy; raw = POST /load sent → first 200`);
  out(`(both polled from the moment the request is sent). ours split with the controller's log and Caddy's log:`);
  out(`  →commit: API until the route is committed (its answer); render: answer → push start (desired state, route hashes, render);`);
  out(`  →rx: push start → Caddy logs "received request" (JSON.stringify, connect); rx→served: Caddy until the host serves;`);
  out(`  load: Caddy "received request" → "load complete"; api: when the API call answered.`);
  out(`   k |   ours  →commit  render    →rx  rx→served   load     api |    raw  rx→served   load`);
  const ourPids = () => [process.pid, ours.pid, raw.pid, c.proc.pid!];
  const applyTicks0 = ticks(ourPids());
  for (let k = 0; k < K; k++) {
    const i = n + k;
    const host = fqdn(i);
    const before = logLines(c).length;
    const a0 = nowEpoch();
    let a1 = NaN;
    const call = addRoute(api, i, backend.dial).then(() => (a1 = nowEpoch()));
    const served = await untilServed(ours.httpPort, host, backend.name);
    await call;
    await untilInSync(api, 60_000);
    const lines = logLines(c).slice(before);
    const apply = lines.find((l) => l.message === 'caddy apply' && l.result === 'ok' && (l.routes as number) >= n + k + 1);
    const load = caddyLoads(ours.output(), a0)[0];
    const pushStart = apply ? ts(apply) - Number(apply.durationMs) : NaN;
    // A route write commits before its reply, and nothing renders before the reply: the answer marks the commit.
    const commitTs = a1;
    const o = {
      total: served.at - a0,
      commit: commitTs - a0,
      render: pushStart - commitTs,
      rx: (load?.rx ?? NaN) - pushStart,
      served: served.at - (load?.rx ?? NaN),
      load: (load?.done ?? NaN) - (load?.rx ?? NaN),
      api: a1 - a0,
    };
    r.ours.push(o.total);
    for (const [key, v] of Object.entries(o)) if (key !== 'total') seg(`ours_${key}`, v);
    await sleep(200);

    // raw: one POST /load with one more route (pre-serialised), polling the new host meanwhile
    const rawHost = rawExtra[k]!;
    const b0 = nowEpoch();
    const loading = postLoad(raw.adminListen, rawBodies[k]!);
    const rawServed = await untilServed(raw.httpPort, rawHost, backend.name);
    await loading;
    const rawLoad = caddyLoads(raw.output(), b0)[0];
    const w = { total: rawServed.at - b0, served: rawServed.at - (rawLoad?.rx ?? NaN), load: (rawLoad?.done ?? NaN) - (rawLoad?.rx ?? NaN) };
    r.raw.push(w.total);
    seg('raw_served', w.served);
    seg('raw_load', w.load);
    const col = (x: number, width: number) => f1(x).padStart(width);
    out(
      `  ${String(k + 1).padStart(2)} | ${col(o.total, 6)} ${col(o.commit, 7)} ${col(o.render, 7)} ${col(o.rx, 6)} ${col(o.served, 10)} ${col(o.load, 6)} ${col(o.api, 7)} | ${col(w.total, 6)} ${col(w.served, 10)} ${col(w.load, 6)}`,
    );
    await sleep(200);
  }
  r.otherPct = otherPct(applyTicks0, ticks(ourPids()));
  out(`other work on the machine during these runs: ${r.otherPct.toFixed(0)}% of both cores`);
  const ratio = med(r.ours) / med(r.raw);
  const m = (k: string) => f1(med(r.seg[k] ?? []));
  out(`ours: ${stat(r.ours)}`);
  out(`raw:  ${stat(r.raw)}`);
  out(`ratio ours/raw (medians): ${f2(ratio)}   p90/p90: ${f2(quantile(r.ours, 0.9) / quantile(r.raw, 0.9))}${n === 1000 ? `   target ≤ 1.2: ${ratio <= 1.2 ? 'MET' : 'NOT MET'}` : ''}`);
  out(
    `ours breakdown (medians, ms): API → commit ${m('ours_commit')}, render ${m('ours_render')}, push start → Caddy rx ${m('ours_rx')}, Caddy rx → served ${m('ours_served')} ` +
      `(raw: ${m('raw_served')}); Caddy /load ${m('ours_load')} (raw: ${m('raw_load')}); API answered after ${m('ours_api')}`,
  );

  // 3. host lookup scan through our Caddy (before the controller goes away)
  if (doWrk) await scan(n, ours, raw, backend, hosts, [...hosts, ...Array.from({ length: K }, (_, k) => fqdn(n + k))], rawSettings);

  r.rss = { ...rss() };
  out(
    `RSS after preload: caddy(ours) ${mib(rssLoaded.caddy_ours.rss)}, caddy(raw) ${mib(rssLoaded.caddy_raw.rss)}, controller ${mib(rssLoaded.controller.rss)}; ` +
      `at the end: caddy(ours) ${mib(r.rss.caddy_ours!.rss)} (peak ${mib(r.rss.caddy_ours!.hwm)}), caddy(raw) ${mib(r.rss.caddy_raw!.rss)} (peak ${mib(r.rss.caddy_raw!.hwm)}), controller ${mib(r.rss.controller!.rss)} (peak ${mib(r.rss.controller!.hwm)})`,
  );
  r.rss.loaded_caddy_ours = rssLoaded.caddy_ours;
  r.rss.loaded_controller = rssLoaded.controller;

  if (env.DUMP_LOGS) {
    // Debug knob: keep the controller's and both Caddies' output per N.
    writeFileSync(`${env.DUMP_LOGS}/controller-${n}.log`, c.output());
    writeFileSync(`${env.DUMP_LOGS}/caddy-ours-${n}.log`, ours.output());
    writeFileSync(`${env.DUMP_LOGS}/caddy-raw-${n}.log`, raw.output());
  }

  // 4. the controller's per-push CPU work, offline on its own database, with the same sources.
  const total = n + K;
  await c.stop();
  r.offline = offlineBreakdown(data.dir, { ...rawSettings, httpPort: ours.httpPort, httpsPort: ours.httpsPort, admin: ours.adminListen }, total);
  const o = r.offline;
  out(
    `controller CPU per push at ${total} routes (offline, same code, median of 5): buildDesired ${f1(o.build!)} ms, per-route hashes ${f1(o.hashes!)} ms, ` +
      `render+sha256 ${f1(o.render!)} ms, JSON.stringify ${f1(o.stringify!)} ms (${(o.bytes! / 1024).toFixed(0)} KiB) = ${f1(o.sum!)} ms; [store read of the routes, once per route change: ${f1(o.list!)} ms]`,
  );
  while (cleanups.length > keep) await cleanups.pop()!();
  return r;
}

function offlineBreakdown(dir: string, settings: Settings, expect: number): Record<string, number> {
  const db = openDb(dir);
  try {
    const store = new RouteStore(db);
    const rounds: Record<string, number[]> = { list: [], build: [], hashes: [], render: [], stringify: [] };
    let bytes = 0;
    for (let round = 0; round < 7; round++) {
      // Store read: ProxyState reads the explicit routes once per route change (not per push);
      // timed for reference.
      const t0 = performance.now();
      const list = store.list();
      const t1 = performance.now();
      // On the push path: ProxyState.build() → buildDesired over the routes; per-route
      // hashes (reconcile()); render() incl. its sha256; JSON.stringify in CaddyAdmin.load().
      const built = buildDesired([], list, () => undefined);
      const t2 = performance.now();
      const hashes = new Map(built.routes.map((r: DesiredRoute) => [r.id, routeHash(r)]));
      const t3 = performance.now();
      const rendered = render({ settings, routes: built.routes });
      const t4 = performance.now();
      const body = JSON.stringify(rendered.config);
      const t5 = performance.now();
      bytes = body.length;
      if (built.routes.length !== expect || hashes.size !== expect) throw new Error(`offline: ${built.routes.length} routes, expected ${expect}`);
      if (round < 2) continue; // warm-up
      rounds.list!.push(t1 - t0);
      rounds.build!.push(t2 - t1);
      rounds.hashes!.push(t3 - t2);
      rounds.render!.push(t4 - t3);
      rounds.stringify!.push(t5 - t4);
    }
    const m = Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, med(v)]));
    return { ...m, bytes, sum: m.build! + m.hashes! + m.render! + m.stringify! };
  } finally {
    db.close();
  }
}

async function scan(n: number, ours: RunningCaddy, raw: RunningCaddy, backend: Backend, creation: string[], all: string[], rawSettings: Settings): Promise<void> {
  const sortedHosts = [...all].sort();
  const targets: [string, string][] = [
    ['sorted first', sortedHosts[0]!],
    ['sorted last', sortedHosts[sortedHosts.length - 1]!],
    ['created first', creation[0]!],
    ['created last', all[all.length - 1]!],
  ];
  const layouts: { name: string; port: number; pos: (h: string) => number }[] = [
    { name: `grouped (render, our Caddy, ${all.length} hosts)`, port: ours.httpPort, pos: () => NaN },
  ];
  if (NAIVE) {
    // One route per host, linear, in the raw Caddy: the same render flattened.
    const flat = naiveLayout(render(desiredOf(all, backend.dial, rawSettings)).config);
    await postLoad(raw.adminListen, JSON.stringify(flat));
    await untilServed(raw.httpPort, sortedHosts[sortedHosts.length - 1]!, backend.name, 10_000);
    const order = new Map(sortedHosts.map((h, i) => [h, i + 1]));
    layouts.push({ name: `naive (one route per host, ${all.length} routes, sorted)`, port: raw.httpPort, pos: (h) => order.get(h) ?? NaN });
  }
  out(`\nhost lookup scan at N = ${n}: wrk -t1 -c20 -d${WRK_DURATION}, ${WRK_ROUNDS} interleaved round(s), req/s`);
  for (const l of layouts) {
    await waitQuiet(`wrk ${l.name}`);
    const got = new Map<string, number[]>(targets.map(([k]) => [k, []]));
    const pids = () => [process.pid, ours.pid, raw.pid, ...[...current].map((p) => (p as { pid?: number }).pid ?? 0)];
    let otherTicks = 0;
    let allTicks = 0;
    for (let round = 0; round < WRK_ROUNDS; round++)
      for (const [k, host] of targets) {
        const w = await runWrk(l.port, host, (a, b) => {
          otherTicks += (otherPct(a, b) * (b.total - a.total)) / 100;
          allTicks += b.total - a.total;
        }, pids);
        if (w.non2xx > 0) throw new Error(`wrk ${host}: ${w.non2xx} non-2xx answers (route missing?)`);
        got.get(k)!.push(w.rps);
      }
    const m = (k: string) => med(got.get(k)!);
    out(`  ${l.name}: (other work on the machine meanwhile: ${allTicks ? ((100 * otherTicks) / allTicks).toFixed(0) : '-'}%)`);
    for (const [k, host] of targets)
      out(`    ${k.padEnd(13)} ${host.padEnd(28)} ${got.get(k)!.map((x) => x.toFixed(0)).join(' / ').padStart(17)}  median ${m(k).toFixed(0)}${Number.isFinite(l.pos(host)) ? `  (route #${l.pos(host)})` : ''}`);
    const sortedRatio = m('sorted last') / m('sorted first');
    const createdRatio = m('created last') / m('created first');
    out(`    last/first: sorted ${f2(sortedRatio)}, creation ${f2(createdRatio)}${l.name.startsWith('grouped') ? `   target ≥ 0.8: ${Math.min(sortedRatio, createdRatio) >= 0.8 ? 'MET' : 'NOT MET'}` : ''}`);
  }
}

// ---- main -------------------------------------------------------------------------------------
async function main(): Promise<void> {
  out(`code: ${env.BENCH_REV ?? '?'}`);
  out(`bench/caddy: routes ${ROUTES.join(', ')}, K = ${K}, poll every ${POLL_MS} ms, preload concurrency ${PRELOAD_CONCURRENCY}, wrk at N = ${WRK_AT}`);
  const backend = await startBackend('bench-echo');
  cleanups.push(() => backend.close());
  const results: PhaseResult[] = [];
  try {
    for (const n of ROUTES) {
      const keep = cleanups.length;
      results.push(await phase(n, backend, n === WRK_AT));
      if (cleanups.length !== keep) throw new Error('phase left cleanups behind');
    }
    out('\n== summary (ms; median / p90; ours split as in the per-N tables)');
    out('     N |  ours med    p90 |  raw med    p90 | ours/raw | →commit render   →rx rx→served  load (raw) | caddy RSS  ctl RSS | JSON    | other CPU');
    for (const r of results) {
      const m = (k: string) => f1(med(r.seg[k] ?? []));
      out(
        `${String(r.n).padStart(6)} | ${f1(med(r.ours)).padStart(8)} ${f1(quantile(r.ours, 0.9)).padStart(6)} | ${f1(med(r.raw)).padStart(8)} ${f1(quantile(r.raw, 0.9)).padStart(6)} | ${f2(med(r.ours) / med(r.raw)).padStart(8)} | ` +
          `${m('ours_commit').padStart(7)} ${m('ours_render').padStart(6)} ${m('ours_rx').padStart(5)} ${m('ours_served').padStart(9)} ${m('ours_load').padStart(5)} (${m('raw_load')}) | ` +
          `${mib(r.rss.caddy_ours!.rss).padStart(9)} ${mib(r.rss.controller!.rss).padStart(8)} | ${`${(r.jsonBytes / 1024).toFixed(0)} KiB`.padStart(7)} | ${r.otherPct.toFixed(0)}%`,
      );
    }
  } finally {
    await cleanupAll();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench/caddy: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
