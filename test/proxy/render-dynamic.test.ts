// render()'s static dynamic routes and on-demand certificates, and splitRoutes() with them
// (src/proxy/README.md, "Dynamic routes", "Certificates on demand").
import { expect } from 'chai';
import { splitRoutes } from '../../src/proxy/desired.js';
import { render, SERVER_HTTP, SERVER_HTTPS } from '../../src/proxy/render.js';
import type { DesiredRoute, OnDemandSettings, ProxySettings } from '../../src/proxy/types.js';

type Json = Record<string, unknown>;
const onDemand = (issuer: OnDemandSettings['issuer']): OnDemandSettings => ({ issuer, ask: 'http://127.0.0.1:4000/ask', rateLimit: { interval: '1m', burst: 60 } });
const base = { httpPort: 8080, httpsPort: 8443, listenIp: '127.0.0.1', admin: '127.0.0.1:2019' };
const rec = (host: string, more: Partial<DesiredRoute> = {}): DesiredRoute => ({ id: `record:${host}`, hosts: [host], path: null, upstreams: ['192.0.2.1:80'], tls: 'off', health_path: null, ...more });
const servers = (c: Json) => (c.apps as { http: { servers: Record<string, Json> } }).http.servers;
const ids = (c: Json, server: string) => (servers(c)[server]!.routes as Json[]).map((r) => r['@id']);
const tlsApp = (c: Json) => (c.apps as { tls?: { automation: { policies: Json[]; on_demand?: Json } } }).tls;

describe('proxy: render of dynamic routes and on-demand certificates', () => {
  const resolver = 'udp/127.0.0.1:5300';

  it('an upgrade request asks its own SRV question, before the ordinary dynamic route, on HTTP', () => {
    const { config } = render({ settings: { ...base, dynamic: { resolver } }, routes: [] });
    expect(ids(config, SERVER_HTTP)).to.deep.equal([`${SERVER_HTTP}-dynamic-upgrade`, `${SERVER_HTTP}-dynamic`, `${SERVER_HTTP}-catch-all`]);
    const [upgrade, ordinary] = servers(config)[SERVER_HTTP]!.routes as { match?: Json[]; handle: Json[] }[];
    expect(upgrade!.match).to.deep.equal([{ header: { Upgrade: ['*'] } }]);
    expect((upgrade!.handle[1] as { dynamic_upstreams: Json }).dynamic_upstreams).to.include({ name: '_ws._px._tcp.{http.request.host}', source: 'srv' });
    expect((ordinary!.handle[1] as { dynamic_upstreams: Json }).dynamic_upstreams).to.include({ name: '{http.request.host}', service: 'px', proto: 'tcp' });
    // Without on-demand certificates there is no HTTPS server or TLS app until a TLS route exists.
    expect(servers(config)[SERVER_HTTPS]).to.equal(undefined);
    expect(tlsApp(config)).to.equal(undefined);
  });

  it('with on-demand certificates: a static HTTPS server, the catch-all on-demand policy last, ask and rate limit, our own redirects', () => {
    const settings: ProxySettings = { ...base, httpsPort: 443, dynamic: { resolver, onDemand: onDemand('internal') } };
    const empty = render({ settings, routes: [] });
    const https = servers(empty.config)[SERVER_HTTPS]!;
    expect(https.automatic_https).to.deep.equal({ disable_redirects: true });
    expect(ids(empty.config, SERVER_HTTPS)).to.deep.equal([`${SERVER_HTTPS}-dynamic-upgrade`, `${SERVER_HTTPS}-dynamic`, `${SERVER_HTTPS}-catch-all`]);
    const names = (https.routes as { handle: Json[] }[]).slice(0, 2).map((r) => (r.handle[1] as { dynamic_upstreams: { name: string } }).dynamic_upstreams.name);
    expect(names).to.deep.equal(['_tlsws._px._tcp.{http.request.host}', '_tls._px._tcp.{http.request.host}']);
    expect(tlsApp(empty.config)).to.deep.equal({
      automation: { on_demand: { ask: 'http://127.0.0.1:4000/ask', rate_limit: { burst: 60, interval: '1m' } }, policies: [{ '@id': 'dnsproxy-tls-on-demand', issuers: [{ module: 'internal' }], on_demand: true }] },
    });
    expect((empty.config.apps as Json).pki).to.deep.equal({ certificate_authorities: { local: { install_trust: false } } });
    // An explicit TLS route: its subject policy comes first, and the HTTP redirect is ours (Caddy's would redirect every host).
    const withTls = render({ settings, routes: [rec('x.home.arpa', { id: 'api:1', tls: 'acme' })] });
    expect(tlsApp(withTls.config)!.automation.policies.map((p) => p['@id'])).to.deep.equal(['dnsproxy-tls-acme', 'dnsproxy-tls-on-demand']);
    const redirect = (servers(withTls.config)[SERVER_HTTP]!.routes as Json[]).find((r) => r['@id'] === `${SERVER_HTTP}-https-redirect`) as { match: Json[]; handle: { headers: Json }[] };
    expect(redirect.match).to.deep.equal([{ host: ['x.home.arpa'] }]);
    expect(redirect.handle[0]!.headers).to.deep.equal({ Location: ['https://{http.request.host}{http.request.uri}'] });
    // The config does not change with the names served: the same with no plain names as with any (they are not in it).
    expect(render({ settings: { ...settings, dynamic: { resolver, onDemand: onDemand('acme') } }, routes: [] }).config.apps).to.have.nested.property('tls.automation.policies[0].issuers[0].module', 'acme');
  });

  it('splitRoutes: a plain name with the on-demand tls mode is dynamic; the other TLS mode stays explicit', () => {
    const routes = [rec('a.home.arpa'), rec('b.home.arpa', { tls: 'internal' }), rec('c.example.com', { tls: 'acme' })];
    const by = (mode: 'internal' | 'acme' | null) => {
      const s = splitRoutes(routes, true, () => null, mode);
      return { dynamic: s.dynamic.map((r) => r.hosts[0]), explicit: s.explicit.map((r) => r.hosts[0]) };
    };
    expect(by('internal')).to.deep.equal({ dynamic: ['a.home.arpa', 'b.home.arpa'], explicit: ['c.example.com'] });
    expect(by('acme')).to.deep.equal({ dynamic: ['a.home.arpa', 'c.example.com'], explicit: ['b.home.arpa'] });
    expect(by(null)).to.deep.equal({ dynamic: ['a.home.arpa'], explicit: ['b.home.arpa', 'c.example.com'] });
  });
});
