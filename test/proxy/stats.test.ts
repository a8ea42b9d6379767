// HostStats (pure, injected clock) and the access-log listener's line handling.
import { expect } from 'chai';
import net from 'node:net';
import { HostStats, normaliseHost, parseAccessLine, DEFAULT_MAX_HOSTS, UNROUTED } from '../../src/proxy/stats.js';
import { MAX_LINE_BYTES, accessLogging, startAccessLogServer } from '../../src/proxy/access-log.js';
import { render } from '../../src/proxy/render.js';
import { until } from '../helpers/until.js';
import { desired, route } from './reconcile-fixture.js';

const line = (host: string, status: number, size: number, seconds: number) =>
  JSON.stringify({ level: 'info', logger: 'http.log.access.dnsproxy-stats', msg: 'handled request', request: { host, method: 'GET' }, duration: seconds, size, status });

describe('HostStats', () => {
  let t = 0;
  const now = () => t;
  beforeEach(() => (t = 1_000_000_000_000));

  it('parses Caddy lines and ignores anything else', () => {
    expect(parseAccessLine(line('A.Example.com:8080', 0, 5, 0.002))).to.deep.equal({ host: 'a.example.com', status: 200, size: 5, durationMs: 2 });
    expect(parseAccessLine('not json')).to.equal(null);
    expect(parseAccessLine('null')).to.equal(null);
    expect(parseAccessLine(JSON.stringify({ msg: 'x' }))).to.equal(null);
    expect(parseAccessLine(line('[::1]:80', 200, 1, 0.001))).to.equal(null);
    expect(normaliseHost('x.test.')).to.equal('x.test');
    expect(normaliseHost('bad host')).to.equal(null);
  });

  it('counts per host and status class, and forgets the minute after a minute and the hour after an hour', () => {
    const s = new HostStats({ now });
    for (let i = 0; i < 10; i++) s.ingest(line('a.test', 200, 100, 0.001));
    s.ingest(line('a.test', 404, 3, 0.001));
    s.ingest(line('a.test', 502, 0, 0.001));
    s.ingest(line('a.test', 101, 0, 0.001));
    s.ingest(line('a.test', 301, 0, 0.001));
    s.ingest(line('a.test', 999, 0, 0.001));
    expect(s.ingest('junk')).to.equal(false);
    const a = s.host('a.test');
    expect(a.minute.requests).to.equal(15);
    expect(a.minute.status).to.deep.equal({ '1xx': 1, '2xx': 10, '3xx': 1, '4xx': 1, '5xx': 1 });
    expect(a.minute.bytes).to.equal(1003);
    expect(s.counts).to.deep.equal({ lines: 15, ignored: 1, evicted: 0 });
    t += 61_000;
    expect(s.host('a.test').minute.requests).to.equal(0);
    expect(s.host('a.test').minute.latency_ms.p50).to.equal(null);
    expect(s.host('a.test').hour.requests).to.equal(15);
    s.ingest(line('a.test', 200, 1, 0.001));
    expect(s.host('a.test').minute.requests).to.equal(1);
    expect(s.host('a.test').hour.requests).to.equal(16);
    t += 3_600_000;
    expect(s.host('a.test').hour.requests).to.equal(0);
    expect(s.all()).to.deep.equal([]);
    expect(s.host('never.test').last_seen).to.equal(null);
  });

  it('reports latency percentiles within the histogram bin width (≤ 15 %)', () => {
    const s = new HostStats({ now });
    // 1..100 ms: p50 = 50, p95 = 95, p99 = 99.
    for (let ms = 1; ms <= 100; ms++) s.ingest(line('l.test', 200, 0, ms / 1000));
    const { p50, p95, p99 } = s.host('l.test').minute.latency_ms;
    for (const [got, want] of [
      [p50, 50],
      [p95, 95],
      [p99, 99],
    ] as const) {
      expect(got).to.be.at.least(want);
      expect(got).to.be.at.most(want * 1.15);
    }
    // Never above the slowest request.
    const one = new HostStats({ now });
    one.ingest(line('o.test', 200, 0, 0.0031));
    expect(one.host('o.test').minute.latency_ms.p99).to.equal(3.1);
  });

  it('counts hosts no route serves together, so made-up Host headers take one slot', () => {
    const s = new HostStats({ now, maxHosts: 3, accept: (h) => h === 'real.test' });
    s.ingest(line('real.test', 200, 1, 0));
    for (let i = 0; i < 50; i++) s.ingest(line(`junk${i}.test`, 404, 2, 0));
    expect(s.all().map((h) => h.host)).to.deep.equal([UNROUTED, 'real.test']);
    expect(s.host(UNROUTED).minute.status['4xx']).to.equal(50);
    expect(s.host('real.test').minute.requests).to.equal(1);
    expect(s.counts.evicted).to.equal(0);
  });

  it('keeps at most maxHosts hosts, dropping the least recently seen', () => {
    const s = new HostStats({ now, maxHosts: 3 });
    for (const h of ['a', 'b', 'c']) s.ingest(line(`${h}.test`, 200, 0, 0));
    s.ingest(line('a.test', 200, 0, 0)); // a is now the most recent
    s.ingest(line('d.test', 200, 0, 0)); // b goes
    expect(s.all().map((h) => h.host)).to.deep.equal(['a.test', 'c.test', 'd.test']);
    expect(s.counts.evicted).to.equal(1);
    expect(s.host('a.test').minute.requests).to.equal(2);
    expect(DEFAULT_MAX_HOSTS).to.be.greaterThan(0);
  });
});

describe('access-log listener', () => {
  it('splits lines across chunks and drops over-long lines whole', async () => {
    const stats = new HostStats();
    const srv = await startAccessLogServer({ port: 0, stats });
    try {
      const sock = net.connect(srv.port, '127.0.0.1');
      const l = line('c.test', 200, 7, 0.001);
      sock.write(l.slice(0, 10));
      sock.write(`${l.slice(10)}\n${'x'.repeat(MAX_LINE_BYTES + 10)}`);
      sock.write(`${'y'.repeat(MAX_LINE_BYTES)}\n${l}\n`);
      await until('two lines counted', 10_000, async () => (stats.counts.lines >= 2 ? true : undefined), 5);
      expect(srv.counts.dropped).to.equal(1);
      expect(stats.host('c.test').minute.bytes).to.equal(14);
      sock.destroy();
    } finally {
      await srv.close();
    }
  });

  it('is rendered into every server and the logging app only when set', () => {
    const d = desired([route('a', '127.0.0.1:9000', { tls: 'internal' })]);
    const without = render(d).config as { logging?: unknown; apps: { http: { servers: Record<string, { logs?: unknown }> } } };
    expect(without.logging).to.equal(undefined);
    const withLog = render({ ...d, settings: { ...d.settings, accessLog: 'tcp/127.0.0.1:5555' } }).config as typeof without;
    const servers = Object.values(withLog.apps.http.servers);
    expect(servers).to.have.length(2);
    for (const s of servers) expect(s.logs).to.deep.equal({ default_logger_name: 'dnsproxy-stats' });
    expect(withLog.logging).to.deep.equal(accessLogging('tcp/127.0.0.1:5555'));
  });
});
