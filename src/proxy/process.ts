// Caddy as a child process for local runs (`caddy_spawn`); under supervisord Caddy is its own
// program. Also spots a second Caddy: two can bind the same ports through SO_REUSEPORT.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { Logger } from '../log/index.js';
import { parseAdminAddress } from './admin-address.js';
import { DIR_MODE, FILE_MODE } from '../store/files.js';

/** How long a spawned Caddy gets to exit on SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 5000;
/** sh's exit status when `exec` finds no such command. */
const SH_NOT_FOUND = 127;

/**
 * The argv that runs Caddy with umask 077, so the admin socket it creates is srwx------: Caddy
 * 2.6.2 has no socket mode option (`unix//path|0600` arrived in 2.7; 2.6.2 takes `|0600` as part
 * of the file name) and creates the socket with 0777 & ~umask. Connecting needs write permission
 * on the socket, so other users cannot (measured). Same as scripts/caddy-run.sh.
 */
export function caddyArgv(bin: string, args: readonly string[]): [string, string[]] {
  return ['/bin/sh', ['-c', 'umask 077 && exec "$0" "$@"', bin, ...args]];
}

/** Creates the admin socket's directory (mode 0700, owner only) when the admin API is a unix socket. */
export function prepareAdminSocketDir(admin: string): void {
  const where = parseAdminAddress(admin);
  if (where.kind === 'unix') mkdirSync(dirname(where.path), { recursive: true, mode: 0o700 });
}

/**
 * PIDs of running Caddy processes (executable name `caddy`; Linux /proc, [] elsewhere) that serve
 * this stack's admin address `admin`: their `run --config` file (read through /proc/<pid>/cwd)
 * sets `admin.listen` to it. Other users' Caddies (their cmdline or config unreadable, or another
 * admin address) do not count; two Caddies of one stack can share its ports through SO_REUSEPORT.
 */
export function caddyPids(admin: string, proc = '/proc'): number[] {
  let entries: string[];
  try {
    entries = readdirSync(proc).filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  return entries
    .filter((d) => {
      try {
        if (readFileSync(join(proc, d, 'comm'), 'utf8').trim() !== 'caddy') return false;
        const argv = readFileSync(join(proc, d, 'cmdline'), 'utf8').split('\0');
        const at = argv.findIndex((a) => a === '--config' || a.startsWith('--config='));
        const file = at < 0 ? undefined : argv[at]!.startsWith('--config=') ? argv[at]!.slice('--config='.length) : argv[at + 1];
        if (!file) return false;
        const config = JSON.parse(readFileSync(isAbsolute(file) ? file : join(proc, d, 'cwd', file), 'utf8')) as { admin?: { listen?: unknown } };
        return config.admin?.listen === admin;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Environment that keeps a Caddy we run (or `caddy validate`) storing its data under `dir`, not the user's home. */
export function caddyEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') };
}

/** The config Caddy starts with: admin on its unix socket (or loopback), nothing else, nothing persisted. */
export function bootstrapConfig(admin: string): Record<string, unknown> {
  return { admin: { listen: admin, config: { persist: false } } };
}

export class CaddyProcess {
  private child: ChildProcess | null = null;
  private stopping = false;

  constructor(
    private readonly dir: string,
    private readonly admin: string,
    private readonly log: Logger,
    private readonly bin = process.env.CADDY_BIN ?? 'caddy',
  ) {}

  /** Starts Caddy with the bootstrap config and keeps it running (restarts after a crash). Its state lives in `dir`. */
  start(): void {
    mkdirSync(this.dir, { recursive: true, mode: DIR_MODE });
    const config = join(this.dir, 'bootstrap.json');
    writeFileSync(config, JSON.stringify(bootstrapConfig(this.admin)), { mode: FILE_MODE });
    prepareAdminSocketDir(this.admin);
    const [cmd, args] = caddyArgv(this.bin, ['run', '--config', config]);
    const child = spawn(cmd, args, {
      env: caddyEnv(this.dir),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    child.stderr?.on('data', () => undefined);
    child.once('error', (e) => this.log.error('cannot start caddy', { bin: this.bin, err: e.message, hint: 'install it: apt-get install caddy' }));
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      // sh's "command not found": restarting would only fail again every 500 ms.
      if (code === SH_NOT_FOUND) return this.log.error('cannot start caddy', { bin: this.bin, err: 'not found', hint: 'install it: apt-get install caddy' });
      this.log.warn('caddy exited; restarting it', { code, signal });
      setTimeout(() => !this.stopping && this.start(), 500).unref();
    });
    this.log.info('caddy started', { pid: child.pid, admin: this.admin });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
