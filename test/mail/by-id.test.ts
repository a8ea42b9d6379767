// GET/PUT by id for mail accounts (password change), providers and rules.
import { expect } from 'chai';
import { verifyPassword } from '../../src/mail/credentials/password.js';
import { MailStore } from '../../src/mail/store.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('mail: accounts, providers and rules by id', () => {
  let f: ApiFixture;
  beforeEach(async () => {
    f = await apiFixture();
    expect((await call('POST', '/api/v1/mail/accounts', { name: 'app', email: 'app@example.com', password: 'correct horse battery', allowed_domains: ['example.com'] })).statusCode).to.equal(201);
    expect((await call('POST', '/api/v1/mail/accounts', { name: 'other', email: 'other@example.com', password: 'another long password', allowed_domains: ['example.com'] })).statusCode).to.equal(201);
    expect((await call('PUT', '/api/v1/mail/providers/isp', { type: 'smtp', host: 'smtp.example.net', port: 587, auth: { user: 'u', pass: 'provider-secret' } })).statusCode).to.equal(201);
    expect((await call('PUT', '/api/v1/mail/providers/direct', { type: 'mx' })).statusCode).to.equal(201);
  });
  afterEach(async () => f.close());

  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    f.app.inject({ method, url, headers: f.auth, ...(payload === undefined ? {} : { payload: payload as object }) });

  it('an account: GET shows it without its password; PUT changes the password (the old one stops working), email and domains', async () => {
    const got = await call('GET', '/api/v1/mail/accounts/app');
    expect(got.json().account).to.include({ name: 'app', email: 'app@example.com' });
    expect(got.body).not.to.include('password');
    expect((await call('GET', '/api/v1/mail/accounts/nobody')).statusCode).to.equal(404);

    const dry = await call('PUT', '/api/v1/mail/accounts/app?dry_run=true', { password: 'a brand new password' });
    expect(dry.json().plan.mail.changed).to.deep.equal(['account app: password']);
    const store = new MailStore(f.db);
    expect(await verifyPassword('correct horse battery', store.login('app')!.hash)).to.equal(true);

    const put = await call('PUT', '/api/v1/mail/accounts/app', { password: 'a brand new password', allowed_domains: ['example.com', 'example.org'] });
    expect(put.statusCode, put.body).to.equal(200);
    expect(put.json().account.allowed_domains).to.deep.equal(['example.com', 'example.org']);
    expect(put.body).not.to.include('brand new');
    const hash = store.login('app')!.hash;
    expect(await verifyPassword('a brand new password', hash)).to.equal(true);
    expect(await verifyPassword('correct horse battery', hash)).to.equal(false);

    expect((await call('PUT', '/api/v1/mail/accounts/app', { email: 'other@example.com' })).statusCode).to.equal(409);
    const empty = await call('PUT', '/api/v1/mail/accounts/app', {});
    expect(empty.statusCode).to.equal(400);
    const short = await call('PUT', '/api/v1/mail/accounts/app', { password: 'short' });
    expect(short.statusCode).to.equal(400);
    expect(short.json().error.fields[0].path).to.equal('password');
    expect((await call('PUT', '/api/v1/mail/accounts/nobody', { email: 'n@example.com' })).statusCode).to.equal(404);
  });

  it('a provider: GET by name hides its secret; unknown is 404', async () => {
    const got = await call('GET', '/api/v1/mail/providers/isp');
    expect(got.json().provider).to.deep.include({ name: 'isp' });
    expect(got.json().provider.config).to.include({ host: 'smtp.example.net', port: 587 });
    expect(got.body).not.to.include('provider-secret');
    expect((await call('GET', '/api/v1/mail/providers/nope')).statusCode).to.equal(404);
  });

  it('a rule: GET by id, PUT replaces it in place (providers checked, dry run changes nothing)', async () => {
    const id = (await call('POST', '/api/v1/mail/rules', { provider: 'isp', recipient_domain: 'example.org' })).json().rule.id as string;
    expect((await call('GET', `/api/v1/mail/rules/${id}`)).json().rule).to.include({ id, provider: 'isp', recipient_domain: 'example.org' });
    const dry = await call('PUT', `/api/v1/mail/rules/${id}?dry_run=true`, { provider: 'direct' });
    expect(dry.json().plan.mail.changed).to.deep.equal([`rule ${id}`]);
    expect((await call('GET', `/api/v1/mail/rules/${id}`)).json().rule.provider).to.equal('isp');
    const put = await call('PUT', `/api/v1/mail/rules/${id}`, { provider: 'direct', priority: 5 });
    expect(put.statusCode, put.body).to.equal(200);
    expect(put.json().rule).to.deep.equal({ id, priority: 5, sender_domain: null, recipient_domain: null, account: null, provider: 'direct', fallback_provider: null });
    expect((await call('GET', '/api/v1/mail/rules')).json().rules).to.deep.equal([put.json().rule]);
    const bad = await call('PUT', `/api/v1/mail/rules/${id}`, { provider: 'nope' });
    expect(bad.statusCode).to.equal(400);
    expect(bad.json().error.fields).to.deep.equal([{ path: 'provider', message: 'no provider named nope' }]);
    expect((await call('PUT', '/api/v1/mail/rules/0000aaaa', { provider: 'isp' })).statusCode).to.equal(404);
    expect((await call('GET', '/api/v1/mail/rules/0000aaaa')).statusCode).to.equal(404);
  });
});
