// Route headers (src/proxy/headers.ts) against a real Caddy 2.6.2 and real backends: request
// and response headers set/added/deleted, X-Forwarded-* and X-Real-IP still on, the upstream
// Host kept or rewritten, HTTPS upstreams with and without verification. Skipped without `caddy`.
import { expect } from 'chai';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { selfSignedCert } from '../../src/mail/credentials/cert.js';
import { caddyfileExport } from '../../src/proxy/caddyfile.js';
import { render } from '../../src/proxy/render.js';
import type { DesiredProxy } from '../../src/proxy/types.js';
import { caddyAdapt, hasCaddy, startCaddy, type Reply, type RunningCaddy } from '../helpers/caddy.js';
import { route } from './fixture.js';

/** A backend answering with the request's headers as JSON and two headers of its own. */
interface HeaderBackend {
  dial: string;
  close(): Promise<void>;
}
async function startHeaderBackend(tls?: { key: string; cert: string }): Promise<HeaderBackend> {
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-backend-secret': 'internal', 'x-backend-kept': 'yes' }).end(JSON.stringify({ headers: req.headers, raw: req.rawHeaders }));
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    dial: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function send(port: number, host: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/p?q=1', headers: { host, ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('proxy/headers with a real Caddy', function () {
  this.timeout(60_000);
  let caddy: RunningCaddy;
  let plain: HeaderBackend;
  let secure: HeaderBackend;
  let desired: DesiredProxy;

  before(async function () {
    if (!hasCaddy()) this.skip();
    caddy = await startCaddy();
    plain = await startHeaderBackend();
    secure = await startHeaderBackend(await selfSignedCert('backend.example.test', new Date()));
    desired = {
      settings: { httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', admin: caddy.adminListen },
      routes: [
        route('api:ops', ['ops.example.test'], [plain.dial], {
          headers: {
            request: { set: { 'X-App': 'v1 {http.request.host} {http.request.method}', 'X-Override': 'ours' }, add: { 'X-Multi': 'second' }, delete: ['X-Drop-Me'] },
            response: { set: { 'X-Served-By': 'dnsproxy' }, delete: ['X-Backend-Secret'] },
          },
        }),
        route('api:host-upstream', ['hu.example.test'], [plain.dial], { headers: { upstream_host: 'upstream' } }),
        route('api:host-name', ['hn.example.test'], [plain.dial], { headers: { upstream_host: 'internal.example.test' } }),
        route('api:host-keep', ['hk.example.test'], [plain.dial], { headers: { upstream_host: 'keep' } }),
        route('api:tls-insecure', ['ti.example.test'], [secure.dial], { headers: { upstream_tls: 'insecure' } }),
        route('api:tls-verify', ['tv.example.test'], [secure.dial], { headers: { upstream_tls: 'verify', upstream_tls_server_name: 'backend.example.test' } }),
        route('api:tls-off', ['to.example.test'], [secure.dial]),
      ],
    };
    await caddy.load(render(desired).config);
  });

  after(async () => {
    await caddy?.stop();
    await plain?.close();
    await secure?.close();
  });

  const seen = (r: Reply) => (JSON.parse(r.body) as { headers: http.IncomingHttpHeaders }).headers;

  it('request headers are set (placeholders expanded), added and deleted; X-Forwarded-* and X-Real-IP stay on', async () => {
    const res = await send(caddy.httpPort, 'ops.example.test', { 'x-override': 'client', 'x-multi': 'first', 'x-drop-me': 'gone', 'x-forwarded-for': '203.0.113.9', 'x-real-ip': '203.0.113.9' });
    expect(res.status, res.body).to.equal(200);
    const h = seen(res);
    expect(h).to.include({ 'x-app': 'v1 ops.example.test GET', 'x-override': 'ours', 'x-multi': 'first, second', host: 'ops.example.test' });
    expect(h).not.to.have.property('x-drop-me');
    expect(h).to.include({ 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'ops.example.test', 'x-real-ip': '127.0.0.1' });
  });

  it('response headers are set and deleted; the others pass', async () => {
    const res = await send(caddy.httpPort, 'ops.example.test');
    expect(res.headers).to.include({ 'x-served-by': 'dnsproxy', 'x-backend-kept': 'yes' });
    expect(res.headers).not.to.have.property('x-backend-secret');
  });

  it('the upstream Host is kept by default and with keep, or rewritten to the upstream or a name; X-Forwarded-Host keeps the client\'s', async () => {
    expect(seen(await send(caddy.httpPort, 'hk.example.test')).host).to.equal('hk.example.test');
    const up = seen(await send(caddy.httpPort, 'hu.example.test'));
    expect(up).to.include({ host: plain.dial, 'x-forwarded-host': 'hu.example.test' });
    expect(seen(await send(caddy.httpPort, 'hn.example.test'))).to.include({ host: 'internal.example.test', 'x-forwarded-host': 'hn.example.test' });
  });

  it('HTTPS upstreams: insecure reaches a self-signed backend, verify refuses it (502), plain HTTP to it fails', async () => {
    const ok = await send(caddy.httpPort, 'ti.example.test');
    expect(ok.status, ok.body).to.equal(200);
    expect(seen(ok).host).to.equal('ti.example.test');
    expect((await send(caddy.httpPort, 'tv.example.test')).status).to.equal(502);
    expect((await send(caddy.httpPort, 'to.example.test')).status).to.equal(502);
  });

  it('the Caddyfile export names the header changes in a comment and still adapts without warnings', async () => {
    const text = caddyfileExport(desired);
    expect(text).to.include('# headers: request set X-App, X-Override; request add X-Multi; request delete X-Drop-Me; response set X-Served-By; response delete X-Backend-Secret (in the pushed JSON config, not exported)');
    expect(text).to.include('# headers: upstream tls insecure');
    expect((await caddyAdapt(text)).warnings).to.deep.equal([]);
  });
});
