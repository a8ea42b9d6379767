// `dnsproxy status`: each supervisord program's state (from `supervisorctl status`) next to the
// controller's GET /health. Exit 0 when every program is RUNNING and health is not down, else 1.
// `dnsproxy stop`: supervisorctl shutdown, then waits until supervisord is gone.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import type { HealthReport } from '../api/health.js';
import { CliError } from './client.js';
import type { Globals } from './commands.js';
import { printJson, table } from './output.js';

/** supervisorctl answers from a local socket at once; a wedged supervisord must not hang the CLI. */
const SUPERVISORCTL_TIMEOUT_MS = 10_000;
/** /health is computed in memory; no answer by then means the controller is not serving. */
const HEALTH_TIMEOUT_MS = 5_000;

/** supervisord's process states (supervisor.states.ProcessStates). */
const STATES = new Set(['STOPPED', 'STARTING', 'RUNNING', 'BACKOFF', 'STOPPING', 'EXITED', 'FATAL', 'UNKNOWN']);

export interface ProgramStatus {
  name: string;
  state: string;
  /** supervisorctl's description: "pid 42, uptime 0:01:02", "Exited too quickly", … */
  detail: string;
}

export interface SupervisorStatus {
  conf: string;
  /** null when supervisord answered; otherwise one line saying why there is no program list. */
  error: string | null;
  programs: ProgramStatus[];
}

export interface HealthStatus {
  url: string;
  /** The controller's roll-up, or `unreachable` when /health did not answer with a report. */
  status: HealthReport['status'] | 'unreachable';
  components: HealthReport['components'] | null;
  /** The controller's dnsproxy version and Node.js runtime (`v24.…`); null when it did not say (an older controller, or no answer). */
  version: string | null;
  node: string | null;
  error: string | null;
}

export interface StackStatus {
  ok: boolean;
  supervisor: SupervisorStatus;
  health: HealthStatus;
}

/** `supervisorctl status` lines ("name   STATE   description"); lines in any other shape are skipped. */
export function parseSupervisorStatus(text: string): ProgramStatus[] {
  const programs: ProgramStatus[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+([A-Z]+)\b\s*(.*)$/.exec(line.trimEnd());
    if (m?.[1] && m[2] && STATES.has(m[2])) programs.push({ name: m[1], state: m[2], detail: m[3] ?? '' });
  }
  return programs;
}

/**
 * The supervisord config to use: DNSPROXY_SUPERVISOR_CONF (the container sets it), else
 * ./supervisord.conf, else the one beside this checkout's bin/ (so the command works from any directory).
 */
export function defaultSupervisorConf(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DNSPROXY_SUPERVISOR_CONF) return env.DNSPROXY_SUPERVISOR_CONF;
  const own = fileURLToPath(new URL('../../supervisord.conf', import.meta.url));
  return existsSync('./supervisord.conf') || !existsSync(own) ? './supervisord.conf' : own;
}

/** All programs RUNNING (and at least one) and the controller not down or silent. */
export function stackOk(s: Omit<StackStatus, 'ok'>): boolean {
  const running = s.supervisor.error === null && s.supervisor.programs.length > 0 && s.supervisor.programs.every((p) => p.state === 'RUNNING');
  return running && (s.health.status === 'ok' || s.health.status === 'degraded');
}

/**
 * Runs `supervisorctl -c <conf> <args>`. The config's socket path is `%(ENV_DNSPROXY_RUN_DIR)s/…`,
 * so DNSPROXY_RUN_DIR defaults here to what scripts/run.sh uses (`$DNSPROXY_DATA_DIR/run`, data
 * dir `./data`). Resolves with its output (whatever its exit code), or `error` when there is none to read.
 */
async function supervisorctl(conf: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ out: string; error: string | null }> {
  if (!existsSync(conf)) return { out: '', error: `no supervisord config at ${conf} (use --supervisor-conf or DNSPROXY_SUPERVISOR_CONF)` };
  const runDir = env.DNSPROXY_RUN_DIR || join(env.DNSPROXY_DATA_DIR || './data', 'run');
  try {
    const { stdout, stderr } = await promisify(execFile)('supervisorctl', ['-c', conf, ...args], { env: { ...env, DNSPROXY_RUN_DIR: runDir }, timeout: SUPERVISORCTL_TIMEOUT_MS });
    return { out: stdout + stderr, error: null };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string; killed?: boolean };
    if (err.code === 'ENOENT') return { out: '', error: 'supervisorctl not found: install supervisor (apt-get install supervisor)' };
    if (err.killed) return { out: '', error: `supervisorctl gave no answer within ${SUPERVISORCTL_TIMEOUT_MS / 1000} s` };
    // supervisorctl exits 3 when a program is not RUNNING; the list is still on stdout.
    return { out: `${err.stdout ?? ''}${err.stderr ?? ''}`, error: null };
  }
}

/** `supervisorctl -c <conf> status` (see supervisorctl()). Never throws: a missing binary or a dead socket becomes `error`. */
export async function supervisorStatus(conf: string, env: NodeJS.ProcessEnv = process.env): Promise<SupervisorStatus> {
  const { out, error } = await supervisorctl(conf, ['status'], env);
  if (error) return { conf, error, programs: [] };
  const programs = parseSupervisorStatus(out);
  if (programs.length) return { conf, error: null, programs };
  const first = out.split('\n').map((l) => l.trim()).find(Boolean) ?? 'no output';
  return { conf, error: `no answer from supervisorctl: ${first}`, programs: [] };
}

/**
 * GET /health (needs no token; with one, the answer carries each component's detail). Not call():
 * /health answers 503 with the full report when the controller is down, and that report is what
 * this command shows.
 */
export async function healthStatus(apiUrl: string, token?: string): Promise<HealthStatus> {
  const url = `${apiUrl.replace(/\/$/, '')}/health`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS), ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
    const body = (await res.json()) as Partial<HealthReport> & { version?: unknown; node?: unknown };
    if (body.status !== 'ok' && body.status !== 'degraded' && body.status !== 'down') throw new Error(`unexpected answer (HTTP ${res.status})`);
    // Printed to a terminal: only a plain version string ("0.1.0", "v24.22.3") is shown.
    const text = (v: unknown) => (typeof v === 'string' && /^[\w.+-]{1,64}$/.test(v) ? v : null);
    return { url, status: body.status, components: body.components ?? {}, version: text(body.version), node: text(body.node), error: null };
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    return { url, status: 'unreachable', components: null, version: null, node: null, error: `cannot reach ${url}: ${cause}` };
  }
}

/** ", dnsproxy 0.1.0 on Node.js v24.22.3" when the controller said which; nothing otherwise. */
function runtimeText(h: HealthStatus): string {
  if (!h.version && !h.node) return '';
  return `, dnsproxy ${h.version ?? '?'} on Node.js ${h.node ?? '?'}`;
}

export function statusText(s: StackStatus): string {
  const sup = s.supervisor.error
    ? `supervisord: ${s.supervisor.error}`
    : table(['PROGRAM', 'STATE', 'DETAIL'], s.supervisor.programs.map((p) => [p.name, p.state, p.detail]));
  const health = s.health.error
    ? `health: ${s.health.error}`
    : `health: ${s.health.status} (${s.health.url})${runtimeText(s.health)}\n${table(['COMPONENT', 'STATUS', 'DETAIL'], Object.entries(s.health.components ?? {}).map(([name, c]) => [name, c.status, c.detail ?? '']))}`;
  return `${sup}\n\n${health}`;
}

/** supervisord stops mail, controller and Caddy in turn, each within its stopwaitsecs (15 s). */
const STOP_TIMEOUT_MS = 60_000;
/** How often `stop` looks whether supervisord has exited. */
const STOP_POLL_MS = 100;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Stops the stack: `supervisorctl shutdown` (supervisord stops every program with SIGTERM, then
 * exits), then waits until supervisord is gone. Resolves with what to print; throws when there was
 * nothing to stop or it did not stop in time.
 */
export async function stopStack(conf: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const pid = await supervisorctl(conf, ['pid'], env);
  const n = Number(pid.out.trim());
  if (pid.error || !Number.isInteger(n) || n <= 0) {
    const why = pid.error ?? (pid.out.split('\n').map((l) => l.trim()).find(Boolean) || 'no answer');
    throw new CliError(`nothing to stop: no supervisord answers (${why}); DNSPROXY_RUN_DIR or DNSPROXY_DATA_DIR must be what the stack was started with`);
  }
  const shutdown = await supervisorctl(conf, ['shutdown'], env);
  if (shutdown.error) throw new CliError(`supervisorctl shutdown failed: ${shutdown.error}`);
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (alive(n)) {
    if (Date.now() > deadline) throw new CliError(`supervisord (pid ${n}) is still stopping after ${STOP_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, STOP_POLL_MS));
  }
  return `stopped: supervisord (pid ${n}) and its programs`;
}

export function statusCommand(program: Command, g: Globals): void {
  program
    .command('status')
    .description('supervisord program states and the controller\'s /health; exit 0 when all RUNNING and health is not down')
    .option('--supervisor-conf <file>', 'supervisord config (env DNSPROXY_SUPERVISOR_CONF, default ./supervisord.conf)')
    .action(async (o: { supervisorConf?: string }) => {
      const conf = o.supervisorConf ?? defaultSupervisorConf();
      const [supervisor, health] = await Promise.all([supervisorStatus(conf), healthStatus(g.target().url, g.target().token)]);
      const status: StackStatus = { ok: stackOk({ supervisor, health }), supervisor, health };
      if (g.json()) printJson(status);
      else console.log(statusText(status));
      if (!status.ok) process.exitCode = 1;
    });

  program
    .command('stop')
    .description('stop the stack that scripts/run.sh (or the container) runs: supervisord and its programs; waits until they are gone')
    .option('--supervisor-conf <file>', 'supervisord config (env DNSPROXY_SUPERVISOR_CONF, default ./supervisord.conf, else the checkout\'s)')
    .action(async (o: { supervisorConf?: string }) => {
      console.log(await stopStack(o.supervisorConf ?? defaultSupervisorConf()));
    });
}
