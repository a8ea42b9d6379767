// src/proxy/acme.ts and the acme_* settings: which CA Caddy's ACME issuer asks, which roots it
// trusts, the account's email and the challenges offered, for explicit and on-demand acme names.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { acmeSettings } from '../../src/controller.js';
import { acmeIssuer, issuerFor, trustedRootProblem } from '../../src/proxy/acme.js';
import { caddyfileExport } from '../../src/proxy/caddyfile.js';
import { render } from '../../src/proxy/render.js';
import type { DesiredProxy } from '../../src/proxy/types.js';
import { caddyAdapt, hasCaddy } from '../helpers/caddy.js';
import { cli } from '../helpers/controller.js';
import { hasPebble } from '../helpers/pebble.js';
import { tempDir } from '../helpers/tmp.js';
import { route } from './fixture.js';

const noIfaces = { lo: [{ address: '127.0.0.1', family: 'IPv4' as const, internal: true, netmask: '255.0.0.0', mac: '', cidr: null }] };
const CA = 'https://ca.internal.example.net:9000/acme/acme/directory';

describe('proxy/acme: the ACME issuer', () => {
  it('renders {"module":"acme"} alone without settings, and every setting given', () => {
    expect(acmeIssuer(undefined)).to.deep.equal({ module: 'acme' });
    expect(acmeIssuer({ challenges: ['http-01', 'tls-alpn-01'] })).to.deep.equal({ module: 'acme' });
    expect(acmeIssuer({ ca: CA, trustedRoots: ['/etc/dnsproxy/ca.pem'], email: 'ops@example.org', challenges: ['http-01'] })).to.deep.equal({
      module: 'acme',
      ca: CA,
      email: 'ops@example.org',
      trusted_roots_pem_files: ['/etc/dnsproxy/ca.pem'],
      challenges: { 'tls-alpn': { disabled: true } },
    });
    expect(acmeIssuer({ challenges: ['tls-alpn-01'] })).to.deep.equal({ module: 'acme', challenges: { http: { disabled: true } } });
    expect(acmeIssuer({ trustedRoots: [] })).to.deep.equal({ module: 'acme' });
    expect(issuerFor('internal', { ca: CA })).to.deep.equal({ module: 'internal' });
  });

  it('render: explicit acme names and the on-demand catch-all use the configured issuer; internal names keep the local CA', () => {
    const settings = { admin: '127.0.0.1:2019', httpPort: 8080, httpsPort: 8443, listenIp: '127.0.0.1' };
    const acme = { ca: CA, trustedRoots: ['/etc/dnsproxy/ca.pem'], email: 'ops@example.org', challenges: ['http-01'] as const };
    const desired: DesiredProxy = {
      settings: { ...settings, acme, dynamic: { resolver: 'udp/127.0.0.1:5300', onDemand: { issuer: 'acme', ask: 'http://127.0.0.1:9999/ask', rateLimit: { interval: '1m', burst: 60 } } } },
      routes: [route('api:a', ['shop.example.net'], ['127.0.0.1:3000'], { tls: 'acme' }), route('api:i', ['wiki.home.arpa'], ['127.0.0.1:3001'], { tls: 'internal' })],
    };
    const policies = (render(desired).config as { apps: { tls: { automation: { policies: { '@id': string; subjects?: string[]; issuers: unknown[] }[] } } } }).apps.tls.automation.policies;
    const issuer = { module: 'acme', ca: CA, email: 'ops@example.org', trusted_roots_pem_files: ['/etc/dnsproxy/ca.pem'], challenges: { 'tls-alpn': { disabled: true } } };
    expect(policies.map((p) => [p['@id'], p.subjects ?? null, p.issuers])).to.deep.equal([
      ['dnsproxy-tls-acme', ['shop.example.net'], [issuer]],
      ['dnsproxy-tls-internal', ['wiki.home.arpa'], [{ module: 'internal' }]],
      ['dnsproxy-tls-on-demand', null, [issuer]],
    ]);
    // Without acme settings the config is what it was before they existed (same hash as no `acme` key).
    const plain: DesiredProxy = { settings, routes: [route('api:a', ['shop.example.net'], ['127.0.0.1:3000'], { tls: 'acme' })] };
    expect(render({ ...plain, settings: { ...settings, acme: acmeSettings({ acme_challenges: ['http-01', 'tls-alpn-01'] }) } }).hash).to.equal(render(plain).hash);
  });

  it('acmeSettings maps the acme_* settings', () => {
    expect(acmeSettings({ acme_challenges: ['http-01', 'tls-alpn-01'] })).to.deep.equal({ challenges: ['http-01', 'tls-alpn-01'] });
    expect(acmeSettings({ acme_ca: CA, acme_ca_root: '/r.pem', acme_email: 'a@example.org', acme_challenges: ['http-01'] })).to.deep.equal({
      ca: CA,
      trustedRoots: ['/r.pem'],
      email: 'a@example.org',
      challenges: ['http-01'],
    });
  });
});

describe('config: acme_* settings', () => {
  it('defaults: no CA (Caddy\'s default), no root, no email, both challenges; env DNSPROXY_ACME_* and lists', () => {
    expect(loadConfig({ env: {}, interfaces: noIfaces })).to.deep.include({ acme_challenges: ['http-01', 'tls-alpn-01'] });
    const c = loadConfig({ env: { DNSPROXY_ACME_CA: CA, DNSPROXY_ACME_CA_ROOT: '/etc/dnsproxy/ca.pem', DNSPROXY_ACME_EMAIL: 'ops@example.org', DNSPROXY_ACME_CHALLENGES: 'http-01' }, interfaces: noIfaces });
    expect(c).to.deep.include({ acme_ca: CA, acme_ca_root: '/etc/dnsproxy/ca.pem', acme_email: 'ops@example.org', acme_challenges: ['http-01'] });
    expect(loadConfig({ env: { DNSPROXY_ACME_CA: CA }, flags: { acme_ca: 'https://other.example.net/dir' }, interfaces: noIfaces }).acme_ca).to.equal('https://other.example.net/dir');
  });

  it('refuses bad values naming the field and where it came from', () => {
    const lines = (env: Record<string, string>) => {
      try {
        loadConfig({ env, interfaces: noIfaces });
      } catch (e) {
        if (e instanceof ConfigError) return e.lines.join('\n');
        throw e;
      }
      return 'accepted';
    };
    expect(lines({ DNSPROXY_ACME_CA: 'http://ca.example.net/dir' })).to.match(/^config: acme_ca: must be an https:\/\/ URL .*\(from env DNSPROXY_ACME_CA\)$/);
    expect(lines({ DNSPROXY_ACME_CA: 'not a url' })).to.match(/config: acme_ca: must be a URL/);
    expect(lines({ DNSPROXY_ACME_CA: 'https://ca.example.net/{env.X}' })).to.match(/config: acme_ca: must not contain whitespace or braces/);
    expect(lines({ DNSPROXY_ACME_CA_ROOT: 'ca.pem' })).to.match(/^config: acme_ca_root: must be an absolute path \(from env DNSPROXY_ACME_CA_ROOT\)$/);
    expect(lines({ DNSPROXY_ACME_EMAIL: 'ops' })).to.match(/^config: acme_email: must be an email address/);
    expect(lines({ DNSPROXY_ACME_CHALLENGES: 'dns-01' })).to.match(/^config: acme_challenges\.0: /);
  });
});

describe('proxy/acme: trustedRootProblem', function () {
  this.timeout(30_000);
  const tmp = tempDir();
  after(() => tmp.cleanup());

  it('names a missing file, a file without a certificate and one that does not parse', () => {
    expect(trustedRootProblem(join(tmp.dir, 'missing.pem'))).to.equal(`cannot read ${join(tmp.dir, 'missing.pem')}: ENOENT`);
    const text = join(tmp.dir, 'text.pem');
    writeFileSync(text, 'hello\n');
    expect(trustedRootProblem(text)).to.equal(`${text} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    const bad = join(tmp.dir, 'bad.pem');
    writeFileSync(bad, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    expect(trustedRootProblem(bad)).to.match(/^.*bad\.pem: certificate 1 does not parse/);
  });

  it('accepts a real certificate (openssl)', function () {
    if (!hasPebble()) return this.skip();
    const good = join(tmp.dir, 'good.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(tmp.dir, 'k.pem'), '-out', good, '-days', '1', '-subj', '/CN=t'], { stdio: 'ignore' });
    expect(trustedRootProblem(good)).to.equal(null);
  });

  it('serve refuses an unusable acme_ca_root at start with exit 2 and one line', async () => {
    const r = await cli(['serve', '--data-dir', join(tmp.dir, 'data'), '--acme-ca-root', join(tmp.dir, 'missing.pem')], { DNSPROXY_CADDY_ADMIN: '127.0.0.1:1' });
    expect(r.code).to.equal(2);
    expect(r.stderr.trim()).to.equal(`dnsproxy: config: acme_ca_root: cannot read ${join(tmp.dir, 'missing.pem')}: ENOENT`);
  });
});

describe('proxy/acme: the Caddyfile export carries the ACME issuer settings', function () {
  this.timeout(30_000);
  const settings = { admin: '127.0.0.1:2019', httpPort: 8080, httpsPort: 8443, listenIp: '127.0.0.1' };
  const routes = [route('api:a', ['shop.example.net'], ['127.0.0.1:3000'], { tls: 'acme' })];

  it('writes dir, trusted_roots, email and the disabled challenge into `issuer acme`; none of it without settings', () => {
    const text = caddyfileExport({ settings: { ...settings, acme: { ca: CA, trustedRoots: ['/etc/dnsproxy/ca.pem'], email: 'ops@example.org', challenges: ['http-01'] } }, routes });
    expect(text).to.contain(`\t\tissuer acme {\n\t\t\tdir ${CA}\n\t\t\ttrusted_roots /etc/dnsproxy/ca.pem\n\t\t\temail ops@example.org\n\t\t\tdisable_tlsalpn_challenge\n\t\t}\n`);
    expect(caddyfileExport({ settings: { ...settings, acme: { challenges: ['tls-alpn-01'] } }, routes })).to.contain('issuer acme {\n\t\t\tdisable_http_challenge\n\t\t}');
    expect(caddyfileExport({ settings: { ...settings, acme: { challenges: ['http-01', 'tls-alpn-01'] } }, routes })).to.equal(caddyfileExport({ settings, routes }));
    expect(() => caddyfileExport({ settings: { ...settings, acme: { ca: 'https://ca.example.net/{env.X}' } }, routes })).to.throw(/cannot export ACME directory URL/);
  });

  it('caddy adapt turns it into the issuer render() pushes', async function () {
    if (!hasCaddy()) return this.skip();
    const acme = { ca: CA, trustedRoots: ['/etc/dnsproxy/ca.pem'], email: 'ops@example.org', challenges: ['http-01'] as const };
    const { config, warnings } = await caddyAdapt(caddyfileExport({ settings: { ...settings, acme }, routes }));
    expect(warnings).to.deep.equal([]);
    const issuers = (c: Record<string, unknown>) => (c as { apps: { tls: { automation: { policies: { subjects?: string[]; issuers: unknown[] }[] } } } }).apps.tls.automation.policies.find((p) => p.subjects?.includes('shop.example.net'))?.issuers;
    expect(issuers(config)).to.deep.equal(issuers(render({ settings: { ...settings, acme }, routes }).config));
  });
});
