// Tailnet devices by name: the device list from a fake tailscaled LocalAPI (the real status JSON
// on a unix socket), records and route upstreams naming devices, and how they follow a device
// that is re-addressed, renamed or leaves. Polls run on manual timers: one fire() is one poll.
import { expect } from 'chai';
import DNS from 'dns2';
import { once } from 'node:events';
import { DnsServer } from '../../src/dns/index.js';
import { parseStatus } from '../../src/tailnet/status.js';
import { localApiSource, cliSource } from '../../src/tailnet/source.js';
import { Devices } from '../../src/tailnet/devices.js';
import { render } from '../../src/proxy/render.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { ManualTimers, startFakeLocalApi, type FakeLocalApi } from '../helpers/tailscale.js';
import { tempDir } from '../helpers/tmp.js';
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';

const SELF = { id: 'nSELF1CNTRL', hostName: 'dnsproxy', ips: ['100.64.0.1', 'fd7a:115c:a1e0::1'] };
const laptop = () => ({ id: 'nLAPTOP1CNTRL', hostName: 'Laptop', ips: ['100.64.0.5', 'fd7a:115c:a1e0:ab12:4843:cd96:6258:b205'], online: true, lastSeen: '2026-12-07T10:00:00Z' });
const nas = () => ({ id: 'nNAS1CNTRL', hostName: 'nas', ips: ['100.64.0.7'], online: false, lastSeen: '2026-12-01T08:30:00Z' });

describe('tailnet: status parsing (the ipnstate.Status shape)', () => {
  let api: FakeLocalApi;
  before(async () => (api = await startFakeLocalApi(SELF, [laptop(), nas()])));
  after(async () => api.close());

  it('reads Self and every Peer: name from the MagicDNS label, addresses, online, last seen', async () => {
    const parsed = parseStatus(await localApiSource(api.socket)());
    expect(parsed.backendState).to.equal('Running');
    expect(parsed.skipped).to.deep.equal([]);
    expect(parsed.devices.map((d) => d.name)).to.deep.equal(['dnsproxy', 'laptop', 'nas']);
    const l = parsed.devices.find((d) => d.name === 'laptop')!;
    expect(l).to.deep.equal({ name: 'laptop', dns_name: 'laptop.tail1234.ts.net.', host_name: 'Laptop', id: 'nLAPTOP1CNTRL', ipv4: ['100.64.0.5'], ipv6: ['fd7a:115c:a1e0:ab12:4843:cd96:6258:b205'], online: true, last_seen: '2026-12-07T10:00:00.000Z', self: false });
    expect(parsed.devices.find((d) => d.name === 'nas')).to.include({ online: false, last_seen: '2026-12-01T08:30:00.000Z' });
    expect(parsed.devices.find((d) => d.name === 'dnsproxy')).to.include({ self: true, online: true, last_seen: null });
  });

  it('leaves out peers whose name or addresses could inject anything, and says why', () => {
    const status = api.status();
    const peer = (DNSName: string, TailscaleIPs: unknown[], ID = DNSName) => ({ ID, HostName: DNSName, DNSName, TailscaleIPs, Online: true, LastSeen: '0001-01-01T00:00:00Z' });
    status.Peer = {
      a: peer('evil;rm -rf.tail1234.ts.net.', ['100.64.0.9']),
      b: peer('bad\nname.tail1234.ts.net.', ['100.64.0.10']),
      c: peer('zoned.tail1234.ts.net.', ['fe80::1%eth0', 'not-an-ip', '100.64.0.300']),
      d: peer('good.tail1234.ts.net.', ['100.64.0.11', 'fe80::1%eth0', '{env.HOME}']),
      e: peer('good.tail1234.ts.net.', ['100.64.0.12'], 'other'),
    };
    const parsed = parseStatus(status);
    expect(parsed.devices.map((d) => d.name)).to.deep.equal(['dnsproxy', 'good']);
    expect(parsed.devices.find((d) => d.name === 'good')).to.include({ id: 'good.tail1234.ts.net.' }).and.to.have.deep.property('ipv4', ['100.64.0.11']);
    expect(parsed.skipped).to.have.length(4);
    expect(parsed.skipped.join('\n')).to.include('evil;rm -rf').and.to.include('no usable address').and.to.include('taken');
  });

  it('refuses what is not a status, and a LocalAPI that does not answer 200', async () => {
    expect(() => parseStatus({ Peer: 'nope' })).to.throw(/not a tailscale status/);
    expect(() => parseStatus(null)).to.throw(/not a tailscale status/);
    api.failWith = 503;
    try {
      await localApiSource(api.socket)().then(() => expect.fail('resolved'), (e: Error) => expect(e.message).to.match(/LocalAPI answered 503/));
    } finally {
      api.failWith = null;
    }
    await localApiSource(`${api.socket}.missing`)().then(() => expect.fail('resolved'), (e: Error) => expect(e.message).to.match(/LocalAPI at .*ENOENT/));
  });

  it('reads the same JSON from `tailscale status --json`', async () => {
    const tmp = tempDir();
    try {
      const bin = join(tmp.dir, 'tailscale');
      writeFileSync(join(tmp.dir, 'status.json'), JSON.stringify(api.status()));
      writeFileSync(bin, `#!/bin/sh\n[ "$1 $2" = "status --json" ] || exit 2\ncat "${join(tmp.dir, 'status.json')}"\n`);
      chmodSync(bin, 0o755);
      expect(parseStatus(await cliSource(bin)()).devices.map((d) => d.name)).to.deep.equal(['dnsproxy', 'laptop', 'nas']);
      await cliSource(join(tmp.dir, 'nothing'))().then(() => expect.fail('resolved'), (e: Error) => expect(e.message).to.include('status --json'));
    } finally {
      tmp.cleanup();
    }
  });
});

describe('tailnet: devices in records and routes', () => {
  let api: FakeLocalApi;
  let f: ApiFixture;
  let timers: ManualTimers;
  let dns: DnsServer;
  const req = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });
  const ask = async (name: string, type: 'A' | 'AAAA' = 'A') => {
    const r = await DNS.UDPClient({ dns: '127.0.0.1', port: dns.address().port })(name, type);
    return r.answers.map((a: { address?: string }) => a.address).sort();
  };
  /** One poll (the injected timer fires), then wait until its change has gone through the pipeline. */
  const poll = async () => {
    const polled = once(f.devices.registry, 'polled');
    expect(timers.fire()).to.equal(1);
    await polled;
    await f.pipeline.settled();
  };

  beforeEach(async () => {
    api = await startFakeLocalApi(SELF, [laptop(), nas()]);
    timers = new ManualTimers();
    f = await apiFixture({ devices: { source: localApiSource(api.socket), timers } });
    dns = new DnsServer({ host: '127.0.0.1', port: 0, index: f.index, upstreams: [], axfrAllow: [] });
    await dns.start();
    const first = once(f.devices.registry, 'polled');
    f.devices.registry.start();
    await first;
  });
  afterEach(async () => {
    await dns.stop();
    await f.close();
    await api.close();
  });

  it('GET /api/v1/devices lists name, addresses, online and last seen', async () => {
    const res = await req('GET', '/api/v1/devices');
    expect(res.statusCode).to.equal(200);
    const body = res.json();
    expect(body.source).to.deep.equal({ enabled: true, known: true, polls: 1, last_error: null });
    expect(body.devices.map((d: { name: string; state: string }) => `${d.name}:${d.state}`)).to.deep.equal(['dnsproxy:ok', 'laptop:ok', 'nas:offline']);
    expect(body.devices[1]).to.include({ online: true, last_seen: '2026-12-07T10:00:00.000Z', present: true });
  });

  it('a record with target_device answers the device addresses (A and AAAA) and shows the device', async () => {
    const a = await req('POST', '/api/v1/records', { name: 'web', type: 'A', target_device: 'Laptop' });
    expect(a.statusCode, a.body).to.equal(201);
    expect(a.json().record).to.include({ name: 'web.home.arpa.' }).and.to.deep.include({ values: ['100.64.0.5'], device: { name: 'laptop', state: 'ok' } });
    const aaaa = await req('PUT', '/api/v1/records/web/AAAA', { name: 'web', type: 'AAAA', target_device: 'laptop' });
    expect(aaaa.statusCode, aaaa.body).to.equal(201);
    await f.pipeline.settled();
    expect(await ask('web.home.arpa')).to.deep.equal(['100.64.0.5']);
    expect(await ask('web.home.arpa', 'AAAA')).to.deep.equal(['fd7a:115c:a1e0:ab12:4843:cd96:6258:b205']);
    const list = (await req('GET', '/api/v1/records?name=web')).json().records;
    expect(list.map((r: { device?: unknown }) => r.device)).to.deep.equal([{ name: 'laptop', state: 'ok' }, { name: 'laptop', state: 'ok' }]);
    // The original API: add-record --device.
    const legacy = await req('POST', '/add-record', { service_name: 'files', name: 'files', target_device: 'nas' });
    expect(legacy.statusCode, legacy.body).to.equal(201);
    expect(legacy.json()).to.include({ ip: '100.64.0.7' }).and.to.deep.include({ device: { name: 'nas', state: 'offline' } });
    expect((await req('GET', '/list-records')).json().records.find((r: { name: string }) => r.name === 'files.home.arpa').device).to.deep.equal({ name: 'nas', state: 'offline' });
  });

  it('bad device input is 400 naming the field, and nothing is written', async () => {
    const cases: [string, string, object][] = [
      ['POST', '/api/v1/records', { name: 'x', type: 'A', target_device: 'ghost' }],
      ['POST', '/api/v1/records', { name: 'x', type: 'A', target_device: 'bad name;' }],
      ['POST', '/api/v1/records', { name: 'x', type: 'A', target_device: 7 }],
      ['POST', '/api/v1/records', { name: 'x', type: 'TXT', target_device: 'laptop' }],
      ['POST', '/api/v1/records', { name: 'x', type: 'A', target_device: 'laptop', values: ['192.0.2.1'] }],
      ['POST', '/api/v1/records', { name: 'x', type: 'AAAA', target_device: 'nas' }],
      ['POST', '/add-record', { service_name: 'x', name: 'x', target_device: 'ghost' }],
      ['POST', '/add-record', { service_name: 'x', name: 'x', target_device: 'laptop', ip: '192.0.2.1' }],
      ['POST', '/api/v1/routes', { hosts: ['x.home.arpa'], upstreams: ['192.0.2.1:80', 'device:ghost:80'] }],
      ['POST', '/api/v1/routes', { hosts: ['x.home.arpa'], upstreams: ['device:bad_name:80'] }],
      ['POST', '/api/v1/records', { name: 'x', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['device:ghost:80'] } }],
    ];
    const fields = [];
    for (const [method, url, body] of cases) {
      const res = await req(method as 'POST', url, body);
      expect(res.statusCode, `${url} ${JSON.stringify(body)}: ${res.body}`).to.equal(400);
      fields.push(res.json().error.fields.map((x: { path: string }) => x.path).join());
    }
    expect(fields).to.deep.equal(['target_device', 'target_device', 'target_device', 'type', 'values', 'target_device', 'target_device', 'target_device', 'upstreams.1', 'upstreams.0', 'proxy.upstreams.0']);
    expect((await req('POST', '/api/v1/records', { name: 'x', type: 'A', target_device: 'ghost' })).json().error.fields[0].message).to.match(/no device ghost in the tailnet/);
    expect(f.records.list({ name: 'x.home.arpa.' })).to.deep.equal([]);
  });

  it('a device re-addressed in the LocalAPI moves its records (DNS) and routes within one poll', async () => {
    await req('POST', '/api/v1/records', { name: 'web', type: 'A', target_device: 'laptop' });
    const route = (await req('POST', '/api/v1/routes', { hosts: ['app.home.arpa'], upstreams: ['device:laptop:8080'] })).json().route;
    expect(route).to.include({ status: 'pending' });
    await f.pipeline.settled();
    const dials = () => f.proxy.build().routes.find((r) => r.id === route.id)?.upstreams;
    expect(dials()).to.deep.equal(['100.64.0.5:8080', '[fd7a:115c:a1e0:ab12:4843:cd96:6258:b205]:8080']);
    const serial = f.records.serial('home.arpa.');

    api.peers[0]!.ips = ['100.64.0.9'];
    await poll();
    expect(await ask('web.home.arpa')).to.deep.equal(['100.64.0.9']);
    expect(dials()).to.deep.equal(['100.64.0.9:8080']);
    expect(f.records.serial('home.arpa.')).to.equal(serial + 1);
    // The rendered Caddy config dials the new address.
    const config = JSON.stringify(render(f.proxy.desired()).config);
    expect(config).to.include('"dial":"100.64.0.9:8080"').and.not.to.include('100.64.0.5');
    // A poll that changes nothing writes nothing.
    await poll();
    expect(f.records.serial('home.arpa.')).to.equal(serial + 1);
    expect(f.devices.binder.rewrites).to.equal(1);
  });

  it('a renamed device: records and routes follow it (by node id); its name taken by another device moves them there', async () => {
    await req('POST', '/api/v1/records', { name: 'web', type: 'A', target_device: 'laptop' });
    const route = (await req('POST', '/api/v1/routes', { hosts: ['app.home.arpa'], upstreams: ['device:laptop:8080'] })).json().route;
    const dials = () => f.proxy.build().routes.find((r) => r.id === route.id)?.upstreams;
    api.peers[0]!.dnsLabel = 'laptop-old';
    api.peers[0]!.ips = ['100.64.0.9'];
    await poll();
    expect(await ask('web.home.arpa')).to.deep.equal(['100.64.0.9']);
    expect(dials()).to.deep.equal(['100.64.0.9:8080']);
    expect((await req('GET', '/api/v1/records/web/A')).json().record.device).to.deep.equal({ name: 'laptop-old', state: 'ok' });
    // Another device now takes the name the binding follows.
    api.peers.push({ id: 'nNEW1CNTRL', hostName: 'laptop-old', ips: ['100.64.0.20'], online: true, lastSeen: '2026-12-07T11:00:00Z' });
    api.peers[0]!.dnsLabel = 'laptop-2';
    await poll();
    expect(await ask('web.home.arpa')).to.deep.equal(['100.64.0.20']);
    // The route asked for `laptop`, which is still that node (now laptop-2).
    expect(dials()).to.deep.equal(['100.64.0.9:8080']);
  });

  it('a device that leaves: its records keep the last address and show missing; routes keep dialling it', async () => {
    await req('POST', '/api/v1/records', { name: 'web', type: 'A', target_device: 'laptop' });
    const route = (await req('POST', '/api/v1/routes', { hosts: ['app.home.arpa'], upstreams: ['device:laptop:8080'] })).json().route;
    api.peers = api.peers.filter((p) => p.hostName !== 'Laptop');
    await poll();
    expect(await ask('web.home.arpa')).to.deep.equal(['100.64.0.5']);
    expect((await req('GET', '/api/v1/records/web/A')).json().record.device).to.deep.equal({ name: 'laptop', state: 'missing' });
    expect((await req('GET', '/api/v1/devices')).json().devices.find((d: { name: string }) => d.name === 'laptop')).to.include({ present: false, state: 'missing' });
    expect(f.proxy.build().routes.find((r) => r.id === route.id)?.upstreams).to.deep.equal(['100.64.0.5:8080', '[fd7a:115c:a1e0:ab12:4843:cd96:6258:b205]:8080']);
    // It comes back elsewhere: everything follows again.
    api.peers.push({ ...laptop(), ips: ['100.64.0.33'] });
    await poll();
    expect(await ask('web.home.arpa')).to.deep.equal(['100.64.0.33']);
    expect((await req('GET', '/api/v1/records/web/A')).json().record.device).to.deep.equal({ name: 'laptop', state: 'ok' });
  });

  it('a record written with values afterwards is no longer bound; LocalAPI down keeps everything', async () => {
    await req('POST', '/api/v1/records', { name: 'web', type: 'A', target_device: 'laptop' });
    await req('PUT', '/api/v1/records/web/A', { name: 'web', type: 'A', values: ['192.0.2.50'] });
    api.peers[0]!.ips = ['100.64.0.9'];
    await poll();
    expect(await ask('web.home.arpa')).to.deep.equal(['192.0.2.50']);
    expect((await req('GET', '/api/v1/records/web/A')).json().record.device).to.equal(undefined);
    expect(f.devices.bindings.list()).to.deep.equal([]);
    await req('POST', '/api/v1/records', { name: 'db', type: 'A', target_device: 'laptop' });
    api.failWith = 502;
    await poll();
    expect((await req('GET', '/api/v1/devices')).json().source.last_error).to.match(/LocalAPI answered 502/);
    expect(await ask('db.home.arpa')).to.deep.equal(['100.64.0.9']);
    expect((await req('GET', '/api/v1/records/db/A')).json().record.device).to.deep.equal({ name: 'laptop', state: 'ok' });
  });

  it('device upstreams: /add-record proxies to the device by default; reaching this node needs admin, its listeners never', async () => {
    const add = await req('POST', '/add-record', { service_name: 'app', name: 'app', target_device: 'laptop', port: 3000, proxy_enabled: true });
    expect(add.statusCode, add.body).to.equal(201);
    expect(add.json()).to.include({ ip: '100.64.0.5', forward_to_ip: 'device:laptop', port: 3000 });
    await f.pipeline.settled();
    expect(f.proxy.build().routes.find((r) => r.id === 'record:app.home.arpa')?.upstreams).to.deep.equal(['100.64.0.5:3000', '[fd7a:115c:a1e0:ab12:4843:cd96:6258:b205]:3000']);
    // A device that is this node (its address is node_ip).
    api.peers.push({ id: 'nME', hostName: 'me', ips: ['192.0.2.10'], online: true });
    await poll();
    const { token } = f.tokens.create('script', 'write');
    const asWrite = (payload: object) => f.app.inject({ method: 'POST', url: '/api/v1/routes', headers: { authorization: `Bearer ${token}` }, payload });
    const refused = await asWrite({ hosts: ['me.home.arpa'], upstreams: ['device:me:9000'] });
    expect(refused.statusCode, refused.body).to.equal(403);
    expect(refused.json().error.message).to.include('192.0.2.10');
    expect((await asWrite({ hosts: ['lap.home.arpa'], upstreams: ['device:laptop:9000'] })).statusCode).to.equal(201);
    expect((await req('POST', '/api/v1/routes', { hosts: ['me.home.arpa'], upstreams: ['device:me:9000'] })).statusCode).to.equal(201);
    const own = await req('POST', '/api/v1/routes', { hosts: ['api.home.arpa'], upstreams: ['device:me:8080'] });
    expect(own.statusCode).to.equal(400);
    expect(own.json().error.fields[0]).to.include({ path: 'upstreams.0' });
    expect(own.json().error.fields[0].message).to.match(/device:me:8080 \(192\.0\.2\.10\): .*own listeners/);
  });

  it('a dry run with target_device binds nothing', async () => {
    const res = await req('POST', '/api/v1/records?dry_run=true', { name: 'web', type: 'A', target_device: 'laptop' });
    expect(res.statusCode, res.body).to.equal(200);
    expect(res.json().plan.dns.added).to.deep.equal(['web.home.arpa. A']);
    expect(f.devices.bindings.list()).to.deep.equal([]);
  });
});

describe('tailnet: without a device source', () => {
  it('target_device is 400 saying there is no tailnet; the device list is 200 and empty', async () => {
    const f = await apiFixture();
    try {
      const res = await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: { name: 'x', type: 'A', target_device: 'laptop' } });
      expect(res.statusCode).to.equal(400);
      expect(res.json().error.fields[0]).to.deep.equal({ path: 'target_device', message: 'no device laptop in the tailnet (this controller has no tailnet device source); GET /api/v1/devices lists them' });
      const list = await f.app.inject({ method: 'GET', url: '/api/v1/devices', headers: f.auth });
      expect(list.json()).to.deep.equal({ devices: [], source: { enabled: false, known: false, polls: 0, last_error: null } });
      const d = new Devices({ source: null, pollMs: 1000 });
      d.start();
      expect(d.state('x')).to.equal('unknown');
    } finally {
      await f.close();
    }
  });
});
