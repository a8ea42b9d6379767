import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminDefaultProblem, ConfigError, defaultRecursionAllow, detectNodeIp, loadConfig, RECURSION_ALWAYS } from '../../src/config/load.js';
import { tempDir } from '../helpers/tmp.js';

describe('config', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());
  const noIfaces = { lo: [{ address: '127.0.0.1', family: 'IPv4' as const, internal: true, netmask: '255.0.0.0', mac: '', cidr: null }] };

  it('has defaults', () => {
    const c = loadConfig({ env: {}, interfaces: noIfaces });
    expect(c).to.deep.include({ zones: ['home.arpa.'], dns_port: 53, api_port: 8080, listen_ip: '127.0.0.1', upstreams: [], node_ip: '127.0.0.1' });
  });

  it('layers: defaults < file (YAML or JSON) < env < flags', () => {
    const yaml = join(tmp.dir, 'c.yaml');
    writeFileSync(yaml, 'zones: [lab.example]\ndns_port: 5300\napi_port: 9000\nupstreams: ["192.0.2.53"]\n');
    const fromFile = loadConfig({ file: yaml, env: {}, interfaces: noIfaces });
    expect(fromFile).to.deep.include({ zones: ['lab.example.'], dns_port: 5300, api_port: 9000, upstreams: ['192.0.2.53'] });
    const env = { DNSPROXY_DNS_PORT: '5400', DNSPROXY_ZONE: 'a.example,b.example' };
    expect(loadConfig({ file: yaml, env, interfaces: noIfaces })).to.deep.include({ dns_port: 5400, api_port: 9000, zones: ['a.example.', 'b.example.'] });
    expect(loadConfig({ file: yaml, env, flags: { dns_port: '5500' }, interfaces: noIfaces }).dns_port).to.equal(5500);
    const json = join(tmp.dir, 'c.json');
    writeFileSync(json, JSON.stringify({ data_dir: '/srv/dnsproxy' }));
    expect(loadConfig({ file: json, env: {}, interfaces: noIfaces }).data_dir).to.equal('/srv/dnsproxy');
  });

  it('smtps_port: none unless set; empty (env, a bare YAML key) is none, not port 0; a bad one names the field', () => {
    const load = (env: Record<string, string>, yaml?: string) => {
      const file = yaml === undefined ? undefined : join(tmp.dir, 'smtps.yaml');
      if (file) writeFileSync(file, yaml!);
      return loadConfig({ file, env, interfaces: noIfaces }).smtps_port;
    };
    expect(load({})).to.equal(undefined);
    expect(load({ DNSPROXY_SMTPS_PORT: '' })).to.equal(undefined);
    expect(load({}, 'smtps_port:\n')).to.equal(undefined);
    expect(load({}, 'smtps_port: ""\n')).to.equal(undefined);
    expect(load({ DNSPROXY_SMTPS_PORT: '465' })).to.equal(465);
    expect(load({}, 'smtps_port: 2465\n')).to.equal(2465);
    expect(() => load({ DNSPROXY_SMTPS_PORT: 'abc' })).to.throw(ConfigError, /smtps_port/);
  });

  it('tls_on_demand (internal by default, acme or off) and tls_ask_port (0 by default); a bad one names the field', () => {
    const load = (env: Record<string, string>) => loadConfig({ env, interfaces: noIfaces });
    expect(load({})).to.deep.include({ tls_on_demand: 'internal', tls_ask_port: 0 });
    expect(load({ DNSPROXY_TLS_ON_DEMAND: 'acme', DNSPROXY_TLS_ASK_PORT: '5380' })).to.deep.include({ tls_on_demand: 'acme', tls_ask_port: 5380 });
    expect(load({ DNSPROXY_TLS_ON_DEMAND: 'off' }).tls_on_demand).to.equal('off');
    expect(() => load({ DNSPROXY_TLS_ON_DEMAND: 'always' })).to.throw(ConfigError, /tls_on_demand/);
    expect(() => load({ DNSPROXY_TLS_ASK_PORT: '70000' })).to.throw(ConfigError, /tls_ask_port/);
  });

  it('stats: off by default; on|off, 1|0, true|false from env, flags or file; anything else names the field', () => {
    expect(loadConfig({ env: {}, interfaces: noIfaces }).stats).to.equal(false);
    for (const [v, want] of [['on', true], ['1', true], ['true', true], ['off', false], ['0', false], ['false', false]] as const) {
      expect(loadConfig({ env: { DNSPROXY_STATS: v }, interfaces: noIfaces }).stats, v).to.equal(want);
    }
    expect(loadConfig({ env: { DNSPROXY_STATS: 'off' }, flags: { stats: 'on' }, interfaces: noIfaces }).stats).to.equal(true);
    expect(() => loadConfig({ env: { DNSPROXY_STATS: 'yes' }, interfaces: noIfaces })).to.throw(ConfigError, /stats/);
  });

  it('reports one line per bad field, with its source', () => {
    const file = join(tmp.dir, 'bad.yaml');
    writeFileSync(file, 'dns_port: 70000\nzones: ["a b"]\ncolour: blue\n');
    try {
      loadConfig({ file, env: { DNSPROXY_LISTEN_IP: 'not-an-ip' }, interfaces: noIfaces });
      expect.fail('should throw');
    } catch (e) {
      expect(e).to.be.instanceOf(ConfigError);
      const lines = (e as ConfigError).lines;
      expect(lines).to.have.length(4);
      expect(lines.find((l) => l.startsWith('config: dns_port:'))).to.include('0-65535').and.include(file);
      expect(lines.find((l) => l.startsWith('config: zones.0:'))).to.include('whitespace');
      expect(lines.find((l) => l.startsWith('config: listen_ip:'))).to.include('env DNSPROXY_LISTEN_IP');
      expect(lines.some((l) => l.includes('colour'))).to.equal(true);
    }
  });

  it('caddy_admin: a unix socket under the data dir by default; loopback TCP only when set so; anything else refused', () => {
    const admin = (env: Record<string, string>) => loadConfig({ env, interfaces: noIfaces }).caddy_admin;
    expect(admin({ DNSPROXY_DATA_DIR: '/srv/dnsproxy' })).to.equal('unix//srv/dnsproxy/run/caddy-admin.sock');
    // A relative data dir is made absolute: Caddy and the controller may run in other directories.
    expect(admin({ DNSPROXY_DATA_DIR: 'data' })).to.equal(`unix/${join(process.cwd(), 'data', 'run', 'caddy-admin.sock')}`);
    for (const ok of ['127.0.0.1:2019', '[::1]:2019', 'localhost:2019', 'unix//run/dnsproxy/caddy-admin.sock']) expect(admin({ DNSPROXY_CADDY_ADMIN: ok })).to.equal(ok);
    for (const bad of ['0.0.0.0:2019', '192.0.2.10:2019', '[::]:2019', 'admin.example:2019', ':2019', 'unix/relative.sock', 'unix//run/x|0600']) {
      expect(() => admin({ DNSPROXY_CADDY_ADMIN: bad }), bad).to.throw(ConfigError, /^config: caddy_admin: .*\(from env DNSPROXY_CADDY_ADMIN\)$/);
    }
    expect(() => admin({ DNSPROXY_CADDY_ADMIN: '0.0.0.0:2019' })).to.throw(ConfigError, /on the network/);
    // A data dir too deep for a socket path (107 bytes): `serve` says so (exit 2) instead of failing
    // in Caddy; the config still loads, the mail relay reads it too.
    const deep = loadConfig({ env: { DNSPROXY_DATA_DIR: `/${'d'.repeat(100)}` }, interfaces: noIfaces });
    expect(deep.caddy_admin).to.equal(`unix//${'d'.repeat(100)}/run/caddy-admin.sock`);
    expect(adminDefaultProblem(deep)).to.match(/^config: caddy_admin: default unix\/.*longer than 107 bytes.*; set caddy_admin \(--caddy-admin, DNSPROXY_CADDY_ADMIN\)/);
    expect(adminDefaultProblem(loadConfig({ env: {}, interfaces: noIfaces }))).to.equal(null);
  });

  describe('recursion_allow', () => {
    const v4 = (address: string, cidr: string, internal = false) => ({ address, family: 'IPv4' as const, internal, netmask: '', mac: '', cidr });
    const v6 = (address: string, cidr: string) => ({ address, family: 'IPv6' as const, internal: false, netmask: '', mac: '', cidr, scopeid: 0 });
    const ifaces = {
      lo: [v4('127.0.0.1', '127.0.0.1/8', true)],
      eth0: [v4('192.0.2.4', '192.0.2.4/24'), v6('2001:db8:1::4', '2001:db8:1::4/64'), v6('fe80::1', 'fe80::1/64')],
      tailscale0: [v4('100.101.102.103', '100.101.102.103/32')],
    };

    it('defaults to loopback, the tailnet and the network of listen_ip', () => {
      expect(RECURSION_ALWAYS).to.deep.equal(['127.0.0.0/8', '::1/128', '100.64.0.0/10', 'fd7a:115c:a1e0::/48']);
      expect(defaultRecursionAllow('127.0.0.1', ifaces)).to.deep.equal([...RECURSION_ALWAYS, '127.0.0.1/8']);
      expect(defaultRecursionAllow('192.0.2.4', ifaces)).to.deep.equal([...RECURSION_ALWAYS, '192.0.2.4/24']);
      expect(defaultRecursionAllow('2001:db8:1::4', ifaces)).to.deep.equal([...RECURSION_ALWAYS, '2001:db8:1::4/64']);
      // An address no interface holds (yet): that address alone.
      expect(defaultRecursionAllow('198.51.100.7', ifaces)).to.deep.equal([...RECURSION_ALWAYS, '198.51.100.7/32']);
      // Every address: every interface's network but link-local ones.
      expect(defaultRecursionAllow('0.0.0.0', ifaces)).to.deep.equal([...RECURSION_ALWAYS, '192.0.2.4/24', '2001:db8:1::4/64', '100.101.102.103/32']);
      expect(loadConfig({ env: { DNSPROXY_LISTEN_IP: '192.0.2.4' }, interfaces: ifaces }).recursion_allow).to.deep.equal([...RECURSION_ALWAYS, '192.0.2.4/24']);
    });

    it('takes a list from env or file in place of the default, and names a bad entry', () => {
      expect(loadConfig({ env: { DNSPROXY_RECURSION_ALLOW: '10.0.0.0/8, 192.0.2.9,2001:db8::/32' }, interfaces: ifaces }).recursion_allow).to.deep.equal(['10.0.0.0/8', '192.0.2.9', '2001:db8::/32']);
      const file = join(tmp.dir, 'recursion.yaml');
      writeFileSync(file, 'recursion_allow: []\n');
      expect(loadConfig({ file, env: {}, interfaces: ifaces }).recursion_allow).to.deep.equal([]);
      for (const bad of ['10.0.0.0/33', 'example.com', '::/129', 'fe80::1%eth0'])
        expect(() => loadConfig({ env: { DNSPROXY_RECURSION_ALLOW: bad }, interfaces: ifaces }), bad).to.throw(ConfigError, /recursion_allow\.0: .*\(from env DNSPROXY_RECURSION_ALLOW\)/);
    });
  });

  it('prefers a Tailscale address for node_ip', () => {
    const iface = (address: string) => ({ address, family: 'IPv4' as const, internal: false, netmask: '255.255.255.0', mac: '', cidr: null });
    expect(detectNodeIp({ eth0: [iface('192.0.2.4')], tailscale0: [iface('100.101.102.103')] })).to.equal('100.101.102.103');
    expect(detectNodeIp({ eth0: [iface('192.0.2.4')] })).to.equal('192.0.2.4');
  });
});
