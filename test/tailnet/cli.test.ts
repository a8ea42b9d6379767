// `dnsproxy devices` and `add-record --device` against the real `dnsproxy serve` (dist/), its
// device list read from a fake tailscaled LocalAPI socket (DNSPROXY_TAILSCALE_SOCKET).
import { expect } from 'chai';
import { cli, startController, TOKEN, type Running } from '../helpers/controller.js';
import { startFakeLocalApi, type FakeLocalApi } from '../helpers/tailscale.js';
import { tempDir } from '../helpers/tmp.js';

describe('e2e: tailnet devices from the CLI', function () {
  this.timeout(60_000);
  const tmp = tempDir();
  let api: FakeLocalApi;
  let c: Running;
  let env: Record<string, string>;
  before(async () => {
    api = await startFakeLocalApi({ id: 'nSELF', hostName: 'dnsproxy', ips: ['100.64.0.1'] }, [
      { id: 'nLAPTOP', hostName: 'laptop', ips: ['100.64.0.5', 'fd7a:115c:a1e0::5'], online: true, lastSeen: '2026-12-07T10:00:00Z' },
      { id: 'nNAS', hostName: 'nas', ips: ['100.64.0.7'], online: false, lastSeen: '2026-12-01T08:30:00Z' },
    ]);
    // The first poll runs at start; one hour between polls keeps the test's device list fixed.
    c = await startController(tmp.dir, { DNSPROXY_TAILSCALE_SOCKET: api.socket, DNSPROXY_DEVICE_POLL_MS: '3600000' });
    env = { DNSPROXY_API_URL: c.apiUrl, DNSPROXY_TOKEN: TOKEN };
    // The start does not wait for the first poll: wait until the controller has read the list.
    for (let i = 0; i < 200 && api.requests === 0; i++) await new Promise((r) => setTimeout(r, 25));
    const known = async () => ((await (await fetch(`${c.apiUrl}/api/v1/devices`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { source: { known: boolean } }).source.known;
    for (let i = 0; i < 200 && !(await known()); i++) await new Promise((r) => setTimeout(r, 25));
  });
  after(async () => {
    await c?.stop();
    await api?.close();
    tmp.cleanup();
  });

  it('devices lists name, addresses, online and last seen', async () => {
    const res = await cli(['devices'], env);
    expect(res.code, res.stderr).to.equal(0);
    const lines = res.stdout.trim().split('\n');
    expect(lines[0]).to.match(/^NAME\s+ADDRESSES\s+ONLINE\s+LAST SEEN\s+STATE$/);
    expect(lines[1]).to.match(/^dnsproxy \(this node\)\s+100\.64\.0\.1\s+yes\s+now\s+ok$/);
    expect(lines[2]).to.match(/^laptop\s+100\.64\.0\.5, fd7a:115c:a1e0::5\s+yes\s+now\s+ok$/);
    expect(lines[3]).to.match(/^nas\s+100\.64\.0\.7\s+no\s+2026-12-01T08:30:00\.000Z\s+offline$/);
    const json = JSON.parse((await cli(['--json', 'devices'], env)).stdout);
    expect(json.devices.map((d: { name: string }) => d.name)).to.deep.equal(['dnsproxy', 'laptop', 'nas']);
  });

  it('add-record NAME --device DEVICE stores the device address and list shows the device; an unknown one exits 1 naming the field', async () => {
    const add = await cli(['add-record', 'web', '--device', 'laptop'], env);
    expect(add.code, add.stderr).to.equal(0);
    expect(add.stdout).to.match(/web\.home\.arpa\.\s+A\s+300\s+100\.64\.0\.5 \(device laptop: ok\)/);
    const six = await cli(['--json', 'add-record', 'web', '-t', 'AAAA', '--device', 'laptop'], env);
    expect(JSON.parse(six.stdout).record).to.deep.include({ values: ['fd7a:115c:a1e0::5'], device: { name: 'laptop', state: 'ok' } });
    expect((await cli(['list', '--name', 'web'], env)).stdout).to.include('(device laptop: ok)');
    const bad = await cli(['add-record', 'x', '--device', 'ghost'], env);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.match(/^dnsproxy: target_device: no device ghost in the tailnet/);
    const usage = await cli(['add-record', 'x', '192.0.2.1', '--device', 'laptop'], env);
    expect(usage.code).to.equal(2);
  });
});
