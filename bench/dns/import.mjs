// Does DNS keep answering while a big zone import runs? (plain Node ESM, no build step)
//
//   npm run build && node bench/dns/import.mjs            # LINES=150000 RATE=200 PHASES=idle,dry,real,again
//
// Starts `bin/dnsproxy serve` (dist/) on free loopback ports with a temp data dir, makes a zone file
// of LINES A records for home.arpa., and for each phase POSTs it to /api/v1/zones/home.arpa/import
// while a prober sends one UDP query for an existing name every 1000/RATE ms and times each answer.
// Phases: idle (the probe alone for IDLE_MS: the box's own share), dry (dry_run=true), real (merge
// into the empty zone), again (the same file once more: 150,000 unchanged sets rewritten). Prints per phase: import wall time, queries sent while it ran,
// p50/p99/max latency and queries without an answer within TIMEOUT_MS. Everything it starts is
// stopped and its temp dir removed. Not part of `npm test`; test/api/zones.test.ts has the small one.
// Knobs: LINES, RATE, PHASES, IDLE_MS (10000), AFTER_MS (5000, probing after each import), TIMEOUT_MS (2000), BIN (another build's bin/dnsproxy), CTL_LOG (a file
// for the controller's output after its start, e.g. with a BIN wrapper adding --trace-gc).
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LINES = Number(process.env.LINES ?? 150_000);
const RATE = Number(process.env.RATE ?? 200);
const TIMEOUT_MS = Number(process.env.TIMEOUT_MS ?? 2000);
const PHASES = (process.env.PHASES ?? 'idle,dry,real,again').split(',');
const IDLE_MS = Number(process.env.IDLE_MS ?? 10_000);
/** Probing after each import's reply, for the GC that follows it (0: none). */
const AFTER_MS = Number(process.env.AFTER_MS ?? 5_000);
/** A file for the controller's log lines after its start (default: dropped). */
const CTL_LOG = process.env.CTL_LOG;
const BIN = process.env.BIN ?? fileURLToPath(new URL('../../bin/dnsproxy', import.meta.url));
const TOKEN = `bench-import-token-${process.pid}-0123456789`;

const dir = mkdtempSync(join(tmpdir(), 'dnsproxy-bench-import-'));
const ctl = spawn(BIN, ['serve', '--data-dir', dir, '--dns-port', '0', '--api-port', '0', '--listen-ip', '127.0.0.1'], {
  env: { ...process.env, DNSPROXY_ADMIN_TOKEN: TOKEN, DNSPROXY_NODE_IP: '192.0.2.10', DNSPROXY_LOG_LEVEL: 'info' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const exited = new Promise((resolve) => ctl.once('exit', resolve));
process.on('exit', () => {
  ctl.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const started = await new Promise((resolve, reject) => {
  let out = '';
  ctl.stdout.on('data', (c) => {
    out += c;
    const line = out.split('\n').find((l) => l.includes('"controller started"'));
    if (line) {
      out = '';
      ctl.stdout.removeAllListeners('data');
      if (CTL_LOG) ctl.stdout.pipe(createWriteStream(CTL_LOG));
      else ctl.stdout.resume(); // its log lines from here on are not read
      resolve(JSON.parse(line));
    }
  });
  ctl.once('exit', (code) => reject(new Error(`controller exited (${code})`)));
});
const api = `http://${started.api}`;
const dnsPort = Number(started.dns.split(':').pop());

// The question: ns1.home.arpa. A IN (glue, always there); header RD, QDCOUNT 1, ID set per query.
const query = Buffer.concat([Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([3, ...Buffer.from('ns1'), 4, ...Buffer.from('home'), 4, ...Buffer.from('arpa'), 0, 0, 1, 0, 1])]);

function probe() {
  const sock = createSocket('udp4');
  const sent = new Map();
  const lat = [];
  let id = 0;
  let lost = 0;
  sock.on('message', (m) => {
    const t = sent.get(m.readUInt16BE(0));
    if (t === undefined) return;
    sent.delete(m.readUInt16BE(0));
    lat.push(performance.now() - t);
  });
  const timer = setInterval(() => {
    const now = performance.now();
    for (const [k, t] of sent) if (now - t > TIMEOUT_MS) (sent.delete(k), lost++);
    id = (id + 1) & 0xffff;
    const q = Buffer.from(query);
    q.writeUInt16BE(id, 0);
    sent.set(id, performance.now());
    sock.send(q, dnsPort, '127.0.0.1');
  }, 1000 / RATE);
  return async () => {
    clearInterval(timer);
    await new Promise((r) => setTimeout(r, TIMEOUT_MS));
    lost += sent.size;
    sock.close();
    lat.sort((a, b) => a - b);
    const at = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
    return { n: lat.length + lost, p50: at(0.5), p99: at(0.99), max: lat.at(-1) ?? NaN, lost };
  };
}

const lines = ['$TTL 300'];
for (let i = 0; i < LINES; i++) lines.push(`h${i} IN A 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
const body = lines.join('\n') + '\n';
console.log(`zone file: ${LINES} lines, ${(body.length / 1048576).toFixed(1)} MiB; probing ns1.home.arpa. A at ${RATE}/s`);

const f = (x) => x.toFixed(1);
for (const phase of PHASES) {
  if (phase === 'idle') {
    // The same probe with no import: what the box's own load costs.
    const stop = probe();
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const s = await stop();
    console.log(`idle  ${(IDLE_MS / 1000).toFixed(0)} s, no import; DNS: ${s.n} queries, p50 ${f(s.p50)} ms, p99 ${f(s.p99)} ms, max ${f(s.max)} ms, unanswered ${s.lost}`);
    continue;
  }
  const stop = probe();
  await new Promise((r) => setTimeout(r, 500)); // a quiet baseline first
  const t0 = performance.now();
  const res = await fetch(`${api}/api/v1/zones/home.arpa/import${phase === 'dry' ? '?dry_run=true' : ''}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain' }, body });
  const text = await res.text();
  const ms = performance.now() - t0;
  const s = await stop();
  console.log(`${phase.padEnd(5)} HTTP ${res.status} in ${(ms / 1000).toFixed(2)} s (${text.length} bytes); DNS: ${s.n} queries, p50 ${f(s.p50)} ms, p99 ${f(s.p99)} ms, max ${f(s.max)} ms, unanswered ${s.lost}`);
  if (AFTER_MS > 0) {
    // The seconds after: the heap shrinks again once the import is done (src/heap.ts).
    const next = probe();
    await new Promise((r) => setTimeout(r, AFTER_MS));
    const a = await next();
    console.log(`  after ${(AFTER_MS / 1000).toFixed(0)} s: DNS: ${a.n} queries, p50 ${f(a.p50)} ms, p99 ${f(a.p99)} ms, max ${f(a.max)} ms, unanswered ${a.lost}`);
  }
}
// SIGTERM first: the controller stops cleanly (and writes a --cpu-prof profile, if a BIN wrapper asked for one).
ctl.kill('SIGTERM');
await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
process.exit(0);
