// scripts/caddy-run.sh, supervisord's `caddy` program, on its own: it refuses an admin address
// that would put Caddy's admin API on the network before Caddy starts, and with the default (a
// unix socket in the run dir) Caddy's socket is owner-only and its only TCP listeners are ours.
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { adminRequest, hasCaddy, tcpListeners } from '../helpers/caddy.js';
import { APP_DIR, within } from '../helpers/supervisor.js';
import { tempDir } from '../helpers/tmp.js';

const SCRIPT = join(APP_DIR, 'scripts/caddy-run.sh');

describe('deploy: scripts/caddy-run.sh', function () {
  this.timeout(30_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('dnsproxy-caddyrun-')));
  afterEach(() => tmp.cleanup());

  const env = (admin: string) => ({ ...process.env, HOME: tmp.dir, XDG_DATA_HOME: join(tmp.dir, 'data'), XDG_CONFIG_HOME: join(tmp.dir, 'config'), DNSPROXY_RUN_DIR: join(tmp.dir, 'run'), DNSPROXY_CADDY_ADMIN: admin });

  for (const admin of ['0.0.0.0:2019', '192.0.2.10:2019', '[::]:2019', ':2019', '127.evil.example:2019', 'unix/relative.sock', 'unix//tmp/a b.sock', '127.0.0.1:2019","x":"y']) {
    it(`refuses DNSPROXY_CADDY_ADMIN=${admin} before starting Caddy (exit 1, one line)`, async () => {
      const res = await promisify(execFile)('/bin/sh', [SCRIPT], { env: { ...env(admin), PATH: '/usr/bin:/bin' } }).catch((e: { code: number; stderr: string }) => e);
      expect(res).to.include({ code: 1 });
      expect((res as { stderr: string }).stderr).to.match(/^caddy-run\.sh: DNSPROXY_CADDY_ADMIN=.*: (must be|the socket path)/);
      expect((res as { stderr: string }).stderr.trim().split('\n')).to.have.length(1);
    });
  }

  it('the default unix socket: created owner-only in a 0700 directory; Caddy listens on no TCP port of its own', async function () {
    if (!hasCaddy()) return this.skip();
    const socket = join(tmp.dir, 'run', 'admin', 'caddy-admin.sock');
    const p = spawn('/bin/sh', [SCRIPT], { env: env(`unix/${socket}`), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    try {
      await within(10_000, async () => (await adminRequest({ socket }, 'GET', '/config/')).status === 200).catch(() => {
        throw new Error(`Caddy did not answer on ${socket}:\n${out}`);
      });
      expect(JSON.parse(readFileSync(join(tmp.dir, 'run', 'caddy-bootstrap.json'), 'utf8'))).to.deep.equal({ admin: { listen: `unix/${socket}`, config: { persist: false } } });
      expect((statSync(socket).mode & 0o777).toString(8), 'socket mode').to.equal('700');
      expect((statSync(join(socket, '..')).mode & 0o777).toString(8), 'socket directory mode').to.equal('700');
      // exec: the script's pid is Caddy's; its bootstrap config has no server, and the admin API is not TCP.
      expect(tcpListeners(p.pid!)).to.deep.equal([]);
    } finally {
      p.kill('SIGTERM');
      await exited;
    }
  });
});
