// Tailnet settings: listen_ip `tailnet`, tailnet_only (auto/on/off) and tailnet_ranges, and the
// 403 route render() puts first on every Caddy server when they apply.
import { expect } from 'chai';
import type { networkInterfaces } from 'node:os';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { tailnetOnly } from '../../src/config/schema.js';
import { defaultApiUrl } from '../../src/cli/api-url.js';
import { render, OUTSIDE_BODY } from '../../src/proxy/render.js';
import type { DesiredProxy } from '../../src/proxy/types.js';

type Ifaces = ReturnType<typeof networkInterfaces>;
const iface = (address: string, cidr: string) => ({ address, netmask: '255.192.0.0', family: 'IPv4' as const, mac: '00:00:00:00:00:00', internal: false, cidr });
const TAILNET: Ifaces = { eth0: [iface('192.168.1.20', '192.168.1.20/24')], tailscale0: [iface('100.101.102.103', '100.101.102.103/32')] };
const LAN: Ifaces = { eth0: [iface('192.168.1.20', '192.168.1.20/24')] };

describe('tailnet: settings', () => {
  it('tailnet_only is on by default when this node has a Tailscale address, off otherwise; on/off override', () => {
    const on = loadConfig({ env: {}, interfaces: TAILNET });
    expect(on).to.include({ tailnet_only: 'auto', tailnet_ip: '100.101.102.103' });
    expect(tailnetOnly(on)).to.equal(true);
    expect(on.tailnet_ranges).to.deep.equal(['100.64.0.0/10', 'fd7a:115c:a1e0::/48', '127.0.0.0/8', '::1/128']);
    expect(tailnetOnly(loadConfig({ env: {}, interfaces: LAN }))).to.equal(false);
    expect(tailnetOnly(loadConfig({ env: { DNSPROXY_TAILNET_ONLY: 'off' }, interfaces: TAILNET }))).to.equal(false);
    expect(tailnetOnly(loadConfig({ env: { DNSPROXY_TAILNET_ONLY: 'on' }, interfaces: LAN }))).to.equal(true);
    expect(tailnetOnly(loadConfig({ env: {}, flags: { tailnet_only: '1' }, interfaces: LAN }))).to.equal(true);
  });

  it('listen_ip tailnet binds the Tailscale address; without one the start is refused naming the setting', () => {
    const c = loadConfig({ env: { DNSPROXY_LISTEN_IP: 'tailnet' }, interfaces: TAILNET });
    expect(c.listen_ip).to.equal('100.101.102.103');
    expect(c.recursion_allow).to.include('100.101.102.103/32');
    expect(() => loadConfig({ env: { DNSPROXY_LISTEN_IP: 'tailnet' }, interfaces: LAN })).to.throw(ConfigError, /listen_ip: tailnet, but this node has no Tailscale address.*env DNSPROXY_LISTEN_IP/);
    expect(defaultApiUrl({ DNSPROXY_LISTEN_IP: 'tailnet' }, () => TAILNET)).to.equal('http://100.101.102.103:8080');
  });

  it('bad values are refused with the field and where they came from', () => {
    const lines = (env: Record<string, string>) => {
      try {
        loadConfig({ env, interfaces: LAN });
        return [];
      } catch (e) {
        return (e as ConfigError).lines;
      }
    };
    expect(lines({ DNSPROXY_TAILNET_RANGES: '100.64.0.0/10,nope' })[0]).to.match(/^config: tailnet_ranges\.1: .*\(from env DNSPROXY_TAILNET_RANGES\)$/);
    expect(lines({ DNSPROXY_TAILNET_ONLY: 'maybe' })[0]).to.match(/^config: tailnet_only: /);
    expect(lines({ DNSPROXY_DEVICE_POLL_MS: '0' })[0]).to.match(/^config: device_poll_ms: must be > 0/);
    expect(lines({ DNSPROXY_TAILSCALE_CLI: 'tailscale; rm -rf /' })[0]).to.match(/^config: tailscale_cli: must be a program name or path/);
    expect(lines({ DNSPROXY_LISTEN_IP: 'tailnetx' })[0]).to.match(/^config: listen_ip: /);
  });

  it('render: with allowClients every server starts with the 403 route for other clients; without, nothing changes', () => {
    const routes = [
      { id: 'a', hosts: ['a.home.arpa'], path: null, upstreams: ['100.64.0.5:80'], tls: 'off' as const, health_path: null },
      { id: 'b', hosts: ['b.home.arpa'], path: null, upstreams: ['100.64.0.6:80'], tls: 'internal' as const, health_path: null },
    ];
    const settings = { admin: 'unix//run/x.sock', httpPort: 80, httpsPort: 443, listenIp: '100.101.102.103' };
    const plain: DesiredProxy = { settings, routes };
    const guarded: DesiredProxy = { settings: { ...settings, allowClients: ['fd7a:115c:a1e0::/48', '100.64.0.0/10', '100.64.0.0/10'] }, routes };
    type Server = { listen: string[]; routes: { '@id'?: string; match?: unknown; handle: { status_code?: number; body?: string }[] }[] };
    const servers = (d: DesiredProxy) => (render(d).config as { apps: { http: { servers: Record<string, Server> } } }).apps.http.servers;
    for (const [name, server] of Object.entries(servers(guarded))) {
      expect(server.listen[0]).to.match(/^100\.101\.102\.103:/);
      const first = server.routes[0]!;
      expect(first['@id']).to.equal(`${name}-tailnet-only`);
      expect(first.match).to.deep.equal([{ not: [{ remote_ip: { ranges: ['100.64.0.0/10', 'fd7a:115c:a1e0::/48'] } }] }]);
      expect(first.handle[0]).to.include({ status_code: 403, body: OUTSIDE_BODY });
      expect(server.routes.slice(1)).to.deep.equal(servers(plain)[name]!.routes);
    }
    expect(JSON.stringify(servers(plain))).not.to.include('remote_ip');
  });
});

describe('tailnet: device upstreams never reach Caddy by name', () => {
  it('buildDesired without a device resolver leaves the route out; the Caddyfile export refuses one', async () => {
    const { buildDesired } = await import('../../src/proxy/desired.js');
    const { caddyfileExport } = await import('../../src/proxy/caddyfile.js');
    const stored = { id: 'api:1', hosts: ['a.home.arpa'], path: null, upstreams: ['device:laptop:80'], tls: 'off' as const, health_path: null, created_at: '', updated_at: '' };
    const built = buildDesired([], [stored], () => undefined);
    expect(built.routes).to.deep.equal([]);
    expect(built.errors.get('api:1')).to.equal('upstream device:laptop:80: no tailnet device list to resolve it');
    const settings = { admin: '127.0.0.1:2019', httpPort: 80, httpsPort: 443, listenIp: '127.0.0.1' };
    expect(() => caddyfileExport({ settings, routes: [{ id: 'api:1', hosts: ['a.home.arpa'], path: null, upstreams: ['device:laptop:80'], tls: 'off', health_path: null }] })).to.throw(/device upstream/);
  });
});

describe('tailnet: device names as users write them', () => {
  it('device:<name>:<port> upstreams: one DNS label and a port', async () => {
    const { upstreamProblem } = await import('../../src/model/name.js');
    const { deviceName, deviceNameProblem } = await import('../../src/model/device.js');
    expect(upstreamProblem('device:Laptop:80')).to.equal(null);
    expect(upstreamProblem('device:laptop')).to.equal('must be device:<name>:<port>');
    expect(upstreamProblem('device:laptop:0')).to.equal('port must be 1-65535');
    expect(upstreamProblem('device:-x:80')).to.match(/^device name must be one DNS label/);
    expect(upstreamProblem('device::80')).to.equal('device name must not be empty');
    expect(deviceNameProblem('a'.repeat(64))).to.match(/at most 63/);
    expect(deviceName.parse('NAS-2')).to.equal('nas-2');
    expect(deviceName.safeParse('nas.lan').success).to.equal(false);
  });
});
