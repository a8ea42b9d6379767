// Our generated Caddy config vs a hand-written one (issue 15, `bench/proxy`), run by
// `bash bench/proxy/run.sh` (needs dist/ built, caddy and wrk on PATH). Loopback only.
//   - three echo backends (test/helpers/caddy.ts startBackend);
//   - Caddy A run by a real controller (`bin/dnsproxy serve`, default settings): two routes made
//     through the API, `POST /api/v1/routes` — `bench-plain.home.arpa` → the 3 backends, balancing
//     round_robin; `bench-auth.home.arpa` → the same with `auth.basic` (one account, password
//     given, so the API hashes it with bcrypt at its own cost; the renderer turns `hash_cache` on).
//     What A runs is exactly what we push: the bench reads it back with `GET /config/` and waits
//     until it serves;
//   - Caddy B with a hand-written minimal config: one server, a host matcher → reverse_proxy with
//     the same 3 upstreams and round robin; and the auth host with `authentication` http_basic,
//     bcrypt (same cost), hash_cache, before the same reverse_proxy. Nothing else (Caddy defaults);
//   - unless STATS=0, the cost of per-host stats (setting `stats`, off by default): Caddy S run by
//     a second controller with `DNSPROXY_STATS=on` (the same two routes; its access log goes to
//     that controller), and Caddy L with B's hand-written config plus the same access log sent to
//     a listener in this process that reads and drops it: what Caddy's log costs any config.
// Then WRK_ROUNDS interleaved rounds of `wrk -t1 -c20 -d$WRK_DURATION` per host and config
// (A, B, S, L, then L, S, B, A, …; a 2xx check on every answer): req/s medians and ratios against B
// (target for A: ≥ 0.95, plain and basic auth), and each Caddy's CPU time per request over the
// same rounds (from /proc; less sensitive to how the 2 cores were shared in a round). The box's
// load average is printed at the start and end: the ratios are same-run, but figures from a
// loaded box still say little about a target.
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import bcrypt from 'bcryptjs';
import { ACCESS_LOG_NAME } from '../../src/proxy/access-log.js';
import { BCRYPT_COST } from '../../src/proxy/auth.js';
import { startBackend, startCaddy, type RunningCaddy } from '../../test/helpers/caddy.js';
import { startController, TOKEN, type Running } from '../../test/helpers/controller.js';
import { tempDir } from '../../test/helpers/tmp.js';

const env = process.env;
const WRK_DURATION = env.WRK_DURATION ?? '5s';
const WRK_ROUNDS = Number(env.WRK_ROUNDS ?? 3);
const STATS = env.STATS !== '0';
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

/** The same two routes through a controller's API, served by `caddy`; its config as Caddy runs it. */
async function ourRoutes(ctl: Running, caddy: RunningCaddy, dials: string[]): Promise<Json> {
  for (const body of [
    { hosts: [PLAIN], upstreams: dials, balancing: { policy: 'round_robin' } },
    { hosts: [AUTH], upstreams: dials, balancing: { policy: 'round_robin' }, auth: { basic: { accounts: [{ username: USER, password: PASSWORD }] } } },
  ]) {
    const res = await fetch(`${ctl.apiUrl}/api/v1/routes`, { method: 'POST', headers: api, body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`POST /api/v1/routes ${body.hosts[0]}: ${res.status} ${await res.text()}`);
  }
  await served(caddy);
  return (await caddy.get('/config/')) as Json;
}

async function served(caddy: RunningCaddy): Promise<void> {
  await until(caddy.httpPort, PLAIN, 200);
  await until(caddy.httpPort, AUTH, 401);
  await until(caddy.httpPort, AUTH, 200, BASIC);
}

/** User + system CPU time of process `pid` so far, in µs (Linux /proc; clock ticks of 10 ms). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function main(): Promise<void> {
  out(`load average at start: ${loadavg()}`);
  const tmpA = tempDir();
  const tmpS = tempDir();
  const backends = await Promise.all(['b1', 'b2', 'b3'].map((n) => startBackend(n)));
  const dials = backends.map((b) => b.dial);
  const ours = await startCaddy();
  const hand = await startCaddy();
  const withStats = STATS ? await startCaddy() : undefined;
  const handLog = STATS ? await startCaddy() : undefined;
  [ours, hand, withStats, handLog].forEach((c) => track(c?.pid));
  // A TCP listener that reads and drops what it gets: the access log's cost on Caddy's side alone.
  let sinkBytes = 0;
  const sink = net.createServer((s) => s.on('data', (b: Buffer) => (sinkBytes += b.length)).on('error', () => undefined));
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const sinkAddress = `tcp/127.0.0.1:${(sink.address() as net.AddressInfo).port}`;
  const caddyEnv = (c: RunningCaddy) => ({ DNSPROXY_CADDY_ADMIN: c.adminListen, DNSPROXY_HTTP_PORT: String(c.httpPort), DNSPROXY_HTTPS_PORT: String(c.httpsPort) });
  const ctl = await startController(tmpA.dir, caddyEnv(ours));
  track(ctl.proc.pid);
  const ctlS = withStats ? await startController(tmpS.dir, { ...caddyEnv(withStats), DNSPROXY_STATS: 'on' }) : undefined;
  track(ctlS?.proc.pid);
  try {
    const pushed = await ourRoutes(ctl, ours, dials);
    const pushedS = ctlS && withStats ? await ourRoutes(ctlS, withStats, dials) : undefined;
    // Same bcrypt cost as the API's hashes, so the one compare hash_cache saves costs the same.
    const hash = await bcrypt.hash(PASSWORD, BCRYPT_COST);
    await hand.load(handWritten(hand, dials, hash));
    await served(hand);
    if (handLog && pushedS) {
      // B's config plus the access log exactly as our config with stats has it, to the sink.
      const c = handWritten(handLog, dials, hash) as { logging?: Json; apps: { http: { servers: Record<string, Json> } } };
      const logging = structuredClone(pushedS.logging) as { logs: Record<string, { writer?: Json }> };
      for (const log of Object.values(logging.logs)) if (log.writer?.output === 'net') log.writer.address = sinkAddress;
      c.logging = logging;
      for (const server of Object.values(c.apps.http.servers)) server.logs = { default_logger_name: ACCESS_LOG_NAME };
      await handLog.load(c as Json);
      await served(handLog);
    }

    out(`our config (GET /config/ from Caddy A, default settings): ${JSON.stringify(pushed).length} bytes; access log: ${'logging' in pushed ? 'yes' : 'no'}`);
    out(`  ${PLAIN}: ${handlersFor(pushed, PLAIN).join(' → ')}`);
    out(`  ${AUTH}: ${handlersFor(pushed, AUTH).join(' → ')}`);
    out(`hand-written: ${PLAIN}: reverse_proxy; ${AUTH}: authentication → reverse_proxy`);
    if (pushedS) out(`with stats on (Caddy S): ${JSON.stringify(pushedS).length} bytes; access log: ${'logging' in pushedS ? 'yes' : 'no'}`);

    const variants: [string, RunningCaddy][] = [['ours', ours], ['hand', hand], ...(withStats && handLog ? ([['ours+stats', withStats], ['hand+log', handLog]] as [string, RunningCaddy][]) : [])];
    const rps: Record<string, number[]> = {};
    const cpu: Record<string, { micros: number; requests: number }> = {};
    const seconds = parseFloat(WRK_DURATION);
    for (let r = 0; r < WRK_ROUNDS; r++) {
      for (const [host, authorization] of [[PLAIN, undefined], [AUTH, BASIC]] as const) {
        // Every other round in reverse order, so no config always runs right after another one.
        for (const [name, caddy] of r % 2 ? [...variants].reverse() : variants) {
          const t0 = cpuMicros(caddy.pid);
          const x = await wrk(caddy.httpPort, host, authorization);
          const k = `${name} ${host}`;
          (rps[k] ??= []).push(x);
          const c = (cpu[k] ??= { micros: 0, requests: 0 });
          c.micros += cpuMicros(caddy.pid) - t0;
          c.requests += x * seconds;
        }
      }
    }
    const perReq = (k: string) => cpu[k]!.micros / cpu[k]!.requests;
    const show = (k: string) => `${med(rps[k]!).toFixed(0)} (${rps[k]!.map((x) => x.toFixed(0)).join(' / ')}), Caddy CPU ${perReq(k).toFixed(0)} µs/req`;
    const ratio = (k: string, host: string) => med(rps[`${k} ${host}`]!) / med(rps[`hand ${host}`]!);
    out(`\n== wrk -t1 -c20 -d${WRK_DURATION}, ${WRK_ROUNDS} interleaved rounds, req/s median (rounds)`);
    for (const [what, host] of [['plain', PLAIN], ['basic auth', AUTH]] as const) {
      const r = ratio('ours', host);
      out(`${what}: ours ${show(`ours ${host}`)}; hand-written ${show(`hand ${host}`)}`);
      out(`  ours / hand-written ${r.toFixed(2)} (target ≥ 0.95: ${r >= 0.95 ? 'met' : 'missed'}); CPU per request hand-written / ours ${(perReq(`hand ${host}`) / perReq(`ours ${host}`)).toFixed(2)}`);
      if (withStats) {
        out(`  with per-host stats on: ours ${show(`ours+stats ${host}`)}; / hand-written ${ratio('ours+stats', host).toFixed(2)}`);
        out(`  hand-written + the same access log to a sink: ${show(`hand+log ${host}`)}; / hand-written ${ratio('hand+log', host).toFixed(2)}`);
      }
    }
    if (handLog) out(`access log bytes the sink got: ${sinkBytes}`);
    out(`backend hits (round robin over all three): ${backends.map((b) => `${b.name} ${b.hits}`).join(', ')}`);
    out(`\nload average at the end: ${loadavg()}`);
  } catch (e) {
    out(`controller output (last 3 kB):\n${ctl.output().slice(-3000)}`);
    if (ctlS) out(`stats controller output (last 3 kB):\n${ctlS.output().slice(-3000)}`);
    throw e;
  } finally {
    await ctl.stop();
    await ctlS?.stop();
    for (const c of [ours, hand, withStats, handLog]) await c?.stop();
    sink.close();
    for (const b of backends) await b.close();
    tmpA.cleanup();
    tmpS.cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
