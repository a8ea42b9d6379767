// render(): golden configs, determinism, the marker, conflict handling and the host grouping.
// Golden files: test/proxy/golden/<name>.input.json → <name>.json; UPDATE_GOLDEN=1 rewrites them.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { expect } from 'chai';
import {
  CADDY_LARGE_HOST_LIST,
  canonicalJson,
  GROUP_FANOUT,
  hashConfig,
  markerId,
  markerPath,
  render,
  SERVER_HTTP,
  SERVER_HTTPS,
} from '../../src/proxy/render.js';
import { ID_PREFIX, type DesiredRoute } from '../../src/proxy/types.js';
import { GOLDEN, goldenNames, goldenInput } from './fixture.js';


type Json = Record<string, unknown>;
const settings = { httpPort: 8080, httpsPort: 8443, listenIp: '127.0.0.1', admin: '127.0.0.1:2019' };
const route = (id: string, hosts: string[], more: Partial<DesiredRoute> = {}): DesiredRoute => ({
  id,
  hosts,
  path: null,
  upstreams: ['192.0.2.1:80'],
  tls: 'off',
  health_path: null,
  ...more,
});
const servers = (config: Json) => (config.apps as { http: { servers: Record<string, Json> } }).http.servers;
const routesOf = (config: Json, server = SERVER_HTTP) => servers(config)[server]?.routes as Json[];

/** A deterministic PRNG (mulberry32), so a failing shuffle can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function shuffle<T>(xs: readonly T[], rnd: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/** Every object carrying `@id`, anywhere in the config. */
function ids(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) v.forEach((x) => ids(x, out));
  else if (v && typeof v === 'object') {
    const id = (v as Json)['@id'];
    if (typeof id === 'string') out.push(id);
    Object.values(v).forEach((x) => ids(x, out));
  }
  return out;
}

/**
 * Route evaluations Caddy performs to reach the leaf serving `host` with path `/`: each route
 * whose matchers are tested counts one, like Caddy's first-match walk into subroutes.
 */
function evaluations(routes: Json[], host: string): number | null {
  let n = 0;
  for (const r of routes) {
    n++;
    const m = (r.match as Json[] | undefined)?.[0];
    const hosts = m?.host as string[] | undefined;
    if (m?.header_regexp || m?.path || (hosts && !hosts.includes(host))) continue;
    const h = (r.handle as Json[])[0]!;
    if (h.handler !== 'subroute') return h.handler === 'reverse_proxy' ? n : null;
    const inner = evaluations(h.routes as Json[], host);
    if (inner !== null) return n + inner;
  }
  return null;
}

describe('proxy/render', () => {
  describe('golden files', () => {
    for (const name of goldenNames) {
      it(`${name}.input.json renders to ${name}.json; the pushed text is that config, canonical`, () => {
        const { json, ...rendered } = render(goldenInput(name));
        expect(json).to.equal(JSON.stringify(rendered.config));
        expect(json).to.equal(canonicalJson(rendered.config));
        const text = `${JSON.stringify(rendered, null, 2)}\n`;
        const file = new URL(`${name}.json`, GOLDEN);
        if (process.env.UPDATE_GOLDEN) writeFileSync(file, text);
        expect(text).to.equal(readFileSync(file, 'utf8'));
      });
    }
  });

  describe('determinism', () => {
    for (const name of goldenNames) {
      it(`${name}: shuffled routes, hosts and upstreams give the same bytes and hash; input not mutated`, () => {
        const input = goldenInput(name);
        const expected = render(input);
        const rnd = prng(42);
        for (let i = 0; i < 20; i++) {
          const shuffled = deepFreeze({
            settings: { ...input.settings },
            routes: shuffle(input.routes, rnd).map((r) => ({ ...r, hosts: shuffle(r.hosts, rnd), upstreams: shuffle(r.upstreams, rnd) })),
          });
          const before = JSON.stringify(shuffled);
          const got = render(shuffled); // frozen: any mutation throws in strict mode
          expect(JSON.stringify(got.config)).to.equal(JSON.stringify(expected.config));
          expect(got.hash).to.equal(expected.hash);
          expect(got.skipped).to.deep.equal(expected.skipped);
          expect(JSON.stringify(shuffled)).to.equal(before);
        }
      });
    }

    it('JSON.stringify of the config is canonical JSON (keys sorted at every depth)', () => {
      const { config } = render(goldenInput('features'));
      expect(JSON.stringify(config)).to.equal(canonicalJson(config));
      expect(canonicalJson({ b: 1, a: [{ d: 1, c: undefined }, null] })).to.equal('{"a":[{"d":1},null],"b":1}');
    });
  });

  describe('marker', () => {
    it('the config carries markerId(hash) at its top level; hash = sha256 of the canonical config without it', () => {
      const { config, hash, json } = render(goldenInput('features'));
      expect(config['@id']).to.equal(markerId(hash)).and.match(/^dnsproxy-cfg-[0-9a-f]{16}$/);
      expect(servers(config)[SERVER_HTTP]!['@id']).to.equal(undefined);
      expect(markerPath()).to.equal('/config/@id');
      expect(json).to.equal(JSON.stringify(config));
      const unmarked = JSON.parse(JSON.stringify(config)) as Json;
      delete unmarked['@id'];
      expect(hash).to.equal(createHash('sha256').update(canonicalJson(unmarked)).digest('hex'));
      expect(hashConfig(unmarked)).to.equal(hash);
    });

    it('any change to the routes changes the hash', () => {
      const a = render({ settings, routes: [route('api:a', ['a.example.test'])] });
      const b = render({ settings, routes: [route('api:a', ['a.example.test'], { upstreams: ['192.0.2.2:80'] })] });
      expect(a.hash).to.not.equal(b.hash);
    });
  });

  describe('config content', () => {
    it('an empty table still has admin (persist off), an HTTP server without HTTP metrics and a catch-all 404, no TLS app', () => {
      const { config } = render({ settings, routes: [] });
      expect(config.admin).to.deep.equal({ listen: '127.0.0.1:2019', config: { persist: false } });
      const http = servers(config)[SERVER_HTTP]!;
      expect(http.listen).to.deep.equal(['127.0.0.1:8080']);
      // Caddy's per-server HTTP metrics instrument every handler (CPU per request) and nothing reads them.
      expect(http).not.to.have.property('metrics');
      expect(http.automatic_https).to.deep.equal({ disable: true });
      expect(routesOf(config)).to.deep.equal([
        { '@id': `${SERVER_HTTP}-catch-all`, handle: [{ body: 'no route for this host', handler: 'static_response', status_code: 404 }], terminal: true },
      ]);
      expect(servers(config)[SERVER_HTTPS]).to.equal(undefined);
      expect((config.apps as Json).tls).to.equal(undefined);
    });

    it('both servers bind listen_ip, never every interface (IPv6 in brackets)', () => {
      const secure = [route('api:s', ['s.example.test'], { tls: 'internal' }), route('api:p', ['p.example.test'])];
      for (const [listenIp, http, https] of [
        ['127.0.0.1', '127.0.0.1:8080', '127.0.0.1:8443'],
        ['100.64.0.7', '100.64.0.7:8080', '100.64.0.7:8443'],
        ['::1', '[::1]:8080', '[::1]:8443'],
        ['fd7a:115c:a1e0::7', '[fd7a:115c:a1e0::7]:8080', '[fd7a:115c:a1e0::7]:8443'],
        ['0.0.0.0', '0.0.0.0:8080', '0.0.0.0:8443'],
      ]) {
        const { config } = render({ settings: { ...settings, listenIp: listenIp! }, routes: secure });
        expect(servers(config)[SERVER_HTTP]!.listen, listenIp).to.deep.equal([http]);
        expect(servers(config)[SERVER_HTTPS]!.listen, listenIp).to.deep.equal([https]);
      }
    });

    it("leaves out routes serving localhost or dialling Caddy's own ports, with a warning, even without settings.own", () => {
      const tcpAdmin = { ...settings, listenIp: '100.64.0.7' };
      const { config, skipped, warnings } = render({
        settings: tcpAdmin,
        routes: [
          route('api:admin', ['x.example.test'], { upstreams: ['127.0.0.1:2019'] }),
          route('api:self', ['y.example.test'], { upstreams: ['100.64.0.7:8443'] }),
          route('api:loop', ['z.example.test'], { upstreams: ['localhost:8080'] }),
          route('api:lh', ['localhost', 'w.example.test']),
          route('api:ok', ['ok.example.test'], { upstreams: ['127.0.0.1:3000'] }),
        ],
      });
      expect(skipped).to.deep.equal([
        { id: 'api:admin', reason: "upstream 127.0.0.1:2019 is this node's Caddy admin API (caddy_admin): a route must not reach dnsproxy's own listeners" },
        { id: 'api:lh', reason: 'host localhost always means this host (RFC 6761); a route must not serve it' },
        { id: 'api:loop', reason: "upstream localhost:8080 is this node's Caddy HTTP port (http_port): a route must not reach dnsproxy's own listeners" },
        { id: 'api:self', reason: "upstream 100.64.0.7:8443 is this node's Caddy HTTPS port (https_port): a route must not reach dnsproxy's own listeners" },
      ]);
      expect(warnings).to.have.length(4);
      expect(routesOf(config).map((r) => r['@id'])).to.deep.equal(['dnsproxy-route-api:ok', `${SERVER_HTTP}-catch-all`]);
      // A unix-socket admin has no port to protect: 2019 is just another loopback port then.
      const unix = render({ settings: { ...settings, admin: 'unix//run/caddy-admin.sock' }, routes: [route('api:admin', ['x.example.test'], { upstreams: ['127.0.0.1:2019'] })] });
      expect(unix.skipped).to.deep.equal([]);
    });

    it('every generated @id starts with the prefix and is unique', () => {
      for (const name of goldenNames) {
        const all = ids(render(goldenInput(name)).config);
        expect(all.every((id) => id.startsWith(ID_PREFIX)), name).to.equal(true);
        expect(new Set(all).size, name).to.equal(all.length);
      }
    });

    it('path routes of a host come before its catch-all, longest path first; /app never matches /apple', () => {
      const { config } = render({
        settings,
        routes: [route('api:1', ['x.example.test']), route('api:2', ['x.example.test'], { path: '/app' }), route('api:3', ['x.example.test'], { path: '/app/v2' })],
      });
      const paths = routesOf(config).map((r) => (r.match as Json[] | undefined)?.[0]?.path ?? null);
      expect(paths).to.deep.equal([['/app/v2', '/app/v2/*'], ['/app', '/app/*'], null, null]);
    });

    it('several upstreams: round robin, passive health checks; health_path: active check', () => {
      const { config } = render({ settings, routes: [route('api:1', ['x.example.test'], { upstreams: ['192.0.2.2:80', '192.0.2.1:80'], health_path: '/healthz' })] });
      const handler = (routesOf(config)[0]!.handle as Json[])[0]!;
      expect(handler).to.deep.include({
        upstreams: [{ dial: '192.0.2.1:80' }, { dial: '192.0.2.2:80' }],
        load_balancing: { selection_policy: { policy: 'round_robin' }, try_duration: '1s' },
        health_checks: { active: { interval: '10s', timeout: '5s', uri: '/healthz' }, passive: { fail_duration: '30s' } },
        transport: { keep_alive: { idle_timeout: '5s', max_idle_conns_per_host: 32, probe_interval: '30s' }, protocol: 'http' },
        headers: { request: { set: { 'X-Real-IP': ['{http.request.remote.host}'] } } },
      });
    });

    it('tls internal/acme hosts go to the HTTPS server with matching issuer policies; off hosts stay on HTTP', () => {
      const { config } = render(goldenInput('features'));
      const tls = (config.apps as Json).tls as { automation: { policies: Json[] } };
      expect(tls.automation.policies.map((p) => [p.subjects, p.issuers])).to.deep.equal([
        [['public.example.com'], [{ module: 'acme' }]],
        [['*.svc.home.arpa', 'vault.home.arpa'], [{ module: 'internal' }]],
      ]);
      const hostsOf = (server: string) =>
        routesOf(config, server)
          .filter((r) => r['@id'] !== `${SERVER_HTTP}-https-redirect`)
          .flatMap((r) => ((r.match as Json[] | undefined)?.[0]?.host as string[]) ?? []);
      expect(hostsOf(SERVER_HTTPS)).to.not.include('www.example.test');
      expect(hostsOf(SERVER_HTTP)).to.not.include('vault.home.arpa');
      expect(((config.apps as Json).pki)).to.deep.equal({ certificate_authorities: { local: { install_trust: false } } });
    });

    it('HTTPS port ≠ 443: the HTTP server redirects TLS hosts keeping the port; Caddy\'s redirect is off', () => {
      const { config } = render(goldenInput('features'));
      const redirect = routesOf(config, SERVER_HTTP).find((r) => r['@id'] === `${SERVER_HTTP}-https-redirect`);
      expect(redirect?.match).to.deep.equal([{ host: ['*.svc.home.arpa', 'public.example.com', 'vault.home.arpa'] }]);
      expect(JSON.stringify(redirect?.handle)).to.include('https://{http.request.host}:8443{http.request.uri}');
      const servers = ((config.apps as Json).http as Json).servers as Record<string, Json>;
      expect(servers[SERVER_HTTPS]?.automatic_https).to.deep.equal({ disable_redirects: true });
      // On 443 Caddy's own redirect is right: nothing extra is rendered.
      const input = goldenInput('features');
      const on443 = render({ ...input, settings: { ...input.settings, httpsPort: 443 } }).config;
      expect(JSON.stringify(on443)).to.not.include('https-redirect').and.not.include('disable_redirects');
    });

    it('conflicts: first route by id keeps the host+path or the tls mode; the other is skipped with a reason', () => {
      const r = render(goldenInput('features'));
      expect(r.skipped).to.deep.equal([
        { id: 'api:zz-dup', reason: 'example.test is already routed by api:web' },
        { id: 'api:zz-tls-clash', reason: 'vault.home.arpa is already served with tls internal by api:vault' },
      ]);
      expect(r.warnings).to.include('route api:zz-dup left out: example.test is already routed by api:web');
      expect(JSON.stringify(r.config)).to.not.include('api:zz-');
    });

    it('warns about wildcard hosts with tls acme, duplicate ids and equal ports', () => {
      const r = render({
        settings: { ...settings, httpsPort: 8080 },
        routes: [route('api:w', ['*.example.com'], { tls: 'acme' }), route('api:w', ['other.example.com'])],
      });
      expect(r.warnings.join('\n')).to.match(/\*\.example\.com with tls acme needs the DNS-01/).and.match(/both 8080/);
      expect(r.skipped).to.have.length(1);
      expect(r.skipped?.[0]?.reason).to.equal('duplicate route id');
    });
  });

  describe('large tables', () => {
    const many = (n: number, tls: DesiredRoute['tls'] = 'off') =>
      Array.from({ length: n }, (_, i) => route(`record:h${String(i).padStart(5, '0')}`, [`h${String(i).padStart(5, '0')}.example.test`], { tls }));

    it('5,000 hosts: at most GROUP_FANOUT top-level groups and ≤ 48 route evaluations to any host (flat: up to 5,001)', () => {
      const { config } = render({ settings, routes: many(5000) });
      const top = routesOf(config);
      expect(top.filter((r) => String(r['@id']).includes('-group-'))).to.have.length(GROUP_FANOUT);
      const worst = Math.max(...[0, 1, 2499, 4998, 4999].map((i) => evaluations(top, `h${String(i).padStart(5, '0')}.example.test`) ?? Infinity));
      expect(worst).to.be.at.most(48);
    });

    it('> 100 host names on a server: a first route lower-cases the Host header (large host lists compare case-sensitively)', () => {
      const small = routesOf(render({ settings, routes: many(CADDY_LARGE_HOST_LIST) }).config);
      expect(small[0]!['@id']).to.not.equal(`${SERVER_HTTP}-lowercase-host`);
      const large = routesOf(render({ settings, routes: many(CADDY_LARGE_HOST_LIST + 1) }).config);
      expect(large[0]).to.deep.include({ '@id': `${SERVER_HTTP}-lowercase-host`, match: [{ header_regexp: { Host: { pattern: '[A-Z]' } } }] });
      // Caddy's redirect route on the HTTP server lists every TLS host, so those count there too.
      const viaRedirects = routesOf(render({ settings, routes: many(CADDY_LARGE_HOST_LIST + 1, 'internal') }).config);
      expect(viaRedirects[0]!['@id']).to.equal(`${SERVER_HTTP}-lowercase-host`);
    });

    it('renders 5,000 routes in well under a second', () => {
      const routes = many(5000);
      const t0 = performance.now();
      render({ settings, routes });
      expect(performance.now() - t0).to.be.below(1500);
    });
  });
});
