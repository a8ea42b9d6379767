// Route auth (src/proxy/auth.ts) against a real Caddy 2.6.2 and real backends: basic auth,
// bearer tokens and forward auth, each refused and let through; credentials never reach the
// backend or Caddy's log. Skipped when `caddy` is not installed.
import { expect } from 'chai';
import bcrypt from 'bcryptjs';
import http from 'node:http';
import type net from 'node:net';
import { render } from '../../src/proxy/render.js';
import { BEARER_DENIED_BODY } from '../../src/proxy/auth.js';
import type { DesiredProxy } from '../../src/proxy/types.js';
import { caddyfileExport } from '../../src/proxy/caddyfile.js';
import { caddyAdapt, hasCaddy, startBackend, startCaddy, type Backend, type Echo, type Reply, type RunningCaddy } from '../helpers/caddy.js';
import { route } from './fixture.js';

const PASSWORD = 'correct horse battery staple';
const TOKEN_A = 'tok-A-0123456789abcdefghijklmnopqrstuvwxyz';
const TOKEN_B = 'tok-B-ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210';

/** One request through Caddy with any method and headers (a fresh connection each). */
function send(port: number, host: string, opts: { path?: string; method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: opts.path ?? '/', method: opts.method ?? 'GET', headers: { host, ...opts.headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`request to ${host} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** What the auth service saw, and how it answers: 200 with Remote-User when `X-Let-In: yes`, else 403. */
interface AuthService {
  dial: string;
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}
async function startAuthService(): Promise<AuthService> {
  const seen: AuthService['seen'] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (req.headers['x-let-in'] === 'yes') res.writeHead(200, { 'Remote-User': 'alice', 'X-Auth-Other': 'not copied' }).end();
    else if (req.headers['x-let-in'] === 'quiet') res.writeHead(204).end();
    else res.writeHead(403, { 'content-type': 'text/plain' }).end('auth service says no');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    dial: `127.0.0.1:${port}`,
    seen,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe('proxy/auth with a real Caddy', function () {
  this.timeout(60_000);
  let caddy: RunningCaddy;
  let backend: Backend;
  let auth: AuthService;
  let desired: DesiredProxy;

  before(async function () {
    if (!hasCaddy()) this.skip();
    caddy = await startCaddy();
    backend = await startBackend('app');
    auth = await startAuthService();
    // Cost 4: the check is the same at any cost; the API's own cost is tested in test/api/route-auth.test.ts.
    const hash = await bcrypt.hash(PASSWORD, 4);
    desired = {
      settings: { httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', admin: caddy.adminListen },
      routes: [
        route('api:basic', ['basic.example.test'], [backend.dial], { auth: { basic: { realm: 'staff', accounts: [{ username: 'bob', hash }] } } }),
        route('api:bearer', ['bearer.example.test'], [backend.dial], { auth: { bearer: { tokens: [TOKEN_A, TOKEN_B] } } }),
        route('api:forward', ['forward.example.test'], [backend.dial], { auth: { forward: { url: `http://${auth.dial}/verify?app=1`, copy_headers: ['Remote-User'], tls_insecure_skip_verify: false } } }),
        route('api:open', ['open.example.test'], [backend.dial]),
        // The route gives its upstream credentials of its own: set replaces the client's, add comes after a strip.
        route('api:basic-set', ['basic-set.example.test'], [backend.dial], { auth: { basic: { accounts: [{ username: 'bob', hash }] } }, headers: { request: { set: { Authorization: 'Bearer upstream-set' } } } }),
        route('api:bearer-add', ['bearer-add.example.test'], [backend.dial], { auth: { bearer: { tokens: [TOKEN_A] } }, headers: { request: { add: { authorization: 'Bearer upstream-add' } } } }),
      ],
    };
    await caddy.load(render(desired).config);
  });

  after(async () => {
    await caddy?.stop();
    await backend?.close();
    await auth?.close();
  });

  const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
  const echo = (r: Reply) => JSON.parse(r.body) as Echo;

  it('basic auth: 401 with the realm without or with wrong credentials, 200 with them; the backend never sees them', async () => {
    expect(JSON.stringify(render(desired).config)).to.include('"hash":{"algorithm":"bcrypt"},"hash_cache":{}');
    const none = await send(caddy.httpPort, 'basic.example.test');
    expect(none.status).to.equal(401);
    expect(none.headers['www-authenticate']).to.equal('Basic realm="staff"');
    expect((await send(caddy.httpPort, 'basic.example.test', { headers: basic('bob', 'wrong') })).status).to.equal(401);
    expect((await send(caddy.httpPort, 'basic.example.test', { headers: basic('mallory', PASSWORD) })).status).to.equal(401);
    const hits = backend.hits;
    for (let i = 0; i < 3; i++) {
      const ok = await send(caddy.httpPort, 'basic.example.test', { headers: basic('bob', PASSWORD) });
      expect(ok.status, ok.body).to.equal(200);
      expect(echo(ok).headers).not.to.have.property('authorization');
    }
    expect(backend.hits - hits).to.equal(3);
  });

  it("the client's credentials are stripped in the reverse_proxy's own header ops, not by a handler of their own", () => {
    const handlers = (id: string) => JSON.stringify((render(desired).config as { apps: { http: { servers: Record<string, { routes: { '@id'?: string; handle: unknown[] }[] }> } } }).apps.http.servers['dnsproxy-http']!.routes.find((r) => r['@id'] === `dnsproxy-route-${id}`)!.handle);
    for (const id of ['api:basic', 'api:bearer']) {
      expect(handlers(id)).not.to.include('"handler":"headers"');
      expect(handlers(id)).to.include('"delete":["Authorization"]');
    }
  });

  it('a route that sets or adds Authorization for its upstream sends its own value, never the client\'s', async () => {
    const set = await send(caddy.httpPort, 'basic-set.example.test', { headers: basic('bob', PASSWORD) });
    expect(set.status, set.body).to.equal(200);
    expect(echo(set).headers.authorization).to.equal('Bearer upstream-set');
    const add = await send(caddy.httpPort, 'bearer-add.example.test', { headers: { authorization: `Bearer ${TOKEN_A}` } });
    expect(add.status, add.body).to.equal(200);
    expect(echo(add).headers.authorization).to.equal('Bearer upstream-add');
    expect((await send(caddy.httpPort, 'bearer-add.example.test')).status).to.equal(401);
  });

  it('bearer: 401 with WWW-Authenticate without or with a wrong token, 200 with either token; the backend never sees it', async () => {
    for (const headers of [{}, { authorization: `Bearer ${TOKEN_A}x` }, { authorization: `Bearer ${TOKEN_A.slice(0, -1)}` }, { authorization: TOKEN_A }, basic('bob', PASSWORD)]) {
      const res = await send(caddy.httpPort, 'bearer.example.test', { headers });
      expect([res.status, res.body], JSON.stringify(headers)).to.deep.equal([401, BEARER_DENIED_BODY]);
      expect(res.headers['www-authenticate']).to.equal('Bearer realm="restricted"');
    }
    const hits = backend.hits;
    for (const token of [TOKEN_A, TOKEN_B]) {
      const ok = await send(caddy.httpPort, 'bearer.example.test', { path: '/x', headers: { authorization: `Bearer ${token}` } });
      expect(ok.status, ok.body).to.equal(200);
      expect(echo(ok).headers).not.to.have.property('authorization');
      expect(echo(ok).url).to.equal('/x');
    }
    expect(backend.hits - hits).to.equal(2);
  });

  it("forward auth: the service's 403 reaches the client and nothing reaches the backend", async () => {
    const hits = backend.hits;
    const res = await send(caddy.httpPort, 'forward.example.test', { path: '/page' });
    expect([res.status, res.body]).to.deep.equal([403, 'auth service says no']);
    expect(backend.hits).to.equal(hits);
  });

  it('forward auth: a 2xx lets the request through with the copied header; the service sees GET, the method and URI, no body', async () => {
    auth.seen.length = 0;
    const res = await send(caddy.httpPort, 'forward.example.test', { path: '/items?id=7', method: 'POST', headers: { 'x-let-in': 'yes', 'remote-user': 'spoofed' } });
    expect(res.status, res.body).to.equal(200);
    const e = echo(res);
    expect(e).to.include({ method: 'POST', url: '/items?id=7' });
    expect(e.headers['remote-user']).to.equal('alice');
    expect(e.headers).not.to.have.property('x-auth-other');
    expect(auth.seen).to.have.length(1);
    expect(auth.seen[0]).to.include({ method: 'GET', url: '/verify?app=1' });
    expect(auth.seen[0]!.headers).to.include({ 'x-forwarded-method': 'POST', 'x-forwarded-uri': '/items?id=7', 'x-forwarded-host': 'forward.example.test' });
    // The client's own Remote-User was deleted before the service was asked.
    expect(auth.seen[0]!.headers).not.to.have.property('remote-user');
  });

  it('forward auth: a header the service leaves out cannot be sent by the client instead', async () => {
    const res = await send(caddy.httpPort, 'forward.example.test', { headers: { 'x-let-in': 'quiet', 'remote-user': 'spoofed' } });
    expect(res.status, res.body).to.equal(200);
    expect(echo(res).headers).not.to.have.property('remote-user');
  });

  it('a route without auth stays open, and no password or token is in Caddy\'s log', async () => {
    expect((await send(caddy.httpPort, 'open.example.test')).status).to.equal(200);
    const log = caddy.output();
    for (const secret of [PASSWORD, TOKEN_A, TOKEN_B, Buffer.from(`bob:${PASSWORD}`).toString('base64')]) expect(log).not.to.include(secret);
  });

  it('the Caddyfile export adapts without warnings, holds no hash or token, and its auth routes answer 403', async () => {
    const text = caddyfileExport(desired);
    const hash = desired.routes[0]!.auth!.basic!.accounts[0]!.hash!;
    for (const secret of [TOKEN_A, TOKEN_B, hash, hash.slice(7)]) expect(text).not.to.include(secret);
    const { config, warnings } = await caddyAdapt(text);
    expect(warnings).to.deep.equal([]);
    const adapted = JSON.stringify(config);
    expect(adapted.match(/this route has auth/g)).to.have.length(desired.routes.filter((r) => r.auth).length);
  });
});
