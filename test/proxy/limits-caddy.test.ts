// Route limits (src/proxy/limits.ts) against a real Caddy 2.6.2 with real concurrent requests:
// beyond max_concurrent a request gets 503 with Retry-After (at once, or after its queue wait),
// a queued request is served when a slot frees, a body over max_body_bytes gets 413.
// Event-driven: the backend holds requests until the test releases them. Skipped without `caddy`.
import { expect } from 'chai';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { caddyfileExport } from '../../src/proxy/caddyfile.js';
import { render } from '../../src/proxy/render.js';
import { LIMITED_BODY, RERAISED_MESSAGE, TOO_LARGE_BODY } from '../../src/proxy/limits.js';
import type { DesiredProxy } from '../../src/proxy/types.js';
import { caddyAdapt, hasCaddy, startCaddy, type Reply, type RunningCaddy } from '../helpers/caddy.js';
import { route } from './fixture.js';

/** A backend that answers only when released; emits `arrived` per request. */
interface HoldingBackend extends EventEmitter {
  dial: string;
  held: http.ServerResponse[];
  /** Bytes of each request body it read, in arrival order. */
  bodies: number[];
  release(): void;
  close(): Promise<void>;
}
async function startHoldingBackend(): Promise<HoldingBackend> {
  const ee = new EventEmitter() as HoldingBackend;
  ee.held = [];
  ee.bodies = [];
  const server = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      ee.bodies.push(n);
      if (req.headers['x-hold'] === 'no') return void res.end('quick');
      ee.held.push(res);
      ee.emit('arrived');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  ee.dial = `127.0.0.1:${port}`;
  ee.release = () => ee.held.shift()?.end('released');
  ee.close = () => new Promise<void>((resolve) => {
    for (const r of ee.held.splice(0)) r.end();
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return ee;
}

function send(port: number, host: string, opts: { body?: Buffer; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', method: opts.body ? 'POST' : 'GET', headers: { host, ...opts.headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`request to ${host} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Resolves once the backend holds `n` requests. */
async function holding(b: HoldingBackend, n: number): Promise<void> {
  while (b.held.length < n) await once(b, 'arrived');
}

describe('proxy/limits with a real Caddy', function () {
  this.timeout(60_000);
  let caddy: RunningCaddy;
  let b: HoldingBackend;
  let desired: DesiredProxy;

  before(async function () {
    if (!hasCaddy()) this.skip();
    caddy = await startCaddy();
    b = await startHoldingBackend();
    desired = {
      settings: { httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', admin: caddy.adminListen },
      routes: [
        route('api:now', ['now.example.test'], [b.dial], { limits: { max_concurrent: 2, retry_after_s: 7 } }),
        route('api:queue', ['queue.example.test'], [b.dial], { limits: { max_concurrent: 2, queue_wait_ms: 30_000 } }),
        route('api:short', ['short.example.test'], [b.dial], { limits: { max_concurrent: 1, queue_wait_ms: 300 } }),
        route('api:body', ['body.example.test'], [b.dial], { limits: { max_body_bytes: 1000 } }),
        // Nothing listens on port 9 (discard) on loopback here: every dial is refused.
        route('api:gone', ['gone.example.test'], ['127.0.0.1:9'], { limits: { max_concurrent: 2, max_body_bytes: 1000 } }),
      ],
    };
    await caddy.load(render(desired).config);
  });

  after(async () => {
    await caddy?.stop();
    await b?.close();
  });

  afterEach(() => {
    while (b.held.length) b.release();
  });

  it('beyond max_concurrent: 503 with Retry-After at once; the admitted ones are served; a slot frees after them', async () => {
    const first = [send(caddy.httpPort, 'now.example.test'), send(caddy.httpPort, 'now.example.test')];
    await holding(b, 2);
    const over = await Promise.all([send(caddy.httpPort, 'now.example.test'), send(caddy.httpPort, 'now.example.test')]);
    for (const r of over) {
      expect([r.status, r.body, r.headers['retry-after']]).to.deep.equal([503, LIMITED_BODY, '7']);
    }
    expect(b.held.length).to.equal(2);
    b.release();
    b.release();
    for (const r of await Promise.all(first)) expect([r.status, r.body]).to.deep.equal([200, 'released']);
    const again = send(caddy.httpPort, 'now.example.test');
    await holding(b, 1);
    b.release();
    expect((await again).status).to.equal(200);
  });

  it('with a queue wait, a request beyond the limit waits and is served when a slot frees', async () => {
    const first = [send(caddy.httpPort, 'queue.example.test'), send(caddy.httpPort, 'queue.example.test')];
    await holding(b, 2);
    const queued = send(caddy.httpPort, 'queue.example.test');
    let done = false;
    void queued.then(() => (done = true));
    // The queued request cannot reach the backend until a slot frees: releasing one lets it in.
    b.release();
    await holding(b, 2);
    expect(done).to.equal(false);
    b.release();
    b.release();
    expect((await queued).status).to.equal(200);
    for (const r of await Promise.all(first)) expect(r.status).to.equal(200);
  });

  it('a queue wait that runs out gives 503 with the default Retry-After', async () => {
    const first = send(caddy.httpPort, 'short.example.test');
    await holding(b, 1);
    const t0 = Date.now();
    const over = await send(caddy.httpPort, 'short.example.test');
    expect([over.status, over.headers['retry-after']]).to.deep.equal([503, '1']);
    expect(Date.now() - t0).to.be.at.least(250);
    b.release();
    expect((await first).status).to.equal(200);
  });

  it('a body over max_body_bytes gets 413; one within it reaches the backend', async () => {
    b.bodies.length = 0;
    const ok = await send(caddy.httpPort, 'body.example.test', { body: Buffer.alloc(1000, 'a'), headers: { 'x-hold': 'no' } });
    expect([ok.status, ok.body]).to.deep.equal([200, 'quick']);
    expect(b.bodies).to.deep.equal([1000]);
    const big = await send(caddy.httpPort, 'body.example.test', { body: Buffer.alloc(50_000, 'a'), headers: { 'x-hold': 'no' } });
    expect([big.status, big.body]).to.deep.equal([413, TOO_LARGE_BODY]);
    // Without Content-Length (chunked) the limit is hit while the body is streamed upstream: 413 too.
    const chunked = await send(caddy.httpPort, 'body.example.test', { body: Buffer.alloc(50_000, 'a'), headers: { 'x-hold': 'no', 'transfer-encoding': 'chunked' } });
    expect([chunked.status, chunked.body]).to.deep.equal([413, TOO_LARGE_BODY]);
    expect(b.bodies, 'no over-limit body reached the backend whole').to.deep.equal([1000]);
  });

  it('any other error keeps its status: a refused backend is a 502, not an empty 200', async () => {
    // The limits subroute's error routes handle 503 and 413; before the re-raise route, any other
    // error fell through to the end of the chain and Caddy 2.6.2 answered an empty 200.
    const r = await send(caddy.httpPort, 'gone.example.test');
    expect(r.status).to.equal(502);
    const small = await send(caddy.httpPort, 'gone.example.test', { body: Buffer.alloc(10, 'a') });
    expect(small.status).to.equal(502);
    // Caddy's error log names what failed (2.6.2 expands no placeholder in the error handler's message).
    const logged = caddy.output().split('\n').filter((l) => l.includes('gone.example.test') && l.includes('"status":502'));
    expect(logged.length, caddy.output().slice(-2000)).to.be.at.least(1);
    for (const l of logged) expect(l).to.include(RERAISED_MESSAGE).and.not.include('{http.error.message}');
  });

  it('the Caddyfile export names the limits in a comment and still adapts without warnings', async () => {
    const text = caddyfileExport(desired);
    expect(text).to.include('# limits: max 2 concurrent requests, queue wait 30000 ms, Retry-After 1 s (in the pushed JSON config, not exported)');
    expect(text).to.include('# limits: body at most 1000 bytes');
    expect((await caddyAdapt(text)).warnings).to.deep.equal([]);
  });
});
