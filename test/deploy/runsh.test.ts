// What a user meets around scripts/run.sh: ports another process holds stop it before anything
// starts (naming the DNSPROXY_* variable to change), the "already running" hint is a command that
// works from a plain shell, `dnsproxy stop` stops the stack, and a program's own "cannot listen"
// under supervisord names the DNSPROXY_* variables (flags cannot be given there).
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, hasCaddy } from '../helpers/caddy.js';
import { BIN, cli } from '../helpers/controller.js';
import { APP_DIR, hasSupervisor, startStack, type Stack } from '../helpers/supervisor.js';
import { tempDir } from '../helpers/tmp.js';

/** run.sh refuses before it builds anything; should it go on (the old behaviour), it is stopped then. */
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

/** Every DNSPROXY_* run.sh reads, on free ports and a temp data dir. */
async function runEnv(dir: string): Promise<Record<string, string>> {
  const [api, dns, http, https, admin, smtp, submission, smtps] = (await freePorts(8)).map(String) as [string, string, string, string, string, string, string, string];
  return {
    DNSPROXY_DATA_DIR: join(dir, 'data'),
    DNSPROXY_API_PORT: api,
    DNSPROXY_DNS_PORT: dns,
    DNSPROXY_HTTP_PORT: http,
    DNSPROXY_HTTPS_PORT: https,
    DNSPROXY_CADDY_ADMIN: `127.0.0.1:${admin}`,
    DNSPROXY_SMTP_PORT: smtp,
    DNSPROXY_SUBMISSION_PORT: submission,
    DNSPROXY_SMTPS_PORT: smtps,
  };
}

describe('deploy: scripts/run.sh around a running or blocked stack', function () {
  this.timeout(180_000);
  let tmp: ReturnType<typeof tempDir>;
  let stack: Stack | undefined;
  const holders: (Server | Socket)[] = [];

  before(function () {
    if (!hasSupervisor() || !hasCaddy()) this.skip();
  });
  beforeEach(() => (tmp = tempDir('dnsproxy-runsh-')));
  afterEach(async () => {
    await stack?.cleanup();
    stack = undefined;
    for (const h of holders.splice(0)) await new Promise<void>((resolve) => h.close(() => resolve()));
    tmp.cleanup();
  });

  it('a port another process holds (API over TCP, DNS over UDP, or two settings on one port) stops run.sh before anything starts, naming the variable', async () => {
    const env = await runEnv(tmp.dir);
    const tcp = createServer();
    await new Promise<void>((resolve) => tcp.listen(Number(env.DNSPROXY_API_PORT), '127.0.0.1', resolve));
    holders.push(tcp);
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(Number(env.DNSPROXY_DNS_PORT), '127.0.0.1', resolve));
    holders.push(udp);
    const res = await runSh({ ...env, DNSPROXY_SMTPS_PORT: env.DNSPROXY_SMTP_PORT! });
    expect(res.code, res.out).to.equal(1);
    const lines = res.out.trim().split('\n');
    expect(lines).to.deep.equal([
      `dnsproxy: port ${env.DNSPROXY_API_PORT}/tcp (the controller's API) is already in use: stop what holds it, or choose another port with DNSPROXY_API_PORT=…`,
      `dnsproxy: port ${env.DNSPROXY_DNS_PORT}/udp (the DNS server) is already in use: stop what holds it, or choose another port with DNSPROXY_DNS_PORT=…`,
      `dnsproxy: DNSPROXY_SMTP_PORT and DNSPROXY_SMTPS_PORT are both ${env.DNSPROXY_SMTP_PORT}: give one of them another port`,
      'dnsproxy: nothing was started; set the variables before scripts/run.sh, e.g. DNSPROXY_API_PORT=18080 bash scripts/run.sh',
    ]);
    expect(existsSync(join(env.DNSPROXY_DATA_DIR!, 'run', 'supervisor.sock')), 'supervisord was started').to.equal(false);
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

  it('under supervisord, a port taken names the DNSPROXY_* variables instead of flags', async () => {
    const [port] = (await freePorts(1)) as [number];
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
    holders.push(taken);
    mkdirSync(join(tmp.dir, 'data'));
    const res = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(BIN, ['serve'], { env: { ...plainEnv(), SUPERVISOR_ENABLED: '1', DNSPROXY_DATA_DIR: join(tmp.dir, 'data'), DNSPROXY_API_PORT: String(port), DNSPROXY_DNS_PORT: '0', DNSPROXY_NODE_IP: '192.0.2.10', DNSPROXY_CADDY_ADMIN: '127.0.0.1:9' }, timeout: 30_000 }, (err, _o, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stderr }),
      ),
    );
    expect(res.code, res.stderr).to.equal(1);
    expect(res.stderr).to.match(/^dnsproxy: cannot listen: .*EADDRINUSE.* \(choose other ports with DNSPROXY_DNS_PORT\/DNSPROXY_API_PORT in the environment the stack starts with \(scripts\/run\.sh, docker run -e\)\)\n$/);
  });
});
