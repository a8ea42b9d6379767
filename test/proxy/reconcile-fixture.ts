// Fixtures for the reconciler unit tests: a minimal renderer shaped like Caddy JSON (one server,
// one route per desired route, catch-all 404, marker `@id` on the server) and an in-memory Caddy
// admin that rejects routes the way Caddy 2.6 words it. Integration tests use render() and
// test/helpers/caddy.ts instead.
import { createHash } from 'node:crypto';
import { CaddyRejected, CaddyUnavailable, type CaddyApi } from '../../src/proxy/caddy.js';
import { canonicalJson, markerId } from '../../src/proxy/render.js';
import type { DesiredProxy, DesiredRoute, Rendered } from '../../src/proxy/types.js';

export const SERVER = 'dnsproxy';

export function route(id: string, upstream: string, extra: Partial<DesiredRoute> = {}): DesiredRoute {
  return { id, hosts: [`${id}.example.test`], path: null, upstreams: [upstream], tls: 'off', health_path: null, ...extra };
}

export function desired(routes: DesiredRoute[], admin = '127.0.0.1:2019', httpPort = 8080): DesiredProxy {
  return { settings: { admin, httpPort, httpsPort: 8443, listenIp: '127.0.0.1' }, routes: [...routes].sort((a, b) => (a.id < b.id ? -1 : 1)) };
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
        transport: { protocol: 'http', keep_alive: { idle_timeout: '5s', max_idle_conns_per_host: 32, probe_interval: '30s' } },
      },
    ],
    terminal: true,
  }));
  routes.push({ handle: [{ handler: 'static_response', status_code: 404, body: 'no route for this host\n' }], terminal: true });
  const server: Record<string, unknown> = { listen: [`127.0.0.1:${d.settings.httpPort}`], routes, automatic_https: { disable: true } };
  const config = { admin: { listen: d.settings.admin, config: { persist: false } }, apps: { http: { servers: { [SERVER]: server } } } };
  const hash = createHash('sha256').update(canonicalJson(config)).digest('hex');
  server['@id'] = markerId(hash);
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

/**
 * In-memory Caddy admin: `running` is what a real one would serve. `revision()` works like
 * Caddy 2.6.2's /metrics: the process start and a count of config-changing requests (every
 * load, accepted or not); change `running` through restart()/foreignLoad() so it moves.
 */
export class FakeCaddy implements CaddyApi {
  running: Record<string, unknown> | null = null;
  /** False: answers revision() with null, like a Caddy whose /metrics says nothing. */
  metrics = true;
  starts = 1;
  changes = 0;
  markerReads = 0;
  revisionReads = 0;
  loads: Record<string, unknown>[] = [];
  /** Load attempts, including refused/rejected ones, with their time. */
  attempts: number[] = [];
  down = false;
  loadDelayMs = 0;
  inflight = 0;
  maxInflight = 0;

  /** Loads asked to reload even an unchanged config (Cache-Control: must-revalidate). */
  forced = 0;

  async load(config: Record<string, unknown>, _json?: string, force = false): Promise<void> {
    this.attempts.push(Date.now());
    if (force) this.forced++;
    if (this.down) throw new CaddyUnavailable('POST /load: ECONNREFUSED');
    this.inflight++;
    this.changes++;
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
    this.markerReads++;
    let v: unknown = this.running;
    for (const seg of path.replace(/^\/config\/?/, '').split('/').filter(Boolean)) v = (v as any)?.[decodeURIComponent(seg)];
    return typeof v === 'string' ? v : null;
  }

  async config(): Promise<unknown> {
    if (this.down) throw new CaddyUnavailable('GET /config/: ECONNREFUSED');
    return this.running;
  }

  async revision(): Promise<string | null> {
    if (this.down) throw new CaddyUnavailable('GET /metrics: ECONNREFUSED');
    this.revisionReads++;
    return this.metrics ? `${this.starts}/${this.changes}` : null;
  }

  /** Caddy restarted with `config` (its bootstrap): new start time, counts reset. */
  restart(config: Record<string, unknown> | null): void {
    this.running = config;
    this.starts++;
    this.changes = 0;
  }

  /** Another client loaded `config`. */
  foreignLoad(config: Record<string, unknown> | null): void {
    this.running = config;
    this.changes++;
  }

  /** Hosts of the routes the running config serves. */
  hosts(): string[] {
    const routes = ((this.running?.apps as any)?.http?.servers?.[SERVER]?.routes ?? []) as any[];
    return routes.flatMap((r) => (r.match?.[0]?.host ?? []) as string[]).sort();
  }
}

