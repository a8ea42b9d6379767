// Our generated Caddy config vs a hand-written one (issue 15, `bench/proxy`), run by
// `bash bench/proxy/run.sh` (needs dist/ built, caddy and wrk on PATH). Loopback only.
//   - three echo backends (test/helpers/caddy.ts startBackend);
//   - Caddy A run by the real controller (`bin/dnsproxy serve`): two routes made through the API,
//     `POST /api/v1/routes` — `bench-plain.home.arpa` → the 3 backends, balancing round_robin;
//     `bench-auth.home.arpa` → the same with `auth.basic` (one account, password given, so the API
//     hashes it with bcrypt at its own cost; the renderer turns `hash_cache` on). What A runs is
//     exactly what we push: the bench reads it back with `GET /config/` and waits until it serves;
//   - Caddy B with a hand-written minimal config: one server, a host matcher → reverse_proxy with
//     the same 3 upstreams and round robin; and the auth host with `authentication` http_basic,
//     bcrypt (same cost), hash_cache, before the same reverse_proxy. Nothing else (Caddy defaults);
//   - unless NO_LOG=0, two more Caddies with our config as read from A, ports moved to theirs:
//     C with only the access log taken out (`logging` and the servers' `logs`, which send every
//     request to the controller for per-host stats), D with the log's net writer pointed at a
//     listener in this process that reads and drops it: what of a gap the stats log costs, and
//     how much of that is Caddy's side (encoding, one write per request) vs the controller's.
// Then WRK_ROUNDS interleaved rounds of `wrk -t1 -c20 -d$WRK_DURATION` per host and config
// (A, B, C, D, A, B, C, D, …; a 2xx check on every answer), and the medians and ratios ours / hand-written
// for plain and basic auth (target ≥ 0.95). The box's load average is printed at the start and end:
// the ratios are same-run, but figures from a loaded box still say little about a target.
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import bcrypt from 'bcryptjs';
import { BCRYPT_COST } from '../../src/proxy/auth.js';
import { startBackend, startCaddy, type RunningCaddy } from '../../test/helpers/caddy.js';
import { startController, TOKEN } from '../../test/helpers/controller.js';
import { tempDir } from '../../test/helpers/tmp.js';

const env = process.env;
const WRK_DURATION = env.WRK_DURATION ?? '5s';
const WRK_ROUNDS = Number(env.WRK_ROUNDS ?? 3);
const NO_LOG = env.NO_LOG !== '0';
const PIDFILE = env.BENCH_PIDFILE;
const PLAIN = 'bench-plain.home.arpa';
const AUTH = 'bench-auth.home.arpa';
const USER = 'bench';
const PASSWORD = 'bench-password-0123';
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
/** How long a route may take to be served after its 201 (a busy box; the reconciler debounces). */
const SERVED_TIMEOUT_MS = 30_000;

type Json = Record<string, unknown>;
const api = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const out = (line = '') => process.stdout.write(`${line}\n`);
const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const track = (pid: number | undefined) => {
  if (PIDFILE && pid) appendFileSync(PIDFILE, `${pid}\n`);
};

/** One GET with a Host header (and optional Authorization): the status. */
function status(port: number, host: string, authorization?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, headers: { host, ...(authorization ? { authorization } : {}) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
  });
}

async function until(port: number, host: string, want: number, authorization?: string): Promise<void> {
  const deadline = Date.now() + SERVED_TIMEOUT_MS;
  while ((await status(port, host, authorization)) !== want) {
    if (Date.now() > deadline) throw new Error(`${host} on :${port} did not answer ${want}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function wrk(port: number, host: string, authorization?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = ['-t1', '-c20', `-d${WRK_DURATION}`, '-H', `Host: ${host}`, ...(authorization ? ['-H', `Authorization: ${authorization}`] : []), `http://127.0.0.1:${port}/`];
    const p = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(p.pid);
    let text = '';
    p.stdout.on('data', (c: Buffer) => (text += c.toString()));
    p.on('exit', (code) => {
      const rps = Number(/Requests\/sec:\s+([0-9.]+)/.exec(text)?.[1]);
      if (code !== 0 || !Number.isFinite(rps) || /Non-2xx|Socket errors/.test(text)) return reject(new Error(`wrk ${host} :${port} failed:\n${text}`));
      resolve(rps);
    });
  });
}

/** The hand-written config: what a person would write for the same two hosts, Caddy defaults otherwise. */
function handWritten(caddy: RunningCaddy, dials: string[], hash: string): Json {
  const proxy = { handler: 'reverse_proxy', upstreams: dials.map((dial) => ({ dial })), load_balancing: { selection_policy: { policy: 'round_robin' } } };
  return {
    admin: { listen: caddy.adminListen, config: { persist: false } },
    apps: {
      http: {
        servers: {
          bench: {
            listen: [`127.0.0.1:${caddy.httpPort}`],
            automatic_https: { disable: true },
            routes: [
              { match: [{ host: [PLAIN] }], handle: [proxy], terminal: true },
              {
                match: [{ host: [AUTH] }],
                handle: [{ handler: 'authentication', providers: { http_basic: { accounts: [{ username: USER, password: hash }], hash: { algorithm: 'bcrypt' }, hash_cache: {} } } }, proxy],
                terminal: true,
              },
            ],
          },
        },
      },
    },
  };
}

/**
 * Our config as Caddy A runs it, moved to `to`'s admin and ports; `sink` null: the access log taken
 * out, else its net writer pointed at `sink` (`tcp/127.0.0.1:<port>`) instead of the controller.
 */
function variantOf(config: Json, from: RunningCaddy, to: RunningCaddy, sink: string | null): Json {
  const c = structuredClone(config) as { admin?: Json; logging?: { logs?: Record<string, { writer?: Json }> }; apps?: { http?: Json & { servers?: Record<string, Json> } } };
  c.admin = { ...(c.admin ?? {}), listen: to.adminListen };
  if (sink === null) delete c.logging;
  else for (const log of Object.values(c.logging?.logs ?? {})) if (log.writer?.output === 'net') log.writer.address = sink;
  const http = c.apps?.http;
  if (http) {
    if (http.http_port === from.httpPort) http.http_port = to.httpPort;
    if (http.https_port === from.httpsPort) http.https_port = to.httpsPort;
    for (const server of Object.values(http.servers ?? {})) {
      if (sink === null) delete server.logs;
      server.listen = (server.listen as string[]).map((l) => l.replace(new RegExp(`:${from.httpPort}$`), `:${to.httpPort}`).replace(new RegExp(`:${from.httpsPort}$`), `:${to.httpsPort}`));
    }
  }
  return c as Json;
}

/** Handler names of the route matching `host` (subroutes flattened), to show what runs per request. */
function handlersFor(config: unknown, host: string): string[] {
  const found: string[][] = [];
  const names = (handle: Json[]): string[] => handle.flatMap((h) => (h.handler === 'subroute' ? [`subroute[${((h.routes as Json[]) ?? []).flatMap((r) => names((r.handle as Json[]) ?? [])).join(',')}]`] : [String(h.handler)]));
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (!v || typeof v !== 'object') return;
    const o = v as Json;
    if (Array.isArray(o.match) && Array.isArray(o.handle) && JSON.stringify(o.match).includes(`"${host}"`)) found.push(names(o.handle as Json[]));
    Object.values(o).forEach(walk);
  };
  walk(config);
  return found[0] ?? [];
}

async function main(): Promise<void> {
  out(`load average at start: ${loadavg()}`);
  const tmp = tempDir();
  const backends = await Promise.all(['b1', 'b2', 'b3'].map((n) => startBackend(n)));
  const dials = backends.map((b) => b.dial);
  const ours = await startCaddy();
  const hand = await startCaddy();
  const bare = NO_LOG ? await startCaddy() : undefined;
  const sunk = NO_LOG ? await startCaddy() : undefined;
  [ours, hand, bare, sunk].forEach((c) => track(c?.pid));
  // A TCP listener that reads and drops what it gets: the access log's cost on Caddy's side alone.
  const sink = net.createServer((s) => s.on('data', (b: Buffer) => (sinkBytes += b.length)).on('error', () => undefined));
  let sinkBytes = 0;
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const sinkAddress = `tcp/127.0.0.1:${(sink.address() as net.AddressInfo).port}`;
  const ctl = await startController(tmp.dir, { DNSPROXY_CADDY_ADMIN: ours.adminListen, DNSPROXY_HTTP_PORT: String(ours.httpPort), DNSPROXY_HTTPS_PORT: String(ours.httpsPort) });
  track(ctl.proc.pid);
  try {
    for (const body of [
      { hosts: [PLAIN], upstreams: dials, balancing: { policy: 'round_robin' } },
      { hosts: [AUTH], upstreams: dials, balancing: { policy: 'round_robin' }, auth: { basic: { accounts: [{ username: USER, password: PASSWORD }] } } },
    ]) {
      const res = await fetch(`${ctl.apiUrl}/api/v1/routes`, { method: 'POST', headers: api, body: JSON.stringify(body) });
      if (res.status !== 201) throw new Error(`POST /api/v1/routes ${body.hosts[0]}: ${res.status} ${await res.text()}`);
    }
    await until(ours.httpPort, PLAIN, 200);
    await until(ours.httpPort, AUTH, 401);
    await until(ours.httpPort, AUTH, 200, BASIC);
    const pushed = (await ours.get('/config/')) as Json;

    // Same bcrypt cost as the API's hashes, so the one compare hash_cache saves costs the same.
    await hand.load(handWritten(hand, dials, await bcrypt.hash(PASSWORD, BCRYPT_COST)));
    await until(hand.httpPort, PLAIN, 200);
    await until(hand.httpPort, AUTH, 401);
    await until(hand.httpPort, AUTH, 200, BASIC);
    for (const [c, to] of [[bare, null], [sunk, sinkAddress]] as const) {
      if (!c) continue;
      await c.load(variantOf(pushed, ours, c, to));
      await until(c.httpPort, PLAIN, 200);
      await until(c.httpPort, AUTH, 200, BASIC);
    }

    out(`our config (GET /config/ from Caddy A): ${JSON.stringify(pushed).length} bytes; access log to the controller: ${'logging' in pushed ? 'yes' : 'no'}`);
    out(`  ${PLAIN}: ${handlersFor(pushed, PLAIN).join(' → ')}`);
    out(`  ${AUTH}: ${handlersFor(pushed, AUTH).join(' → ')}`);
    out(`hand-written: ${PLAIN}: reverse_proxy; ${AUTH}: authentication → reverse_proxy`);

    const variants: [string, RunningCaddy][] = [['ours', ours], ['hand', hand], ...(bare && sunk ? ([['ours-nolog', bare], ['ours-sink', sunk]] as [string, RunningCaddy][]) : [])];
    const rps: Record<string, number[]> = {};
    for (let r = 0; r < WRK_ROUNDS; r++) {
      for (const [host, authorization] of [[PLAIN, undefined], [AUTH, BASIC]] as const) {
        for (const [name, caddy] of variants) (rps[`${name} ${host}`] ??= []).push(await wrk(caddy.httpPort, host, authorization));
      }
    }
    const show = (k: string) => `${med(rps[k]!).toFixed(0)} (${rps[k]!.map((x) => x.toFixed(0)).join(' / ')})`;
    out(`\n== wrk -t1 -c20 -d${WRK_DURATION}, ${WRK_ROUNDS} interleaved rounds, req/s median (rounds)`);
    for (const [what, host] of [['plain', PLAIN], ['basic auth', AUTH]] as const) {
      const ratio = med(rps[`ours ${host}`]!) / med(rps[`hand ${host}`]!);
      out(`${what}: ours ${show(`ours ${host}`)}; hand-written ${show(`hand ${host}`)}; ours / hand-written ${ratio.toFixed(2)} (target ≥ 0.95: ${ratio >= 0.95 ? 'met' : 'missed'})`);
      if (bare) {
        out(`  ours without the access log: ${show(`ours-nolog ${host}`)}; / hand-written ${(med(rps[`ours-nolog ${host}`]!) / med(rps[`hand ${host}`]!)).toFixed(2)}`);
        out(`  ours, access log to a sink that drops it: ${show(`ours-sink ${host}`)}; / hand-written ${(med(rps[`ours-sink ${host}`]!) / med(rps[`hand ${host}`]!)).toFixed(2)}`);
      }
    }
    if (sunk) out(`access log bytes the sink got: ${sinkBytes}`);
    out(`backend hits (round robin over all three): ${backends.map((b) => `${b.name} ${b.hits}`).join(', ')}`);
    out(`\nload average at the end: ${loadavg()}`);
  } catch (e) {
    out(`controller output (last 3 kB):\n${ctl.output().slice(-3000)}`);
    throw e;
  } finally {
    await ctl.stop();
    for (const c of [ours, hand, bare, sunk]) await c?.stop();
    sink.close();
    for (const b of backends) await b.close();
    tmp.cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
