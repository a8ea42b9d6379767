// Fixtures for the reconciler tests: a minimal renderer shaped like Caddy JSON (one server, one
// route per desired route, catch-all 404, marker `@id` on the server) and an in-memory Caddy
// admin that rejects routes the way Caddy 2.6 words it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { CaddyRejected, CaddyUnavailable, type CaddyApi } from '../../src/proxy/caddy.js';
import { canonicalJson } from '../../src/proxy/quarantine.js';
import { defaultMarkerId } from '../../src/proxy/reconcile.js';
import type { DesiredProxy, DesiredRoute, Rendered } from '../../src/proxy/types.js';
import { tempDir } from '../helpers/tmp.js';

export const SERVER = 'dnsproxy';

export function route(id: string, upstream: string, extra: Partial<DesiredRoute> = {}): DesiredRoute {
  return { id, hosts: [`${id}.example.test`], path: null, upstreams: [upstream], tls: 'off', health_path: null, ...extra };
}

export function desired(routes: DesiredRoute[], admin = '127.0.0.1:2019', httpPort = 8080): DesiredProxy {
  return { settings: { admin, httpPort, httpsPort: 8443 }, routes: [...routes].sort((a, b) => (a.id < b.id ? -1 : 1)) };
}

/** Deterministic Caddy JSON for `d`; the hash covers everything but the marker, which names it. */
export function testRender(d: DesiredProxy): Rendered {
  const routes: Record<string, unknown>[] = d.routes.map((r) => ({
    '@id': `dnsproxy-route-${r.id}`,
    match: [{ host: r.hosts, ...(r.path ? { path: [r.path, `${r.path}/*`] } : {}) }],
    handle: [
      {
        handler: 'reverse_proxy',
        upstreams: r.upstreams.map((dial) => ({ dial })),
        ...(r.health_path ? { health_checks: { active: { uri: r.health_path, interval: '30s' } } } : {}),
        transport: { protocol: 'http', keep_alive: { idle_timeout: '5s' } },
      },
    ],
    terminal: true,
  }));
  routes.push({ handle: [{ handler: 'static_response', status_code: 404, body: 'no route for this host\n' }], terminal: true });
  const server: Record<string, unknown> = { listen: [`127.0.0.1:${d.settings.httpPort}`], routes, automatic_https: { disable: true } };
  const config = { admin: { listen: d.settings.admin, config: { persist: false } }, apps: { http: { servers: { [SERVER]: server } } } };
  const hash = createHash('sha256').update(canonicalJson(config)).digest('hex');
  server['@id'] = defaultMarkerId(hash);
  return { config, hash, warnings: [] };
}

/** Upstreams the fake Caddy rejects: `bad:` fails by position, `badtls:` with an error naming no route. */
export function fakeVerdict(config: Record<string, unknown>): string | null {
  const routes = ((config.apps as any)?.http?.servers?.[SERVER]?.routes ?? []) as any[];
  for (const [i, r] of routes.entries()) {
    const dial: string | undefined = r.handle?.[0]?.upstreams?.[0]?.dial;
    if (dial?.startsWith('bad:'))
      return `loading config: loading new config: loading http app module: provision http: server ${SERVER}: setting up route handlers: route ${i}: loading handler modules: position 0: loading module 'reverse_proxy': provision http.handlers.reverse_proxy: invalid dial "${dial}"`;
    if (dial?.startsWith('badtls:')) return `loading config: loading new config: loading tls app module: provision tls: unusable upstream ${dial}`;
  }
  return null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** In-memory Caddy admin: `running` is what a real one would serve. */
export class FakeCaddy implements CaddyApi {
  running: Record<string, unknown> | null = null;
  loads: Record<string, unknown>[] = [];
  /** Load attempts, including refused/rejected ones, with their time. */
  attempts: number[] = [];
  down = false;
  loadDelayMs = 0;
  inflight = 0;
  maxInflight = 0;

  async load(config: Record<string, unknown>): Promise<void> {
    this.attempts.push(Date.now());
    if (this.down) throw new CaddyUnavailable('POST /load: ECONNREFUSED');
    this.inflight++;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    try {
      if (this.loadDelayMs) await sleep(this.loadDelayMs);
      this.loads.push(config);
      const verdict = fakeVerdict(config);
      if (verdict) throw new CaddyRejected(400, verdict);
      this.running = structuredClone(config);
    } finally {
      this.inflight--;
    }
  }

  async getMarker(path: string): Promise<string | null> {
    if (this.down) throw new CaddyUnavailable(`GET ${path}: ECONNREFUSED`);
    let v: unknown = this.running;
    for (const seg of path.replace(/^\/config\/?/, '').split('/').filter(Boolean)) v = (v as any)?.[decodeURIComponent(seg)];
    return typeof v === 'string' ? v : null;
  }

  async config(): Promise<unknown> {
    if (this.down) throw new CaddyUnavailable('GET /config/: ECONNREFUSED');
    return this.running;
  }

  /** Hosts of the routes the running config serves. */
  hosts(): string[] {
    const routes = ((this.running?.apps as any)?.http?.servers?.[SERVER]?.routes ?? []) as any[];
    return routes.flatMap((r) => (r.match?.[0]?.host ?? []) as string[]).sort();
  }
}

// --- A real Caddy, until test/helpers/caddy.ts lands: `caddy run` on free loopback ports with a
// temp HOME; restart() starts it again from the bootstrap (admin-only) config, as a supervisor would.

/** Caddy answers its admin API ~100 ms after spawn; a loaded CI box may take seconds. */
const CADDY_START_TIMEOUT_MS = 15_000;

export const hasCaddy = (): boolean => spawnSync('caddy', ['version'], { stdio: 'ignore' }).status === 0;

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface TestCaddy {
  adminListen: string;
  httpPort: number;
  dir: string;
  env: NodeJS.ProcessEnv;
  readonly pid: number;
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestCaddy(): Promise<TestCaddy> {
  const tmp = tempDir('dnsproxy-reconcile-caddy-');
  const adminListen = `127.0.0.1:${await freePort()}`;
  const httpPort = await freePort();
  const bootstrap = join(tmp.dir, 'bootstrap.json');
  writeFileSync(bootstrap, JSON.stringify({ admin: { listen: adminListen, config: { persist: false } } }));
  const env = { ...process.env, HOME: tmp.dir, XDG_DATA_HOME: join(tmp.dir, 'data'), XDG_CONFIG_HOME: join(tmp.dir, 'config') };
  let proc: ChildProcess | null = null;
  const kill = async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  };
  const up = async () => {
    const p = spawn('caddy', ['run', '--config', bootstrap], { env, cwd: tmp.dir, stdio: 'ignore' });
    proc = p;
    const end = Date.now() + CADDY_START_TIMEOUT_MS;
    for (;;) {
      if (p.exitCode !== null) throw new Error('caddy exited at start');
      try {
        if ((await fetch(`http://${adminListen}/config/`)).ok) return;
      } catch {
        // not yet listening
      }
      if (Date.now() > end) throw new Error('caddy did not start');
      await sleep(20);
    }
  };
  await up();
  return {
    adminListen,
    httpPort,
    dir: tmp.dir,
    env,
    get pid() {
      return proc?.pid ?? -1;
    },
    kill,
    restart: async () => {
      await kill();
      await up();
    },
    stop: async () => {
      await kill();
      tmp.cleanup();
    },
  };
}
