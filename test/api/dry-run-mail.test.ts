// ?dry_run=true on every mutating mail and token route: 200 with the plan, and not one row of the
// database differs afterwards (every table compared); a malformed or misspelt flag is a 400 that
// names it, so a typo never applies the change.
import { expect } from 'chai';
import { selfSignedCert } from '../../src/mail/credentials/cert.js';
import { MessageStore } from '../../src/mail/queue/messages.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

type Method = 'POST' | 'PUT' | 'DELETE';

interface Case {
  name: string;
  method: Method;
  url: (ctx: Ctx) => string;
  body?: (ctx: Ctx) => unknown;
  /** The plan the dry run must show (`area`: mail or tokens). */
  plan: (ctx: Ctx) => { area: 'mail' | 'tokens'; added?: string[]; changed?: string[]; removed?: string[] };
  /** The status the real call then answers. */
  real: number;
}

interface Ctx {
  f: ApiFixture;
  message: string;
  key: string;
  rule: string;
  token: string;
  cert: { cert: string; key: string };
}

/** Every row of every table, as text: two equal snapshots mean nothing was written. */
function snapshot(f: ApiFixture): string {
  const tables = f.db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((t) => t.name);
  return JSON.stringify(tables.map((t) => [t, f.db.prepare(`SELECT * FROM "${t}"`).all()]));
}

const account = { name: 'app', email: 'app@example.com', password: 'correct horse battery', allowed_domains: ['example.com'] };
const provider = { type: 'smtp', host: 'smtp.example.net', port: 587 };

const cases: Case[] = [
  { name: 'POST /mail/accounts', method: 'POST', url: () => '/api/v1/mail/accounts', body: () => ({ ...account, name: 'other', email: 'other@example.com' }), plan: () => ({ area: 'mail', added: ['account other'] }), real: 201 },
  { name: 'DELETE /mail/accounts/:name', method: 'DELETE', url: () => '/api/v1/mail/accounts/app', plan: (c) => ({ area: 'mail', removed: ['account app', `key ${c.key} of account app`] }), real: 204 },
  { name: 'PUT /mail/providers/:name (new)', method: 'PUT', url: () => '/api/v1/mail/providers/new', body: () => provider, plan: () => ({ area: 'mail', added: ['provider new'] }), real: 201 },
  { name: 'PUT /mail/providers/:name (replace)', method: 'PUT', url: () => '/api/v1/mail/providers/isp', body: () => ({ ...provider, port: 2587 }), plan: () => ({ area: 'mail', changed: ['provider isp'] }), real: 200 },
  { name: 'DELETE /mail/providers/:name', method: 'DELETE', url: () => '/api/v1/mail/providers/spare', plan: () => ({ area: 'mail', removed: ['provider spare'] }), real: 204 },
  { name: 'POST /mail/rules', method: 'POST', url: () => '/api/v1/mail/rules', body: () => ({ provider: 'isp' }), plan: (c) => ({ area: 'mail', added: [planned(c)] }), real: 201 },
  { name: 'DELETE /mail/rules/:id', method: 'DELETE', url: (c) => `/api/v1/mail/rules/${c.rule}`, plan: (c) => ({ area: 'mail', removed: [`rule ${c.rule}`] }), real: 204 },
  { name: 'POST /mail/dkim/:domain', method: 'POST', url: () => '/api/v1/mail/dkim/example.com', plan: () => ({ area: 'mail', added: ['dkim dnsproxy._domainkey.example.com'] }), real: 201 },
  { name: 'POST /mail/queue/:id/hold', method: 'POST', url: (c) => `/api/v1/mail/queue/${c.message}/hold`, plan: (c) => ({ area: 'mail', changed: [`message ${c.message}: queued -> held`] }), real: 200 },
  { name: 'POST /mail/queue/:id/retry', method: 'POST', url: (c) => `/api/v1/mail/queue/${c.message}/retry`, plan: (c) => ({ area: 'mail', changed: [`message ${c.message}: queued -> queued`] }), real: 200 },
  { name: 'POST /mail/queue/:id/release (409: not held)', method: 'POST', url: (c) => `/api/v1/mail/queue/${c.message}/release`, plan: () => ({ area: 'mail' }), real: 409 },
  { name: 'DELETE /mail/queue/:id', method: 'DELETE', url: (c) => `/api/v1/mail/queue/${c.message}`, plan: (c) => ({ area: 'mail', removed: [`message ${c.message}`] }), real: 204 },
  { name: 'POST /mail/accounts/:name/keys', method: 'POST', url: () => '/api/v1/mail/accounts/app/keys', body: () => ({ label: 'ci' }), plan: (c) => ({ area: 'mail', added: [planned(c)] }), real: 201 },
  { name: 'POST /mail/accounts/:name/keys/rotate', method: 'POST', url: () => '/api/v1/mail/accounts/app/keys/rotate', body: () => ({}), plan: (c) => ({ area: 'mail', added: [planned(c)], removed: [`key ${c.key} of account app`] }), real: 201 },
  { name: 'DELETE /mail/accounts/:name/keys/:id', method: 'DELETE', url: (c) => `/api/v1/mail/accounts/app/keys/${c.key}`, plan: (c) => ({ area: 'mail', changed: [`key ${c.key} of account app: revoked`] }), real: 204 },
  { name: 'PUT /mail/cert', method: 'PUT', url: () => '/api/v1/mail/cert', body: (c) => c.cert, plan: () => ({ area: 'mail', added: [planned()] }), real: 200 },
  { name: 'DELETE /mail/cert (404: none set)', method: 'DELETE', url: () => '/api/v1/mail/cert', plan: () => ({ area: 'mail' }), real: 404 },
  { name: 'POST /tokens', method: 'POST', url: () => '/api/v1/tokens', body: () => ({ name: 'ci', scope: 'write' }), plan: () => ({ area: 'tokens', added: [planned()] }), real: 201 },
  { name: 'DELETE /tokens/:id', method: 'DELETE', url: (c) => `/api/v1/tokens/${c.token}`, plan: (c) => ({ area: 'tokens', removed: [`token ${c.token}`] }), real: 204 },
];

/** Names made up by the call itself (a new rule's or key's id): matched by pattern below. */
const PLANNED = '<made by the call>';
const planned = (..._: unknown[]) => PLANNED;
const patterns: Record<string, RegExp> = {
  'POST /mail/rules': /^rule [0-9a-f]{8}$/,
  'POST /mail/accounts/:name/keys': /^key [0-9a-f]{12} of account app$/,
  'POST /mail/accounts/:name/keys/rotate': /^key [0-9a-f]{12} of account app$/,
  'PUT /mail/cert': /^STARTTLS certificate CN=mail\.example\.com \(sha256 [0-9A-F:]+\)$/i,
  'POST /tokens': /^token [0-9a-f]{12} ci \(scope write\)$/,
};

describe('dry runs of the mail and token routes', () => {
  let f: ApiFixture;
  let ctx: Ctx;
  let cert: { cert: string; key: string };
  before(async () => (cert = await selfSignedCert('mail.example.com', new Date())));
  beforeEach(async () => {
    f = await apiFixture();
    const call = (method: Method, url: string, payload?: unknown) => f.app.inject({ method, url, headers: f.auth, ...(payload === undefined ? {} : { payload: payload as object }) });
    expect((await call('POST', '/api/v1/mail/accounts', account)).statusCode).to.equal(201);
    const key = (await call('POST', '/api/v1/mail/accounts/app/keys', { label: 'first' })).json().info.id as string;
    for (const name of ['isp', 'spare']) expect((await call('PUT', `/api/v1/mail/providers/${name}`, provider)).statusCode).to.equal(201);
    const rule = (await call('POST', '/api/v1/mail/rules', { provider: 'isp', recipient_domain: 'example.org' })).json().rule.id as string;
    const token = (await call('POST', '/api/v1/tokens', { name: 'old' })).json().id as string;
    const [message] = new MessageStore(f.db).enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['a@example.org'], raw: Buffer.from('Subject: x\r\n\r\nx') }, Date.now() - 1000);
    ctx = { f, message: message!, key, rule, token, cert };
  });
  afterEach(async () => f.close());

  for (const c of cases)
    it(`${c.name}: the dry run shows the plan and changes nothing; the real call then applies`, async () => {
      const send = (query: string) =>
        f.app.inject({ method: c.method, url: `${c.url(ctx)}${query}`, headers: f.auth, ...(c.body ? { payload: c.body(ctx) as object } : {}) });
      const before = snapshot(f);
      const dry = await send('?dry_run=true');
      const want = c.plan(ctx);
      if (c.real >= 400) {
        // The dry run fails where the call would, with the same answer.
        expect(dry.statusCode, dry.body).to.equal(c.real);
        expect(snapshot(f)).to.equal(before);
        const real = await send('');
        expect(real.statusCode).to.equal(c.real);
        expect(real.json().error.code).to.equal(dry.json().error.code);
        return;
      }
      expect(dry.statusCode, dry.body).to.equal(200);
      const body = dry.json<{ dry_run: boolean; plan: Record<string, { added: string[]; changed: string[]; removed: string[] }> }>();
      expect(body.dry_run).to.equal(true);
      expect(Object.keys(body.plan)).to.deep.equal([want.area]);
      const got = body.plan[want.area]!;
      for (const list of ['added', 'changed', 'removed'] as const) {
        const expected = want[list] ?? [];
        expect(got[list], list).to.have.length(expected.length);
        expected.forEach((e, i) => (e === PLANNED ? expect(got[list][i]).to.match(patterns[c.name]!) : expect(got[list][i]).to.equal(e)));
      }
      // No secret is minted by a dry run.
      expect(dry.body).not.to.match(/dp_|"key":|PRIVATE KEY/);
      expect(snapshot(f)).to.equal(before);
      const real = await send('?dry_run=false');
      expect(real.statusCode, real.body).to.equal(c.real);
      expect(snapshot(f)).not.to.equal(before);
    });

  it('a malformed or misspelt dry_run is a 400 naming it, and nothing is applied', async () => {
    const before = snapshot(f);
    const bad = await f.app.inject({ method: 'DELETE', url: '/api/v1/mail/providers/spare?dry_run=yes', headers: f.auth });
    expect(bad.statusCode).to.equal(400);
    expect(bad.json().error.fields[0].path).to.equal('dry_run');
    const typo = await f.app.inject({ method: 'POST', url: '/api/v1/tokens?dryrun=true', headers: f.auth, payload: { name: 'ci' } });
    expect(typo.statusCode).to.equal(400);
    expect(JSON.stringify(typo.json().error)).to.include('dryrun');
    expect(snapshot(f)).to.equal(before);
  });

  it("a dry run leaves the relay's settings cache as the database is: a provider dry-added is not seen afterwards", async () => {
    const { MailStore } = await import('../../src/mail/store.js');
    const store = new MailStore(f.db);
    const dry = await f.app.inject({ method: 'PUT', url: '/api/v1/mail/providers/ghost?dry_run=true', headers: f.auth, payload: provider });
    expect(dry.statusCode).to.equal(200);
    expect(store.provider('ghost')).to.equal(undefined);
    const rule = await f.app.inject({ method: 'POST', url: '/api/v1/mail/rules', headers: f.auth, payload: { provider: 'ghost' } });
    expect(rule.statusCode).to.equal(400);
  });
});
