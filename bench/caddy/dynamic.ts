// Plain names through DNS (no Caddy reload per change), run by `BENCH=dynamic bash bench/caddy/run.sh`
// (needs dist/ built, caddy and wrk on PATH). One private Caddy, our controller at it, one echo backend:
//   1. 1, 100 and 10,000 plain proxied records (POST /add-record, CONCURRENCY in flight): the
//      config Caddy runs (GET /config/, bytes) after each step, and loads since the start;
//   2. at 10,000: wrk -t1 -c20 to the first and the 10,000th host (interleaved rounds, median);
//   3. record changes per second: CHANGES backend changes of existing names at CONCURRENCY in flight,
//      with Caddy loads counted before and after (must be 0);
//   4. an explicit route (POST /api/v1/routes) and a plain name to the same backend: wrk both;
//   5. POST /add-record response time (client side, K new names, sequential 50 ms apart and back
//      to back) once ADD_AT (5,000) plain names are present, in the middle of step 1; again at the
//      end with EXPLICIT explicit path routes added (only when EXPLICIT > 0).
// The box's load average (/proc/loadavg) is printed at the start and the end: figures from a
// loaded box say little about a target.
import { performance } from 'node:perf_hooks';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { request, startBackend, startCaddy } from '../../test/helpers/caddy.js';
import { startController, TOKEN } from '../../test/helpers/controller.js';
import { tempDir } from '../../test/helpers/tmp.js';

const env = process.env;
const STEPS = (env.STEPS ?? '1,100,5000,10000').split(',').map(Number);
const ADD_AT = Number(env.ADD_AT ?? 5000);
const CONCURRENCY = Number(env.CONCURRENCY ?? 20);
const CHANGES = Number(env.CHANGES ?? 2000);
const EXPLICIT = Number(env.EXPLICIT ?? 0);
const K = Number(env.K ?? 50);
const WRK_DURATION = env.WRK_DURATION ?? '5s';
const WRK_ROUNDS = Number(env.WRK_ROUNDS ?? 3);
const PIDFILE = env.BENCH_PIDFILE;
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

const out = (line = '') => process.stdout.write(`${line}\n`);
const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(0.9 * xs.length) - 1)]!;
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const label = (i: number) => `h${String(i).padStart(5, '0')}`;

async function pool<T>(n: number, work: (i: number) => Promise<T>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    for (let i = next++; i < n; i = next++) await work(i);
  }));
}

function wrk(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn('wrk', ['-t1', '-c20', `-d${WRK_DURATION}`, '-H', `Host: ${host}`, `http://127.0.0.1:${port}/`], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (PIDFILE && p.pid) appendFileSync(PIDFILE, `${p.pid}\n`);
    let text = '';
    p.stdout.on('data', (c: Buffer) => (text += c.toString()));
    p.on('exit', (code) => {
      const rps = Number(/Requests\/sec:\s+([0-9.]+)/.exec(text)?.[1]);
      if (code !== 0 || !Number.isFinite(rps) || /Non-2xx/.test(text)) return reject(new Error(`wrk ${host} failed:\n${text}`));
      resolve(rps);
    });
  });
}

async function main(): Promise<void> {
  const tmp = tempDir();
  const caddy = await startCaddy();
  const backend = await startBackend('echo');
  const [bhost, bport] = backend.dial.split(':');
  const c = await startController(tmp.dir, { DNSPROXY_CADDY_ADMIN: caddy.adminListen, DNSPROXY_HTTP_PORT: String(caddy.httpPort), DNSPROXY_HTTPS_PORT: String(caddy.httpsPort) });
  for (const pid of [caddy.pid, c.proc.pid]) if (PIDFILE && pid) appendFileSync(PIDFILE, `${pid}\n`);
  const loads = async () => {
    const text = await (await fetch(`${c.apiUrl}/metrics`)).text();
    return [...text.matchAll(/^dnsproxy_caddy_loads_total\{reason="\w+"\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
  };
  const add = async (name: string, port = Number(bport)) => {
    const t0 = performance.now();
    const res = await fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify({ service_name: name, name, ip: '127.0.0.1', port, forward_to_ip: bhost, proxy_enabled: true }) });
    if (res.status !== 201 && res.status !== 200) throw new Error(`add-record ${name}: ${res.status} ${await res.text()}`);
    return performance.now() - t0;
  };
  const served = async (host: string) => {
    for (let i = 0; i < 500; i++) {
      if ((await request({ port: caddy.httpPort, host }).catch(() => ({ status: 0 }))).status === 200) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${host} not served`);
  };
  /** K add-record calls for new names, sequential 50 ms apart, then K back to back: medians printed. */
  const addTimes = async (what: string, prefix: string) => {
    const times: number[] = [];
    for (let i = 0; i < K; i++) {
      times.push(await add(`${prefix}${i}`));
      await new Promise((r) => setTimeout(r, 50));
    }
    const back: number[] = [];
    for (let i = 0; i < K; i++) back.push(await add(`${prefix}b${i}`));
    out(`\n== POST /add-record (new plain name) ${what}: median ${med(times).toFixed(1)} ms, p90 ${p90(times).toFixed(1)} ms (K = ${K}, sequential, 50 ms apart; target < 20 ms median); back to back: median ${med(back).toFixed(1)} ms, p90 ${p90(back).toFixed(1)} ms; load average ${loadavg()}`);
  };
  try {
    out(`load average at start: ${loadavg()}`);
    await served('x.invalid').catch(() => undefined);
    const startLoads = await loads();
    out(`== pushed config size (GET /config/ from Caddy) with N plain proxied records`);
    let have = 0;
    for (const n of STEPS) {
      await pool(n - have, (i) => add(label(have + i)));
      have = n;
      await served(`${label(n - 1)}.home.arpa`);
      const bytes = JSON.stringify(await caddy.get('/config/')).length;
      out(`N = ${String(n).padStart(6)}: config ${bytes} bytes, Caddy loads since start ${(await loads()) - startLoads}`);
      if (n === ADD_AT) {
        await addTimes(`with ${n} plain names present`, 'new');
        out('');
      }
    }
    const first = `${label(0)}.home.arpa`;
    const last = `${label(have - 1)}.home.arpa`;
    const rps: Record<string, number[]> = { first: [], last: [] };
    for (let r = 0; r < WRK_ROUNDS; r++) {
      rps.first!.push(await wrk(caddy.httpPort, first));
      rps.last!.push(await wrk(caddy.httpPort, last));
    }
    out(`\n== wrk -t1 -c20 -d${WRK_DURATION}, ${WRK_ROUNDS} rounds, ${have} plain names`);
    out(`first host ${first}: ${rps.first!.map((x) => x.toFixed(0)).join(' / ')} req/s; last host ${last}: ${rps.last!.map((x) => x.toFixed(0)).join(' / ')} req/s; last/first (medians) ${(med(rps.last!) / med(rps.first!)).toFixed(2)}`);

    const before = await loads();
    const t0 = performance.now();
    await pool(CHANGES, (i) => add(label(i % have), 10_000 + (i % 50)));
    const secs = (performance.now() - t0) / 1000;
    // Put the real backend back for the hosts used below.
    await add(label(0));
    out(`\n== record changes: ${CHANGES} backend changes of plain names in ${secs.toFixed(1)} s = ${(CHANGES / secs).toFixed(0)} changes/s (${CONCURRENCY} in flight); Caddy loads meanwhile: ${(await loads()) - before}`);

    const res = await fetch(`${c.apiUrl}/api/v1/routes`, { method: 'POST', headers: auth, body: JSON.stringify({ hosts: ['explicit.home.arpa'], upstreams: [backend.dial] }) });
    if (res.status !== 201) throw new Error(`route: ${res.status}`);
    await served('explicit.home.arpa');
    await served(first);
    const cmp: Record<string, number[]> = { dynamic: [], explicit: [] };
    for (let r = 0; r < WRK_ROUNDS; r++) {
      cmp.dynamic!.push(await wrk(caddy.httpPort, first));
      cmp.explicit!.push(await wrk(caddy.httpPort, 'explicit.home.arpa'));
    }
    out(`\n== same backend: dynamic ${first} ${cmp.dynamic!.map((x) => x.toFixed(0)).join(' / ')} req/s; explicit ${cmp.explicit!.map((x) => x.toFixed(0)).join(' / ')} req/s; dynamic/explicit (medians) ${(med(cmp.dynamic!) / med(cmp.explicit!)).toFixed(2)}`);

    if (EXPLICIT > 0) {
      await pool(EXPLICIT, async (i) => {
        const r = await fetch(`${c.apiUrl}/api/v1/routes`, { method: 'POST', headers: auth, body: JSON.stringify({ hosts: [`e${i}.home.arpa`], path: '/x', upstreams: [backend.dial] }) });
        if (r.status !== 201) throw new Error(`route e${i}: ${r.status}`);
      });
      await served(`e${EXPLICIT - 1}.home.arpa`).catch(() => undefined);
      for (let i = 0; i < 300; i++) {
        const plan = (await (await fetch(`${c.apiUrl}/api/v1/plan`, { headers: auth })).json()) as { in_sync: boolean };
        if (plan.in_sync) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await addTimes(`with ${have} plain names and ${EXPLICIT + 1} explicit routes present`, 'late');
    }
    out(`\nload average at the end: ${loadavg()}`);
  } catch (e) {
    out(`controller output (last 3 kB):\n${c.output().slice(-3000)}`);
    throw e;
  } finally {
    await c.stop();
    await caddy.stop();
    await backend.close();
    tmp.cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
