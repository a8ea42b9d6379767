// render()'s dynamic route against a real Caddy 2.6.2 and our real DNS server: plain names are
// served from the DNS table without any /load; unknown or removed names get the catch-all 404.
import { expect } from 'chai';
import { DnsServer, PlainUpstreams, ZoneIndex, backendOf } from '../../src/dns/index.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { render, NO_HOST_BODY } from '../../src/proxy/render.js';
import { validateWithCaddy } from '../../src/proxy/caddy.js';
import { startOnDemandServer, type OnDemandServer } from '../../src/proxy/ondemand.js';
import type { PlainEntry } from '../../src/dns/upstreams.js';
import { startWsEcho, wsConnect, type WsEcho } from '../helpers/ws.js';
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
  const set = (entries: Record<string, Backend[]>) => table.replace(new Map(Object.entries(entries).map(([h, bs]) => [h, { backends: bs.map((b) => backendOf(b.dial)), tls: 'off' as const }])));
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

  it('keeps backend connections alive: rounds of 20 concurrent requests reuse them, through a plain name and an explicit route', async () => {
    // With `idle_timeout` alone Caddy 2.6.2 kept Go's 2 idle connections per backend, so each
    // round dialled ~18 new ones (and a dynamic dial resolves the SRV target through our DNS first).
    const ROUNDS = 8;
    const PARALLEL = 20;
    const three = await startBackend('three');
    try {
      set({ 'ka.home.arpa': [three] });
      await within(1000, async () => JSON.parse((await via('ka.home.arpa')).body).backend === 'three');
      const opened = async (backend: Backend, host: string) => {
        const before = backend.connections;
        for (let round = 0; round < ROUNDS; round++) {
          const replies = await Promise.all(Array.from({ length: PARALLEL }, () => via(host)));
          expect(replies.map((r) => r.status)).to.deep.equal(Array(PARALLEL).fill(200));
        }
        return backend.connections - before;
      };
      const dynamic = await opened(three, 'ka.home.arpa');
      const explicit = await opened(two, 'explicit.home.arpa');
      // At most one round's worth of new connections (and some slack), not one per request.
      expect(dynamic, 'connections opened through the plain name').to.be.at.most(2 * PARALLEL);
      expect(explicit, 'connections opened through the explicit route').to.be.at.most(2 * PARALLEL);
      console.log(`      ${ROUNDS * PARALLEL} requests each: ${dynamic} backend connections (plain name), ${explicit} (explicit route)`);
    } finally {
      set({});
      await three.close();
    }
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

/** A TLS handshake to Caddy with SNI `servername`: the certificate's SAN (chain checked against `ca` when given), or the error. */
function handshake(port: number, servername: string, ca?: string): Promise<{ san: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ...(ca ? { ca } : { rejectUnauthorized: false }) }, () => {
      const san = socket.getPeerCertificate().subjectaltname ?? '';
      socket.destroy();
      resolve({ san });
    });
    socket.setTimeout(15_000, () => socket.destroy(new Error('handshake timed out')));
    socket.on('error', (e) => resolve({ error: e.message }));
  });
}

describe('on-demand certificates and upgrade questions through a real Caddy and our DNS', function () {
  this.timeout(90_000);
  let caddy: RunningCaddy;
  let dns: DnsServer;
  let ask: OnDemandServer;
  let one: Backend;
  let ws: WsEcho;
  const table = new PlainUpstreams();
  const upgrades: string[] = [];
  const entries = new Map<string, PlainEntry>();
  const set = (host: string, b: Backend | WsEcho, mode: PlainEntry['tls']) => {
    entries.set(host, { backends: [backendOf(b.dial)], tls: mode });
    table.replace(entries);
  };
  const loads = () => (caddy.output().match(/"msg":"load complete"|received request.*"uri":"\/load"/g) ?? []).length;
  const BURST = 4;

  before(async function () {
    if (!hasCaddy()) return this.skip();
    caddy = await startCaddy();
    one = await startBackend('one');
    ws = await startWsEcho('ws');
    table.onUpgrade = (h) => upgrades.push(h);
    dns = new DnsServer({ host: '127.0.0.1', port: 0, index: new ZoneIndex([{ name: 'home.arpa.', nameservers: ['ns1.home.arpa.'], hostmaster: 'hostmaster.home.arpa.', nodeIp: '127.0.0.1' }]), upstreams: [], axfrAllow: [], plain: { table, allow: ['127.0.0.0/8'] } });
    await dns.start();
    ask = await startOnDemandServer({ port: 0, issuer: 'internal', httpsPort: caddy.httpsPort, lookup: (h) => table.get(h)?.tls });
    table.redirectTo({ ip: ask.ip, port: ask.port });
    const desired: DesiredProxy = {
      settings: {
        admin: caddy.adminListen,
        httpPort: caddy.httpPort,
        httpsPort: caddy.httpsPort,
        listenIp: '127.0.0.1',
        dynamic: { resolver: `udp/127.0.0.1:${dns.address().port}`, onDemand: { issuer: 'internal', ask: ask.askUrl, rateLimit: { interval: '10m', burst: BURST } } },
      },
      routes: [],
    };
    await caddy.load(render(desired).config);
  });
  after(async () => {
    await caddy?.stop();
    await dns?.stop();
    await ask?.close();
    await one?.close();
    await ws?.close();
  });

  it('a new tls internal plain name is served over HTTPS with a certificate for it from the local CA, HTTP redirects to it, and no load', async () => {
    const before = loads();
    set('s1.home.arpa', one, 'internal');
    const cert = await handshake(caddy.httpsPort, 's1.home.arpa');
    expect(cert).to.deep.equal({ san: 'DNS:s1.home.arpa' });
    // The chain verifies against Caddy's local CA root (written on the first issuance).
    const root = readFileSync(join(caddy.dir, 'data', 'caddy', 'pki', 'authorities', 'local', 'root.crt'), 'utf8');
    expect(await handshake(caddy.httpsPort, 's1.home.arpa', root)).to.deep.equal({ san: 'DNS:s1.home.arpa' });
    const res = await request({ port: caddy.httpsPort, host: 's1.home.arpa', tls: { servername: 's1.home.arpa' } });
    expect(JSON.parse(res.body)).to.include({ backend: 'one' });
    const plain = await request({ port: caddy.httpPort, host: 's1.home.arpa', path: '/x?y=1' });
    expect(plain.status).to.equal(308);
    expect(plain.headers.location).to.equal(`https://s1.home.arpa:${caddy.httpsPort}/x?y=1`);
    expect(ask.counts.allowed).to.equal(1);
    expect(loads()).to.equal(before);
  });

  it('a name we do not serve (or serve without TLS) gets no certificate: the ask says no and the handshake fails', async () => {
    set('open.home.arpa', one, 'off');
    const asked = ask.counts.asks;
    for (const name of ['nobody.home.arpa', 'open.home.arpa']) {
      const r = await handshake(caddy.httpsPort, name);
      expect(r, name).to.have.property('error');
    }
    expect(ask.counts.asks).to.equal(asked + 2);
    expect(ask.counts.allowed).to.equal(1);
    // The tls-off name is still served on HTTP.
    expect(JSON.parse((await request({ port: caddy.httpPort, host: 'open.home.arpa' })).body)).to.include({ backend: 'one' });
    const no = await fetch(`${ask.askUrl}?domain=nobody.home.arpa`);
    expect(no.status).to.equal(403);
    expect(await no.text()).to.equal('');
  });

  it("Caddy's rate limit on certificates obtained on demand holds: past the burst, a served name's handshake fails", async () => {
    // Caddy's limiter counts every name issued on demand in this process (s1 took one): of BURST more names, at most BURST-1 get one.
    const got: string[] = [];
    for (let i = 1; i <= BURST; i++) set(`r${i}.home.arpa`, one, 'internal');
    const allowed = ask.counts.allowed;
    for (let i = 1; i <= BURST; i++) if ('san' in (await handshake(caddy.httpsPort, `r${i}.home.arpa`))) got.push(`r${i}`);
    expect(got).to.deep.equal(['r1', 'r2', 'r3']);
    // The ask said yes to all of them: the refusal is Caddy's limit, checked after the ask.
    expect(ask.counts.allowed).to.equal(allowed + BURST);
    // Names that have their certificate keep being served.
    expect(await handshake(caddy.httpsPort, 's1.home.arpa')).to.deep.equal({ san: 'DNS:s1.home.arpa' });
  });

  it('the acme variant (no CA reachable here, so not issued) is a config Caddy accepts, and the ask answers for acme names only', async () => {
    const acme = render({
      settings: { admin: caddy.adminListen, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', dynamic: { resolver: 'udp/127.0.0.1:53', onDemand: { issuer: 'acme', ask: ask.askUrl, rateLimit: { interval: '1m', burst: 60 } } } },
      routes: [],
    });
    expect(await validateWithCaddy(acme.config)).to.equal(null);
    const acmeAsk = await startOnDemandServer({ port: 0, issuer: 'acme', httpsPort: 443, lookup: (h) => (h === 'shop.example.com' ? 'acme' : h === 'app.home.arpa' ? 'internal' : undefined) });
    try {
      expect((await fetch(`${acmeAsk.askUrl}?domain=shop.example.com`)).status).to.equal(200);
      expect((await fetch(`${acmeAsk.askUrl}?domain=app.home.arpa`)).status).to.equal(403);
    } finally {
      await acmeAsk.close();
    }
  });

  it('a websocket opened through a plain name asks its own question (our DNS sees it), ordinary requests do not', async () => {
    set('w.home.arpa', ws, 'off');
    upgrades.length = 0;
    expect((await request({ port: caddy.httpPort, host: 'w.home.arpa' })).status).to.equal(200);
    expect(upgrades).to.deep.equal([]);
    const client = await wsConnect(caddy.httpPort, 'w.home.arpa');
    expect(await client.ask('hi')).to.equal('ws:hi');
    expect(upgrades).to.deep.equal(['w.home.arpa']);
    client.close();
    // The same for a plain TLS name over HTTPS (its own question kind); s1 has its certificate (Caddy's burst is spent).
    set('s1.home.arpa', ws, 'internal');
    const secure = await wsConnect(caddy.httpsPort, 's1.home.arpa', '/', true);
    expect(await secure.ask('tls')).to.equal('ws:tls');
    expect(upgrades).to.deep.equal(['w.home.arpa', 's1.home.arpa']);
    secure.close();
  });
});
