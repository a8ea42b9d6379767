// Runs the real `bin/dnsproxy serve` (compiled dist/) on ephemeral ports, as supervisord does.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { hasCaddy, startCaddy, type RunningCaddy } from './caddy.js';
import { tempDir } from './tmp.js';

export const BIN = fileURLToPath(new URL('../../bin/dnsproxy', import.meta.url));
export const TOKEN = 'test-admin-token-0123456789';
const START_TIMEOUT_MS = 20_000;

export interface Running {
  proc: ChildProcess;
  apiUrl: string;
  dnsPort: number;
  output: () => string;
  /** SIGTERM and wait for exit. */
  stop: () => Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill: () => Promise<void>;
}

/**
 * `apiPort`: a fixed API port instead of an ephemeral one (port 0 is not in the set of listeners routes may not reach).
 * `dnsPort`: a fixed DNS port, for a peer that must know it before the controller starts (pebble's -dnsserver).
 */
export async function startController(dataDir: string, env: Record<string, string> = {}, opts: { apiPort?: number; dnsPort?: number } = {}): Promise<Running> {
  // Run as supervisord runs it: directly, so the V8 flags in bin/dnsproxy's shebang apply.
  const proc = spawn(BIN, ['serve', '--data-dir', dataDir, '--dns-port', String(opts.dnsPort ?? 0), '--api-port', String(opts.apiPort ?? 0), '--listen-ip', '127.0.0.1'], {
    env: { ...process.env, DNSPROXY_ADMIN_TOKEN: TOKEN, DNSPROXY_NODE_IP: '192.0.2.10', DNSPROXY_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const started = await new Promise<{ api: string; dns: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`controller did not start:\n${out}`)), START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.includes('"controller started"'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { api: string; dns: string });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`controller exited (${code}) before starting:\n${out}`));
    });
  });
  return {
    proc,
    apiUrl: `http://${started.api}`,
    dnsPort: Number(started.dns.split(':').pop()),
    output: () => out,
    stop: async () => {
      proc.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `bin/dnsproxy args…` and returns its exit code and output (never throws on non-zero). */
export async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** Runs dig and returns its text output, or undefined when dig is not installed. */
export async function dig(port: number, args: string[]): Promise<string | undefined> {
  try {
    const { stdout } = await promisify(execFile)('dig', ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', ...args]);
    return stdout;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** A controller pushing to its own real Caddy, its data in a fresh temp dir. */
export interface CaddyController {
  tmp: ReturnType<typeof tempDir>;
  caddy: RunningCaddy;
  c: Running;
  /** The CLI's environment for `c`: its API URL and the admin token. */
  env: Record<string, string>;
}

/**
 * Registers in the enclosing describe a before-all hook that starts a real Caddy and a controller pushing to
 * it (the suite is skipped where Caddy is not installed), and an after-all hook that stops both and removes the
 * data dir. `started` gets them once they run: it fills the suite's variables and does the suite's own setup.
 * `env` adds controller settings.
 */
export function eachController(started: (s: CaddyController) => void | Promise<void>, env: Record<string, string> = {}): void {
  let s: Partial<CaddyController> = {};
  before(async function () {
    if (!hasCaddy()) return this.skip();
    const tmp = tempDir();
    s = { tmp };
    const caddy = (s.caddy = await startCaddy());
    const c = (s.c = await startController(tmp.dir, { DNSPROXY_CADDY_ADMIN: caddy.adminListen, DNSPROXY_HTTP_PORT: String(caddy.httpPort), DNSPROXY_HTTPS_PORT: String(caddy.httpsPort), ...env }));
    await started({ tmp, caddy, c, env: { DNSPROXY_API_URL: c.apiUrl, DNSPROXY_TOKEN: TOKEN } });
  });
  after(async () => {
    await s.c?.stop();
    await s.caddy?.stop();
    s.tmp?.cleanup();
  });
}

/**
 * Registers in the enclosing describe, for each test: before it, a fresh temp dir given to `made`; after it,
 * the controller `running()` returns is ended if it still runs (SIGKILL, or SIGTERM and a wait with
 * `end: 'stop'`; one an earlier test left, already ended, is left alone) and the dir removed.
 */
export function eachTempDir(made: (tmp: ReturnType<typeof tempDir>) => void, running: () => Running | undefined, end: 'kill' | 'stop' = 'kill'): void {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => made((tmp = tempDir())));
  afterEach(async () => {
    const c = running();
    if (c && c.proc.exitCode === null && c.proc.signalCode === null) await (end === 'kill' ? c.kill() : c.stop());
    tmp.cleanup();
  });
}
