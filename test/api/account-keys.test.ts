// A mail account's API key as a bearer token: only the mail routes marked for accounts, only its
// own account (another's things are 404), a password change but no new domains; rate limited per
// key (injected clock) with 429 and Retry-After. The admin token sees everything, unlimited.
import { expect } from 'chai';
import { MessageStore } from '../../src/mail/queue/messages.js';
import { MailStore } from '../../src/mail/store.js';
import { verifyPassword } from '../../src/mail/credentials/password.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: mail account keys as bearer tokens', () => {
  let f: ApiFixture;
  let clock = 1_800_000_000_000;
  let keys: Record<string, string>;
  let msgs: Record<string, string>;
  const as = (who: string | null, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    f.app.inject({ method, url, headers: who === null ? f.auth : { authorization: `Bearer ${keys[who]!}` }, ...(payload === undefined ? {} : { payload: payload as object }) });

  const setUp = async (perMinute = 100) => {
    clock = 1_800_000_000_000;
    f = await apiFixture({ keyRequestsPerMinute: perMinute, now: () => clock });
    keys = {};
    msgs = {};
    const messages = new MessageStore(f.db);
    for (const name of ['app', 'other']) {
      expect((await as(null, 'POST', '/api/v1/mail/accounts', { name, email: `${name}@example.com`, password: 'correct horse battery', allowed_domains: ['example.com'] })).statusCode).to.equal(201);
      keys[name] = (await as(null, 'POST', `/api/v1/mail/accounts/${name}/keys`, { label: 'api' })).json().key as string;
      msgs[name] = messages.enqueue({ account: name, mailFrom: `${name}@example.com`, rcptTo: ['a@example.org'], raw: Buffer.from('Subject: x\r\n\r\nx') }, Date.now() - 1000)[0]!;
    }
  };
  afterEach(async () => f.close());

  it("sees its own account, messages and keys; another account's are 404 and stay as they were", async () => {
    await setUp();
    expect((await as('app', 'GET', '/api/v1/mail/accounts')).json().accounts.map((a: { name: string }) => a.name)).to.deep.equal(['app']);
    expect((await as(null, 'GET', '/api/v1/mail/accounts')).json().accounts).to.have.length(2);
    expect((await as('app', 'GET', '/api/v1/mail/accounts/app')).statusCode).to.equal(200);
    expect((await as('app', 'GET', '/api/v1/mail/accounts/other')).statusCode).to.equal(404);

    expect((await as('app', 'GET', '/api/v1/mail/queue')).json().messages.map((m: { id: string }) => m.id)).to.deep.equal([msgs.app]);
    expect((await as('app', 'GET', `/api/v1/mail/queue/${msgs.other!}`)).statusCode).to.equal(404);
    expect((await as('app', 'GET', `/api/v1/mail/queue/${msgs.other!}/log`)).statusCode).to.equal(404);
    for (const action of ['hold', 'retry', 'release']) expect((await as('app', 'POST', `/api/v1/mail/queue/${msgs.other!}/${action}`)).statusCode, action).to.equal(404);
    expect((await as('app', 'DELETE', `/api/v1/mail/queue/${msgs.other!}`)).statusCode).to.equal(404);
    expect((await as(null, 'GET', `/api/v1/mail/queue/${msgs.other!}`)).json().message.status).to.equal('queued');
    expect((await as('app', 'POST', `/api/v1/mail/queue/${msgs.app!}/hold`)).json().message.status).to.equal('held');

    expect((await as('app', 'GET', '/api/v1/mail/accounts/app/keys')).json().keys).to.have.length(1);
    expect((await as('app', 'GET', '/api/v1/mail/accounts/other/keys')).statusCode).to.equal(404);
    expect((await as('app', 'POST', '/api/v1/mail/accounts/other/keys', { label: 'steal' })).statusCode).to.equal(404);
    const own = await as('app', 'POST', '/api/v1/mail/accounts/app/keys', { label: 'second' });
    expect(own.statusCode).to.equal(201);
    expect((await as('app', 'DELETE', `/api/v1/mail/accounts/other/keys/${(await as(null, 'GET', '/api/v1/mail/accounts/other/keys')).json().keys[0].id as string}`)).statusCode).to.equal(404);
  });

  it('changes its own password, never its domains or email; reaches no other route (403)', async () => {
    await setUp();
    expect((await as('app', 'PUT', '/api/v1/mail/accounts/app', { password: 'a brand new password' })).statusCode).to.equal(200);
    expect(await verifyPassword('a brand new password', new MailStore(f.db).login('app')!.hash)).to.equal(true);
    const domains = await as('app', 'PUT', '/api/v1/mail/accounts/app', { allowed_domains: ['bank.example'] });
    expect(domains.statusCode).to.equal(403);
    expect(domains.json().error.message).to.include('allowed_domains');
    expect((await as('app', 'PUT', '/api/v1/mail/accounts/other', { password: 'a brand new password' })).statusCode).to.equal(404);
    for (const [method, url] of [['GET', '/api/v1/records'], ['GET', '/api/v1/mail/providers'], ['GET', '/api/v1/mail/rules'], ['POST', '/api/v1/tokens'], ['DELETE', '/api/v1/mail/accounts/app'], ['GET', '/api/v1/mail/cert']] as const) {
      const res = await as('app', method, url, method === 'POST' ? { name: 'x' } : undefined);
      expect(res.statusCode, `${method} ${url}`).to.equal(403);
      expect(res.json().error.code).to.equal('forbidden');
    }
  });

  it('a revoked or expired key is 401', async () => {
    await setUp();
    clock = Date.now(); // keys expire by the store's wall clock
    const id = (await as(null, 'GET', '/api/v1/mail/accounts/app/keys')).json().keys[0].id as string;
    expect((await as(null, 'DELETE', `/api/v1/mail/accounts/app/keys/${id}`)).statusCode).to.equal(204);
    expect((await as('app', 'GET', '/api/v1/mail/queue')).statusCode).to.equal(401);
    const short = await as(null, 'POST', '/api/v1/mail/accounts/other/keys', { label: 'short', expires_in: '1h' });
    keys.short = short.json().key as string;
    expect((await as('short', 'GET', '/api/v1/mail/queue')).statusCode).to.equal(200);
    clock = Date.now() + 3_600_001;
    expect((await as('short', 'GET', '/api/v1/mail/queue')).statusCode).to.equal(401);
  });

  it('rate limit per key: past the limit 429 with Retry-After; the next request goes through once it passed; other keys and the admin token are not held', async () => {
    await setUp(3);
    for (let i = 0; i < 3; i++) expect((await as('app', 'GET', '/api/v1/mail/queue')).statusCode).to.equal(200);
    const limited = await as('app', 'GET', '/api/v1/mail/queue');
    expect(limited.statusCode).to.equal(429);
    expect(limited.headers['retry-after']).to.equal('20');
    expect(limited.json().error.code).to.equal('rate_limited');
    expect((await as('other', 'GET', '/api/v1/mail/queue')).statusCode).to.equal(200);
    for (let i = 0; i < 10; i++) expect((await as(null, 'GET', '/api/v1/mail/queue')).statusCode).to.equal(200);
    clock += 19_000;
    expect((await as('app', 'GET', '/api/v1/mail/queue')).statusCode).to.equal(429);
    clock += 1_000;
    expect((await as('app', 'GET', '/api/v1/mail/queue')).statusCode).to.equal(200);
    expect((await as('app', 'GET', '/api/v1/mail/queue')).statusCode).to.equal(429);
  });
});
