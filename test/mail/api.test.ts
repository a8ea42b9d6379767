// /api/v1/mail/*: what an admin sees through the controller's API (inject()). Secrets are
// write-only; references between rules and providers are checked.
import { expect } from 'chai';
import { MessageStore } from '../../src/mail/queue/messages.js';
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
    expect(again.json().provider).to.deep.equal({ name: 'isp', config: { type: 'smtp', host: 'smtp.example.net', port: 2587, security: 'starttls', tls_verify: true, auth: { user: 'relay' }, max_connections: 2 } });
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

  describe('queue actions: retry, hold, release, delete, log', () => {
    const enqueue = () => new MessageStore(f.db).enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['a@example.org'], raw: Buffer.from('Subject: x\r\n\r\nx') }, Date.now() - 1000)[0]!;
    /** Puts the message in `status`; `leased`: a relay holds it now (else its lease lapsed). */
    const put = (id: string, status: string, leased = false) =>
      f.db.prepare('UPDATE mail_messages SET status = ?, next_attempt_at = ?, lease_owner = ?, lease_until = ? WHERE id = ?').run(status, Date.now() + 3_600_000, status === 'sending' ? 'relay' : null, status === 'sending' ? Date.now() + (leased ? 60_000 : -1) : null, id);

    const cases: [string, boolean, 'retry' | 'hold' | 'release' | 'delete', number, string | null][] = [
      // status, leased, action → HTTP status, status after (null: gone or unchanged)
      ['queued', false, 'retry', 200, 'queued'],
      ['deferred', false, 'retry', 200, 'queued'],
      ['held', false, 'retry', 200, 'queued'],
      ['sending', false, 'retry', 200, 'queued'], // a lapsed lease: the relay that held it is gone
      ['sending', true, 'retry', 409, 'sending'],
      ['failed', false, 'retry', 409, 'failed'],
      ['bounced', false, 'retry', 409, 'bounced'],
      ['queued', false, 'hold', 200, 'held'],
      ['deferred', false, 'hold', 200, 'held'],
      ['held', false, 'hold', 200, 'held'],
      ['sending', true, 'hold', 409, 'sending'],
      ['delivered', false, 'hold', 409, 'delivered'],
      ['held', false, 'release', 200, 'queued'],
      ['deferred', false, 'release', 409, 'deferred'],
      ['deferred', false, 'delete', 204, null],
      ['failed', false, 'delete', 204, null],
      ['sending', true, 'delete', 409, 'sending'],
    ];
    for (const [status, leased, action, code, after] of cases)
      it(`${action} a ${leased ? 'leased ' : status === 'sending' ? 'lapsed-lease ' : ''}${status} message: ${code}${after ? `, then ${after}` : ''}`, async () => {
        const id = enqueue();
        put(id, status, leased);
        const res = action === 'delete' ? await call('DELETE', `/api/v1/mail/queue/${id}`) : await call('POST', `/api/v1/mail/queue/${id}/${action}`);
        expect(res.statusCode, res.body).to.equal(code);
        if (code === 409) expect(res.json().error.code).to.equal('conflict');
        const now = await call('GET', `/api/v1/mail/queue/${id}`);
        if (after === null) return expect(now.statusCode).to.equal(404);
        expect(now.json().message.status).to.equal(after);
        if (code === 200 && after === 'queued') {
          expect(res.json().message).to.include({ id, status: 'queued', lease_owner: null });
          expect(res.json().message.next_attempt_at).to.be.closeTo(Date.now(), 5000); // due now
        }
      });

    it('a held message is not claimed by the relay; released, it is', async () => {
      const id = enqueue();
      const q = new MessageStore(f.db);
      expect((await call('POST', `/api/v1/mail/queue/${id}/hold`)).statusCode).to.equal(200);
      expect(q.claim('relay', 10, Date.now() + 86_400_000, 1000)).to.deep.equal([]);
      expect((await call('POST', `/api/v1/mail/queue/${id}/release`)).statusCode).to.equal(200);
      expect(q.claim('relay', 10, Date.now(), 1000).map((m) => m.id)).to.deep.equal([id]);
    });

    it('log lists the attempts (time, provider, outcome, code, reply, duration); unknown ids are 404, malformed ones 400', async () => {
      const id = enqueue();
      const q = new MessageStore(f.db);
      q.claim('relay', 1, Date.now(), 60_000);
      q.finish(id, 'relay', { provider: 'isp', outcome: 'transient', code: 451, response: '451 4.3.0 try later', duration_ms: 12 }, { status: 'deferred', next_attempt_at: Date.now() + 60_000, provider: 'isp', last_error: 'isp: 451' }, Date.now());
      const log = await call('GET', `/api/v1/mail/queue/${id}/log`);
      expect(log.statusCode).to.equal(200);
      expect(log.json().deliveries).to.have.length(1);
      expect(log.json().deliveries[0]).to.include({ message_id: id, provider: 'isp', outcome: 'transient', code: 451, response: '451 4.3.0 try later', duration_ms: 12 });
      expect(log.json().deliveries[0].at_ms).to.be.a('number');
      const unknown = 'ffffffffffffffff';
      for (const [method, url] of [['GET', `/api/v1/mail/queue/${unknown}/log`], ['POST', `/api/v1/mail/queue/${unknown}/retry`], ['POST', `/api/v1/mail/queue/${unknown}/hold`], ['POST', `/api/v1/mail/queue/${unknown}/release`], ['DELETE', `/api/v1/mail/queue/${unknown}`]] as const) {
        const res = await call(method, url);
        expect(res.statusCode, `${method} ${url}`).to.equal(404);
        expect(res.json().error).to.deep.equal({ code: 'not_found', message: `no message ${unknown}` });
      }
      expect((await call('POST', '/api/v1/mail/queue/nope/retry')).statusCode).to.equal(400);
      expect((await f.app.inject({ method: 'POST', url: `/api/v1/mail/queue/${id}/retry` })).statusCode).to.equal(401);
    });

    it('delete removes the log and the body when no other message uses it', async () => {
      const q = new MessageStore(f.db);
      const [a, b] = q.enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['a@example.org', 'b@example.net'], raw: Buffer.from('x') }, Date.now());
      const bodies = () => (f.db.prepare('SELECT count(*) AS n FROM mail_bodies').get() as { n: number }).n;
      expect((await call('DELETE', `/api/v1/mail/queue/${a}`)).statusCode).to.equal(204);
      expect(bodies()).to.equal(1); // b still uses it
      expect((await call('DELETE', `/api/v1/mail/queue/${b}`)).statusCode).to.equal(204);
      expect(bodies()).to.equal(0);
    });
  });
});
