// The whole stack as users run it: `supervisord -n -c supervisord.conf` (the repo's own file) on a
// temp data/run dir and free loopback ports, with every DNSPROXY_* the config reads set here.
// supervisord's own lines ("spawned: 'caddy' with pid 42", "exited: …") are parsed as they
// arrive, so a test knows each program's pid and when supervisord (re)started it.
// cleanup() kills whatever of the run is left (by pid) and removes the temp dir.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseSupervisorStatus } from '../../src/cli/status.js';
import { ADMIN_SOCKET_NAME } from '../../src/proxy/admin-address.js';
import { decode, query, udpExchange } from '../dns/fixture.js';
import { freePorts, request } from './caddy.js';
import { TOKEN } from './controller.js';
import { tempDir } from './tmp.js';

export const APP_DIR = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const CONF = join(APP_DIR, 'supervisord.conf');
/** Every program reaches RUNNING after startsecs (1 s, 2 s, 20 s); a loaded box may need more. */
const START_TIMEOUT_MS = 60_000;
/** run.sh compiles first (tsc ~5 s, npm ci when the lockfile changed), slower on a loaded box. */
const RUN_SH_START_TIMEOUT_MS = 90_000;
/** supervisord stops the controller then Caddy, each with stopwaitsecs=15 at worst. */
const SHUTDOWN_TIMEOUT_MS = 35_000;
/** cat exits right after it closes its output; anything slower is a leftover. */
const CAT_EXIT_MS = 1000;
/** Output kept per run, so a failing test can show what supervisord and the programs said. */
const MAX_OUTPUT_CHARS = 256_000;

let installed: boolean | undefined;
/** True when supervisord and supervisorctl run; tests `this.skip()` otherwise. */
export function hasSupervisor(): boolean {
  installed ??= spawnSync('supervisord', ['--version'], { stdio: 'ignore' }).status === 0 && spawnSync('supervisorctl', ['-h'], { stdio: 'ignore' }).status === 0;
  return installed;
}

/** One line of supervisord's own log about a program. */
export interface ProgramEvent {
  /** spawned / success (entered RUNNING) / exited (on its own) / stopped (by supervisord) / gave up */
  kind: 'spawned' | 'success' | 'exited' | 'stopped' | 'gave up';
  name: string;
  /** pid for `spawned`, the rest of the line otherwise ("exit status 0", "terminated by SIGKILL; not expected"). */
  detail: string;
  /** Date.now() when the line reached the test. */
  at: number;
}

export interface Stack {
  dir: string;
  /** The DNSPROXY_* variables supervisord was started with. */
  env: Record<string, string>;
  apiUrl: string;
  dnsPort: number;
  httpPort: number;
  httpsPort: number;
  supervisordPid: number;
  output(): string;
  events(): ProgramEvent[];
  /** The program's pid from its latest `spawned` line. */
  pid(name: string): number | undefined;
  /** The first `spawned` of `name` after the one that started `oldPid`, waiting up to `ms`. */
  respawn(name: string, oldPid: number, ms?: number): Promise<{ pid: number; at: number }>;
  /** `supervisorctl -c supervisord.conf …` with this run's environment; never throws. */
  ctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** program → state, from `supervisorctl status`. */
  states(): Promise<Record<string, string>>;
  /** Polls `supervisorctl status` until every program is RUNNING. */
  waitRunning(ms?: number): Promise<void>;
  /** Sends `signal` to supervisord (SIGINT is what Ctrl-C delivers: the programs sit in their own process groups). */
  signal(signal: NodeJS.Signals): void;
  /** Resolves with supervisord's exit code once it has exited (null: killed by a signal). */
  exited(): Promise<number | null>;
  /** PIDs of live processes that belong to this run (their environment names its run dir). */
  leftovers(): number[];
  /** SIGKILL whatever of the run is left, remove the temp dir. Safe to call more than once. */
  cleanup(): Promise<void>;
}

/** Polls `probe` every 25 ms until it returns true; resolves with the ms it took, rejects after `limitMs`. */
export async function within(limitMs: number, probe: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await probe().catch(() => false)) return Date.now() - start;
    if (Date.now() - start > limitMs) throw new Error(`not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** PIDs whose environment holds `needle` (Linux /proc; unreadable entries are skipped). */
function pidsWithEnv(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(needle)) out.push(Number(d));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

const EVENT = /^\S+ \S+ \w+ (spawned|success|exited|stopped|gave up): '?([\w:-]+)'? (?:with pid (\d+)|(.*))$/;

export interface StackOptions {
  /** Added to (and overriding) the run's DNSPROXY_* variables; '' reads as unset for the controller. */
  env?: Record<string, string>;
  /** `supervisord` directly (default), or `bash scripts/run.sh` (which builds, then execs supervisord). */
  launcher?: 'supervisord' | 'run.sh';
}

/**
 * Starts supervisord with the repo's supervisord.conf and resolves once every program is RUNNING
 * and the API answers. The caller must call cleanup().
 */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const tmp = tempDir('dnsproxy-stack-');
  const [apiPort, dnsPort, httpPort, httpsPort, smtpPort, submissionPort, smtpsPort] = (await freePorts(7)) as [number, number, number, number, number, number, number];
  const env: Record<string, string> = {
    DNSPROXY_APP_DIR: APP_DIR,
    DNSPROXY_DATA_DIR: join(tmp.dir, 'data'),
    DNSPROXY_RUN_DIR: join(tmp.dir, 'run'),
    DNSPROXY_LISTEN_IP: '127.0.0.1',
    DNSPROXY_DNS_PORT: String(dnsPort),
    DNSPROXY_API_PORT: String(apiPort),
    DNSPROXY_HTTP_PORT: String(httpPort),
    DNSPROXY_HTTPS_PORT: String(httpsPort),
    // scripts/run.sh's default: Caddy's admin API on a socket in the run dir.
    DNSPROXY_CADDY_ADMIN: `unix/${join(tmp.dir, 'run', ADMIN_SOCKET_NAME)}`,
    DNSPROXY_SMTP_PORT: String(smtpPort),
    DNSPROXY_SUBMISSION_PORT: String(submissionPort),
    DNSPROXY_SMTPS_PORT: String(smtpsPort),
    DNSPROXY_ADMIN_TOKEN: TOKEN,
    DNSPROXY_NODE_IP: '192.0.2.10',
    DNSPROXY_LOG_LEVEL: 'info',
    ...opts.env,
  };
  mkdirSync(env.DNSPROXY_DATA_DIR!, { recursive: true });
  mkdirSync(env.DNSPROXY_RUN_DIR!, { recursive: true, mode: 0o700 });
  // Nothing of the caller's DNSPROXY_* (a config file, CADDY_SPAWN…) may leak into the run.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DNSPROXY_')));
  const fullEnv = { ...inherited, ...env };
  const marker = `DNSPROXY_RUN_DIR=${env.DNSPROXY_RUN_DIR}`;

  // Node hands a child a socket for 'pipe', which supervisord cannot reopen as /dev/stdout (ENXIO):
  // as in scripts/run.sh, a pipe through cat goes in between. bash then becomes supervisord.
  const direct = 'exec > >(exec cat) 2>&1; exec supervisord -n -c "$1"';
  const args = opts.launcher === 'run.sh' ? [join(APP_DIR, 'scripts/run.sh')] : ['-c', direct, 'supervisord', CONF];
  const proc: ChildProcess = spawn('bash', args, { env: fullEnv, cwd: tmp.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  // 'close', not 'exit': every holder of the output has closed it. cat closes its output just
  // before it exits, so its last moments are waited out too (it is plumbing, not a program).
  const exit = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code))).then(async (code) => {
    await within(CAT_EXIT_MS, async () => !pidsWithEnv(marker).some((pid) => comm(pid) === 'cat')).catch(() => undefined);
    return code;
  });
  let out = '';
  let partial = '';
  const events: ProgramEvent[] = [];
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    const text = chunk.toString();
    out = (out + text).slice(-MAX_OUTPUT_CHARS);
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = EVENT.exec(line);
      if (m?.[1] && m[2]) events.push({ kind: m[1] as ProgramEvent['kind'], name: m[2], detail: m[3] ?? m[4] ?? '', at: Date.now() });
    }
    for (const w of waiters) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);

  let cleaned = false;
  const ctl = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await promisify(execFile)('supervisorctl', ['-c', CONF, ...args], { env: fullEnv, timeout: 20_000 });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
    }
  };
  const states = async () => {
    const { stdout } = await ctl('status');
    return Object.fromEntries(parseSupervisorStatus(stdout).map((p) => [p.name, p.state]));
  };
  const pid = (name: string) => {
    const last = events.filter((e) => e.kind === 'spawned' && e.name === name).pop();
    return last ? Number(last.detail) : undefined;
  };
  const stack: Stack = {
    dir: tmp.dir,
    env,
    apiUrl: `http://127.0.0.1:${apiPort}`,
    dnsPort,
    httpPort,
    httpsPort,
    supervisordPid: proc.pid ?? -1,
    output: () => out,
    events: () => [...events],
    pid,
    respawn: (name, oldPid, ms = 10_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const from = events.findIndex((x) => x.kind === 'spawned' && Number(x.detail) === oldPid);
          const e = events.slice(from + 1).find((x) => x.kind === 'spawned' && x.name === name);
          if (!e) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve({ pid: Number(e.detail), at: e.at });
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`supervisord did not restart ${name} within ${ms} ms:\n${out.slice(-4000)}`));
        }, ms);
        waiters.add(check);
        check();
      }),
    ctl,
    states,
    async waitRunning(ms = START_TIMEOUT_MS) {
      let last: Record<string, string> = {};
      try {
        await within(ms, async () => {
          last = await states();
          const values = Object.values(last);
          return values.length > 0 && values.every((s) => s === 'RUNNING');
        });
      } catch {
        throw new Error(`programs not RUNNING within ${ms} ms: ${JSON.stringify(last)}\n${out.slice(-6000)}`);
      }
    },
    signal: (signal) => proc.kill(signal),
    exited: () => exit,
    leftovers: () => pidsWithEnv(marker),
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const late = await Promise.race([exit.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), SHUTDOWN_TIMEOUT_MS).unref())]);
        if (late) proc.kill('SIGKILL');
      }
      for (const p of pidsWithEnv(marker)) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      tmp.cleanup();
    },
  };

  try {
    await Promise.race([
      stack.waitRunning(opts.launcher === 'run.sh' ? RUN_SH_START_TIMEOUT_MS : START_TIMEOUT_MS),
      exit.then((code) => {
        throw new Error(`supervisord exited (${code}) before the programs ran:\n${out}`);
      }),
    ]);
    await within(START_TIMEOUT_MS, async () => (await fetch(`${stack.apiUrl}/health`)).ok);
  } catch (e) {
    await stack.cleanup();
    throw e;
  }
  return stack;
}

// ---- what the deploy and fault tests do to a running stack ------------------------------------

const AUTH = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

/**
 * POST /add-record: `name`.home.arpa → 127.0.0.1, proxied to `backend` (a test backend's port on
 * 127.0.0.1). Resolves with the HTTP status, or 0 when the API did not answer (refused, reset).
 */
export async function addProxied(stack: Stack, name: string, backendPort: number): Promise<number> {
  try {
    const res = await fetch(`${stack.apiUrl}/add-record`, {
      method: 'POST',
      headers: AUTH,
      body: JSON.stringify({ service_name: name, name, ip: '127.0.0.1', port: backendPort, forward_to_ip: '127.0.0.1', proxy_enabled: true }),
      signal: AbortSignal.timeout(10_000),
    });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** True when Caddy serves `host` from the backend named `backend`. */
export async function serves(stack: Stack, host: string, backend: string): Promise<boolean> {
  try {
    return (await request({ port: stack.httpPort, host })).body.includes(`"backend":"${backend}"`);
  } catch {
    return false;
  }
}

/** True when every host is served by `backend` (all asked at once). */
export async function servesAll(stack: Stack, hosts: string[], backend: string): Promise<boolean> {
  return (await Promise.all(hosts.map((h) => serves(stack, h, backend)))).every(Boolean);
}

/** The A values our DNS server answers for `name` over UDP ([] on NXDOMAIN, null when no reply came within `timeoutMs`). */
export async function dnsA(stack: Stack, name: string, timeoutMs = 500): Promise<string[] | null> {
  const reply = await udpExchange(stack.dnsPort, query(name, 'A'), timeoutMs);
  if (!reply) return null;
  return decode(reply).answers.filter((a) => a.type === 'A').map((a) => String(a.data));
}

/** GET /health of the stack's controller (null when it does not answer). */
export async function health(stack: Stack): Promise<{ status: string; components: Record<string, { status: string; detail?: string }> } | null> {
  try {
    return (await (await fetch(`${stack.apiUrl}/health`, { signal: AbortSignal.timeout(5000) })).json()) as never;
  } catch {
    return null;
  }
}

/** "pid command line" of each pid, for assertion messages. */
export function describePids(pids: number[]): string[] {
  return pids.map((pid) => {
    try {
      return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim()}`;
    } catch {
      return `${pid} (gone)`;
    }
  });
}

/** Whether `pid` is a live process of this run (a pid reused by another process does not count). */
export function aliveInRun(stack: Stack, pid: number): boolean {
  return stack.leftovers().includes(pid);
}
