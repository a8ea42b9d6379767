// Tailnet against a real Caddy 2.6.2: a route whose upstream names a device follows the device
// when the fake LocalAPI re-addresses it (one poll, one push), and `tailnet_only` answers 403 to
// clients outside the allowed ranges while proxying the ones inside. Loopback addresses stand in
// for the tailnet: clients bind 127.0.0.2 (outside) and 127.0.0.3 (inside, tailnet_ranges
// 127.0.0.3/32); device addresses are 127.0.0.5 and 127.0.0.6 with a backend on each.
import { expect } from 'chai';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Wired } from '../../src/controller.js';
import { OUTSIDE_BODY } from '../../src/proxy/render.js';
import { localApiSource } from '../../src/tailnet/source.js';
import { hasCaddy, startCaddy, type RunningCaddy } from '../helpers/caddy.js';
import { ManualTimers, startFakeLocalApi, type FakeLocalApi } from '../helpers/tailscale.js';
import { wireToCaddy, type WiredCaddy } from '../helpers/wired.js';

/** An HTTP server on `ip:port` answering its name. */
async function backendOn(ip: string, port: number, name: string): Promise<http.Server> {
  const server = http.createServer((_req, res) => res.writeHead(200).end(name));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, ip, resolve));
  return server;
}

/** GET http://127.0.0.1:<port>/ with Host `host`, the client socket bound to `from`. */
function get(port: number, host: string, from: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, localAddress: from, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('tailnet: device upstreams and tailnet-only serving through a real Caddy', function () {
  this.timeout(60_000);
  let caddy: RunningCaddy;
  let api: FakeLocalApi;
  let one: http.Server;
  let two: http.Server;
  let port: number;
  let wired: WiredCaddy | undefined;
  let w: Wired;
  const timers = new ManualTimers();

  before(async function () {
    if (!hasCaddy()) return this.skip();
    caddy = await startCaddy();
    one = await backendOn('127.0.0.5', 0, 'one');
    port = (one.address() as AddressInfo).port;
    two = await backendOn('127.0.0.6', port, 'two');
    api = await startFakeLocalApi({ id: 'nSELF', hostName: 'dnsproxy', ips: ['100.64.0.1'] }, [{ id: 'nBOX', hostName: 'box', ips: ['127.0.0.5'] }]);
    wired = wireToCaddy(caddy, { devices: { source: localApiSource(api.socket), timers } }, { DNSPROXY_TAILNET_ONLY: 'on', DNSPROXY_TAILNET_RANGES: '127.0.0.3/32' });
    w = wired.w;
    const polled = once(w.devices.registry, 'polled');
    w.devices.registry.start();
    await polled;
    w.routes.put({ hosts: ['app.home.arpa'], upstreams: [`device:box:${port}`], tls: 'off' });
    await w.pipeline.settled();
    await w.reconciler!.flush();
  });
  after(async () => {
    await w?.devices.registry.stop();
    await wired?.close();
    await caddy?.stop();
    await api?.close();
    one?.close();
    two?.close();
  });

  it('refuses a client outside the allowed ranges with 403 and proxies one inside', async () => {
    const inside = await get(caddy.httpPort, 'app.home.arpa', '127.0.0.3');
    expect(inside).to.deep.equal({ status: 200, body: 'one' });
    const outside = await get(caddy.httpPort, 'app.home.arpa', '127.0.0.2');
    expect(outside).to.deep.equal({ status: 403, body: OUTSIDE_BODY });
    // Before any host route: an unknown host from outside is 403 too, from inside the catch-all 404.
    expect((await get(caddy.httpPort, 'nothing.home.arpa', '127.0.0.2')).status).to.equal(403);
    expect((await get(caddy.httpPort, 'nothing.home.arpa', '127.0.0.3')).status).to.equal(404);
    expect(w.reconciler!.state().inSync).to.equal(true);
  });

  it('a device re-addressed in the LocalAPI moves the route within one poll', async () => {
    api.peers[0]!.ips = ['127.0.0.6'];
    const polled = once(w.devices.registry, 'polled');
    expect(timers.fire()).to.equal(1);
    await polled;
    await w.pipeline.settled();
    await w.reconciler!.flush();
    expect(await get(caddy.httpPort, 'app.home.arpa', '127.0.0.3')).to.deep.equal({ status: 200, body: 'two' });
    expect(w.proxy.views().find((r) => r.hosts[0] === 'app.home.arpa')).to.include({ status: 'active' });
  });
});
