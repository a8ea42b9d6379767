// The OpenAPI document: a summary for every operation and the success statuses each one really
// answers with (201 for a create, 204 for a delete, 200 for a dry run), and documenting them
// changes no response.
import { expect } from 'chai';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

type Op = { summary?: string; description?: string; responses?: Record<string, { description?: string; content?: unknown }> };

/** The success statuses each operation answers with, read off its handler. */
const SUCCESS: Record<string, number[]> = {
  'GET /health': [200, 503],
  'GET /ready': [200, 503],
  'GET /metrics': [200],
  'POST /add-record': [200, 201],
  'GET /list-records': [200],
  'DELETE /remove-record': [200],
  'GET /api/v1/records': [200],
  'POST /api/v1/records': [200, 201],
  'GET /api/v1/records/{name}/{type}': [200],
  'PUT /api/v1/records/{name}/{type}': [200, 201],
  'DELETE /api/v1/records/{name}/{type}': [200, 204],
  'DELETE /api/v1/records/{name}': [200],
  'GET /api/v1/zones': [200],
  'GET /api/v1/zones/{zone}/export': [200],
  'POST /api/v1/zones/{zone}/import': [200],
  'GET /api/v1/tokens': [200],
  'POST /api/v1/tokens': [200, 201],
  'DELETE /api/v1/tokens/{id}': [200, 204],
  'GET /api/v1/routes': [200],
  'POST /api/v1/routes': [200, 201],
  'GET /api/v1/routes/{id}': [200],
  'PUT /api/v1/routes/{id}': [200],
  'DELETE /api/v1/routes/{id}': [200, 204],
  'GET /api/v1/routes/by-host/{host}': [200],
  'POST /api/v1/routes/{id}/backends': [200, 201],
  'DELETE /api/v1/routes/{id}/backends/{backend}': [200],
  'POST /api/v1/routes/{id}/backends/{backend}/dead': [200],
  'POST /api/v1/routes/{id}/backends/{backend}/alive': [200],
  'POST /api/v1/routes/by-host/{host}/backends': [200, 201],
  'DELETE /api/v1/routes/by-host/{host}/backends/{backend}': [200],
  'POST /api/v1/routes/by-host/{host}/backends/{backend}/dead': [200],
  'POST /api/v1/routes/by-host/{host}/backends/{backend}/alive': [200],
  'GET /api/v1/plan': [200],
  'GET /api/v1/backup': [200],
  'GET /api/v1/state': [200],
  'GET /api/v1/stats': [200],
  'GET /api/v1/stats/{host}': [200],
  'POST /api/v1/state': [200],
  'GET /api/v1/ca': [200],
  'GET /api/v1/caddyfile': [200],
  'GET /api/v1/devices': [200],
  'GET /api/v1/mail/accounts': [200],
  'POST /api/v1/mail/accounts': [200, 201],
  'DELETE /api/v1/mail/accounts/{name}': [200, 204],
  'GET /api/v1/mail/accounts/{name}': [200],
  'PUT /api/v1/mail/accounts/{name}': [200],
  'GET /api/v1/mail/providers/{name}': [200],
  'GET /api/v1/mail/rules/{id}': [200],
  'PUT /api/v1/mail/rules/{id}': [200],
  'GET /api/v1/mail/providers': [200],
  'PUT /api/v1/mail/providers/{name}': [200, 201],
  'DELETE /api/v1/mail/providers/{name}': [200, 204],
  'GET /api/v1/mail/rules': [200],
  'POST /api/v1/mail/rules': [200, 201],
  'DELETE /api/v1/mail/rules/{id}': [200, 204],
  'GET /api/v1/mail/dkim/{domain}': [200],
  'POST /api/v1/mail/dkim/{domain}': [200, 201],
  'GET /api/v1/mail/queue': [200],
  'GET /api/v1/mail/queue/{id}': [200],
  'DELETE /api/v1/mail/queue/{id}': [200, 204],
  'GET /api/v1/mail/queue/{id}/log': [200],
  'POST /api/v1/mail/queue/{id}/retry': [200],
  'POST /api/v1/mail/queue/{id}/hold': [200],
  'POST /api/v1/mail/queue/{id}/release': [200],
  'GET /api/v1/mail/accounts/{name}/keys': [200],
  'POST /api/v1/mail/accounts/{name}/keys': [200, 201],
  'POST /api/v1/mail/accounts/{name}/keys/rotate': [200, 201],
  'DELETE /api/v1/mail/accounts/{name}/keys/{id}': [200, 204],
  'GET /api/v1/mail/cert': [200],
  'PUT /api/v1/mail/cert': [200],
  'DELETE /api/v1/mail/cert': [200, 204],
  'GET /api/v1/mail/domains': [200],
  'GET /api/v1/mail/suppressions': [200],
  'POST /api/v1/mail/suppressions': [200, 201],
  'DELETE /api/v1/mail/suppressions/{address}': [200, 204],
  'GET /api/v1/mail/domains/{domain}': [200],
  'PUT /api/v1/mail/domains/{domain}': [200, 201],
  'DELETE /api/v1/mail/domains/{domain}': [200],
  'POST /api/v1/mail/domains/{domain}/dkim/rotate': [200],
  'GET /api/v1/mail/domains/{domain}/check': [200],
  'GET /api/v1/views': [200],
  'POST /api/v1/views': [200, 201],
  'GET /api/v1/views/{name}': [200],
  'PUT /api/v1/views/{name}': [200, 201],
  'DELETE /api/v1/views/{name}': [200, 204],
  'GET /api/v1/certificates': [200],
  'GET /api/v1/certificates/{id}': [200],
  'POST /api/v1/certificates': [200, 201],
  'DELETE /api/v1/certificates/{id}': [200, 204],
};

describe('api: the OpenAPI document', () => {
  let f: ApiFixture;
  let ops: [string, Op][];
  beforeEach(async () => {
    f = await apiFixture();
    const doc = f.app.swagger() as { paths: Record<string, Record<string, Op>> };
    ops = Object.entries(doc.paths).flatMap(([path, byMethod]) => Object.entries(byMethod).map(([m, op]): [string, Op] => [`${m.toUpperCase()} ${path}`, op]));
  });
  afterEach(async () => f.close());

  it('describes the whole API in info.description', () => {
    const { description } = (f.app.swagger() as { info: { description: string } }).info;
    for (const part of ['records', 'zones', 'routes', 'tokens', 'mail relay']) expect(description).to.include(part);
  });

  it('gives every operation a summary (one short line)', () => {
    expect(ops.length).to.be.at.least(50);
    const missing = ops.filter(([, op]) => !op.summary?.trim()).map(([k]) => k);
    expect(missing, 'operations without a summary').to.deep.equal([]);
    for (const [k, op] of ops) expect(op.summary!.length, k).to.be.at.most(80);
  });

  it('documents the success statuses each operation answers with: 201 created, 204 deleted, 200 dry run', () => {
    expect(ops.map(([k]) => k).sort()).to.deep.equal(Object.keys(SUCCESS).sort());
    for (const [k, op] of ops) {
      const documented = Object.keys(op.responses ?? {}).filter((c) => /^[23]\d\d$|^503$/.test(c)).map(Number).sort();
      expect(documented, k).to.deep.equal(SUCCESS[k]);
      for (const code of documented) expect(op.responses![code]!.description, `${k} ${code}`).to.be.a('string').and.not.equal('Default Response');
      if (documented.includes(204)) expect(op.responses!['204']!.content, `${k} 204 has no body`).to.equal(undefined);
    }
    // The point of the issue: no POST that creates documents only 200.
    const creates = ops.filter(([k]) => k.startsWith('POST ') && SUCCESS[k]!.includes(201));
    expect(creates.length).to.be.at.least(8);
  });

  it('responses are unchanged by the documentation: bodies, statuses and content types', async () => {
    const auth = f.auth;
    const dry = await f.app.inject({ method: 'POST', url: '/api/v1/records?dry_run=true', headers: auth, payload: { name: 'web.home.arpa', type: 'A', values: ['192.0.2.30'] } });
    expect(dry.statusCode).to.equal(200);
    expect(dry.json()).to.include.keys(['dry_run']);
    const created = await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: auth, payload: { name: 'web.home.arpa', type: 'A', values: ['192.0.2.30'] } });
    expect(created.statusCode, created.body).to.equal(201);
    expect(created.headers['content-type']).to.match(/^application\/json/);
    expect(created.json().record).to.deep.include({ name: 'web.home.arpa.', type: 'A', values: ['192.0.2.30'] });
    const legacy = await f.app.inject({ method: 'POST', url: '/add-record', headers: auth, payload: { service_name: 'app', name: 'app', ip: '192.0.2.31', port: 8080, forward_to_ip: '192.0.2.32', proxy_enabled: false } });
    expect(legacy.statusCode, legacy.body).to.equal(201);
    expect(legacy.json()).to.deep.include({ status: 'created' });
    const removed = await f.app.inject({ method: 'DELETE', url: '/api/v1/records/web.home.arpa/A', headers: auth });
    expect(removed.statusCode).to.equal(204);
    expect(removed.body).to.equal('');
    const zone = await f.app.inject({ method: 'GET', url: '/api/v1/zones/home.arpa/export', headers: auth });
    expect(zone.statusCode).to.equal(200);
    expect(zone.headers['content-type']).to.match(/^text\/plain/);
    expect(zone.body).to.include('SOA');
    const token = await f.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: auth, payload: { name: 'docs' } });
    expect(token.statusCode).to.equal(201);
    expect(token.json().token).to.match(/^dp_/);
    // Errors keep the catalog's shape.
    const bad = await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: auth, payload: { name: 'x.home.arpa', type: 'A', values: ['nope'] } });
    expect(bad.statusCode).to.equal(400);
    expect(bad.json().error).to.include.keys(['code', 'message']);
    const metrics = await f.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.headers['content-type']).to.match(/^text\/plain/);
  });
});
