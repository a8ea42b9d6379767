// Token scopes: read can only GET, write manages names and routes, admin everything else; an
// upstream that reaches this host or a metadata service needs admin, however it comes about.
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { DB_FILE, openDb } from '../../src/store/db.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { TokenStore } from '../../src/store/tokens.js';
import { apiFixture, NODE_IP, type ApiFixture } from '../helpers/api.js';
import { tempDir } from '../helpers/tmp.js';

describe('api: token scopes', () => {
  let f: ApiFixture;
  let as: Record<'read' | 'write' | 'admin', { authorization: string }>;
  beforeEach(async () => {
    f = await apiFixture();
    const bearer = (scope: 'read' | 'write' | 'admin') => ({ authorization: `Bearer ${f.tokens.create(`t-${scope}`, scope).token}` });
    as = { read: bearer('read'), write: bearer('write'), admin: bearer('admin') };
  });
  afterEach(async () => f.close());

  const call = (who: keyof typeof as, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    f.app.inject({ method, url, headers: as[who], ...(payload !== undefined ? { payload: payload as object } : {}) });
  const expectForbidden = (res: { statusCode: number; json: () => { error: { code: string; message: string } } }, need: string) => {
    expect(res.statusCode).to.equal(403);
    expect(res.json().error.code).to.equal('forbidden');
    expect(res.json().error.message).to.include(`needs a token with scope ${need}`);
  };

  it('POST /api/v1/tokens: scope defaults to write, can be read or admin; the list shows it', async () => {
    const made = (await call('admin', 'POST', '/api/v1/tokens', { name: 'ci' })).json();
    expect(made.scope).to.equal('write');
    expect((await call('admin', 'POST', '/api/v1/tokens', { name: 'ro', scope: 'read' })).json().scope).to.equal('read');
    const bad = await call('admin', 'POST', '/api/v1/tokens', { name: 'x', scope: 'root' });
    expect(bad.statusCode).to.equal(400);
    expect(bad.json().error.fields[0].path).to.equal('scope');
    const list = (await call('admin', 'GET', '/api/v1/tokens')).json().tokens as { name: string; scope: string }[];
    expect(Object.fromEntries(list.map((t) => [t.name, t.scope]))).to.deep.include({ test: 'admin', 't-read': 'read', 't-write': 'write', ci: 'write', ro: 'read' });
  });

  it('only admin lists, creates or revokes tokens: a write token cannot revoke the admin token', async () => {
    const adminId = f.tokens.list().find((t) => t.name === 'test')!.id;
    for (const who of ['read', 'write'] as const) {
      expectForbidden(await call(who, 'GET', '/api/v1/tokens'), 'admin');
      expectForbidden(await call(who, 'POST', '/api/v1/tokens', { name: 'mine', scope: 'admin' }), 'admin');
      expectForbidden(await call(who, 'DELETE', `/api/v1/tokens/${adminId}`), 'admin');
    }
    expect(f.tokens.verify(f.token)).to.equal(adminId);
  });

  it('read can GET everything but the tokens, and change nothing', async () => {
    for (const url of ['/api/v1/records', '/list-records', '/api/v1/routes', '/api/v1/plan', '/api/v1/caddyfile', '/api/v1/zones', '/api/v1/zones/home.arpa/export', '/api/v1/mail/accounts', '/api/v1/mail/providers', '/api/v1/mail/rules', '/openapi.json'])
      expect((await call('read', 'GET', url)).statusCode, url).to.equal(200);
    expectForbidden(await call('read', 'POST', '/api/v1/records', { name: 'x', type: 'A', values: ['192.0.2.1'] }), 'write');
    expectForbidden(await call('read', 'POST', '/add-record', { service_name: 'x', name: 'x', ip: '192.0.2.1' }), 'write');
    expectForbidden(await call('read', 'DELETE', '/api/v1/records/x'), 'write');
    expectForbidden(await call('read', 'POST', '/api/v1/routes', { hosts: ['a.home.arpa'], upstreams: ['192.0.2.5:80'] }), 'write');
    expectForbidden(await call('read', 'POST', '/api/v1/mail/rules', { provider: 'p' }), 'write');
    expect(f.records.count()).to.equal(0);
  });

  it('mail providers, accounts, API keys, DKIM keys and the certificate are admin; rules are write', async () => {
    const provider = { type: 'smtp', host: 'smtp.example.com', port: 587 };
    expectForbidden(await call('write', 'PUT', '/api/v1/mail/providers/p', provider), 'admin');
    expectForbidden(await call('write', 'DELETE', '/api/v1/mail/providers/p'), 'admin');
    expectForbidden(await call('write', 'POST', '/api/v1/mail/accounts', { name: 'app', email: 'app@example.com', password: 'long enough', allowed_domains: ['example.com'] }), 'admin');
    expectForbidden(await call('write', 'DELETE', '/api/v1/mail/accounts/app'), 'admin');
    expectForbidden(await call('write', 'POST', '/api/v1/mail/accounts/app/keys', {}), 'admin');
    expectForbidden(await call('write', 'POST', '/api/v1/mail/accounts/app/keys/rotate', {}), 'admin');
    expectForbidden(await call('write', 'DELETE', '/api/v1/mail/accounts/app/keys/0123456789ab'), 'admin');
    expectForbidden(await call('write', 'POST', '/api/v1/mail/dkim/example.com'), 'admin');
    expectForbidden(await call('write', 'PUT', '/api/v1/mail/cert', { cert: 'x', key: 'y' }), 'admin');
    expectForbidden(await call('write', 'DELETE', '/api/v1/mail/cert'), 'admin');
    expect((await call('admin', 'PUT', '/api/v1/mail/providers/p', provider)).statusCode).to.equal(201);
    expect((await call('write', 'POST', '/api/v1/mail/rules', { provider: 'p' })).statusCode).to.equal(201);
  });

  // Ports that are none of our listeners: those are refused for every scope (400, test/api/own-endpoints.test.ts).
  const internal = ['127.0.0.1:3001', '127.0.0.1:3002', '[::1]:3003', '0.0.0.0:3002', '169.254.169.254:3003', '[fe80::1]:3003', '100.100.100.200:3003', '224.0.0.1:3003', `${NODE_IP}:3002`, 'localhost:3001', 'api.localhost:3002', '[::ffff:127.0.0.1]:3001'];
  for (const upstream of internal)
    it(`an upstream reaching ${upstream} needs admin (routes, records, add-record), dry runs too`, async () => {
      expectForbidden(await call('write', 'POST', '/api/v1/routes', { hosts: ['a.home.arpa'], upstreams: ['192.0.2.5:80', upstream] }), 'admin');
      expectForbidden(await call('write', 'POST', '/api/v1/routes?dry_run=true', { hosts: ['a.home.arpa'], upstreams: [upstream] }), 'admin');
      expectForbidden(await call('write', 'PUT', '/api/v1/records/a/A', { name: 'a', type: 'A', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: [upstream] } }), 'admin');
      const host = upstream.slice(0, upstream.lastIndexOf(':')).replace(/^\[|\]$/g, '');
      if (!host.includes(':'))
        expectForbidden(await call('write', 'POST', '/add-record', { service_name: 'a', name: 'a', ip: '192.0.2.1', forward_to_ip: host, port: 3002, proxy_enabled: true }), 'admin');
      expect(f.routes.list()).to.deep.equal([]);
      expect(f.records.count()).to.equal(0);
      expect((await call('admin', 'POST', '/api/v1/routes', { hosts: ['a.home.arpa'], upstreams: [upstream] })).statusCode).to.equal(201);
    });

  it('a forward-auth URL reaching this host or a metadata service needs admin, like an upstream (dry runs too)', async () => {
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://127.0.0.1:5432/', 'https://localhost:3001/verify']) {
      const body = { hosts: ['fa.home.arpa'], upstreams: ['192.0.2.5:80'], auth: { forward: { url } } };
      expectForbidden(await call('write', 'POST', '/api/v1/routes', body), 'admin');
      expectForbidden(await call('write', 'POST', '/api/v1/routes?dry_run=true', body), 'admin');
    }
    expect(f.routes.list()).to.deep.equal([]);
    // An outside service is fine for write; admin may point one inside.
    expect((await call('write', 'POST', '/api/v1/routes', { hosts: ['fb.home.arpa'], upstreams: ['192.0.2.5:80'], auth: { forward: { url: 'https://auth.example.net/verify' } } })).statusCode).to.equal(201);
    expect((await call('admin', 'POST', '/api/v1/routes', { hosts: ['fa.home.arpa'], upstreams: ['192.0.2.5:80'], auth: { forward: { url: 'http://127.0.0.1:5432/' } } })).statusCode).to.equal(201);
  });

  it('add-record without ip or forward_to_ip proxies to the node IP: admin only', async () => {
    expectForbidden(await call('write', 'POST', '/add-record', { service_name: 'a', name: 'a', port: 3000, proxy_enabled: true }), 'admin');
    expect((await call('write', 'POST', '/add-record', { service_name: 'a', name: 'a', ip: '100.64.0.7', port: 3000, proxy_enabled: true })).statusCode).to.equal(201);
  });

  it('a record change that makes an upstream name reach this host needs admin (A, CNAME, wildcard, zone import)', async () => {
    expect((await call('write', 'PUT', '/api/v1/records/svc/A', { name: 'svc', type: 'A', values: ['192.0.2.7'] })).statusCode).to.equal(201);
    expect((await call('write', 'POST', '/api/v1/routes', { hosts: ['app.home.arpa'], upstreams: ['svc.home.arpa:80', 'ghost.home.arpa:80'] })).statusCode).to.equal(201);
    expectForbidden(await call('write', 'PUT', '/api/v1/records/svc/A', { name: 'svc', type: 'A', values: ['127.0.0.1'] }), 'admin');
    expectForbidden(await call('write', 'PUT', '/api/v1/records/ghost/A', { name: 'ghost', type: 'A', values: ['169.254.169.254'] }), 'admin');
    expect((await call('admin', 'PUT', '/api/v1/records/lo/A', { name: 'lo', type: 'A', values: ['127.0.0.1'] })).statusCode).to.equal(201);
    expectForbidden(await call('write', 'PUT', '/api/v1/records/ghost/CNAME', { name: 'ghost', type: 'CNAME', values: ['lo.home.arpa'] }), 'admin');
    expectForbidden(await call('write', 'PUT', '/api/v1/records/*.home.arpa/A', { name: '*.home.arpa', type: 'A', values: ['127.0.0.2'] }), 'admin');
    // A per-view value counts too (Caddy's resolver may be in that view).
    expect((await call('write', 'POST', '/api/v1/views', { name: 'lan', cidrs: ['192.168.1.0/24'] })).statusCode).to.equal(201);
    expectForbidden(await call('write', 'PUT', '/api/v1/records/svc/A', { name: 'svc', type: 'A', values: ['192.0.2.7'], views: { lan: { values: ['127.0.0.1'] } } }), 'admin');
    const imported = await f.app.inject({ method: 'POST', url: '/api/v1/zones/home.arpa/import', headers: { ...as.write, 'content-type': 'text/plain' }, payload: 'svc A 127.0.0.1\n' });
    expectForbidden(imported, 'admin');
    expect(f.records.get('svc.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.7']);
    expect(f.records.get('ghost.home.arpa.', 'A')).to.equal(undefined);
    // The import's thread runs the same check: through a CNAME to the admin's loopback name, as a dry run too, and in replace mode.
    const importAs = (payload: string, query = '') => f.app.inject({ method: 'POST', url: `/api/v1/zones/home.arpa/import${query}`, headers: { ...as.write, 'content-type': 'text/plain' }, payload });
    expectForbidden(await importAs('ghost CNAME lo.home.arpa.\n', '?dry_run=true'), 'admin');
    expectForbidden(await importAs('ghost CNAME lo.home.arpa.\n', '?mode=merge'), 'admin');
    expect(f.records.get('ghost.home.arpa.', 'CNAME')).to.equal(undefined);
    // A write token imports what reaches nothing internal.
    const fine = await importAs('other A 192.0.2.44\nsvc A 192.0.2.9\n');
    expect(fine.statusCode, fine.body).to.equal(200);
    expect(f.records.get('svc.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.9']);
    expect((await call('write', 'PUT', '/api/v1/records/svc/A', { name: 'svc', type: 'A', values: ['192.0.2.8'] })).statusCode).to.equal(200);
  });

  it("a read token cannot import, and a write token's import does not run in the request's thread", async () => {
    const read = await f.app.inject({ method: 'POST', url: '/api/v1/zones/home.arpa/import', headers: { ...as.read, 'content-type': 'text/plain' }, payload: 'x A 192.0.2.1\n' });
    expectForbidden(read, 'write');
    let busy = 0;
    const check = setInterval(() => busy++, 1);
    try {
      const text = Array.from({ length: 20_000 }, (_, i) => `h${i} A 192.0.2.${i % 250}`).join('\n');
      const res = await f.app.inject({ method: 'POST', url: '/api/v1/zones/home.arpa/import', headers: { ...as.write, 'content-type': 'text/plain' }, payload: text });
      expect(res.statusCode, res.body).to.equal(200);
    } finally {
      clearInterval(check);
    }
    // Parsed and written on the main thread, 20,000 lines took one task (no timer in between).
    expect(busy).to.be.greaterThan(5);
    expect(f.records.get('h19999.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.249']);
  });

  it('a route that already reaches this host (made by admin) does not block other writes', async () => {
    expect((await call('admin', 'POST', '/api/v1/routes', { hosts: ['local.home.arpa'], upstreams: ['127.0.0.1:9000'] })).statusCode).to.equal(201);
    expect((await call('write', 'POST', '/api/v1/routes', { hosts: ['b.home.arpa'], upstreams: ['192.0.2.5:80'] })).statusCode).to.equal(201);
    expect((await call('write', 'POST', '/api/v1/records', { name: 'c', type: 'A', values: ['192.0.2.3'] })).statusCode).to.equal(201);
    const id = f.routes.list().find((r) => r.hosts[0] === 'local.home.arpa')!.id;
    expect((await call('write', 'DELETE', `/api/v1/routes/${id}`)).statusCode).to.equal(204);
  });
});

describe('store: token scopes migration and bootstrap', () => {
  it('tokens from before scopes are admin after the migration', () => {
    const tmp = tempDir();
    const old = new Database(join(tmp.dir, DB_FILE));
    for (const [i, sql] of MIGRATIONS.slice(0, 8).entries()) {
      old.exec(sql);
      old.pragma(`user_version = ${i + 1}`);
    }
    old.prepare("INSERT INTO tokens (id, name, hash, created_at) VALUES ('abc', 'ci', 'h', 't')").run();
    old.close();
    const db = openDb(tmp.dir);
    expect(new TokenStore(db).list()).to.deep.equal([{ id: 'abc', name: 'ci', scope: 'admin', created_at: 't', last_used_at: null }]);
    db.close();
    tmp.cleanup();
  });

  it('the first-start token and the DNSPROXY_ADMIN_TOKEN one are admin', () => {
    const tmp = tempDir();
    const db = openDb(tmp.dir);
    const tokens = new TokenStore(db);
    const generated = tokens.bootstrap()!;
    expect(tokens.authenticate(generated)?.scope).to.equal('admin');
    tokens.bootstrap('fixed-secret-for-the-tests-0123');
    expect(tokens.authenticate('fixed-secret-for-the-tests-0123')?.scope).to.equal('admin');
    db.close();
    tmp.cleanup();
  });
});
