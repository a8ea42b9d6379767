// bench/api: the controller's API under a fixed arrival rate of mixed reads and writes.
//
//   node bench/api/run.mjs            (after `npm run build`; env: RATE=1000 DURATION=30 WARMUP=3 NAMES=200 WRITE_PCT=30)
//
// Starts `bin/dnsproxy serve` (dist/) on free loopback ports with a fresh data dir and a Caddy
// admin address nothing listens on (no Caddy is touched), seeds NAMES A records, then sends RATE
// requests a second for DURATION seconds at fixed times (open loop: a request's latency counts
// from when it was due, so a stalled server cannot hide its queue), over keep-alive connections:
//
//   40 %  GET /api/v1/records/<name>/A     one record set
//   20 %  GET /api/v1/zones                 zones with serial and count
//   10 %  GET /list-records                 the legacy list (every A record)
//   30 %  PUT /api/v1/records/<name>/A     replace a record set (a new serial, the change pipeline)
//
// Prints p50/p95/p99/max (target: p95 < 20 ms), the achieved rate, errors, the controller's CPU
// (% of one core, from /proc) and how much of the machine other processes used meanwhile.
// Plain Node ESM, no dependencies; a benchmark that prints figures against a target, not a test.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prng } from '../lib/prng.mjs';

const RATE = Number(process.env.RATE ?? 1000);
const DURATION = Number(process.env.DURATION ?? 30);
const WARMUP = Number(process.env.WARMUP ?? 3);
const NAMES = Number(process.env.NAMES ?? 200);
/** Share of writes in the mix (%); the reads keep their 4:2:1 proportions in the rest. */
const WRITE_PCT = Number(process.env.WRITE_PCT ?? 30);
/** The target this bench reports against. */
const P95_TARGET_MS = 20;
/** Connections the client keeps open (enough that 1,000 req/s never waits for a socket at ~20 ms each). */
const SOCKETS = 64;
const TOKEN = 'bench-admin-token-0123456789abcdef';
const BIN = fileURLToPath(new URL('../../bin/dnsproxy', import.meta.url));
const TICK = 100; // USER_HZ on Linux

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

const procTicks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
};
const machine = () => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { busy: f[0] + f[1] + f[2], total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
};

const dir = mkdtempSync(join(tmpdir(), 'dnsproxy-bench-api-'));
const caddyAdmin = `127.0.0.1:${await freePort()}`;
const ctl = spawn(BIN, ['serve', '--data-dir', join(dir, 'data'), '--dns-port', '0', '--api-port', '0', '--listen-ip', '127.0.0.1'], {
  env: { ...process.env, DNSPROXY_ADMIN_TOKEN: TOKEN, DNSPROXY_NODE_IP: '192.0.2.10', DNSPROXY_CADDY_ADMIN: caddyAdmin, DNSPROXY_LOG_LEVEL: 'info' },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let out = '';
let stdout = '';
const api = await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`controller did not start:\n${out}`)), 30_000);
  const on = (c) => {
    out = (out + c).slice(-65_536);
    // stdout alone, whole lines only: a stderr chunk must not land inside the line we parse.
    stdout = (stdout + c).slice(-65_536);
    const line = stdout.split('\n').slice(0, -1).find((l) => l.startsWith('{') && l.includes('"controller started"'));
    if (line) {
      clearTimeout(t);
      resolve(JSON.parse(line).api);
    }
  };
  ctl.stdout.on('data', on);
  ctl.stderr.on('data', (c) => (out = (out + c).slice(-65_536)));
  ctl.once('exit', (code) => reject(new Error(`controller exited (${code}):\n${out}`)));
});
const [host, port] = [api.slice(0, api.lastIndexOf(':')), Number(api.slice(api.lastIndexOf(':') + 1))];
const agent = new http.Agent({ keepAlive: true, maxSockets: SOCKETS });
const headers = { authorization: `Bearer ${TOKEN}` };

function request(method, path, body) {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ host, port, method, path, agent, headers: data ? { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(data);
  });
}

const name = (i) => `bench${i}`;
const ip = (r) => `198.51.100.${1 + Math.floor(r() * 250)}`;
const seed = prng(1);
for (let i = 0; i < NAMES; i++) {
  const s = await request('PUT', `/api/v1/records/${name(i)}/A`, { name: name(i), type: 'A', values: [ip(seed)] });
  if (s !== 201 && s !== 200) throw new Error(`seeding ${name(i)}: ${s}\n${out}`);
}

const r = prng(42);
/** One request of the mix: its kind and its promise of a status. */
function next() {
  const n = name(Math.floor(r() * NAMES));
  if (r() < WRITE_PCT / 100) return ['write', request('PUT', `/api/v1/records/${n}/A`, { name: n, type: 'A', values: [ip(r)] })];
  const x = r() * 0.7;
  if (x < 0.4) return ['read-one', request('GET', `/api/v1/records/${n}/A`)];
  if (x < 0.6) return ['zones', request('GET', '/api/v1/zones')];
  return ['list', request('GET', '/list-records')];
}

/** Sends at RATE for `seconds`; resolves with [kind, latency ms, status] per request. */
async function run(seconds) {
  const total = Math.round(RATE * seconds);
  const results = [];
  const pending = [];
  const start = performance.now();
  let sent = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + (sent * 1000) / RATE <= now) {
        const due = start + (sent * 1000) / RATE;
        const [kind, p] = next();
        pending.push(p.then((status) => results.push([kind, performance.now() - due, status])));
        sent++;
      }
      if (sent < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  await Promise.all(pending);
  return { results, wallMs: performance.now() - start };
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const f1 = (v) => v.toFixed(1);
try {
  await run(WARMUP);
  const c0 = procTicks(ctl.pid);
  const m0 = machine();
  const me0 = process.cpuUsage();
  const { results, wallMs } = await run(DURATION);
  const c1 = procTicks(ctl.pid);
  const m1 = machine();
  const me1 = process.cpuUsage(me0);
  const wallTicks = (wallMs / 1000) * TICK;
  const ctlCpu = (100 * (c1 - c0)) / wallTicks;
  const clientCpu = (100 * ((me1.user + me1.system) / 1e6) * TICK) / wallTicks;
  const machineBusy = (100 * (m1.busy - m0.busy)) / (m1.total - m0.total);
  const other = Math.max(0, machineBusy - (ctlCpu + clientCpu) / cpus().length);
  const lat = results.map((x) => x[1]).sort((a, b) => a - b);
  const errors = results.filter((x) => x[2] < 200 || x[2] >= 300).length;
  console.log(`bench/api: ${RATE} req/s (${WRITE_PCT} % writes) for ${DURATION} s (after ${WARMUP} s warm-up), ${NAMES} names, ${SOCKETS} keep-alive connections, Node ${process.versions.node}, ${cpus().length} cores`);
  console.log(`sent ${results.length} in ${f1(wallMs / 1000)} s = ${f1(results.length / (wallMs / 1000))} req/s; errors ${errors}`);
  console.log(`latency from the due time (ms): p50 ${f1(pct(lat, 50))}  p95 ${f1(pct(lat, 95))}  p99 ${f1(pct(lat, 99))}  max ${f1(lat.at(-1))}`);
  for (const kind of ['read-one', 'zones', 'list', 'write']) {
    const k = results.filter((x) => x[0] === kind).map((x) => x[1]).sort((a, b) => a - b);
    console.log(`  ${kind.padEnd(8)} n=${String(k.length).padStart(6)}  p50 ${f1(pct(k, 50))}  p95 ${f1(pct(k, 95))}  p99 ${f1(pct(k, 99))}`);
  }
  console.log(`controller CPU ${f1(ctlCpu)} % of one core; client ${f1(clientCpu)} %; other processes ${f1(other)} % of the machine`);
  const p95 = pct(lat, 95);
  console.log(`p95 ${f1(p95)} ms vs target < ${P95_TARGET_MS} ms: ${p95 < P95_TARGET_MS ? 'met' : 'missed'} (p95 / target = ${(p95 / P95_TARGET_MS).toFixed(2)})`);
} finally {
  agent.destroy();
  ctl.kill('SIGTERM');
  await new Promise((res) => ctl.once('exit', res));
  rmSync(dir, { recursive: true, force: true });
}
