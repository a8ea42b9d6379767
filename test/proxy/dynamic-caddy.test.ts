// render()'s dynamic route against a real Caddy 2.6.2 and our real DNS server: plain names are
// served from the DNS table without any /load; unknown or removed names get the catch-all 404.
import { expect } from 'chai';
import { DnsServer, PlainUpstreams, ZoneIndex, backendOf } from '../../src/dns/index.js';
import { render, NO_HOST_BODY } from '../../src/proxy/render.js';
import type { DesiredProxy } from '../../src/proxy/types.js';
import { hasCaddy, request, startBackend, startCaddy, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { route } from './reconcile-fixture.js';

/** Polls `probe` until true (each probe is one real request); rejects after `limitMs`. */
async function within(limitMs: number, probe: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await probe().catch(() => false)) return Date.now() - start;
    if (Date.now() - start > limitMs) throw new Error(`not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('dynamic route through a real Caddy and our DNS', function () {
  this.timeout(60_000);
  let caddy: RunningCaddy;
  let dns: DnsServer;
  let one: Backend;
  let two: Backend;
  const table = new PlainUpstreams();
  const set = (entries: Record<string, Backend[]>) => table.replace(new Map(Object.entries(entries).map(([h, bs]) => [h, bs.map((b) => backendOf(b.dial))])));
  const via = (host: string) => request({ port: caddy.httpPort, host });

  before(async function () {
    if (!hasCaddy()) return this.skip();
    caddy = await startCaddy();
    one = await startBackend('one');
    two = await startBackend('two');
    dns = new DnsServer({ host: '127.0.0.1', port: 0, index: new ZoneIndex([{ name: 'home.arpa.', nameservers: ['ns1.home.arpa.'], hostmaster: 'hostmaster.home.arpa.', nodeIp: '127.0.0.1' }]), upstreams: [], axfrAllow: [], plain: { table, allow: ['127.0.0.0/8'] } });
    await dns.start();
    const desired: DesiredProxy = {
      settings: { admin: caddy.adminListen, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', dynamic: { resolver: `udp/127.0.0.1:${dns.address().port}` } },
      routes: [route('explicit', two.dial, { hosts: ['explicit.home.arpa'] })],
    };
    await caddy.load(render(desired).config);
  });
  after(async () => {
    await caddy?.stop();
    await dns?.stop();
    await one?.close();
    await two?.close();
  });

  it('serves a plain name from DNS, follows a backend change, and 404s removed and unknown names', async () => {
    const loads = () => (caddy.output().match(/"msg":"load complete"|received request.*"uri":"\/load"/g) ?? []).length;
    const before = loads();
    set({ 'a.home.arpa': [one] });
    const first = await within(1000, async () => JSON.parse((await via('a.home.arpa')).body).backend === 'one');
    set({ 'a.home.arpa': [two] });
    const changed = await within(2000, async () => JSON.parse((await via('a.home.arpa')).body).backend === 'two');
    set({});
    const gone = await within(2000, async () => (await via('a.home.arpa')).status === 404);
    expect((await via('a.home.arpa')).body).to.equal(NO_HOST_BODY);
    const unknown = await via('nobody.home.arpa');
    expect(unknown.status).to.equal(404);
    expect(unknown.body).to.equal(NO_HOST_BODY);
    // The explicit route is unaffected and still wins over the dynamic one.
    expect(JSON.parse((await via('explicit.home.arpa')).body).backend).to.equal('two');
    expect(loads()).to.equal(before);
    console.log(`      served after ${first} ms, changed after ${changed} ms, gone after ${gone} ms`);
  });

  it('a plain name with two backends is balanced across both', async () => {
    set({ 'b.home.arpa': [one, two] });
    const seen = new Set<string>();
    await within(2000, async () => {
      seen.add(JSON.parse((await via('b.home.arpa')).body).backend as string);
      return seen.size === 2;
    });
    expect([...seen].sort()).to.deep.equal(['one', 'two']);
  });
});
