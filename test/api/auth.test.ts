import { expect } from 'chai';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: auth, tokens, probes, OpenAPI', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  it('401 without a token or with a wrong one; probes are open', async () => {
    const none = await f.app.inject({ method: 'GET', url: '/api/v1/records' });
    expect(none.statusCode).to.equal(401);
    expect(none.headers['www-authenticate']).to.include('Bearer');
    expect(none.json().error.code).to.equal('unauthorized');
    expect((await f.app.inject({ method: 'GET', url: '/list-records', headers: { authorization: 'Bearer nope' } })).statusCode).to.equal(401);
    const health = await f.app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).to.equal(200);
    expect(health.json()).to.deep.include({ status: 'ok' });
    expect(health.json().components).to.have.keys(['store', 'dns', 'proxy', 'mail']);
    expect(health.json().components.proxy.status).to.equal('disabled');
    // The version and the Node.js runtime the controller runs on (`dnsproxy status` shows them).
    expect(health.json()).to.deep.include({ version: 'test', node: process.version });
    expect((await f.app.inject({ method: 'GET', url: '/ready' })).statusCode).to.equal(200);
    expect((await f.app.inject({ method: 'GET', url: '/metrics' })).statusCode).to.equal(200);
  });

  it('creates, lists and revokes tokens; stores only hashes', async () => {
    const created = await f.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: f.auth, payload: { name: 'ci' } });
    expect(created.statusCode).to.equal(201);
    const { token, id } = created.json();
    expect(token).to.match(/^dp_[A-Za-z0-9_-]{43}$/);
    expect((await f.app.inject({ method: 'GET', url: '/api/v1/records', headers: { authorization: `Bearer ${token}` } })).statusCode).to.equal(200);
    const list = (await f.app.inject({ method: 'GET', url: '/api/v1/tokens', headers: f.auth })).json().tokens;
    expect(list.map((t: { name: string }) => t.name)).to.include('ci');
    expect(JSON.stringify(list)).not.to.include(token);
    const rows = f.db.prepare('SELECT hash FROM tokens').pluck().all() as string[];
    expect(rows.join()).not.to.include(token);
    expect((await f.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${id}`, headers: f.auth })).statusCode).to.equal(204);
    expect((await f.app.inject({ method: 'GET', url: '/api/v1/records', headers: { authorization: `Bearer ${token}` } })).statusCode).to.equal(401);
    expect((await f.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${id}`, headers: f.auth })).statusCode).to.equal(404);
  });

  it('bootstraps: generates one admin token on an empty store, honours a fixed one', () => {
    f.db.prepare('DELETE FROM tokens').run();
    const first = f.tokens.bootstrap();
    expect(first).to.match(/^dp_/);
    expect(f.tokens.bootstrap()).to.equal(undefined);
    expect(f.tokens.verify(first!)).to.be.a('string');
    expect(f.tokens.bootstrap('fixed-secret-for-tests')).to.equal(undefined);
    expect(f.tokens.verify('fixed-secret-for-tests')).to.be.a('string');
  });

  it('Swagger UI and the OpenAPI document load without a token (a browser has none yet); the API does not', async () => {
    const page = await f.app.inject({ method: 'GET', url: '/docs/' });
    expect(page.statusCode).to.equal(200);
    expect(page.headers['content-type']).to.match(/^text\/html/);
    // Every asset the page references loads without a token too.
    const assets = [...page.body.matchAll(/(?:src|href)="\.\/([^"]+)"/g)].map((m) => m[1]!);
    expect(assets).to.include.members(['static/swagger-ui.css', 'static/swagger-ui-bundle.js', 'static/swagger-initializer.js']);
    for (const asset of assets) {
      const res = await f.app.inject({ method: 'GET', url: `/docs/${asset}` });
      expect(res.statusCode, asset).to.equal(200);
    }
    expect((await f.app.inject({ method: 'GET', url: '/docs' })).statusCode).to.be.oneOf([200, 302]);
    // The initializer loads ./json: the spec, which declares bearer security for the Authorize button.
    const init = await f.app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(init.body).to.include("resolveUrl('./json')");
    for (const url of ['/docs/json', '/openapi.json']) {
      const spec = await f.app.inject({ method: 'GET', url });
      expect(spec.statusCode, url).to.equal(200);
      expect(spec.json().components.securitySchemes).to.deep.equal({ bearer: { type: 'http', scheme: 'bearer' } });
      expect(spec.json().security).to.deep.equal([{ bearer: [] }]);
    }
    expect((await f.app.inject({ method: 'GET', url: '/docs/yaml' })).statusCode).to.equal(200);
    // The API stays closed, also behind paths that start like the docs or try to climb out of them.
    for (const [method, url] of [
      ['GET', '/api/v1/records'],
      ['GET', '/api/v1/tokens'],
      ['POST', '/api/v1/tokens'],
      ['GET', '/docs/../api/v1/records'],
      ['GET', '/docs/static/../../api/v1/tokens'],
      ['GET', '/docs/nothing-here'],
      ['POST', '/docs/json'],
    ] as const) {
      const res = await f.app.inject({ method, url, payload: method === 'POST' ? {} : undefined });
      expect(res.statusCode, `${method} ${url}`).to.equal(401);
    }
  });

  it('serves an OpenAPI document generated from the schemas, and Swagger UI', async () => {
    const doc = (await f.app.inject({ method: 'GET', url: '/openapi.json', headers: f.auth })).json();
    expect(doc.openapi).to.match(/^3\./);
    expect(doc.paths).to.include.keys(['/add-record', '/api/v1/records', '/api/v1/records/{name}/{type}', '/api/v1/zones/{zone}/export']);
    const body = doc.paths['/add-record'].post.requestBody.content['application/json'].schema;
    expect(body.properties).to.include.keys(['service_name', 'name', 'ip', 'port', 'forward_to_ip', 'proxy_enabled']);
    const ui = await f.app.inject({ method: 'GET', url: '/docs/', headers: f.auth });
    expect(ui.statusCode).to.equal(200);
    expect(ui.body).to.include('swagger');
  });

  it('exposes Prometheus metrics for API requests and records', async () => {
    await f.app.inject({ method: 'GET', url: '/api/v1/records', headers: f.auth });
    const text = (await f.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).to.match(/dnsproxy_api_requests_total\{route="\/api\/v1\/records",method="GET",status="200"\} \d+/);
    expect(text).to.include('dnsproxy_api_request_duration_seconds_bucket');
    expect(text).to.include('dnsproxy_dns_queries_total');
    expect(text).to.include('dnsproxy_records');
  });
});
