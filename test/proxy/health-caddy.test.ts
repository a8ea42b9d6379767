// Health checks (issue 15, item 3) from a proxied record and an API route through buildDesired()
// and render() to a real Caddy 2.6.2 with real backends: a killed backend stops receiving traffic
// within its fail duration and is back after an active probe; a backend answering an unhealthy
// status is skipped for its fail duration. Waits for events (a probe reaching a backend, a
// request answered), never for a fixed time. Skipped when `caddy` is not installed.
import { expect } from 'chai';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { StoredRecord } from '../../src/model/record.js';
import type { StoredRoute } from '../../src/model/route.js';
import { buildDesired } from '../../src/proxy/desired.js';
import { render } from '../../src/proxy/render.js';
import { hasCaddy, startCaddy, type RunningCaddy } from '../helpers/caddy.js';
import { until } from '../helpers/until.js';

/** A backend answering its name (or 503 when told), emitting `probe` for each GET /health. */
interface Probed extends EventEmitter {
  name: string;
  port: number;
  dial: string;
  hits: number;
  status: number;
  close(): Promise<void>;
}
async function probed(name: string, port = 0): Promise<Probed> {
  const b: Probed = Object.assign(new EventEmitter(), { name, port, dial: '', hits: 0, status: 200, close: () => Promise.resolve() });
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200).end('ok');
      b.emit('probe');
      return;
    }
    b.hits++;
    res.writeHead(b.status, { 'content-type': 'text/plain' }).end(name);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  b.port = (server.address() as AddressInfo).port;
  b.dial = `127.0.0.1:${b.port}`;
  b.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return b;
}

describe('proxy/health with a real Caddy', function () {
  this.timeout(120_000);
  let caddy: RunningCaddy;
  const open: Probed[] = [];

  before(async function () {
    if (!hasCaddy()) this.skip();
    caddy = await startCaddy();
  });
  after(async () => {
    await caddy?.stop();
    await Promise.all(open.map((b) => b.close()));
  });

  const start = async (name: string, port = 0) => {
    const b = await probed(name, port);
    open.push(b);
    return b;
  };
  const get = (host: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = http.request({ host: '127.0.0.1', port: caddy.httpPort, path: '/', headers: { host }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      r.on('error', reject);
      r.end();
    });
  const load = async (records: StoredRecord[], routes: StoredRoute[]) => {
    const { routes: desired, errors } = buildDesired(records, routes, () => undefined);
    expect([...errors]).to.deep.equal([]);
    await caddy.load(render({ settings: { httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', admin: caddy.adminListen }, routes: desired }).config);
  };

  it('a proxied record: a killed backend gets no traffic after its first failure, and is back after a probe', async () => {
    const [a, b] = [await start('a'), await start('b')];
    const record = {
      name: 'rec.home.arpa.',
      zone: 'home.arpa.',
      type: 'A',
      values: ['192.0.2.1'],
      ttl: 60,
      service_name: null,
      proxy: { enabled: true, upstreams: [a.dial, b.dial], health: { passive: { fail_duration: '3s' }, active: { path: '/health', interval: '1s', timeout: '500ms' } } },
      created_at: '2026-01-01T00:00:00.000Z',
      updated_at: '2026-01-01T00:00:00.000Z',
    } as StoredRecord;
    // Both probed once: Caddy runs the config and both are healthy.
    const probes = Promise.all([once(a, 'probe'), once(b, 'probe')]);
    await load([record], []);
    await probes;
    const both = new Set<string>();
    for (let i = 0; i < 10; i++) both.add((await get('rec.home.arpa')).body);
    expect([...both].sort()).to.deep.equal(['a', 'b']);

    // Kill b: its first request fails to dial, is retried on a (the client sees 200), and b is out.
    const bPort = b.port;
    await b.close();
    const killedAt = Date.now();
    const answers: string[] = [];
    for (let i = 0; i < 100; i++) {
      const res = await get('rec.home.arpa');
      expect(res.status).to.equal(200);
      answers.push(res.body);
    }
    expect(new Set(answers)).to.deep.equal(new Set(['a']));
    // 100 requests on loopback take far less than the fail duration: all of them fell inside it.
    expect(Date.now() - killedAt).to.be.below(3000);

    // b back on its port: the next probe marks it healthy and it takes requests again.
    const back = await start('b', bPort);
    const probedAt = await once(back, 'probe').then(() => Date.now());
    const servedAt = await until('b serves again after its probe', 15_000, async () => ((await get('rec.home.arpa')).body === 'b' ? Date.now() : undefined), 20);
    expect(servedAt - probedAt, 'from probe to traffic').to.be.below(5000);
  });

  it('an API route: a backend answering an unhealthy status is skipped for its fail duration, then used again', async () => {
    const [a, c] = [await start('a2'), await start('c')];
    c.status = 503;
    const route: StoredRoute = {
      id: 'api:h',
      hosts: ['h.example.test'],
      path: null,
      upstreams: [a.dial, c.dial],
      tls: 'off',
      health_path: null,
      health: { passive: { fail_duration: '1s', max_fails: 1, unhealthy_status: [503] } },
      created_at: '2026-01-01T00:00:00.000Z',
      updated_at: '2026-01-01T00:00:00.000Z',
    };
    await load([], [route]);
    // Round robin reaches c within two requests; its 503 is passed on and counted as a failure.
    const first = await until('c answered 503', 10_000, async () => {
      const res = await get('h.example.test');
      return res.status === 503 ? Date.now() : undefined;
    }, 0);
    const during: string[] = [];
    while (Date.now() - first < 500) during.push((await get('h.example.test')).body);
    expect(during.length).to.be.greaterThan(0);
    expect(new Set(during)).to.deep.equal(new Set(['a2']));
    c.status = 200;
    const backAt = await until('c used again', 10_000, async () => ((await get('h.example.test')).body === 'c' ? Date.now() : undefined), 20);
    expect(backAt - first, 'skipped for about its fail duration').to.be.at.least(900);
  });
});
