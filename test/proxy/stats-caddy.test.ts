// Per-host stats from a real Caddy 2.6.2's access log: render() with `accessLog` makes every
// server send each request to our listener; the counts equal what this test sent, for an
// explicit route and a plain (dynamic, DNS-served) name. Also: Caddy keeps serving while our
// listener is gone, and the controller's CPU per 1,000 lines.
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { DnsServer, PlainUpstreams, ZoneIndex, backendOf } from '../../src/dns/index.js';
import { render } from '../../src/proxy/render.js';
import { HostStats } from '../../src/proxy/stats.js';
import { startAccessLogServer, type AccessLogServer } from '../../src/proxy/access-log.js';
import type { DesiredProxy } from '../../src/proxy/types.js';
import { hasCaddy, request, startCaddy, type RunningCaddy } from '../helpers/caddy.js';
import { until } from '../helpers/until.js';
import { route } from './reconcile-fixture.js';

/** Backend answering `/<status>/<bytes>` with that status and a body of that many bytes. */
async function sizedBackend(): Promise<{ dial: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const [, status, bytes] = new URL(req.url ?? '/200/0', 'http://x').pathname.split('/');
    res.writeHead(Number(status) || 200, { 'content-type': 'text/plain' }).end('x'.repeat(Number(bytes) || 0));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    dial: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('per-host stats from a real Caddy access log', function () {
  this.timeout(60_000);
  let caddy: RunningCaddy;
  let dns: DnsServer;
  let backend: Awaited<ReturnType<typeof sizedBackend>>;
  let logs: AccessLogServer;
  const stats = new HostStats();
  const table = new PlainUpstreams();

  before(async function () {
    if (!hasCaddy()) return this.skip();
    caddy = await startCaddy();
    backend = await sizedBackend();
    logs = await startAccessLogServer({ port: 0, stats });
    dns = new DnsServer({ host: '127.0.0.1', port: 0, index: new ZoneIndex([{ name: 'home.arpa.', nameservers: ['ns1.home.arpa.'], hostmaster: 'hostmaster.home.arpa.', nodeIp: '127.0.0.1' }]), upstreams: [], axfrAllow: [], plain: { table, allow: ['127.0.0.0/8'] } });
    await dns.start();
    table.replace(new Map([['plain.home.arpa', { backends: [backendOf(backend.dial)], tls: 'off' as const }]]));
    const desired: DesiredProxy = {
      settings: { admin: caddy.adminListen, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', dynamic: { resolver: `udp/127.0.0.1:${dns.address().port}` }, accessLog: logs.address },
      routes: [route('explicit', backend.dial, { hosts: ['explicit.home.arpa'] })],
    };
    await caddy.load(render(desired).config);
  });
  after(async () => {
    await caddy?.stop();
    await dns?.stop();
    await backend?.close();
    await logs?.close();
  });

  const send = async (host: string, plan: [status: number, bytes: number, times: number][]) => {
    for (const [status, bytes, times] of plan)
      for (let i = 0; i < times; i++) {
        const r = await request({ port: caddy.httpPort, host, path: `/${status}/${bytes}?secret=${i}` });
        expect(r.status).to.equal(status);
      }
  };

  it('counts every request per host, status class and bytes: explicit route and plain name', async () => {
    await send('explicit.home.arpa', [
      [200, 100, 20],
      [404, 7, 5],
      [503, 0, 3],
    ]);
    await send('plain.home.arpa', [
      [200, 1000, 10],
      [302, 0, 2],
    ]);
    await until('all 40 requests counted', 20_000, async () => (stats.counts.lines >= 40 ? true : undefined));
    const ex = stats.host('explicit.home.arpa');
    expect(ex.minute.requests).to.equal(28);
    expect(ex.minute.status).to.deep.equal({ '1xx': 0, '2xx': 20, '3xx': 0, '4xx': 5, '5xx': 3 });
    expect(ex.minute.bytes).to.equal(20 * 100 + 5 * 7);
    expect(ex.hour).to.deep.equal(ex.minute);
    expect(ex.minute.latency_ms.p50).to.be.a('number').greaterThan(0);
    const pl = stats.host('plain.home.arpa');
    expect(pl.minute.requests).to.equal(12);
    expect(pl.minute.status).to.deep.equal({ '1xx': 0, '2xx': 10, '3xx': 2, '4xx': 0, '5xx': 0 });
    expect(pl.minute.bytes).to.equal(10 * 1000);
    expect(stats.all().map((h) => h.host)).to.deep.equal(['explicit.home.arpa', 'plain.home.arpa']);
    expect(stats.counts.ignored).to.equal(0);
  });

  it('receives no client address, header or query string', async () => {
    const lines: string[] = [];
    const peek = new HostStats();
    const orig = peek.ingest.bind(peek);
    peek.ingest = (line: string) => (lines.push(line), orig(line));
    const spy = await startAccessLogServer({ port: 0, stats: peek });
    try {
      // A second listener sees the same stream shape: load the config with it, send one request.
      const desired: DesiredProxy = {
        settings: { admin: caddy.adminListen, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', accessLog: spy.address },
        routes: [route('explicit', backend.dial, { hosts: ['explicit.home.arpa'] })],
      };
      await caddy.load(render(desired).config);
      await request({ port: caddy.httpPort, host: 'explicit.home.arpa', path: '/200/1?secret=abc' });
      await until('one line', 20_000, async () => (lines.length >= 1 ? true : undefined));
      const line = lines[0]!;
      expect(line).to.not.match(/127\.0\.0\.1|secret|remote_ip|remote_port|User-Agent|headers/);
      expect(JSON.parse(line)).to.include.keys('status', 'size', 'duration');
    } finally {
      await spy.close();
    }
  });

  it('Caddy keeps serving while the listener is down', async () => {
    const down = await startAccessLogServer({ port: 0, stats: new HostStats() });
    const desired: DesiredProxy = {
      settings: { admin: caddy.adminListen, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', accessLog: down.address },
      routes: [route('explicit', backend.dial, { hosts: ['explicit.home.arpa'] })],
    };
    await caddy.load(render(desired).config);
    await down.close();
    const start = Date.now();
    for (let i = 0; i < 50; i++) expect((await request({ port: caddy.httpPort, host: 'explicit.home.arpa', path: '/200/1' })).status).to.equal(200);
    console.log(`      50 requests with the log listener down: all 200 in ${Date.now() - start} ms`);
    // A load with the same writer address keeps Caddy's open writer (it is reused across loads by its key) ...
    const again = render({ ...desired, routes: [route('explicit', backend.dial, { hosts: ['explicit.home.arpa', 'again.home.arpa'] })] });
    await caddy.load(again.config);
    // ... but a new address nothing listens on fails the whole load in 2.6.2 (dialled at provisioning).
    const closed = await startAccessLogServer({ port: 0, stats: new HostStats() });
    await closed.close();
    const refused = await caddy.admin('POST', '/load', JSON.stringify(render({ ...desired, settings: { ...desired.settings, accessLog: closed.address } }).config), { 'content-type': 'application/json' });
    expect(refused.status).to.equal(400);
    expect(refused.text).to.match(/opening log writer/);
    expect((await request({ port: caddy.httpPort, host: 'again.home.arpa', path: '/200/1' })).status).to.equal(200);
  });

  it('costs little controller CPU per 1,000 lines (real Caddy lines through the socket)', async () => {
    const sample = new HostStats();
    const lines: string[] = [];
    const orig = sample.ingest.bind(sample);
    sample.ingest = (line: string) => (lines.push(line), orig(line));
    const srv = await startAccessLogServer({ port: 0, stats: sample });
    const desired: DesiredProxy = {
      settings: { admin: caddy.adminListen, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', accessLog: srv.address },
      routes: [route('explicit', backend.dial, { hosts: ['explicit.home.arpa'] })],
    };
    await caddy.load(render(desired).config);
    await request({ port: caddy.httpPort, host: 'explicit.home.arpa', path: '/200/10' });
    await until('a real line', 20_000, async () => (lines.length >= 1 ? true : undefined));
    await srv.close();
    // Replay 20,000 copies of that line (200 hosts) through a fresh listener over loopback TCP.
    const target = new HostStats();
    const rx = await startAccessLogServer({ port: 0, stats: target });
    const N = 20_000;
    const payload = Array.from({ length: N }, (_, i) => lines[0]!.replace('explicit.home.arpa', `h${i % 200}.home.arpa`)).join('\n') + '\n';
    const before = process.cpuUsage();
    const sock = net.connect(rx.port, '127.0.0.1');
    sock.end(payload);
    await until('all replayed lines counted', 20_000, async () => (target.counts.lines >= N ? true : undefined), 5);
    const used = process.cpuUsage(before);
    const perThousandMs = (used.user + used.system) / 1000 / (N / 1000);
    console.log(`      controller CPU: ${perThousandMs.toFixed(2)} ms per 1,000 access-log lines (${N} lines, ${lines[0]!.length} bytes each)`);
    expect(target.counts.lines).to.equal(N);
    expect(target.size).to.equal(200);
    await rx.close();
  });
});
