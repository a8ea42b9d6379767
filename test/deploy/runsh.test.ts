// What a user meets around scripts/run.sh: the "already running" hint is a command that works
// from a plain shell, and `dnsproxy stop` stops the stack.
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCaddy } from '../helpers/caddy.js';
import { cli } from '../helpers/controller.js';
import { APP_DIR, hasSupervisor, startStack, type Stack } from '../helpers/supervisor.js';
import { tempDir } from '../helpers/tmp.js';

/** run.sh refuses before it builds anything; should it go on, it is stopped then. */
const RUN_SH_TIMEOUT_MS = 60_000;

/** The environment without any DNSPROXY_* of ours. */
const plainEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DNSPROXY_')));

/** `bash scripts/run.sh` with `env` to its exit; SIGTERM (supervisord then stops its programs) after RUN_SH_TIMEOUT_MS. */
function runSh(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('bash', [join(APP_DIR, 'scripts/run.sh')], { env: { ...plainEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => p.kill('SIGTERM'), RUN_SH_TIMEOUT_MS);
    p.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('deploy: scripts/run.sh around a running or blocked stack', function () {
  this.timeout(180_000);
  let tmp: ReturnType<typeof tempDir>;
  let stack: Stack | undefined;

  before(function () {
    if (!hasSupervisor() || !hasCaddy()) this.skip();
  });
  beforeEach(() => (tmp = tempDir('dnsproxy-runsh-')));
  afterEach(async () => {
    await stack?.cleanup();
    stack = undefined;
    tmp.cleanup();
  });

  it('started twice, run.sh prints a stop command that works from a plain shell elsewhere; `dnsproxy stop` waits until everything is gone', async () => {
    stack = await startStack();
    const second = await runSh(stack.env);
    expect(second.code, second.out).to.equal(1);
    const hint = /already running \(supervisord pid (\d+)\); stop it first: (.+)$/m.exec(second.out);
    expect(hint, second.out).not.to.equal(null);
    expect(Number(hint![1])).to.equal(stack.supervisordPid);
    // A plain shell: no DNSPROXY_* at all, another working directory.
    const stop = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile('bash', ['-c', hint![2]!], { env: plainEnv(), cwd: tmpdir(), timeout: 90_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, out: stdout + stderr }),
      ),
    );
    expect(stop.code, stop.out).to.equal(0);
    expect(stop.out).to.equal(`stopped: supervisord (pid ${stack.supervisordPid}) and its programs\n`);
    expect(await stack.exited()).to.equal(0);
    expect(stack.leftovers(), 'processes of the run still alive after stop').to.deep.equal([]);
    const again = await cli(['stop'], { DNSPROXY_RUN_DIR: stack.env.DNSPROXY_RUN_DIR! });
    expect(again.code).to.equal(1);
    expect(again.stderr).to.match(/^dnsproxy: nothing to stop: no supervisord answers \(.*supervisor\.sock.*\); DNSPROXY_RUN_DIR or DNSPROXY_DATA_DIR must be what the stack was started with\n$/);
  });
});
