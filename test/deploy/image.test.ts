// Dockerfile.all built and run for real, with podman (no Docker engine runs here). The base image
// node:<pin>-bookworm-slim is made locally when missing (scripts/node-base-image.sh; podman keeps
// it between runs). Then the image runs twice:
//   - host network, every port moved to free high ports on 127.0.0.1 (nothing here may bind the
//     well-known ports: other stacks run on this machine), checked end to end from the host;
//   - a bridge network with the image's defaults (DNS :53, Caddy :80, SMTP :25) and
//     ip_unprivileged_port_start=1024, so only the binaries' file capabilities let the
//     non-root user bind them; reached through ports published on 127.0.0.1.
// Skipped, with the reason, where podman cannot run (not installed, not root, no runc).
// Prints the build time, the image size and each check's figures.
import { expect } from 'chai';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseSupervisorStatus } from '../../src/cli/status.js';
import { freePorts, request, startBackend, type Backend } from '../helpers/caddy.js';
import { dig } from '../helpers/controller.js';
import { APP_DIR } from '../helpers/supervisor.js';
import { tempDir } from '../helpers/tmp.js';
import { until as pollUntil } from '../helpers/until.js';

const run = promisify(execFile);
/** The image under test; each build replaces it (the previous one is removed). */
const IMAGE = 'localhost/dnsproxy-image-test:latest';
/** Made when missing, then cached by podman: ~2–4 min (debootstrap from the apt mirror). */
const BASE_TIMEOUT_MS = 10 * 60_000;
/** A cold build is ~4 min on 2 loaded cores (npm ci, better-sqlite3's compile, apt); cached: seconds. */
const BUILD_TIMEOUT_MS = 15 * 60_000;
/** The issue's bound on the runtime image (node, caddy, supervisor/python, node_modules). */
const MAX_IMAGE_MB = 350;
/** supervisord → RUNNING after startsecs (caddy 1 s, controller 2 s, relay 20 s), slower when loaded. */
const START_TIMEOUT_MS = 90_000;
/** supervisord stops the relay, the controller, then Caddy, each with stopwaitsecs=15 at worst. */
const STOP_TIMEOUT_S = 50;
/** One podman call (exec, inspect, run -d) on a loaded box. */
const PODMAN_CALL_MS = 60_000;
/** A relay that cannot start: 4 tries of 3–15 s each (more when loaded) and the back-off between them. */
const RELAY_FATAL_TIMEOUT_MS = 180_000;
/** How often a state is polled while waiting for it. */
const POLL_MS = 250;
/** The pinned service user (Dockerfile.all: useradd --uid). */
const SERVICE_UID = 10001;
const TOKEN = 'image-test-admin-token-0123456789';

/** Flags this kind of machine needs: runc (crun refuses the hybrid cgroup layout), limits within the hard ones (no CAP_SYS_RESOURCE). */
function hardNofile(): string {
  return spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim() || '1024';
}
const GLOBAL = ['--runtime', 'runc'];
const LIMITS = () => ['--ulimit', `nofile=${hardNofile()}:${hardNofile()}`, '--ulimit', 'nproc=32768:32768'];

async function podman(args: string[], timeout = PODMAN_CALL_MS): Promise<string> {
  const { stdout } = await run('podman', [...GLOBAL, ...args], { timeout, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}
/** podman without throwing: exit code and output. */
async function podmanTry(args: string[], timeout = PODMAN_CALL_MS): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('podman', [...GLOBAL, ...args], { timeout, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** Why podman cannot run containers here, or null when it can. */
function podmanProblem(): string | null {
  if (process.env.DNSPROXY_SKIP_IMAGE_TEST) return 'DNSPROXY_SKIP_IMAGE_TEST is set';
  if (spawnSync('podman', ['--version']).status !== 0) return 'podman is not installed (apt-get install podman runc; scripts/test.sh does it as root)';
  if (spawnSync('runc', ['--version']).status !== 0) return 'runc is not installed (apt-get install runc)';
  if (process.getuid?.() !== 0) return 'not root: the base image is made with debootstrap and the image runs rootful';
  if (spawnSync('podman', [...GLOBAL, 'info'], { stdio: 'ignore' }).status !== 0) return '`podman info` fails';
  return null;
}

const until = <T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> => pollUntil(what, timeoutMs, probe, POLL_MS);

/** Seconds from each "spawned: 'name'" to the "exited: name" after it, from supervisord's log lines. */
function startDurations(log: string, name: string): number[] {
  const out: number[] = [];
  let spawned: number | null = null;
  for (const line of log.split('\n')) {
    const at = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) /.exec(line);
    if (!at) continue;
    const t = Date.parse(`${at[1]!.replace(' ', 'T')}.${at[2]!}Z`);
    if (line.includes(`spawned: '${name}'`)) spawned = t;
    else if (line.includes(`exited: ${name} `) && spawned !== null) {
      out.push((t - spawned) / 1000);
      spawned = null;
    }
  }
  return out;
}

type States = Record<string, { state: string; pid: number | null }>;
async function states(container: string): Promise<States> {
  const r = await podmanTry(['exec', container, 'supervisorctl', '-c', '/etc/supervisord.conf', 'status']);
  const out: States = {};
  for (const p of parseSupervisorStatus(r.stdout)) {
    const pid = /pid (\d+)/.exec(p.detail)?.[1];
    out[p.name] = { state: p.state, pid: pid ? Number(pid) : null };
  }
  return out;
}
const PROGRAMS = ['caddy', 'controller', 'mail'];
async function allRunning(container: string): Promise<States> {
  return until(`${container}: caddy, controller and mail RUNNING`, START_TIMEOUT_MS, async () => {
    const s = await states(container);
    return PROGRAMS.every((p) => s[p]?.state === 'RUNNING') ? s : undefined;
  });
}

/** The first line a server sends on a new TCP connection (the SMTP greeting). */
function greeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    sock.setTimeout(10_000, () => sock.destroy(new Error('no greeting within 10 s')));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      if (buf.includes('\r\n')) {
        sock.end('QUIT\r\n');
        resolve(buf.split('\r\n')[0]!);
      }
    });
    sock.on('error', reject);
  });
}

/** Listening sockets (TCP LISTEN, and every UDP socket) inside a container, from /proc/net (one exec). */
async function listeners(container: string): Promise<{ proto: string; port: number; uid: number }[]> {
  const text = await podman(['exec', container, 'sh', '-c', 'for f in tcp tcp6 udp udp6; do echo "== $f"; cat /proc/net/$f; done']);
  const out: { proto: string; port: number; uid: number }[] = [];
  let proto = '';
  for (const line of text.split('\n')) {
    const head = /^== (\w+)$/.exec(line);
    if (head) {
      proto = head[1]!.replace('6', '');
      continue;
    }
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !/^\d+:$/.test(f[0]!)) continue; // the column header
    if (proto === 'tcp' && f[3] !== '0A') continue; // LISTEN only
    out.push({ proto, port: parseInt(f[1]!.split(':').at(-1)!, 16), uid: Number(f[7]) });
  }
  return out;
}

async function api(port: number, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: await res.json().catch(() => null) };
}

describe('deploy: the image, built and run with podman', function () {
  const tag = `${process.pid}-${Date.now().toString(36)}`;
  const containers: string[] = [];
  const volumes: string[] = [];
  let built = false;

  before(function () {
    const why = podmanProblem();
    if (why) {
      console.log(`      image test skipped: ${why}`);
      this.skip();
    }
  });

  after(async function () {
    this.timeout(STOP_TIMEOUT_S * 1000 + PODMAN_CALL_MS);
    for (const c of containers) await podmanTry(['rm', '-f', '-v', '-t', '0', c]); // -v: the anonymous /data volumes too
    for (const v of volumes) await podmanTry(['volume', 'rm', '-f', v]);
  });

  it('has the base image node:<pin>-bookworm-slim (made with debootstrap when missing, then cached)', async function () {
    this.timeout(BASE_TIMEOUT_MS);
    const started = Date.now();
    const { stdout, stderr } = await run('bash', [join(APP_DIR, 'scripts/node-base-image.sh')], { timeout: BASE_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
    const base = stdout.trim().split('\n').at(-1)!;
    expect(base).to.match(/^node:\d+-bookworm-slim$/);
    const node = (await podman(['run', '--rm', ...LIMITS(), base, 'node', '-p', 'process.version + " " + require("node:fs").existsSync("/usr/local/include/node/node.h")'])).trim();
    console.log(`      ${base}: ${stderr.includes('made in') ? 'made' : 'cached'}, ${((Date.now() - started) / 1000).toFixed(1)} s; node ${node.split(' ')[0]}, headers ${node.endsWith('true') ? 'present' : 'MISSING'}`);
    expect(node).to.match(/^v\d+\.\d+\.\d+ true$/);
  });

  it('builds Dockerfile.all (--format docker, no network but the apt mirror and the npm registry)', async function () {
    this.timeout(BUILD_TIMEOUT_MS);
    const previous = (await podmanTry(['image', 'inspect', '--format', '{{.Id}}', IMAGE])).stdout.trim();
    const started = Date.now();
    // This machine reaches the npm registry through a TLS-inspecting proxy: its CA bundle goes in as a build secret.
    const ca = [process.env.SSL_CERT_FILE, '/etc/ssl/certs/ca-certificates.crt'].find((f): f is string => !!f && existsSync(f));
    const secret = ca ? ['--secret', `id=ca,src=${ca}`] : [];
    // --jobs 2: the build and system stages run side by side (one compiles, the other mostly downloads).
    const r = await podmanTry(['build', '--format', 'docker', '--jobs', '2', ...secret, ...LIMITS(), '-f', 'Dockerfile.all', '-t', IMAGE, APP_DIR], BUILD_TIMEOUT_MS);
    const seconds = (Date.now() - started) / 1000;
    if (r.code !== 0) console.log(`${r.stdout.slice(-6000)}\n${r.stderr.slice(-6000)}`);
    expect(r.code, 'podman build').to.equal(0);
    const id = (await podman(['image', 'inspect', '--format', '{{.Id}}', IMAGE])).trim();
    if (previous && previous !== id) await podmanTry(['rmi', previous]);
    const cached = (r.stdout.match(/--> Using cache/g) ?? []).length;
    console.log(`      build: ${seconds.toFixed(1)} s (${cached} step(s) from cache)`);
    built = true;
  });

  it(`the runtime image is at most ${MAX_IMAGE_MB} MB, keeps its HEALTHCHECK and runs as uid ${SERVICE_UID}`, async function () {
    if (!built) this.skip();
    const [size, health, user] = (await podman(['image', 'inspect', '--format', '{{.Size}}|{{json .Config.Healthcheck}}|{{.Config.User}}', IMAGE])).trim().split('|');
    const mb = Number(size) / 1e6;
    console.log(`      image size: ${mb.toFixed(0)} MB (at most ${MAX_IMAGE_MB})`);
    expect(mb).to.be.at.most(MAX_IMAGE_MB);
    expect(health).to.include('dnsproxy status');
    expect(user).to.equal('dnsproxy');
    const id = (await podman(['run', '--rm', ...LIMITS(), '--entrypoint', 'id', IMAGE])).trim();
    expect(id).to.include(`uid=${SERVICE_UID}(dnsproxy) gid=${SERVICE_UID}(dnsproxy)`);
  });

  describe('host network, every port moved to a free high port on 127.0.0.1', () => {
    const name = `dnsproxy-image-host-${tag}`;
    const volume = `dnsproxy-image-data-${tag}`;
    let ports: { dns: number; api: number; http: number; https: number; smtp: number; submission: number; smtps: number };
    let backend: Backend;
    let token = '';
    let runArgs: string[];

    before(async function () {
      if (!built) this.skip();
      this.timeout(START_TIMEOUT_MS + PODMAN_CALL_MS);
      const [dns, apiPort, http, https, smtp, submission, smtps] = await freePorts(7);
      ports = { dns: dns!, api: apiPort!, http: http!, https: https!, smtp: smtp!, submission: submission!, smtps: smtps! };
      backend = await startBackend('image-backend');
      containers.push(name);
      volumes.push(volume);
      runArgs = [
        'run', '-d', '--name', name, '--network', 'host', ...LIMITS(), '--stop-timeout', String(STOP_TIMEOUT_S), '-v', `${volume}:/data`,
        '-e', 'DNSPROXY_LISTEN_IP=127.0.0.1', '-e', 'DNSPROXY_NODE_IP=127.0.0.1',
        '-e', `DNSPROXY_DNS_PORT=${ports.dns}`, '-e', `DNSPROXY_API_PORT=${ports.api}`, '-e', `DNSPROXY_HTTP_PORT=${ports.http}`,
        '-e', `DNSPROXY_HTTPS_PORT=${ports.https}`, '-e', `DNSPROXY_SMTP_PORT=${ports.smtp}`,
        '-e', `DNSPROXY_SUBMISSION_PORT=${ports.submission}`, '-e', `DNSPROXY_SMTPS_PORT=${ports.smtps}`,
        // Caddy's admin API stays the unix socket in the run dir: nothing on the host's loopback.
        IMAGE,
      ];
      await podman(runArgs);
      await allRunning(name);
      // The first start with an empty volume prints the generated admin token once.
      token = await until('the admin token in the log', PODMAN_CALL_MS, async () => /admin API token \(shown once, stored hashed\): (\S+)/.exec(await logs(name))?.[1]);
    });
    after(() => backend?.close());

    async function logs(c: string): Promise<string> {
      const r = await podmanTry(['logs', c]);
      return r.stdout + r.stderr;
    }

    it('three programs RUNNING under supervisord, as uid 10001', async () => {
      const s = await states(name);
      console.log(`      ${PROGRAMS.map((p) => `${p} ${s[p]?.state}`).join(', ')}`);
      for (const p of PROGRAMS) expect(s[p]?.state, p).to.equal('RUNNING');
      // No procps in the image: each program's real uid from /proc.
      for (const p of PROGRAMS) {
        const uid = /^Uid:\s+(\d+)/m.exec(await podman(['exec', name, 'cat', `/proc/${s[p]!.pid}/status`]))?.[1];
        expect(Number(uid), `${p}'s uid`).to.equal(SERVICE_UID);
      }
    });

    it('GET /health answers ok', async () => {
      const res = await fetch(`http://127.0.0.1:${ports.api}/health`);
      const body = (await res.json()) as { status: string };
      console.log(`      /health ${res.status} ${body.status}`);
      expect(res.status).to.equal(200);
      expect(body.status).to.equal('ok');
    });

    it('add-record → dig over UDP and TCP → a request proxied through Caddy to a backend on the host', async () => {
      const add = await api(ports.api, 'POST', '/add-record', token, { service_name: 'img', name: 'img', ip: '127.0.0.1', port: backend.port, forward_to_ip: '127.0.0.1', proxy_enabled: true });
      expect(add.status, JSON.stringify(add.json)).to.equal(201);
      const udp = await dig(ports.dns, ['+short', 'img.home.arpa', 'A']);
      const tcp = await dig(ports.dns, ['+tcp', '+short', 'img.home.arpa', 'A']);
      expect(udp?.trim(), 'dig over UDP').to.equal('127.0.0.1');
      expect(tcp?.trim(), 'dig over TCP').to.equal('127.0.0.1');
      const started = Date.now();
      const reply = await until('the route through Caddy', 10_000, async () => {
        const r = await request({ port: ports.http, host: 'img.home.arpa', path: '/hello' });
        return r.status === 200 ? r : undefined;
      });
      console.log(`      dig UDP ${udp?.trim()}, TCP ${tcp?.trim()}; proxied ${reply.status} after ${Date.now() - started} ms`);
      expect(JSON.parse(reply.body)).to.include({ backend: 'image-backend', url: '/hello' });
    });

    it('the mail relay greets on its SMTP port', async () => {
      const line = await greeting(ports.smtp);
      console.log(`      SMTP: ${line}`);
      expect(line).to.match(/^220 /);
    });

    it('`podman exec … dnsproxy status` reaches the API on the moved port (default URL from DNSPROXY_API_PORT)', async () => {
      const r = await podmanTry(['exec', name, 'dnsproxy', 'status']);
      console.log(`      exit ${r.code}: ${r.stdout.trim().split('\n').join(' | ')}`);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.include(`127.0.0.1:${ports.api}`);
    });

    it('a SIGKILLed controller is restarted by supervisord and serves the record again', async function () {
      this.timeout(START_TIMEOUT_MS + PODMAN_CALL_MS);
      const before = (await states(name)).controller!.pid!;
      // The image has no /bin/kill (no procps): the shell's builtin sends it.
      await podman(['exec', name, 'sh', '-c', `kill -KILL ${before}`]);
      const started = Date.now();
      const after = await until('controller RUNNING with a new pid', START_TIMEOUT_MS, async () => {
        const s = (await states(name)).controller;
        return s?.state === 'RUNNING' && s.pid !== before ? s.pid : undefined;
      });
      const answer = await until('DNS answers again', 10_000, async () => ((await dig(ports.dns, ['+short', 'img.home.arpa', 'A']))?.trim() === '127.0.0.1' ? true : undefined));
      console.log(`      controller pid ${before} → ${after}, RUNNING and answering after ${Date.now() - started} ms`);
      expect(answer).to.equal(true);
      expect(await logs(name)).to.match(/exited: controller \(terminated by SIGKILL; not expected\)/);
    });

    it('`podman stop` stops every program cleanly: exit 0 all round', async function () {
      this.timeout(STOP_TIMEOUT_S * 1000 + PODMAN_CALL_MS);
      const started = Date.now();
      await podman(['stop', '-t', String(STOP_TIMEOUT_S), name], STOP_TIMEOUT_S * 1000 + PODMAN_CALL_MS);
      const seconds = (Date.now() - started) / 1000;
      const code = (await podman(['inspect', '--format', '{{.State.ExitCode}}', name])).trim();
      const text = await logs(name);
      const stopped = PROGRAMS.map((p) => new RegExp(`stopped: ${p} \\(exit status 0\\)`).test(text));
      console.log(`      stopped in ${seconds.toFixed(1)} s, container exit ${code}; ${PROGRAMS.map((p, i) => `${p} ${stopped[i] ? 'exit 0' : 'NOT exit 0'}`).join(', ')}`);
      expect(code).to.equal('0');
      expect(stopped).to.deep.equal([true, true, true]);
    });

    it('data and the admin token survive `podman rm` + `podman run` on the same volume', async function () {
      this.timeout(START_TIMEOUT_MS + 2 * PODMAN_CALL_MS);
      await podman(['rm', name]);
      await podman(runArgs);
      await allRunning(name);
      const list = await until('the API after the new start', 30_000, async () => {
        const r = await api(ports.api, 'GET', '/list-records', token);
        return r.status === 200 ? r : undefined;
      });
      expect(JSON.stringify(list.json)).to.include('img');
      expect(await dig(ports.dns, ['+short', 'img.home.arpa', 'A'])).to.equal('127.0.0.1\n');
      expect(await logs(name)).not.to.include('admin API token (shown once');
      console.log('      record and token kept; no new token printed');
    });
  });

  describe('bridge network with the image defaults (DNS :53, Caddy :80, SMTP :25, API :8080)', () => {
    const name = `dnsproxy-image-bridge-${tag}`;
    let ports: { dns: number; api: number; http: number; smtp: number };

    before(async function () {
      if (!built) this.skip();
      this.timeout(START_TIMEOUT_MS + PODMAN_CALL_MS);
      const [dns, apiPort, http, smtp] = await freePorts(4);
      ports = { dns: dns!, api: apiPort!, http: http!, smtp: smtp! };
      containers.push(name);
      await podman([
        'run', '-d', '--name', name, ...LIMITS(), '--stop-timeout', String(STOP_TIMEOUT_S), '--cap-add', 'NET_BIND_SERVICE',
        // Without this podman may let anyone bind low ports in the container's namespace; with it only file capabilities do.
        '--sysctl', 'net.ipv4.ip_unprivileged_port_start=1024',
        '-p', `127.0.0.1:${ports.dns}:53/udp`, '-p', `127.0.0.1:${ports.dns}:53/tcp`, '-p', `127.0.0.1:${ports.http}:80`,
        '-p', `127.0.0.1:${ports.smtp}:25`, '-p', `127.0.0.1:${ports.api}:8080`,
        '-e', `DNSPROXY_ADMIN_TOKEN=${TOKEN}`, '-e', 'DNSPROXY_NODE_IP=127.0.0.1', IMAGE,
      ]);
      await allRunning(name);
    });

    it(`DNS :53 (UDP and TCP), Caddy :80, SMTP :25 and the API :8080 are bound by uid ${SERVICE_UID}`, async () => {
      const socks = await listeners(name);
      const want = [['udp', 53], ['tcp', 53], ['tcp', 80], ['tcp', 25], ['tcp', 8080]] as const;
      const found = want.map(([proto, port]) => socks.find((s) => s.proto === proto && s.port === port));
      console.log(`      ${want.map(([proto, port], i) => `${proto}:${port} uid ${found[i]?.uid ?? 'none'}`).join(', ')}`);
      for (const [i, [proto, port]] of want.entries()) expect(found[i]?.uid, `${proto}:${port}`).to.equal(SERVICE_UID);
    });

    it('`podman exec … dnsproxy status` works with the defaults', async () => {
      const r = await podmanTry(['exec', name, 'dnsproxy', 'status']);
      console.log(`      exit ${r.code}: ${r.stdout.trim().split('\n').join(' | ')}`);
      expect(r.code, r.stderr).to.equal(0);
    });

    it('the published ports reach /health, DNS, Caddy and SMTP', async () => {
      const health = await until('/health through the published port', 30_000, async () => {
        const res = await fetch(`http://127.0.0.1:${ports.api}/health`).catch(() => undefined);
        return res?.status === 200 ? res.status : undefined;
      });
      const add = await api(ports.api, 'POST', '/add-record', TOKEN, { service_name: 'web', name: 'web', ip: '127.0.0.1' });
      expect(add.status, JSON.stringify(add.json)).to.equal(201);
      const udp = (await dig(ports.dns, ['+short', 'web.home.arpa', 'A']))?.trim();
      const tcp = (await dig(ports.dns, ['+tcp', '+short', 'web.home.arpa', 'A']))?.trim();
      const caddy = await request({ port: ports.http, host: 'nothing.home.arpa' });
      const smtp = await greeting(ports.smtp);
      console.log(`      /health ${health}, dig UDP ${udp} TCP ${tcp}, Caddy ${caddy.status} for an unknown name, SMTP "${smtp}"`);
      expect([udp, tcp]).to.deep.equal(['127.0.0.1', '127.0.0.1']);
      expect(caddy.status).to.equal(404);
      expect(smtp).to.match(/^220 /);
    });
  });

  describe('faults', () => {
    it('a bind-mounted /data owned by root ends the container at once with one clear line', async function () {
      if (!built) this.skip();
      this.timeout(2 * PODMAN_CALL_MS);
      const t = tempDir('dnsproxy-image-rootdata-');
      const data = join(t.dir, 'data');
      mkdirSync(data);
      chmodSync(data, 0o755);
      const name = `dnsproxy-image-rootdata-${tag}`;
      containers.push(name);
      try {
        const [dns, apiPort, http, https, smtp, submission, smtps] = await freePorts(7);
        // Detached, then waited for: the container's own output alone, without podman's messages.
        await podman([
          'run', '-d', '--name', name, '--network', 'host', ...LIMITS(), '-v', `${data}:/data`,
          '-e', 'DNSPROXY_LISTEN_IP=127.0.0.1', '-e', `DNSPROXY_DNS_PORT=${dns}`, '-e', `DNSPROXY_API_PORT=${apiPort}`,
          '-e', `DNSPROXY_HTTP_PORT=${http}`, '-e', `DNSPROXY_HTTPS_PORT=${https}`, '-e', `DNSPROXY_SMTP_PORT=${smtp}`,
          '-e', `DNSPROXY_SUBMISSION_PORT=${submission}`, '-e', `DNSPROXY_SMTPS_PORT=${smtps}`, IMAGE,
        ]);
        const started = Date.now();
        const code = Number((await podman(['wait', name], PODMAN_CALL_MS)).trim());
        const r = await podmanTry(['logs', name]);
        const lines = (r.stdout + r.stderr).trim().split('\n');
        console.log(`      exit ${code} after ${Date.now() - started} ms: ${lines.join(' / ')}`);
        expect(code).to.equal(1);
        expect(lines).to.have.length(1);
        expect(lines[0]).to.match(/^dnsproxy: cannot write the data dir \/data \(owner 0:0\) as uid 10001 gid 10001: run 'chown -R 10001:10001' on it/);
      } finally {
        t.cleanup();
      }
    });

    it('a relay whose start fails ends FATAL after its retries instead of flapping (startsecs longer than a failing start)', async function () {
      if (!built) this.skip();
      this.timeout(RELAY_FATAL_TIMEOUT_MS + 2 * PODMAN_CALL_MS);
      const name = `dnsproxy-image-relayfail-${tag}`;
      containers.push(name);
      // The relay's SMTP port is taken on the host: every start of the relay exits with EADDRINUSE.
      const taken = net.createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      const smtp = (taken.address() as net.AddressInfo).port;
      try {
        const [dns, apiPort, http, https, submission, smtps] = await freePorts(6);
        await podman([
          'run', '-d', '--name', name, '--network', 'host', ...LIMITS(),
          '-e', 'DNSPROXY_LISTEN_IP=127.0.0.1', '-e', `DNSPROXY_DNS_PORT=${dns}`, '-e', `DNSPROXY_API_PORT=${apiPort}`,
          '-e', `DNSPROXY_HTTP_PORT=${http}`, '-e', `DNSPROXY_HTTPS_PORT=${https}`, '-e', `DNSPROXY_SMTP_PORT=${smtp}`,
          '-e', `DNSPROXY_SUBMISSION_PORT=${submission}`, '-e', `DNSPROXY_SMTPS_PORT=${smtps}`, IMAGE,
        ]);
        const started = Date.now();
        // 4 failing starts of 3–15 s each plus supervisord's back-off (1 + 2 + 3 s); with startsecs
        // shorter than a failing start this never ends (each start counts as RUNNING and resets the tries).
        const state = await until('the relay FATAL', RELAY_FATAL_TIMEOUT_MS, async () => ((await states(name)).mail?.state === 'FATAL' ? 'FATAL' : undefined));
        const r = await podmanTry(['logs', name]);
        const text = r.stdout + r.stderr;
        const exits = (text.match(/exited: mail \(exit status 1; not expected\)/g) ?? []).length;
        const durations = startDurations(text, 'mail');
        console.log(`      relay ${state} after ${((Date.now() - started) / 1000).toFixed(1)} s and ${exits} failed starts of ${durations.map((d) => d.toFixed(1)).join(', ')} s (startsecs 20)`);
        expect(text).to.match(/gave up: mail entered FATAL state, too many start retries too quickly/);
        expect(exits).to.be.at.least(4);
      } finally {
        await new Promise((r) => taken.close(r));
      }
    });
  });
});
