// /api/v1/mail/*: what an admin sees through the controller's API (inject()). Secrets are
// write-only; references between rules and providers are checked.
import { expect } from 'chai';
import { MessageStore } from '../../src/mail/messages.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('mail: admin API', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    f.app.inject({ method, url, headers: f.auth, ...(payload === undefined ? {} : { payload: payload as object }) });

  it('accounts: created with a password that no response carries; duplicates 409; bad input names the field', async () => {
    const body = { name: 'app', email: 'app@example.com', password: 'correct horse battery', allowed_domains: ['example.com'] };
    const created = await call('POST', '/api/v1/mail/accounts', body);
    expect(created.statusCode).to.equal(201);
    expect(created.body).not.to.include('correct horse').and.not.to.include('scrypt');
    expect((await call('POST', '/api/v1/mail/accounts', body)).statusCode).to.equal(409);
    const bad = await call('POST', '/api/v1/mail/accounts', { ...body, name: 'x2', allowed_domains: ['not a domain'] });
    expect(bad.statusCode).to.equal(400);
    expect(bad.json().error.fields[0].path).to.equal('allowed_domains.0');
    const list = await call('GET', '/api/v1/mail/accounts');
    expect(list.json().accounts.map((a: { name: string }) => a.name)).to.deep.equal(['app']);
    expect(list.body).not.to.include('password');
    expect((await call('DELETE', '/api/v1/mail/accounts/app')).statusCode).to.equal(204);
    expect((await call('DELETE', '/api/v1/mail/accounts/app')).statusCode).to.equal(404);
    expect((await f.app.inject({ method: 'GET', url: '/api/v1/mail/accounts' })).statusCode).to.equal(401);
  });

  it('providers and rules: the provider password is never returned, a rule needs existing providers, a used provider cannot be removed', async () => {
    const provider = { type: 'smtp', host: 'smtp.example.net', port: 587, auth: { user: 'relay', pass: 's3cret-pass' } };
    expect((await call('PUT', '/api/v1/mail/providers/isp', provider)).statusCode).to.equal(201);
    const again = await call('PUT', '/api/v1/mail/providers/isp', { ...provider, port: 2587 });
    expect(again.statusCode).to.equal(200);
    expect(again.json().provider).to.deep.equal({ name: 'isp', config: { type: 'smtp', host: 'smtp.example.net', port: 2587, security: 'starttls', tls_verify: true, auth: { user: 'relay' } } });
    expect((await call('GET', '/api/v1/mail/providers')).body).not.to.include('s3cret');

    const unknown = await call('POST', '/api/v1/mail/rules', { provider: 'isp', fallback_provider: 'nope' });
    expect(unknown.statusCode).to.equal(400);
    expect(unknown.json().error.fields).to.deep.equal([{ path: 'fallback_provider', message: 'no provider named nope' }]);
    const rule = await call('POST', '/api/v1/mail/rules', { provider: 'isp', recipient_domain: 'Example.ORG' });
    expect(rule.statusCode).to.equal(201);
    expect(rule.json().rule).to.include({ priority: 100, provider: 'isp', recipient_domain: 'example.org', sender_domain: null, account: null });
    const inUse = await call('DELETE', '/api/v1/mail/providers/isp');
    expect(inUse.statusCode).to.equal(409);
    expect(inUse.json().error.message).to.include(rule.json().rule.id);
    expect((await call('DELETE', `/api/v1/mail/rules/${rule.json().rule.id}`)).statusCode).to.equal(204);
    expect((await call('DELETE', '/api/v1/mail/providers/isp')).statusCode).to.equal(204);
  });

  it('DKIM: generating a key returns the TXT record to publish, never the private key', async () => {
    const made = await call('POST', '/api/v1/mail/dkim/example.com');
    expect(made.statusCode).to.equal(201);
    const dkim = made.json().dkim;
    expect(dkim).to.include({ domain: 'example.com', selector: 'dnsproxy', record: 'dnsproxy._domainkey.example.com' });
    expect(dkim.txt).to.match(/^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{300,}$/);
    expect(made.body).not.to.include('PRIVATE KEY');
    expect((await call('GET', '/api/v1/mail/dkim/example.com')).json().dkim).to.deep.equal(dkim);
    expect((await call('GET', '/api/v1/mail/dkim/example.net')).statusCode).to.equal(404);
  });

  it('queue: lists messages by status and shows one with its delivery log', async () => {
    const [id] = new MessageStore(f.db).enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['a@example.org'], raw: Buffer.from('x') }, Date.now());
    const queued = await call('GET', '/api/v1/mail/queue?status=queued');
    expect(queued.json().messages.map((m: { id: string }) => m.id)).to.deep.equal([id]);
    expect((await call('GET', '/api/v1/mail/queue?status=delivered')).json().messages).to.deep.equal([]);
    expect((await call('GET', '/api/v1/mail/queue?status=lost')).statusCode).to.equal(400);
    const one = await call('GET', `/api/v1/mail/queue/${id}`);
    expect(one.json()).to.deep.include({ deliveries: [] });
    expect(one.json().message).to.include({ id, status: 'queued', recipient_domain: 'example.org', attempts: 0 });
  });
});
