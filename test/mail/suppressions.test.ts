// Suppressions: a recipient that hard-bounced (5.1.x) is refused at RCPT TO with 550 5.1.1 from
// then on (real SMTP sessions, a real sink as the provider); a soft or policy bounce is not
// suppressed; the API lists, adds and removes them (dry runs change nothing).
import { expect } from 'chai';
import { apiFixture } from '../helpers/api.js';
import { client, eventually, mail, refusal, relayWithSink, type RelayFixture, type Sink } from './helpers.js';

describe('mail: suppressions', () => {
  describe('at RCPT TO', () => {
    let r: RelayFixture;
    let provider: Sink;
    relayWithSink({}, (f) => ({ r, provider } = f));

    it('a hard bounce suppresses the address: the next message to it is 550 5.1.1 at RCPT TO; removed, it is accepted again', async () => {
      provider.rejectRcpt['gone@example.org'] = { code: 550, text: '5.1.1 <gone@example.org>: no such user' };
      const info = await client(r).sendMail(mail({ to: ['gone@example.org'] }));
      expect(info.accepted).to.deep.equal(['gone@example.org']);
      const s = await eventually(() => r.store.suppression('Gone@example.org'), 10_000, 'the suppression');
      expect(s).to.include({ address: 'gone@example.org', source: 'bounce' });
      expect(s.reason).to.include('5.1.1');

      const refused = await refusal(client(r).sendMail(mail({ to: ['gone@example.org'] })));
      expect(refused.responseCode).to.equal(550);
      expect(refused.response).to.match(/^550 5\.1\.1 <gone@example\.org> is suppressed since .* \(it hard-bounced: .*no such user\); not sent$/);

      r.store.unsuppress('gone@example.org');
      delete provider.rejectRcpt['gone@example.org'];
      expect((await client(r).sendMail(mail({ to: ['gone@example.org'] }))).accepted).to.deep.equal(['gone@example.org']);
    });

    it('a bounce that is no addressing failure (552 5.2.2 mailbox full) suppresses nothing', async () => {
      provider.rejectRcpt['full@example.org'] = { code: 552, text: '5.2.2 mailbox full' };
      await client(r).sendMail(mail({ to: ['full@example.org'] }));
      await eventually(() => r.messages.list({ status: 'bounced' }).length > 0, 10_000, 'the bounce');
      expect(r.store.suppressions()).to.deep.equal([]);
      expect((await client(r).sendMail(mail({ to: ['full@example.org'] }))).accepted).to.deep.equal(['full@example.org']);
    });
  });

  it('API: list, add (201, then 200), remove (204, then 404); dry runs change nothing; bad addresses name the field', async () => {
    const f = await apiFixture();
    try {
      const call = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) => f.app.inject({ method, url, headers: f.auth, ...(payload === undefined ? {} : { payload: payload as object }) });
      const dry = await call('POST', '/api/v1/mail/suppressions?dry_run=true', { address: 'X@example.org' });
      expect(dry.json()).to.deep.equal({ dry_run: true, plan: { mail: { added: ['suppression x@example.org'], changed: [], removed: [] } } });
      expect((await call('GET', '/api/v1/mail/suppressions')).json().suppressions).to.deep.equal([]);
      const added = await call('POST', '/api/v1/mail/suppressions', { address: 'X@example.org', reason: 'asked to stop' });
      expect(added.statusCode).to.equal(201);
      expect(added.json().suppression).to.include({ address: 'x@example.org', source: 'manual', reason: 'asked to stop' });
      expect((await call('POST', '/api/v1/mail/suppressions', { address: 'x@example.org' })).statusCode).to.equal(200);
      expect((await call('GET', '/api/v1/mail/suppressions')).json().suppressions.map((s: { address: string }) => s.address)).to.deep.equal(['x@example.org']);
      expect((await call('DELETE', '/api/v1/mail/suppressions/x@example.org?dry_run=true')).statusCode).to.equal(200);
      expect((await call('GET', '/api/v1/mail/suppressions')).json().suppressions).to.have.length(1);
      expect((await call('DELETE', '/api/v1/mail/suppressions/X@example.org')).statusCode).to.equal(204);
      expect((await call('DELETE', '/api/v1/mail/suppressions/x@example.org')).statusCode).to.equal(404);
      const bad = await call('POST', '/api/v1/mail/suppressions', { address: 'not an address' });
      expect(bad.statusCode).to.equal(400);
      expect(bad.json().error.fields[0].path).to.equal('address');
    } finally {
      await f.close();
    }
  });
});
