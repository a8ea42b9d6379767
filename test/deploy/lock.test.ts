// One controller and one mail relay per data dir: a second `dnsproxy serve` or `dnsproxy mail
// serve` on the same data dir (e.g. a relay started by hand beside supervisord's, on other ports)
// refuses to start, naming the one that runs; a holder killed with SIGKILL leaves no stale lock.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readdirSync, realpathSync } from 'node:fs';
import { freePorts } from '../helpers/caddy.js';
import { BIN, startController, type Running } from '../helpers/controller.js';
import { startMailServe, type MailProcess } from '../helpers/mail.js';
import { tempDir } from '../helpers/tmp.js';

/** Long enough for a refusal on a loaded box; a second server that does start is stopped then (the old behaviour). */
const REFUSAL_TIMEOUT_MS = 20_000;

/** Runs `bin/dnsproxy args…` to its exit (SIGTERM after REFUSAL_TIMEOUT_MS), with no DNSPROXY_* of ours but `env`. */
function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DNSPROXY_')));
  return new Promise((resolve) => {
    execFile(BIN, args, { env: { ...inherited, ...env }, timeout: REFUSAL_TIMEOUT_MS }, (err, _stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stderr });
    });
  });
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('deploy: one controller and one mail relay per data dir', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  let dir: string;
  let relays: MailProcess[] = [];
  let controllers: Running[] = [];
  beforeEach(() => {
    tmp = tempDir('dnsproxy-lock-');
    dir = realpathSync(tmp.dir);
  });
  afterEach(async () => {
    for (const r of relays) if (r.pid > 0) await r.kill().catch(() => undefined);
    for (const c of controllers) if (c.proc.exitCode === null) await c.kill();
    relays = [];
    controllers = [];
    tmp.cleanup();
  });

  it('a second mail serve exits 1 naming the running relay (pid) and what to do; after SIGKILL of the first a new one starts', async () => {
    const [smtp, submission, caddyAdmin] = (await freePorts(3)) as [number, number, number];
    const first = await startMailServe({ dataDir: dir, smtpPort: smtp, submissionPort: submission });
    relays.push(first);
    // Other ports, as in the README's `DNSPROXY_MAIL_DOMAINS=… dnsproxy mail serve` beside run.sh's relay: only the lock stops it.
    const second = await run(['mail', 'serve', '--data-dir', dir, '--smtp-port', '0', '--submission-port', '0', '--listen-ip', '127.0.0.1'], { DNSPROXY_MAIL_DOMAINS: 'example.com', DNSPROXY_CADDY_ADMIN: `127.0.0.1:${caddyAdmin}` });
    expect(second.code, second.stderr).to.equal(1);
    expect(second.stderr).to.match(
      new RegExp(`^dnsproxy: another mail relay \\(pid ${first.pid}\\) already runs on the data dir ${escape(dir)} \\(it holds ${escape(dir)}/mail\\.lock\\): stop it first, or give this one another data dir\\. Under scripts/run\\.sh .*"dnsproxy stop"`),
    );
    expect(first.output()).not.to.include('"level":"error"');
    await first.kill();
    // The kernel dropped the lock with the process: no stale file to clean up.
    relays.push(await startMailServe({ dataDir: dir, smtpPort: smtp, submissionPort: submission }));
  });

  it('a second serve exits 1 naming the running controller; after SIGKILL of the first a new one starts', async () => {
    const [caddyAdmin] = (await freePorts(1)) as [number];
    const env = { DNSPROXY_CADDY_ADMIN: `127.0.0.1:${caddyAdmin}` };
    const first = await startController(dir, env);
    controllers.push(first);
    const second = await run(['serve', '--data-dir', dir, '--dns-port', '0', '--api-port', '0', '--listen-ip', '127.0.0.1'], { ...env, DNSPROXY_NODE_IP: '192.0.2.10' });
    expect(second.code, second.stderr).to.equal(1);
    expect(second.stderr).to.match(new RegExp(`^dnsproxy: another controller \\(pid ${first.proc.pid}\\) already runs on the data dir ${escape(dir)} \\(it holds ${escape(dir)}/controller\\.lock\\)`));
    await first.kill();
    controllers.push(await startController(dir, env));
  });

  it('a controller and a relay share a data dir (each holds its own lock, one empty file each)', async () => {
    const [smtp, submission, caddyAdmin] = (await freePorts(3)) as [number, number, number];
    controllers.push(await startController(dir, { DNSPROXY_CADDY_ADMIN: `127.0.0.1:${caddyAdmin}` }));
    relays.push(await startMailServe({ dataDir: dir, smtpPort: smtp, submissionPort: submission }));
    expect(readdirSync(dir).filter((f) => f.includes('.lock')).sort()).to.deep.equal(['controller.lock', 'mail.lock']);
  });
});
