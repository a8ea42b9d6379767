// The stack under supervisord, as `bash scripts/run.sh` and the container run it: the repo's
// supervisord.conf on temp dirs and free loopback ports. Skipped only when supervisord or Caddy
// is missing (scripts/run.sh installs both).
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { adminRequest, hasCaddy, startBackend, tcpListeners, type Backend } from '../helpers/caddy.js';
import { cli, dig } from '../helpers/controller.js';
import { addProxied, APP_DIR, CONF, describePids, hasSupervisor, serves, startStack, within, type Stack } from '../helpers/supervisor.js';
import { tempDir } from '../helpers/tmp.js';

const TOKEN_LINE = /first start: admin API token \(shown once, stored hashed\): (dp_\S+)/g;

/** `bash scripts/run.sh` to its exit, with `env` on top of ours. */
function runSh(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('bash', [join(APP_DIR, 'scripts/run.sh')], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    p.once('exit', (code) => resolve({ code, out }));
  });
}

/** After supervisord has exited no process of the run is left: not the programs, not anything they started. */
function expectNoOrphans(stack: Stack): void {
  expect(stack.events().filter((e) => e.kind === 'spawned').map((e) => e.name)).to.include.members(['caddy', 'controller', 'mail']);
  expect(describePids(stack.leftovers()), 'processes of this run still alive').to.deep.equal([]);
}

/** Every program left through its SIGTERM path (exit status 0), not supervisord's SIGKILL. */
function expectCleanStops(stack: Stack): void {
  const stops = stack.events().filter((e) => e.kind === 'stopped');
  expect(stops.map((e) => `${e.name} ${e.detail}`).sort()).to.deep.equal(['caddy (exit status 0)', 'controller (exit status 0)', 'mail (exit status 0)']);
}

describe('deploy: supervisord runs Caddy, the controller and the mail relay', function () {
  this.timeout(120_000);
  let stack: Stack | undefined;
  let backend: Backend | undefined;

  before(function () {
    if (!hasSupervisor() || !hasCaddy()) this.skip();
  });
  afterEach(async () => {
    await stack?.cleanup();
    stack = undefined;
    await backend?.close();
    backend = undefined;
  });

  it('all RUNNING → proxied record answers in DNS and through Caddy → status --json → shutdown leaves no process', async () => {
    stack = await startStack();
    expect(await stack.states()).to.deep.equal({ caddy: 'RUNNING', controller: 'RUNNING', mail: 'RUNNING' });

    backend = await startBackend('deploy-backend');
    expect(await addProxied(stack, 'web', backend.port)).to.equal(201);

    const answer = await dig(stack.dnsPort, ['web.home.arpa', 'A']);
    if (answer !== undefined) {
      expect(answer).to.match(/flags: qr aa/);
      expect(answer).to.match(/^web\.home\.arpa\.\s+\d+\s+IN\s+A\s+127\.0\.0\.1$/m);
    } else {
      const resolved = await cli(['--json', 'resolve', 'web.home.arpa', '--port', String(stack.dnsPort)]);
      expect(resolved.stdout).to.include('127.0.0.1');
    }
    const live = await within(2000, () => serves(stack!, 'web.home.arpa', 'deploy-backend'));
    console.log(`      route live ${live} ms after the 201`);

    // Caddy's admin API is the owner-only socket in the run dir, in the pushed config too, and
    // Caddy's only TCP listener is listen_ip:http_port (no admin port, no other interface).
    const socket = join(stack.env.DNSPROXY_RUN_DIR!, 'caddy-admin.sock');
    expect(stack.env.DNSPROXY_CADDY_ADMIN).to.equal(`unix/${socket}`);
    expect((statSync(socket).mode & 0o777).toString(8), 'admin socket mode').to.equal('700');
    expect((statSync(stack.env.DNSPROXY_RUN_DIR!).mode & 0o777).toString(8), 'run dir mode').to.equal('700');
    expect(JSON.parse((await adminRequest({ socket }, 'GET', '/config/admin/listen')).text)).to.equal(`unix/${socket}`);
    expect(tcpListeners(stack.pid('caddy')!)).to.deep.equal([`127.0.0.1:${stack.httpPort}`]);

    const status = await cli(['--api-url', stack.apiUrl, 'status', '--json', '--supervisor-conf', CONF], { DNSPROXY_RUN_DIR: stack.env.DNSPROXY_RUN_DIR! });
    expect(status.code, status.stderr).to.equal(0);
    const parsed = JSON.parse(status.stdout);
    expect(parsed.ok).to.equal(true);
    expect(parsed.supervisor.programs.map((p: { name: string; state: string }) => `${p.name} ${p.state}`)).to.deep.equal(['caddy RUNNING', 'controller RUNNING', 'mail RUNNING']);
    expect(parsed.health.status).to.equal('ok');
    expect(parsed.health.components.proxy.status).to.equal('ok');
    // supervisord's programs run on the node first on PATH, the one running these tests.
    expect(parsed.health.node).to.equal(process.version);

    const human = await cli(['--api-url', stack.apiUrl, 'status'], { DNSPROXY_SUPERVISOR_CONF: CONF, DNSPROXY_RUN_DIR: stack.env.DNSPROXY_RUN_DIR! });
    expect(human.code).to.equal(0);
    expect(human.stdout).to.match(/^caddy\s+RUNNING\s+pid \d+/m);
    expect(human.stdout).to.match(/^health: ok \(/m);
    expect(human.stdout).to.include(` on Node.js ${process.version}`);

    const shutdown = await stack.ctl('shutdown');
    expect(shutdown.code, shutdown.stderr).to.equal(0);
    expect(await stack.exited()).to.equal(0);
    expectCleanStops(stack);
    expectNoOrphans(stack);
  });

  it('scripts/run.sh: the first start prints the admin token once, a restart does not, a second copy refuses; Ctrl-C (SIGINT) stops everything', async function () {
    // Two starts, each compiling first.
    this.timeout(240_000);
    const data = tempDir('dnsproxy-runsh-');
    try {
      mkdirSync(join(data.dir, 'data'));
      // '' leaves the token to the controller, which generates and prints it.
      const env = { DNSPROXY_DATA_DIR: join(data.dir, 'data'), DNSPROXY_ADMIN_TOKEN: '' };
      stack = await startStack({ launcher: 'run.sh', env });
      const tokens = [...stack.output().matchAll(TOKEN_LINE)].map((m) => m[1]);
      expect(tokens).to.have.length(1);
      const list = await fetch(`${stack.apiUrl}/api/v1/records`, { headers: { authorization: `Bearer ${tokens[0]}` } });
      expect(list.status).to.equal(200);
      stack.signal('SIGINT');
      expect(await stack.exited()).to.equal(0);
      expectCleanStops(stack);
      expectNoOrphans(stack);
      await stack.cleanup();

      stack = await startStack({ launcher: 'run.sh', env });
      expect(stack.output()).not.to.include('first start: admin API token');
      // A second run.sh on the same run dir would start a second Caddy (SO_REUSEPORT): it refuses.
      const second = await runSh(stack.env);
      expect(second.code).to.equal(1);
      expect(second.out).to.match(/already running \(supervisord pid \d+\)/);
      expect(await stack.states()).to.deep.equal({ caddy: 'RUNNING', controller: 'RUNNING', mail: 'RUNNING' });
      stack.signal('SIGINT');
      expect(await stack.exited()).to.equal(0);
      expectNoOrphans(stack);
    } finally {
      await stack?.cleanup();
      data.cleanup();
    }
  });
});
