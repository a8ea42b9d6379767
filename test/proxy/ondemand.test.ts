// The controller's on-demand certificate endpoint (src/proxy/ondemand.ts): Caddy's ask answered
// yes only for plain names of the on-demand tls mode, the same empty answer otherwise, a rate
// limit on an injected clock, loopback only, and the HTTP->HTTPS redirect for plain TLS names.
import { expect } from 'chai';
import http from 'node:http';
import { AskLimit, askAllows, onDemandHandler, startOnDemandServer, type OnDemandServer } from '../../src/proxy/ondemand.js';
import type { TlsMode } from '../../src/model/route.js';

const modes = new Map<string, TlsMode>([
  ['app.home.arpa', 'internal'],
  ['open.home.arpa', 'off'],
  ['shop.example.com', 'acme'],
]);
const lookup = (h: string) => modes.get(h);

/** One request to the server with a given Host header (fetch cannot set Host). */
function get(port: number, host: string, path: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('proxy: on-demand certificate endpoint', () => {
  let clock = 0;
  let server: OnDemandServer;
  before(async () => {
    server = await startOnDemandServer({ port: 0, issuer: 'internal', httpsPort: 8443, lookup, now: () => clock, burst: 3, refillMs: 3_000 });
  });
  after(() => server.close());

  it('decides by the tls mode: yes only for a plain name of the on-demand mode', () => {
    const o = { lookup, issuer: 'internal' as const };
    expect(askAllows('app.home.arpa', o)).to.equal(true);
    expect(askAllows('APP.home.arpa.', o)).to.equal(true);
    expect(askAllows('open.home.arpa', o)).to.equal(false);
    expect(askAllows('shop.example.com', o)).to.equal(false);
    expect(askAllows('nobody.home.arpa', o)).to.equal(false);
    expect(askAllows('bad name/../x', o)).to.equal(false);
    expect(askAllows('shop.example.com', { lookup, issuer: 'acme' })).to.equal(true);
    expect(askAllows('app.home.arpa', { lookup, issuer: 'acme' })).to.equal(false);
  });

  it('listens on loopback only; answers yes/no with the same empty body, 400 without a domain, 404 elsewhere', async () => {
    expect(server.ip).to.equal('127.0.0.1');
    expect(server.askUrl).to.equal(`http://127.0.0.1:${server.port}/ask`);
    clock += 60_000;
    const yes = await get(server.port, `127.0.0.1:${server.port}`, '/ask?domain=app.home.arpa');
    const no = await get(server.port, `127.0.0.1:${server.port}`, '/ask?domain=open.home.arpa');
    expect([yes.status, yes.body]).to.deep.equal([200, '']);
    expect([no.status, no.body]).to.deep.equal([403, '']);
    expect((await get(server.port, `127.0.0.1:${server.port}`, '/ask')).status).to.equal(400);
    expect((await get(server.port, `127.0.0.1:${server.port}`, '/other?domain=app.home.arpa')).status).to.equal(404);
    expect((await get(server.port, `127.0.0.1:${server.port}`, '/ask?domain=app.home.arpa', 'POST')).status).to.equal(404);
  });

  it('rate-limits asks on its clock: past the burst 429 (a denial for Caddy), earned back over time', async () => {
    clock += 60_000;
    const askApp = () => get(server.port, `127.0.0.1:${server.port}`, '/ask?domain=app.home.arpa');
    for (let i = 0; i < 3; i++) expect((await askApp()).status).to.equal(200);
    expect((await askApp()).status).to.equal(429);
    expect(server.counts.limited).to.equal(1);
    clock += 1_000;
    expect((await askApp()).status).to.equal(200);
    expect((await askApp()).status).to.equal(429);
    const limit = new AskLimit(2, 1_000, () => clock);
    expect([limit.take(), limit.take(), limit.take()]).to.deep.equal([true, true, false]);
  });

  it('redirects an HTTP request for a plain TLS name to its HTTPS URL (port kept), 404 for other names', async () => {
    const r = await get(server.port, 'app.home.arpa', '/a/b?c=d');
    expect(r.status).to.equal(308);
    expect(r.headers.location).to.equal('https://app.home.arpa:8443/a/b?c=d');
    expect((await get(server.port, 'open.home.arpa', '/')).status).to.equal(404);
    expect((await get(server.port, 'nobody.home.arpa', '/')).status).to.equal(404);
    const std = await startOnDemandServer({ port: 0, issuer: 'internal', httpsPort: 443, lookup });
    try {
      expect((await get(std.port, 'app.home.arpa:80', '/x')).headers.location).to.equal('https://app.home.arpa/x');
    } finally {
      await std.close();
    }
  });

  it('answers a peer that is not on loopback with 403', () => {
    const handler = onDemandHandler({ issuer: 'internal', httpsPort: 443, lookup });
    let status = 0;
    const req = { socket: { remoteAddress: '192.0.2.1' }, headers: { host: '127.0.0.1:1' }, url: '/ask?domain=app.home.arpa', method: 'GET' } as unknown as http.IncomingMessage;
    const res = { writeHead: (s: number) => (status = s), end: () => undefined } as unknown as http.ServerResponse;
    handler(req, res);
    expect(status).to.equal(403);
  });
});
