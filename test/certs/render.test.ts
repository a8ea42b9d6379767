// render() with stored certificates (src/proxy/render.ts): they go into tls.certificates.load_pem
// (sorted, tagged with their id), and the names they cover leave the automation policies, so
// Caddy serves the stored certificate instead of getting its own (Caddy 2.6.2 also skips
// automatic management of names a loaded certificate covers: autohttps.go).
import { expect } from 'chai';
import { render } from '../../src/proxy/render.js';
import type { DesiredRoute, LoadedCertificate } from '../../src/proxy/types.js';

type Json = Record<string, unknown>;
const settings = { httpPort: 8080, httpsPort: 8443, listenIp: '127.0.0.1', admin: '127.0.0.1:2019' };
const route = (id: string, hosts: string[], tls: DesiredRoute['tls']): DesiredRoute => ({ id, hosts, path: null, upstreams: ['192.0.2.1:80'], tls, health_path: null });
const cert = (id: string, names: string[]): LoadedCertificate => ({ id, names, chain: `CHAIN ${id}\n`, key: `KEY ${id}\n` });
const tlsApp = (config: Json) => (config.apps as { tls?: { certificates?: { load_pem: Json[] }; automation?: { policies: { subjects?: string[]; issuers: { module: string }[] }[] } } }).tls;

describe('certs: render() loads stored certificates into Caddy', () => {
  const routes = [route('api:a', ['app.home.arpa', 'other.home.arpa'], 'internal'), route('api:b', ['x.lab.example'], 'acme'), route('api:c', ['plain.home.arpa'], 'off')];

  it('adds load_pem entries sorted by id with a tag each, and takes covered names out of the automation policies', () => {
    const { config } = render({ settings, routes, certificates: [cert('crt_2', ['*.lab.example']), cert('crt_1', ['app.home.arpa'])] });
    const tls = tlsApp(config)!;
    expect(tls.certificates!.load_pem).to.deep.equal([
      { certificate: 'CHAIN crt_1\n', key: 'KEY crt_1\n', tags: ['dnsproxy-crt_1'] },
      { certificate: 'CHAIN crt_2\n', key: 'KEY crt_2\n', tags: ['dnsproxy-crt_2'] },
    ]);
    // app.home.arpa (exact) and x.lab.example (wildcard) are covered; other.home.arpa keeps Caddy's internal issuer; no acme policy is left.
    expect(tls.automation!.policies).to.deep.equal([{ '@id': 'dnsproxy-tls-internal', subjects: ['other.home.arpa'], issuers: [{ module: 'internal' }] }]);
  });

  it('is the same config without certificates as before (no tls.certificates), and the order of certificates does not change the hash', () => {
    const none = render({ settings, routes });
    expect(tlsApp(none.config)!.certificates).to.equal(undefined);
    expect(render({ settings, routes, certificates: [] }).hash).to.equal(none.hash);
    const a = render({ settings, routes, certificates: [cert('crt_1', ['a.home.arpa']), cert('crt_2', ['b.home.arpa'])] });
    const b = render({ settings, routes, certificates: [cert('crt_2', ['b.home.arpa']), cert('crt_1', ['a.home.arpa'])] });
    expect(a.hash).to.equal(b.hash);
    expect(a.hash).not.to.equal(none.hash);
  });

  it('loads certificates even with no TLS route (the tls app carries them alone)', () => {
    const { config } = render({ settings, routes: [route('api:c', ['plain.home.arpa'], 'off')], certificates: [cert('crt_1', ['a.home.arpa'])] });
    expect(tlsApp(config)).to.deep.equal({ certificates: { load_pem: [{ certificate: 'CHAIN crt_1\n', key: 'KEY crt_1\n', tags: ['dnsproxy-crt_1'] }] } });
  });
});
