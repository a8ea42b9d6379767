// caddyfileExport(): golden Caddyfiles, `caddy adapt` without warnings, equivalence with what
// render() pushes (a normalised projection, and served behaviour on a real Caddy), and the
// template's refusal to print values that could inject Caddyfile syntax.
// Golden files: test/proxy/golden/<name>.input.json → <name>.Caddyfile; UPDATE_GOLDEN=1 rewrites them.
import { readFileSync, writeFileSync } from 'node:fs';
import { expect } from 'chai';
import { CaddyfileExportError, caddyfileExport } from '../../src/proxy/caddyfile.js';
import { render } from '../../src/proxy/render.js';
import type { DesiredProxy, DesiredRoute, ProxySettings } from '../../src/proxy/types.js';
import { caddyAdapt, hasCaddy, request, startBackend, startCaddy, type Backend, type Echo, type RunningCaddy } from '../helpers/caddy.js';
import { GOLDEN, goldenNames, goldenInput, route } from './fixture.js';


type Json = Record<string, unknown>;

/** Caddy durations: integer nanoseconds or Go duration text → nanoseconds. */
function ns(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)(ms|s|m|h)$/.exec(v);
  return m ? Number(m[1]) * { ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }[m[2] as 'ms' | 's' | 'm' | 'h'] : undefined;
}

/** What a reverse_proxy handler does, independent of key order, header-name case and duration notation. */
function proxySignature(h: Json): string {
  const hc = h.health_checks as { active?: Json; passive?: Json } | undefined;
  const lb = h.load_balancing as { selection_policy?: { policy?: string }; try_duration?: unknown } | undefined;
  const transport = h.transport as { protocol?: string; keep_alive?: { idle_timeout?: unknown; probe_interval?: unknown; max_idle_conns_per_host?: unknown } } | undefined;
  const set = ((h.headers as Json | undefined)?.request as { set?: Record<string, string[]> } | undefined)?.set ?? {};
  return JSON.stringify({
    dials: ((h.upstreams as { dial: string }[]) ?? []).map((u) => u.dial).sort(),
    policy: lb?.selection_policy?.policy ?? null,
    try: ns(lb?.try_duration) ?? null,
    fail: ns(hc?.passive?.fail_duration) ?? null,
    health: hc?.active ? [hc.active.uri, ns(hc.active.interval), ns(hc.active.timeout)] : null,
    transport: [transport?.protocol, ns(transport?.keep_alive?.idle_timeout), ns(transport?.keep_alive?.probe_interval), transport?.keep_alive?.max_idle_conns_per_host],
    headers: Object.entries(set).map(([k, v]) => `${k.toLowerCase()}=${v.join(',')}`).sort(),
  });
}

/**
 * A normalised projection of a Caddy config: per listen address, the set of
 * "host path → what answers" entries (reached through any nesting of subroutes), the catch-all,
 * metrics; the TLS issuer per subject; global ports and admin address.
 */
function project(config: Json): Json {
  const apps = config.apps as Json;
  const http = apps.http as { http_port: number; https_port: number; servers: Record<string, Json> };
  const servers: Json = {};
  for (const srv of Object.values(http.servers)) {
    const entries = new Set<string>();
    let catchAll: string | null = null;
    const walk = (routes: Json[], hosts: string[] | undefined, paths: string[] | undefined) => {
      for (const r of routes) {
        const m = (r.match as Json[] | undefined)?.[0] ?? {};
        const hs = (m.host as string[] | undefined) ?? hosts;
        const ps = (m.path as string[] | undefined) ?? paths;
        for (const h of r.handle as Json[]) {
          if (h.handler === 'subroute') walk(h.routes as Json[], hs, ps);
          const what =
            h.handler === 'reverse_proxy' ? proxySignature(h) : h.handler === 'static_response' ? `${String(h.status_code)} ${String(h.body)}` : null;
          if (what === null) continue;
          if (!hs) catchAll = what;
          else for (const host of hs) entries.add(`${host} ${ps?.join(',') ?? '*'} → ${what}`);
        }
      }
    };
    walk(srv.routes as Json[], undefined, undefined);
    servers[(srv.listen as string[]).join(',')] = { entries: [...entries].sort(), catchAll, metrics: srv.metrics ?? null };
  }
  const policies = (((apps.tls as Json | undefined)?.automation as Json | undefined)?.policies as Json[] | undefined) ?? [];
  const tls = policies
    .filter((p) => p.subjects)
    .flatMap((p) => (p.subjects as string[]).map((s) => `${s} ${(p.issuers as Json[]).map((i) => i.module).join(',')}`))
    .sort();
  return {
    admin: (config.admin as Json).listen,
    ports: [http.http_port, http.https_port],
    servers,
    tls,
    installTrust: (((apps.pki as Json | undefined)?.certificate_authorities as Json | undefined)?.local as Json | undefined)?.install_trust ?? null,
  };
}

describe('proxy/caddyfile', () => {
  describe('golden files', () => {
    for (const name of goldenNames) {
      it(`${name}.input.json exports to ${name}.Caddyfile`, () => {
        const text = caddyfileExport(goldenInput(name));
        const file = new URL(`${name}.Caddyfile`, GOLDEN);
        if (process.env.UPDATE_GOLDEN) writeFileSync(file, text);
        expect(text).to.equal(readFileSync(file, 'utf8'));
      });
    }
  });

  it('does not mutate its input and ignores input order', () => {
    const input = goldenInput('features');
    const expected = caddyfileExport(input);
    const frozen = Object.freeze({ settings: Object.freeze({ ...input.settings }), routes: Object.freeze([...input.routes].reverse().map((r) => Object.freeze({ ...r, hosts: Object.freeze([...r.hosts].reverse()) }))) });
    expect(caddyfileExport(frozen as unknown as DesiredProxy)).to.equal(expected);
  });

  describe('refuses values that could inject Caddyfile syntax', () => {
    const base = route('api:x', ['x.example.test'], ['192.0.2.1:80']);
    const cases: [string, Partial<DesiredRoute> | { settings: Partial<ProxySettings> }][] = [
      ['host with a space', { hosts: ['a.example.test b.example.test'] }],
      ['host with a brace', { hosts: ['x.example.test{'] }],
      ['host with an env placeholder', { hosts: ['{$HOST}'] }],
      ['host with a newline', { hosts: ['x.example.test\nimport /etc/passwd'] }],
      ['host with #', { hosts: ['x.example.test#'] }],
      ['upstream with a placeholder', { upstreams: ['{env.UPSTREAM}:80'] }],
      ['upstream with a quote', { upstreams: ['192.0.2.1:80"'] }],
      ['upstream with a closing brace', { upstreams: ['192.0.2.1:80}'] }],
      ['path with a space', { path: '/a b' }],
      ['path with a placeholder', { path: '/{http.request.uri}' }],
      ['path with a newline', { path: '/a\n}' }],
      ['health path with a brace', { health_path: '/h{' }],
      ['health path with a quote', { health_path: '/h"' }],
      ['route id with a newline', { id: 'api:x\nhttp://evil.test {' }],
      ['admin address with a space', { settings: { admin: '127.0.0.1:2019 {' } }],
      ['admin address that is not loopback', { settings: { admin: '0.0.0.0:2019' } }],
      ['listen address with a brace', { settings: { listenIp: '127.0.0.1 {' } }],
      ['listen address that is not an IP', { settings: { listenIp: 'localhost' } }],
    ];
    for (const [what, change] of cases) {
      it(what, () => {
        const settings: ProxySettings = { httpPort: 80, httpsPort: 443, listenIp: '127.0.0.1', admin: '127.0.0.1:2019' };
        const desired: DesiredProxy =
          'settings' in change ? { settings: { ...settings, ...change.settings }, routes: [base] } : { settings, routes: [{ ...base, ...change }] };
        expect(() => caddyfileExport(desired)).to.throw(CaddyfileExportError);
      });
    }
  });

  describe('with the real caddy', function () {
    this.timeout(60_000);
    before(function () {
      if (!hasCaddy()) this.skip();
    });

    for (const name of goldenNames) {
      it(`${name}: caddy adapt accepts the export without warnings; the result projects equal to render()`, async () => {
        const input = goldenInput(name);
        const { config, warnings } = await caddyAdapt(caddyfileExport(input));
        expect(warnings).to.deep.equal([]);
        expect(project(config)).to.deep.equal(project(render(input).config));
      });
    }

    it('the projection notices a changed upstream, path or tls mode (it is not vacuous)', async () => {
      const input = goldenInput('features');
      const expected = project(render(input).config);
      for (const [from, to] of [['192.0.2.20:3000', '192.0.2.20:3001'], ['path /app /app/*', 'path /ap /ap/*'], ['tls internal', 'tls {\n\t\tissuer acme\n\t}']]) {
        const { config } = await caddyAdapt(caddyfileExport(input).replace(from!, to!));
        expect(project(config), from).to.not.deep.equal(expected);
      }
    });

    describe('served behaviour: the adapted export answers like the rendered JSON', () => {
      let caddy: RunningCaddy;
      const backends: Backend[] = [];
      let desired: DesiredProxy;

      before(async function () {
        if (!hasCaddy()) this.skip();
        caddy = await startCaddy();
        for (const name of ['a', 'b', 'c']) backends.push(await startBackend(name));
        const [a, b, c] = backends.map((x) => x.dial) as [string, string, string];
        desired = {
          settings: { httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', admin: caddy.adminListen },
          routes: [
            route('api:a', ['a.example.test', 'alias.example.test'], [a]),
            route('api:a-app', ['a.example.test'], [b], { path: '/app' }),
            route('api:a-app-deep', ['a.example.test'], [c], { path: '/app/deep' }),
            route('api:docs', ['docs.example.test'], [c], { path: '/v1' }),
            route('api:lb', ['lb.example.test'], [b, c], { health_path: '/' }),
            route('api:secure', ['secure.example.test'], [a], { tls: 'internal' }),
            route('api:wild', ['*.wild.example.test'], [b], { tls: 'internal' }),
            route('api:plain-wild', ['*.lan.example.test'], [c], { path: '/x' }),
            route('api:zz-dup', ['a.example.test'], [c]),
          ],
        };
      });
      after(async () => {
        await caddy?.stop();
        await Promise.all(backends.map((x) => x.close()));
      });

      /** Every host × path over HTTP, TLS hosts over HTTPS too: status, who answered, redirect target. */
      async function observe(): Promise<string[]> {
        const hosts = ['a.example.test', 'alias.example.test', 'docs.example.test', 'lb.example.test', 'secure.example.test', 'q.wild.example.test', 'q.lan.example.test', 'none.example.test'];
        const paths = ['/', '/app', '/app/deep/1', '/apple', '/v1/x', '/x'];
        const out: string[] = [];
        // Round robin makes lb.example.test's backend depend on request count: only the set matters.
        const show = (host: string, body: string) => {
          if (!body.startsWith('{')) return body;
          const backend = (JSON.parse(body) as Echo).backend;
          return host.startsWith('lb.') && (backend === 'b' || backend === 'c') ? 'b|c' : backend;
        };
        for (const host of hosts)
          for (const path of paths) {
            const res = await request({ port: caddy.httpPort, host, path });
            out.push(`http ${host}${path} ${res.status} ${show(host, res.body)} ${res.headers.location ?? ''}`);
            if (host.startsWith('secure') || host.includes('wild')) {
              const tls = await request({ port: caddy.httpsPort, host, path, tls: { servername: host } });
              out.push(`https ${host}${path} ${tls.status} ${show(host, tls.body)}`);
            }
          }
        return out;
      }

      it('same status, backend and redirect for every host and path', async () => {
        await caddy.load(render(desired).config);
        const rendered = await observe();
        const { config } = await caddyAdapt(caddyfileExport(desired));
        await caddy.load(config);
        expect(await observe()).to.deep.equal(rendered);
        expect(rendered).to.include('http a.example.test/app/deep/1 200 c ');
        expect(rendered).to.include('http none.example.test/ 404 no route for this host ');
      });
    });
  });
});
