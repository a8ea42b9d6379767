// Static-response routes (src/proxy/static.ts): Caddy answers generated text itself. render()
// makes a static_response leaf for the route's host and path (the host's other paths 404), leaves
// out a route whose body does not validate (a Caddy placeholder, a control character), and the
// Caddyfile export lists it as left out; ProxyState adds a source's routes to every build.
import { expect } from 'chai';
import { caddyfileExport } from '../../src/proxy/caddyfile.js';
import { render, SERVER_HTTPS } from '../../src/proxy/render.js';
import type { DesiredRoute } from '../../src/proxy/types.js';

type Json = Record<string, unknown>;
const settings = { httpPort: 8080, httpsPort: 8443, listenIp: '127.0.0.1', admin: '127.0.0.1:2019' };
const POLICY = 'version: STSv1\r\nmode: testing\r\nmx: mx.example.net\r\nmax_age: 604800\r\n';
const staticRoute = (body = POLICY): DesiredRoute => ({
  id: 'mail:mta-sts:example.net',
  hosts: ['mta-sts.example.net'],
  path: '/.well-known/mta-sts.txt',
  upstreams: [],
  tls: 'internal',
  health_path: null,
  respond: { status: 200, content_type: 'text/plain; charset=utf-8', body },
});
const httpsRoutes = (config: Json) => ((config.apps as { http: { servers: Record<string, { routes: Json[] }> } }).http.servers[SERVER_HTTPS]?.routes ?? []);

describe('proxy: static-response routes', () => {
  it('renders a static_response leaf for the host and path; other paths of the host 404', () => {
    const out = render({ settings, routes: [staticRoute()] });
    expect(out.skipped).to.deep.equal([]);
    const routes = httpsRoutes(out.config);
    const leaf = routes.find((r) => r['@id'] === 'dnsproxy-route-mail:mta-sts:example.net')!;
    expect(leaf.match).to.deep.equal([{ host: ['mta-sts.example.net'], path: ['/.well-known/mta-sts.txt', '/.well-known/mta-sts.txt/*'] }]);
    expect(leaf.handle).to.deep.equal([{ body: POLICY, handler: 'static_response', headers: { 'Content-Type': ['text/plain; charset=utf-8'] }, status_code: 200 }]);
    expect(routes.find((r) => r['@id'] === 'dnsproxy-https-no-path')?.match).to.deep.equal([{ host: ['mta-sts.example.net'] }]);
    // The text is canonical (keys sorted), as the hash requires.
    expect(out.json).to.equal(JSON.stringify(out.config));
  });

  for (const [what, body] of [
    ['a Caddy placeholder', 'mode: {http.request.host}\r\n'],
    ['a control character', 'mode: testing\u0000\r\n'],
    ['too long a body', 'x'.repeat(4097)],
  ] as const)
    it(`leaves out a static route with ${what}, naming why`, () => {
      const out = render({ settings, routes: [staticRoute(body)] });
      expect(out.skipped?.map((s) => s.id)).to.deep.equal(['mail:mta-sts:example.net']);
      expect(out.skipped?.[0]?.reason).to.match(/^static response: body: /);
      expect(JSON.stringify(out.config)).not.to.include('static_response","headers');
    });

  it('a static route with upstreams is left out', () => {
    const out = render({ settings, routes: [{ ...staticRoute(), upstreams: ['192.0.2.1:80'] }] });
    expect(out.skipped?.[0]?.reason).to.equal('a static response route has no upstreams');
  });

  it('the Caddyfile export lists it as left out (the pushed JSON serves it)', () => {
    const text = caddyfileExport({ settings, routes: [staticRoute()] });
    expect(text).to.include('# mail:mta-sts:example.net: a static response (served by the pushed JSON config, not exported)');
    expect(text).not.to.include('reverse_proxy');
  });
});
