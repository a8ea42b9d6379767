// The foreground servers (`serve`, `mail serve`) run until SIGTERM or SIGINT, then stop cleanly.
// That includes a signal that arrives while they are still starting: supervisord counts a program
// as RUNNING after startsecs and may stop it before its start is over (on a loaded box, loading
// the relay and starting its threads can take that long). Without a handler yet, Node would die
// of the signal; here the stop waits for the start to finish, then runs. A start that fails is
// reported the same way by both (startFailed()).
import { CliError } from './client.js';

/** Both services' umask, set before anything else: what they (or a library) create is their user's alone; the data dir holds secrets. */
export const SERVICE_UMASK = 0o077;

/**
 * A start that failed, as the CLI reports it: a port taken or not allowed names the flags that
 * choose ports (`flags`), or under supervisord (scripts/run.sh, the container: it sets
 * SUPERVISOR_ENABLED), where no flag can be given, the DNSPROXY_* variables (`envVars`).
 */
export function startFailed(e: unknown, flags: string, envVars?: string, env: NodeJS.ProcessEnv = process.env): CliError {
  const err = e as NodeJS.ErrnoException;
  if (err.code !== 'EADDRINUSE' && err.code !== 'EACCES') return new CliError(`start failed: ${err.message}`);
  const how = env.SUPERVISOR_ENABLED && envVars ? `${envVars} in the environment the stack starts with (scripts/run.sh, docker run -e)` : flags;
  return new CliError(`cannot listen: ${err.message} (choose other ports with ${how})`);
}

/**
 * Takes the data dir's lock for `role` (src/store/lock.ts) and returns its release, or fails as the
 * CLI reports it: a second controller or relay on one data dir refuses to start.
 */
export async function lockDataDirOrFail(dataDir: string, role: 'controller' | 'mail'): Promise<() => void> {
  const { DataDirLocked, lockDataDir } = await import('../store/lock.js'); // on use: client commands never load SQLite
  try {
    const lock = lockDataDir(dataDir, role);
    return () => lock.release();
  } catch (e) {
    if (!(e instanceof DataDirLocked)) throw e;
    throw new CliError(
      `${e.message}: stop it first, or give this one another data dir. Under scripts/run.sh or in the container supervisord runs it: stop the stack with "dnsproxy stop", and put settings (DNSPROXY_*) in the environment the stack starts with`,
    );
  }
}

/** A started server's stop. */
export type Stop = (signal: string) => Promise<void>;

/** Runs `start`, then waits for the first SIGTERM/SIGINT (one that came during `start` counts) and runs the stop it returned. */
export async function runUntilSignal(start: () => Promise<Stop>): Promise<void> {
  let signal: string | undefined;
  let wake = () => undefined as void;
  const got = (s: string) => {
    signal ??= s;
    wake();
  };
  process.once('SIGTERM', () => got('SIGTERM'));
  process.once('SIGINT', () => got('SIGINT'));
  const stop = await start();
  if (signal === undefined) await new Promise<void>((resolve) => (wake = resolve));
  await stop(signal!);
}
