// Every answer that is not a success has the documented shape, framework errors included, and
// each 400 says where the bad field is (body, query or path). /health shows details only to a token.
import { expect } from 'chai';
import type { InjectOptions } from 'fastify';
import net from 'node:net';
import { ERRORS } from '../../src/errors.js';
import { rollUp } from '../../src/api/health.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

type Inject = InjectOptions;

/** The body is {"error":{"code","message"[,"fields"]}} with a catalog code whose status is the reply's. */
function expectShape(res: { statusCode: number; body: string; headers: Record<string, unknown> }, code: string, status: number = ERRORS[code as keyof typeof ERRORS].status): void {
  expect(String(res.headers['content-type'])).to.match(/^application\/json/);
  const body = JSON.parse(res.body) as { error: { code: string; message: string; fields?: unknown[] } };
  expect(Object.keys(body)).to.deep.equal(['error']);
  expect(body.error.code, res.body).to.equal(code);
  expect(body.error.message).to.be.a('string').and.not.equal('');
  expect(Object.keys(body.error).filter((k) => !['code', 'message', 'fields'].includes(k))).to.deep.equal([]);
  expect(res.statusCode, res.body).to.equal(status);
}

describe('api: error shape and labels', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  const json = (extra: Record<string, string> = {}) => ({ ...f.auth, 'content-type': 'application/json', ...extra });
  const longName = `${['a', 'b', 'c'].map((c) => c.repeat(63)).join('.')}.home.arpa`;
  const cases: [string, () => Inject, string, number?][] = [
    ['unknown route', () => ({ method: 'GET', url: '/nope', headers: f.auth }), 'not_found'],
    ['known path, other method', () => ({ method: 'PATCH', url: '/api/v1/records', headers: f.auth }), 'method_not_allowed'],
    ['known path with params, other method', () => ({ method: 'POST', url: '/api/v1/records/x/A', headers: f.auth }), 'method_not_allowed'],
    ['body over the limit', () => ({ method: 'POST', url: '/api/v1/records', headers: json(), payload: 'x'.repeat(17 * 1024 * 1024) }), 'payload_too_large'],
    ['other media type', () => ({ method: 'POST', url: '/api/v1/records', headers: json({ 'content-type': 'application/xml' }), payload: '<a/>' }), 'unsupported_media_type'],
    ['bad JSON', () => ({ method: 'POST', url: '/api/v1/records', headers: json(), payload: '{"a":' }), 'bad_request', 400],
    ['empty JSON body', () => ({ method: 'POST', url: '/api/v1/records', headers: json(), payload: '' }), 'bad_request', 400],
    ['__proto__ in JSON', () => ({ method: 'POST', url: '/api/v1/records', headers: json(), payload: '{"__proto__":{"a":1}}' }), 'bad_request', 400],
    ['path segment too long', () => ({ method: 'GET', url: `/api/v1/routes/api:${'a'.repeat(2000)}`, headers: f.auth }), 'uri_too_long'],
    ['bad percent-encoding in the path', () => ({ method: 'GET', url: '/api/v1/records/%zz/A', headers: f.auth }), 'bad_request', 400],
    ['query field', () => ({ method: 'GET', url: '/api/v1/records?zone=nope.example', headers: f.auth }), 'invalid_query'],
    ['query name', () => ({ method: 'GET', url: '/api/v1/records?name=a..b', headers: f.auth }), 'invalid_query'],
    ['unknown query key', () => ({ method: 'GET', url: '/api/v1/records?foo=1', headers: f.auth }), 'invalid_query'],
    ['legacy remove by ?name=', () => ({ method: 'DELETE', url: '/remove-record?name=a..b', headers: f.auth }), 'invalid_query'],
    ['path name', () => ({ method: 'GET', url: '/api/v1/records/a..b/A', headers: f.auth }), 'invalid_params'],
    ['path type', () => ({ method: 'GET', url: '/api/v1/records/x/BOGUS', headers: f.auth }), 'invalid_params'],
    ['dry_run value', () => ({ method: 'POST', url: '/api/v1/routes?dry_run=yes', headers: f.auth, payload: { hosts: ['a.home.arpa'], upstreams: ['192.0.2.5:80'] } }), 'invalid_query'],
  ];
  for (const [what, request, code, status] of cases)
    it(`${what}: ${code}`, async () => {
      expectShape(await f.app.inject(request()), code, status);
    });

  it('405 names the allowed methods', async () => {
    const res = await f.app.inject({ method: 'DELETE', url: '/api/v1/zones', headers: f.auth });
    expect(res.headers.allow).to.equal('GET, HEAD');
    expect(res.json().error.message).to.include('GET, HEAD');
  });

  it('a query error never says "(body)"', async () => {
    const res = await f.app.inject({ method: 'GET', url: '/api/v1/records?foo=1', headers: f.auth });
    expect(res.json().error.message).not.to.include('(body)');
  });

  it('a valid name of 200+ characters in the path is looked up (404), not refused as too long', async () => {
    const res = await f.app.inject({ method: 'GET', url: `/api/v1/records/${longName}/A`, headers: f.auth });
    expectShape(res, 'not_found');
    expect(res.json().error.message).to.include(longName);
  });

  it('errors before routing (malformed HTTP, headers too large) are answered in the same shape', async () => {
    await f.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (f.app.server.address() as net.AddressInfo).port;
    const raw = (text: string) =>
      new Promise<string>((resolve) => {
        let got = '';
        const s = net.connect({ host: '127.0.0.1', port }, () => s.write(text));
        s.on('data', (d) => (got += d.toString()));
        s.on('close', () => resolve(got));
        s.on('error', () => resolve(got));
      });
    const parse = (reply: string) => {
      const [head = '', body = ''] = reply.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]);
      const contentType = /content-type: ([^\r\n]+)/i.exec(head)?.[1] ?? '';
      return { statusCode: status, body, headers: { 'content-type': contentType } };
    };
    expectShape(parse(await raw('NOT HTTP AT ALL\r\n\r\n')), 'bad_request', 400);
    expectShape(parse(await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)), 'headers_too_large');
    expectShape(parse(await raw(`GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`)), 'headers_too_large');
  });
});

describe('api: /health without and with a token', () => {
  let f: ApiFixture;
  const report = () => rollUp({ store: { status: 'ok' }, dns: { status: 'ok' }, proxy: { status: 'degraded', detail: 'Caddy admin API not answering: connect ECONNREFUSED 127.0.0.1:2019' }, mail: { status: 'degraded', detail: 'cannot read the mail relay\'s heartbeat: ZodError [{"path":["at_ms"]}]' } });
  beforeEach(async () => (f = await apiFixture({ health: report })));
  afterEach(async () => f.close());

  it('without a valid token: the status of each component, no detail', async () => {
    for (const headers of [{}, { authorization: 'Bearer not-a-token' }]) {
      const res = await f.app.inject({ method: 'GET', url: '/health', headers });
      expect(res.statusCode).to.equal(200);
      expect(res.json()).to.deep.equal({ status: 'degraded', components: { store: { status: 'ok' }, dns: { status: 'ok' }, proxy: { status: 'degraded' }, mail: { status: 'degraded' } }, version: 'test', node: process.version });
    }
  });

  it('with a valid token: the details too', async () => {
    const res = await f.app.inject({ method: 'GET', url: '/health', headers: f.auth });
    expect(res.json()).to.deep.equal({ ...report(), version: 'test', node: process.version });
  });
});
