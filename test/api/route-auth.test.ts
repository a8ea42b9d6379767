// Route auth through the API (src/model/route-auth.ts): bad input is a 400 naming the field;
// a password is stored only as its bcrypt hash; no password, hash or token appears in an API
// answer, a dry run's plan, the state export, the Caddyfile export or the log; an export applied
// again keeps the credentials; a route with auth is explicit.
import { expect } from 'chai';
import bcrypt from 'bcryptjs';
import { parse } from 'yaml';
import { caddyfileExport } from '../../src/proxy/caddyfile.js';
import { BCRYPT_COST } from '../../src/proxy/auth.js';
import { setLogLevel } from '../../src/log/index.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

const PASSWORD = 'pw-Secret-4711-do-not-leak';
const TOKEN = 'tok-Secret-0123456789abcdefghijklmnopq';
/** A bcrypt hash made beforehand (cost 4), as `caddy hash-password` would give one. */
const GIVEN_HASH = bcrypt.hashSync('given-password-xyz', 4);

describe('api: route auth', function () {
  this.timeout(30_000);
  let f: ApiFixture;
  let logged = '';
  let restore: (() => void) | null = null;
  beforeEach(async () => {
    f = await apiFixture({ caddyfile: caddyfileExport });
    // Everything the process writes to stdout (winston's console transport), at debug level.
    logged = '';
    const write = process.stdout.write.bind(process.stdout);
    const capture = (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      logged += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    };
    process.stdout.write = capture;
    setLogLevel('debug');
    restore = () => {
      process.stdout.write = write;
      setLogLevel('info');
    };
  });
  afterEach(async () => {
    restore?.();
    await f.close();
  });

  const req = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });
  const base = { hosts: ['app.home.arpa'], upstreams: ['192.0.2.5:3000'] };
  const fieldsOf = (body: string) => (JSON.parse(body) as { error: { fields: { path: string }[] } }).error.fields.map((x) => x.path);
  /** The secrets, and anything derived from them that would do as well. */
  const leaks = (text: string, hashes: string[] = []) => [PASSWORD, TOKEN, ...hashes].filter((s) => text.includes(s) || text.includes(s.slice(7, 40)));

  it('bad auth input is a 400 naming the field', async () => {
    const cases: [object, string][] = [
      [{ forward: { url: 'ftp://auth.example:21/x' } }, 'auth.forward.url'],
      [{ forward: { url: 'javascript:alert(1)' } }, 'auth.forward.url'],
      [{ forward: { url: 'http://user:pw@auth.example/x' } }, 'auth.forward.url'],
      [{ forward: { url: 'http://auth.example/{env.HOME}' } }, 'auth.forward.url'],
      [{ forward: { url: 'http://auth.example/%7Benv.HOME%7D' } }, 'auth.forward.url'],
      [{ forward: { url: 'http://auth.example/%zz' } }, 'auth.forward.url'],
      [{ forward: { url: 'http://auth.example/#frag' } }, 'auth.forward.url'],
      [{ forward: { url: 'http://auth.example/', copy_headers: ['Bad\r\nHeader'] } }, 'auth.forward.copy_headers.0'],
      [{ forward: { url: 'http://auth.example/', copy_headers: ['Host'] } }, 'auth.forward.copy_headers.0'],
      [{ basic: { accounts: [{ username: 'bob' }] } }, 'auth.basic.accounts.0.password'],
      [{ basic: { accounts: [{ username: 'b:ob', password: 'x' }] } }, 'auth.basic.accounts.0.username'],
      [{ basic: { accounts: [{ username: '{env.X}', password: 'x' }] } }, 'auth.basic.accounts.0.username'],
      [{ basic: { accounts: [{ username: 'bob', hash: 'plaintext' }] } }, 'auth.basic.accounts.0.hash'],
      [{ basic: { accounts: [{ username: 'bob', password: 'x' }, { username: 'bob', password: 'y' }] } }, 'auth.basic.accounts.1.username'],
      [{ basic: { accounts: [] } }, 'auth.basic.accounts'],
      [{ bearer: { tokens: ['short'] } }, 'auth.bearer.tokens.0'],
      [{ bearer: { tokens: [`${'a'.repeat(40)}*`] } }, 'auth.bearer.tokens.0'],
      [{ bearer: { tokens: [`${'a'.repeat(40)}{x}`] } }, 'auth.bearer.tokens.0'],
      [{ bearer: {} }, 'auth.bearer.tokens'],
      [{ bearer: { tokens: [TOKEN] }, basic: { accounts: [{ username: 'bob', password: 'x' }] } }, 'auth'],
      [{}, 'auth'],
    ];
    for (const [auth, field] of cases) {
      const res = await req('POST', '/api/v1/routes', { ...base, auth });
      expect(res.statusCode, `${JSON.stringify(auth)}: ${res.body}`).to.equal(400);
      expect(fieldsOf(res.body), JSON.stringify(auth)).to.include(field);
      expect(res.body).not.to.include(TOKEN);
    }
    expect(f.routes.list()).to.deep.equal([]);
  });

  it('a forward-auth URL to one of our own endpoints is a 400 naming it', async () => {
    const res = await req('POST', '/api/v1/routes', { ...base, auth: { forward: { url: 'http://127.0.0.1:2019/load' } } });
    expect(res.statusCode, res.body).to.equal(400);
    expect(fieldsOf(res.body)).to.include('auth.forward.url');
  });

  it('stores a password only as its bcrypt hash and never shows a password, hash or token', async () => {
    const res = await req('POST', '/api/v1/routes', { ...base, auth: { basic: { realm: 'staff', accounts: [{ username: 'bob', password: PASSWORD }, { username: 'carol', hash: GIVEN_HASH }] } } });
    expect(res.statusCode, res.body).to.equal(201);
    const { route } = res.json();
    expect(route.auth).to.deep.equal({ basic: { realm: 'staff', accounts: [{ username: 'bob' }, { username: 'carol' }] } });
    expect(route.mode).to.equal('explicit');
    const stored = f.routes.get(route.id)!.auth!.basic!.accounts;
    expect(stored[0]).to.have.keys(['username', 'hash']);
    expect(stored[0]!.hash).to.match(new RegExp(`^\\$2[ab]\\$${BCRYPT_COST}\\$`));
    expect(await bcrypt.compare(PASSWORD, stored[0]!.hash!)).to.equal(true);
    expect(stored[1]).to.deep.equal({ username: 'carol', hash: GIVEN_HASH });
    const row = JSON.stringify(f.db.prepare('SELECT * FROM routes').all());
    expect(row).not.to.include(PASSWORD);

    const bearer = await req('POST', '/api/v1/routes', { hosts: ['api.home.arpa'], upstreams: ['192.0.2.6:80'], auth: { bearer: { tokens: [TOKEN] } } });
    expect(bearer.statusCode, bearer.body).to.equal(201);
    expect(bearer.json().route.auth).to.deep.equal({ bearer: { tokens: 1 } });

    const hashes = [stored[0]!.hash!, GIVEN_HASH];
    const dry = await req('PUT', `/api/v1/routes/${route.id}?dry_run=true`, { ...base, auth: { basic: { accounts: [{ username: 'bob', password: `${PASSWORD}2` }] } } });
    expect(dry.statusCode, dry.body).to.equal(200);
    const dryBearer = await req('POST', '/api/v1/routes?dry_run=true', { hosts: ['api2.home.arpa'], upstreams: ['192.0.2.6:80'], auth: { bearer: { tokens: [TOKEN] } } });
    expect(dryBearer.json().plan.routes.added[0].auth).to.deep.equal({ bearer: {} });
    const seen = [
      res.body,
      bearer.body,
      dry.body,
      dryBearer.body,
      (await req('GET', '/api/v1/routes')).body,
      (await req('GET', `/api/v1/routes/${route.id}`)).body,
      (await req('GET', '/api/v1/plan')).body,
      (await req('GET', '/api/v1/state')).body,
      (await req('GET', '/api/v1/state?format=json')).body,
      (await req('GET', '/api/v1/caddyfile')).body,
      logged,
    ];
    for (const text of seen) expect(leaks(text, hashes), text.slice(0, 300)).to.deep.equal([]);
    expect(logged, 'the log was captured').to.include('"level"');
  });

  it('the Caddyfile export names the auth without secrets and fails closed (403) for it', async () => {
    await req('POST', '/api/v1/routes', { ...base, auth: { basic: { accounts: [{ username: 'bob', password: PASSWORD }] } } });
    await req('POST', '/api/v1/routes', { hosts: ['open.home.arpa'], upstreams: ['192.0.2.7:80'] });
    const text = (await req('GET', '/api/v1/caddyfile')).body;
    const site = text.slice(text.indexOf('http://app.home.arpa'));
    expect(site.slice(0, site.indexOf('\n}'))).to.include('# basic auth: bob (bcrypt hashes not exported)').and.to.include('respond "forbidden: this route has auth, which the export does not carry" 403');
    const open = text.slice(text.indexOf('http://open.home.arpa'));
    expect(open.slice(0, open.indexOf('\n}'))).not.to.include('respond');
  });

  it('PUT without the secrets keeps the stored ones; a new password replaces the hash', async () => {
    const id = (await req('POST', '/api/v1/routes', { ...base, auth: { basic: { accounts: [{ username: 'bob', password: PASSWORD }] } } })).json().route.id as string;
    const before = f.routes.get(id)!.auth!.basic!.accounts[0]!.hash;
    const kept = await req('PUT', `/api/v1/routes/${id}`, { ...base, upstreams: ['192.0.2.9:3000'], auth: { basic: { accounts: [{ username: 'bob' }] } } });
    expect(kept.statusCode, kept.body).to.equal(200);
    expect(f.routes.get(id)!.auth!.basic!.accounts[0]!.hash).to.equal(before);
    const noUser = await req('PUT', `/api/v1/routes/${id}`, { ...base, auth: { basic: { accounts: [{ username: 'dave' }] } } });
    expect([noUser.statusCode, fieldsOf(noUser.body)]).to.deep.equal([400, ['auth.basic.accounts.0.password']]);
    await req('PUT', `/api/v1/routes/${id}`, { ...base, auth: { basic: { accounts: [{ username: 'bob', password: 'another-one' }] } } });
    const after = f.routes.get(id)!.auth!.basic!.accounts[0]!.hash!;
    expect(after).not.to.equal(before);
    expect(await bcrypt.compare('another-one', after)).to.equal(true);
  });

  it('the state export leaves secrets out and applied again keeps them (no change); a file can set a password', async () => {
    const id = (await req('POST', '/api/v1/routes', { ...base, auth: { basic: { accounts: [{ username: 'bob', password: PASSWORD }] } } })).json().route.id as string;
    const tid = (await req('POST', '/api/v1/routes', { hosts: ['api.home.arpa'], upstreams: ['192.0.2.6:80'], auth: { bearer: { tokens: [TOKEN] } } })).json().route.id as string;
    const hash = f.routes.get(id)!.auth!.basic!.accounts[0]!.hash!;
    const exported = (await req('GET', '/api/v1/state?format=json')).json<{ routes: { id: string; auth?: unknown }[] }>();
    expect(exported.routes.find((r) => r.id === id)?.auth).to.deep.equal({ basic: { accounts: [{ username: 'bob' }] } });
    expect(exported.routes.find((r) => r.id === tid)?.auth).to.deep.equal({ bearer: {} });
    const again = await req('POST', '/api/v1/state', exported);
    expect(again.statusCode, again.body).to.equal(200);
    expect(again.json().plan.routes).to.deep.include({ added: [], changed: [] });
    expect(f.routes.get(id)!.auth!.basic!.accounts[0]!.hash).to.equal(hash);
    expect(f.routes.get(tid)!.auth!.bearer!.tokens).to.deep.equal([TOKEN]);

    // A file that names a password: stored as a hash; the same file again is no change.
    const withPassword = { version: 1, routes: [{ id: 'api:site', hosts: ['site.home.arpa'], upstreams: ['192.0.2.8:80'], auth: { basic: { accounts: [{ username: 'eve', password: PASSWORD }] } } }] };
    const first = await req('POST', '/api/v1/state', withPassword);
    expect(first.statusCode, first.body).to.equal(200);
    expect(first.json().plan.routes.added).to.deep.equal(['api:site']);
    const eve = f.routes.get('api:site')!.auth!.basic!.accounts[0]!.hash!;
    expect(await bcrypt.compare(PASSWORD, eve)).to.equal(true);
    const second = await req('POST', '/api/v1/state', withPassword);
    expect(second.json().plan.routes).to.deep.include({ added: [], changed: [] });
    expect(f.routes.get('api:site')!.auth!.basic!.accounts[0]!.hash).to.equal(eve);
    expect(first.body + second.body).not.to.include(eve.slice(7));

    // A file without the secret for a route that has none stored: 400 naming it, nothing written.
    const missing = await req('POST', '/api/v1/state', { version: 1, routes: [{ id: 'api:other', hosts: ['o.home.arpa'], upstreams: ['192.0.2.8:80'], auth: { bearer: {} } }] });
    expect(missing.statusCode, missing.body).to.equal(400);
    expect(fieldsOf(missing.body)).to.deep.equal(['routes.0.auth.bearer.tokens']);
    expect(f.routes.has('api:other')).to.equal(false);
    expect(parse((await req('GET', '/api/v1/state')).body)).to.be.an('object');
  });
});
