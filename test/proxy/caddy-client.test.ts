// CaddyAdmin against a scripted HTTP server (retries, error types, timeouts) and against a real
// Caddy 2.6 (its admin API on an owner-only unix socket and on loopback TCP: Host check, 400
// text, markers, ping); validateWithCaddy on real configs.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { promisify } from 'node:util';
import { parseAdminAddress } from '../../src/proxy/admin-address.js';
import { CaddyAdmin, CaddyRejected, CaddyUnavailable, ValidatorUnavailable, revisionOf, validateWithCaddy } from '../../src/proxy/caddy.js';
import { join } from 'node:path';
import { markerId, markerPath, render } from '../../src/proxy/render.js';
import type { DesiredProxy, DesiredRoute } from '../../src/proxy/types.js';
import { freePort, hasCaddy, startCaddy, type RunningCaddy } from '../helpers/caddy.js';
import { tempDir } from '../helpers/tmp.js';
import { route } from './reconcile-fixture.js';

async function scripted(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void, socket?: string) {
  const seen: { method: string; url: string; host: string; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host ?? '', body });
      answer(req, res);
    });
  });
  if (socket) await new Promise<void>((r) => server.listen(socket, r));
  else await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const admin = socket ? `unix/${socket}` : `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return { seen, admin, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

describe('CaddyAdmin (scripted admin API)', () => {
  it('accepts a unix socket or a loopback host:port as the admin address, nothing else', () => {
    expect(parseAdminAddress('unix//run/dnsproxy/caddy-admin.sock')).to.deep.equal({ kind: 'unix', path: '/run/dnsproxy/caddy-admin.sock' });
    expect(parseAdminAddress('[::1]:2019')).to.deep.equal({ kind: 'tcp', host: '::1', port: 2019 });
    for (const ok of ['127.0.0.1:2019', '127.3.2.1:1', 'localhost:2019', '[::1]:2019', 'unix//run/caddy-admin.sock']) expect(() => new CaddyAdmin(ok), ok).not.to.throw();
    const bad: [string, RegExp][] = [
      ['10.0.0.1:2019', /loopback/],
      ['0.0.0.0:2019', /loopback/],
      ['example.com:2019', /loopback/],
      ['127.evil.example:2019', /loopback/],
      ['[::]:2019', /loopback/],
      [':2019', /loopback/],
      ['127.0.0.1', /loopback/],
      ['127.0.0.1:0', /loopback/],
      ['127.0.0.1:70000', /loopback/],
      ['http://127.0.0.1:2019', /loopback/],
      ['unix/run/caddy.sock', /must be absolute/],
      ['unix//run/{env.X}.sock', /may hold only/],
      ['unix//run/caddy.sock|0600', /may hold only/],
      [`unix//${'x'.repeat(120)}.sock`, /longer than 107 bytes/],
    ];
    for (const [address, why] of bad) expect(() => new CaddyAdmin(address), address).to.throw(why);
  });

  it('over a unix socket: sends an empty Host header (what Caddy 2.6.2 accepts there)', async () => {
    const dir = tempDir();
    const s = await scripted((_q, res) => res.writeHead(200).end('"dnsproxy-cfg-2"'), join(dir.dir, 'admin.sock'));
    try {
      const c = new CaddyAdmin(s.admin);
      await c.load({ apps: {} });
      expect(await c.getMarker('/config/x/@id')).to.equal('dnsproxy-cfg-2');
      expect(s.seen).to.deep.equal([
        { method: 'POST', url: '/load', host: '', body: '{"apps":{}}' },
        { method: 'GET', url: '/config/x/@id', host: '', body: '' },
      ]);
    } finally {
      await s.close();
      dir.cleanup();
    }
  });

  it('POSTs JSON to /load with a Host header Caddy accepts', async () => {
    const s = await scripted((_q, res) => res.writeHead(200).end());
    try {
      await new CaddyAdmin(s.admin).load({ apps: {} });
      expect(s.seen).to.deep.equal([{ method: 'POST', url: '/load', host: s.admin, body: '{"apps":{}}' }]);
    } finally {
      await s.close();
    }
  });

  it('4xx → CaddyRejected with Caddy\'s text, not retried', async () => {
    const s = await scripted((_q, res) => res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"loading config: parse \\"%zz\\": invalid URL escape \\"%zz\\""}'));
    try {
      const err = await new CaddyAdmin(s.admin).load({}).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(CaddyRejected);
      expect((err as CaddyRejected).caddyError).to.equal('loading config: parse "%zz": invalid URL escape "%zz"');
      expect((err as CaddyRejected).caddyStatus).to.equal(400);
      expect(s.seen).to.have.length(1);
    } finally {
      await s.close();
    }
  });

  it('5xx → retried 3 times with backoff, then CaddyUnavailable; a later success is returned', async () => {
    let n = 0;
    const s = await scripted((_q, res) => (++n < 3 ? res.writeHead(502).end('bad gateway') : res.writeHead(200).end('"dnsproxy-cfg-1"')));
    try {
      const t0 = Date.now();
      expect(await new CaddyAdmin(s.admin).getMarker('/config/x/@id')).to.equal('dnsproxy-cfg-1');
      expect(Date.now() - t0).to.be.at.least(300);
      n = -10;
      const err = await new CaddyAdmin(s.admin).config().catch((e: unknown) => e);
      expect(err).to.be.instanceOf(CaddyUnavailable);
      expect((err as CaddyUnavailable).caddyStatus).to.equal(502);
      expect(s.seen).to.have.length(6);
    } finally {
      await s.close();
    }
  });

  it('connection refused and timeouts → CaddyUnavailable', async () => {
    const port = await freePort();
    const refused = await new CaddyAdmin(`127.0.0.1:${port}`).load({}).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(CaddyUnavailable);
    expect((refused as Error).message).to.match(/ECONNREFUSED/);
    const s = await scripted(() => undefined); // never answers
    try {
      const t0 = Date.now();
      const slow = await new CaddyAdmin(s.admin, { readTimeoutMs: 100 }).config().catch((e: unknown) => e);
      expect(slow).to.be.instanceOf(CaddyUnavailable);
      expect(Date.now() - t0).to.be.within(300, 2_000);
      expect(s.seen).to.have.length(3);
    } finally {
      await s.close();
    }
  });

  it('getMarker: 404, 400 (missing parent), JSON null and non-strings are null; 403 is a rejection', async () => {
    const answers: [number, string][] = [
      [404, '{"error":"unknown object ID"}'],
      [400, '{"error":"invalid traversal path at: config/apps/http/servers/x/@id"}'],
      [200, 'null\n'],
      [200, '{"a":1}'],
      [200, ''],
      [403, '{"error":"host not allowed: example.com"}'],
    ];
    const s = await scripted((_q, res) => {
      const [code, body] = answers.shift()!;
      res.writeHead(code).end(body);
    });
    try {
      const c = new CaddyAdmin(s.admin);
      for (let i = 0; i < 5; i++) expect(await c.getMarker('/config/apps/http/servers/x/@id')).to.equal(null);
      const err = await c.getMarker('/config/').catch((e: unknown) => e);
      expect(err).to.be.instanceOf(CaddyRejected);
      expect((err as CaddyRejected).caddyError).to.equal('host not allowed: example.com');
    } finally {
      await s.close();
    }
  });

  it('revision: GET exactly /metrics; start time + admin requests that may change the config; null on 404', async () => {
    // The shape of Caddy 2.6.2's /metrics (labels sorted; counters appear once a request was counted).
    const text = [
      '# HELP caddy_admin_http_requests_total Counter of requests made to the Admin API\'s HTTP endpoints.',
      '# TYPE caddy_admin_http_requests_total counter',
      'caddy_admin_http_requests_total{code="200",handler="admin",method="GET",path="/config/"} 17',
      'caddy_admin_http_requests_total{code="200",handler="load",method="POST",path="/load"} 2',
      'caddy_admin_http_requests_total{code="400",handler="load",method="POST",path="/load"} 1',
      'caddy_admin_http_requests_total{code="200",handler="admin",method="PATCH",path="/config/"} 1',
      'caddy_admin_http_requests_total{code="200",handler="admin",method="DELETE",path="/id/"} 1',
      'caddy_admin_http_requests_total{code="200",handler="metrics",method="GET",path="/metrics"} 40',
      'caddy_admin_http_requests_total{code="200",handler="admin",method="OPTIONS",path="/config/"} 3',
      'process_start_time_seconds 1.7966531386e+09',
      '',
    ].join('\n');
    expect(revisionOf(text)).to.equal('1.7966531386e+09/5');
    expect(revisionOf(text.replace('} 17', '} 18').replace('} 40', '} 41'))).to.equal('1.7966531386e+09/5');
    expect(revisionOf(text.replace('method="POST",path="/load"} 2', 'method="POST",path="/load"} 3'))).to.equal('1.7966531386e+09/6');
    expect(revisionOf(text.replace('1.7966531386e+09', '1.7966532001e+09'))).to.equal('1.7966532001e+09/5');
    expect(revisionOf('caddy_admin_http_requests_total{code="200",handler="load",method="POST",path="/load"} 2\n')).to.equal(null);
    const answers: [number, string][] = [
      [200, text],
      [404, '404 page not found'],
    ];
    const s = await scripted((_q, res) => {
      const [code, body] = answers.shift()!;
      res.writeHead(code).end(body);
    });
    try {
      const c = new CaddyAdmin(s.admin);
      expect(await c.revision()).to.equal('1.7966531386e+09/5');
      expect(await c.revision()).to.equal(null);
      expect(s.seen.map((q) => `${q.method} ${q.url}`)).to.deep.equal(['GET /metrics', 'GET /metrics']);
    } finally {
      await s.close();
    }
    const down = await new CaddyAdmin(`127.0.0.1:${await freePort()}`).revision().catch((e: unknown) => e);
    expect(down).to.be.instanceOf(CaddyUnavailable);
  });

  it('ping is down, without throwing, when nothing listens', async () => {
    expect(await new CaddyAdmin(`127.0.0.1:${await freePort()}`).ping()).to.deep.equal({ up: false });
  });
});

describe('CaddyAdmin and caddy validate (real Caddy 2.6)', function () {
  let caddy: RunningCaddy | undefined;
  let env: NodeJS.ProcessEnv;
  const doc = (routes: DesiredRoute[], httpPort = caddy!.httpPort): DesiredProxy => ({
    settings: { admin: caddy!.adminListen, httpPort, httpsPort: caddy!.httpsPort, listenIp: '127.0.0.1' },
    routes,
  });
  before(async function () {
    if (!hasCaddy()) return this.skip();
    caddy = await startCaddy();
    env = { ...process.env, HOME: caddy.dir, XDG_DATA_HOME: join(caddy.dir, 'data'), XDG_CONFIG_HOME: join(caddy.dir, 'config') };
  });
  after(async () => caddy?.stop());

  it("loads, reads the marker back, and reports Caddy's 400 text readably", async () => {
    const c = new CaddyAdmin(caddy!.adminListen);
    const r = render(doc([route('a', '127.0.0.1:9')]));
    await c.load(r.config);
    expect(await c.getMarker(markerPath())).to.equal(markerId(r.hash));
    expect(await c.getMarker('/config/apps/http/servers/nope/@id')).to.equal(null);
    const bad = render(doc([route('a', '127.0.0.1:9', { health_path: '/%zz' })]));
    const err = await c.load(bad.config).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(CaddyRejected);
    expect((err as CaddyRejected).caddyError).to.match(/setting up route handlers: route 0: .*parse "\/%zz": invalid URL escape "%zz"$/);
    // The old config is still running.
    expect(await c.getMarker(markerPath())).to.equal(markerId(r.hash));
  });

  it('the admin socket is owner-only: srwx------ in a 0700 directory; another user cannot connect', async () => {
    const socket = caddy!.adminSocket!;
    expect(statSync(socket).isSocket()).to.equal(true);
    expect((statSync(socket).mode & 0o777).toString(8)).to.equal('700');
    expect((statSync(join(socket, '..')).mode & 0o777).toString(8)).to.equal('700');
    // As root the test can try as nobody (uid 65534). The directories are opened for traversal
    // meanwhile, so the socket's own mode is what stops it (connecting needs write permission on
    // the socket); with the socket made 0777 the same probe connects, so the probe is not vacuous.
    if (process.getuid?.() !== 0) return;
    const dirs = [caddy!.dir, join(socket, '..')];
    const probe = `require('net').connect(process.argv[1]).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`;
    const asNobody = async () => (await promisify(execFile)(process.execPath, ['-e', probe, socket], { uid: 65534, gid: 65534, cwd: '/' })).stdout.trim();
    try {
      for (const d of dirs) chmodSync(d, 0o711);
      expect(await asNobody()).to.equal('EACCES');
      chmodSync(socket, 0o777);
      expect(await asNobody()).to.equal('connected');
    } finally {
      chmodSync(socket, 0o700);
      for (const d of dirs) chmodSync(d, 0o700);
    }
  });

  it("over the socket Caddy 2.6.2 refuses any Host but the empty one (403 'host not allowed')", async () => {
    const empty = await caddy!.admin('GET', '/config/');
    expect(empty.status).to.equal(200);
    const named = await caddy!.admin('GET', '/config/', undefined, { Host: 'localhost' });
    expect(named).to.deep.equal({ status: 403, text: '{"error":"host not allowed: localhost"}\n' });
  });

  it('loopback TCP when configured (127.0.0.1:<port>): the same client works, localhost is accepted as the admin host too', async () => {
    const tcp = await startCaddy({ admin: 'tcp' });
    try {
      const port = tcp.adminListen.split(':')[1];
      for (const admin of [tcp.adminListen, `localhost:${port}`]) {
        const c = new CaddyAdmin(admin);
        const r = render({ settings: { admin: tcp.adminListen, httpPort: tcp.httpPort, httpsPort: tcp.httpsPort, listenIp: '127.0.0.1' }, routes: [route('a', '127.0.0.1:9')] });
        await c.load(r.config);
        expect(await c.getMarker(markerPath()), admin).to.equal(markerId(r.hash));
      }
    } finally {
      await tcp.stop();
    }
  });

  it("revision: stays put under reads, moves on every load (even a refused one) and on a restart; Caddy logs none of its requests", async () => {
    const own = await startCaddy();
    try {
      const c = new CaddyAdmin(own.adminListen);
      const settings = { admin: own.adminListen, httpPort: own.httpPort, httpsPort: own.httpsPort, listenIp: '127.0.0.1' };
      const r0 = await c.revision();
      expect(r0).to.match(/^\d\.\d+e\+09\/0$/);
      /** URIs of the admin requests Caddy logged, up to a sentinel request of ours whose line has come through the pipe. */
      const loggedUpTo = async (n: number): Promise<string[]> => {
        expect((await own.admin('GET', `/config/admin/listen?sentinel=${n}`)).status).to.equal(200);
        const t0 = performance.now();
        while (!own.output().includes(`sentinel=${n}"`)) {
          if (performance.now() - t0 > 5_000) throw new Error("Caddy's log line for the sentinel did not arrive");
          await new Promise((res) => setTimeout(res, 10));
        }
        return own
          .output()
          .split('\n')
          .filter((l) => l.includes('"received request"'))
          .map((l) => (JSON.parse(l) as { uri: string }).uri);
      };
      const before = (await loggedUpTo(0)).length;
      for (let i = 0; i < 5; i++) expect(await c.revision()).to.equal(r0);
      await c.getMarker(markerPath());
      await c.config();
      expect(await c.revision()).to.equal(r0);
      await c.load(render({ settings, routes: [route('a', '127.0.0.1:9')] }).config);
      const r1 = await c.revision();
      expect(r1).to.not.equal(r0);
      await c.load(render({ settings, routes: [route('a', '127.0.0.1:9', { health_path: '/%zz' })] }).config).catch((e: unknown) => expect(e).to.be.instanceOf(CaddyRejected));
      const r2 = await c.revision();
      expect(r2).to.not.equal(r1);
      // Every line Caddy logged since: the marker read, the config read and the two loads, each once; no /metrics.
      expect((await loggedUpTo(1)).slice(before)).to.deep.equal(['/config/@id', '/config/', '/load', '/load', '/config/admin/listen?sentinel=1']);
      await own.restart();
      const r3 = await c.revision();
      expect(r3).to.match(/\/0$/);
      expect(r3!.split('/')[0]).to.not.equal(r0!.split('/')[0]);
    } finally {
      await own.stop();
    }
  });

  it("ping: up, with the process start time (no PID or version in 2.6's admin API)", async () => {
    const p = await new CaddyAdmin(caddy!.adminListen).ping();
    expect(p.up).to.equal(true);
    expect(p.startedAt).to.be.a('number').within(Date.now() - 600_000, Date.now() + 1_000);
    expect(p.pid).to.equal(undefined);
  });

  it("validateWithCaddy: null for a good config, Caddy's text for a bad one, without binding ports", async () => {
    // A port held by a plain socket (no SO_REUSEPORT): a live load cannot bind it, validate does not try.
    const held = net.createServer();
    await new Promise<void>((r) => held.listen(0, '127.0.0.1', r));
    const heldPort = (held.address() as net.AddressInfo).port;
    try {
      const good = render(doc([route('a', '127.0.0.1:9', { health_path: '/ok' })], heldPort));
      const bad = render(doc([route('a', '127.0.0.1:9'), route('b', '127.0.0.1:9', { health_path: '/%zz' })], heldPort));
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        expect(await validateWithCaddy(good.config, { env })).to.equal(null);
        times.push(performance.now() - t0);
      }
      expect(await validateWithCaddy(bad.config, { env })).to.match(/^loading http app module: .*setting up route handlers: route 1: .*invalid URL escape "%zz"$/);
      const live = await new CaddyAdmin(caddy!.adminListen).load(good.config).catch((e: unknown) => e);
      expect(live).to.be.instanceOf(CaddyRejected);
      expect((live as CaddyRejected).caddyError).to.match(/address already in use/);
      console.log(`      caddy validate: ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
    } finally {
      held.close();
    }
  });

  it('validateWithCaddy: ValidatorUnavailable when the binary is missing', async () => {
    const err = await validateWithCaddy({}, { bin: '/nonexistent/caddy' }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ValidatorUnavailable);
  });
});
