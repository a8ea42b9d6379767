// Limits a client meets: messages per account (451 4.7.0), connections per client address
// (421 4.7.0), the idle timeout and the total session time (421 4.4.2, a transaction in progress
// gets a grace period). The bucket arithmetic as a table, then real sockets against a relay.
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { relayOptions } from '../../src/mail/index.js';
import { DataBudget, RateLimiter } from '../../src/mail/smtp/ratelimit.js';
import { ACCOUNT, client, configure, eventually, mail, raw, rawAuthenticated, refusal, sink, startRelay, type RawSession, type RelayFixture, type Sink } from './helpers.js';

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

describe('mail: rate limits and session timeouts', function () {
  describe('RateLimiter (token bucket)', () => {
    it('a burst of `limit`, then one per perMs/limit; wait() says how long; 0 means no limit', () => {
      let now = 0;
      const r = new RateLimiter({ limit: 3, perMs: 3000 }, () => now);
      expect([1, 2, 3, 4].map(() => r.tryTake('a'))).to.deep.equal([true, true, true, false]);
      expect(r.wait('a')).to.equal(1000);
      expect(r.tryTake('b')).to.equal(true); // keys are independent
      now = 999;
      expect(r.tryTake('a')).to.equal(false);
      now = 1000;
      expect(r.wait('a')).to.equal(0);
      expect(r.tryTake('a')).to.equal(true);
      now = 100_000; // refilled, never above the limit
      expect([1, 2, 3, 4].map(() => r.tryTake('a'))).to.deep.equal([true, true, true, false]);
      const off = new RateLimiter({ limit: 0, perMs: 1000 }, () => now);
      expect(Array.from({ length: 1000 }, () => off.tryTake('a')).every(Boolean)).to.equal(true);
      expect(off.wait('a')).to.equal(0);
    });

    it('take() spends into debt: work let in before the last token went makes the next wait longer', () => {
      let now = 0;
      const r = new RateLimiter({ limit: 2, perMs: 2000 }, () => now);
      r.take('a');
      r.take('a');
      r.take('a'); // -1
      expect(r.wait('a')).to.equal(2000);
      now = 2000;
      expect(r.wait('a')).to.equal(0);
    });
  });

  it('mail_max_clients_per_ip and mail_max_data_in_flight: defaults, from the environment to the relay; a budget smaller than mail_max_size is refused naming it', () => {
    expect(relayOptions(loadConfig({ env: {}, interfaces: {} }))).to.deep.include({ maxClientsPerIp: 10, maxDataInFlight: 64 * 1024 * 1024 });
    const env = { DNSPROXY_MAIL_MAX_CLIENTS_PER_IP: '0', DNSPROXY_MAIL_MAX_DATA_IN_FLIGHT: '30000000' };
    expect(relayOptions(loadConfig({ env, interfaces: {} }))).to.deep.include({ maxClientsPerIp: 0, maxDataInFlight: 30_000_000 });
    expect(() => loadConfig({ env: { DNSPROXY_MAIL_MAX_DATA_IN_FLIGHT: '1000000' }, interfaces: {} })).to.throw(ConfigError, /mail_max_data_in_flight.*at least mail_max_size/);
  });

  describe('against a relay', () => {
    let r: RelayFixture | undefined;
    let provider: Sink;
    beforeEach(async () => {
      provider = sink();
      await provider.listen();
    });
    afterEach(async () => {
      await r?.close();
      r = undefined;
      await provider.close();
    });

    it('an account over its messages per hour gets 451 4.7.0 naming the limit and the wait; another account is not held back', async () => {
      r = await startRelay({ accountMessagesPerHour: 2 });
      await configure(r, { sink: provider.port });
      await r.store.addAccount({ name: 'other', email: 'other@example.net', password: 'another long password', allowed_domains: ['example.net'] });
      const c = client(r);
      await c.sendMail(mail());
      await c.sendMail(mail({ to: ['a@example.org', 'b@example.org', 'c@example.org'] })); // one message, however many recipients
      const e = await refusal(c.sendMail(mail()));
      expect(e.responseCode).to.equal(451);
      expect(e.response).to.match(/^451 4\.7\.0 Account app may send 2 messages per hour and has reached that, try again in \d+ s$/);
      const other = await client(r, { user: 'other', pass: 'another long password' }).sendMail(mail({ from: 'x@example.net' }));
      expect(other.response).to.match(/^250 /);
      expect(r.messages.list().filter((m) => m.account === ACCOUNT.name)).to.have.length(2);
    });

    it('a client address over its connections per minute gets 421 4.7.0 at connect and is disconnected', async () => {
      r = await startRelay({ ipConnectionsPerMinute: 2 });
      const first = await raw(r.submissionPort);
      const second = await raw(r.submissionPort);
      expect(await first.reply()).to.match(/^220 /);
      expect(await second.reply()).to.match(/^220 /);
      const third = await raw(r.submissionPort);
      expect(await third.reply()).to.match(/^421 4\.7\.0 Too many connections from 127\.0\.0\.1, try again in \d+ s\r\n$/);
      expect(await third.reply()).to.equal('(closed)');
      for (const s of [first, second, third]) s.close();
    });

    it('a client address at mail_max_clients_per_ip open sessions gets 421 4.7.0 at connect, on any listener; other addresses do not; a closed session frees its place', async () => {
      r = await startRelay({ maxClientsPerIp: 2 });
      const held = [await raw(r.submissionPort, '127.0.0.5'), await raw(r.smtpPort, '127.0.0.5')];
      for (const s of held) expect(await s.reply()).to.match(/^220 /);
      for (const port of [r.submissionPort, r.smtpPort]) {
        const over = await raw(port, '127.0.0.5');
        expect(await over.reply()).to.equal('421 4.7.0 Too many connections from 127.0.0.5 at once (at most 2), try again later\r\n');
        expect(await over.reply()).to.equal('(closed)');
      }
      const other = await raw(r.submissionPort, '127.0.0.6');
      expect(await other.reply()).to.match(/^220 /);
      held.shift()!.close();
      // The relay sees the close a moment later: a new session from the address is let in once it has.
      let again: RawSession | undefined;
      for (const end = Date.now() + 5000; !again && Date.now() < end; ) {
        const s = await raw(r.submissionPort, '127.0.0.5');
        if ((await s.reply()).startsWith('220 ')) again = s;
        else s.close();
      }
      expect(again, 'a place for 127.0.0.5 again').to.not.equal(undefined);
      for (const s of [...held, other, again!]) s.close();
    });

    it('message data held in memory is bounded across sessions: a message that does not fit gets 452 4.3.1 (SIZE= at MAIL FROM, else at its end); bytes go back on commit and on disconnect', async () => {
      const budget = new DataBudget(300_000);
      r = await startRelay({ maxSize: 200_000, dataBudget: budget });
      await configure(r, { sink: provider.port });
      const line = 'x'.repeat(998);
      const open = async (s: Awaited<ReturnType<typeof rawAuthenticated>>, size = '') => {
        s.send(`MAIL FROM:<app@example.com>${size}`);
        const mailFrom = await s.reply();
        if (!mailFrom.startsWith('250')) return mailFrom;
        s.send('RCPT TO:<big@example.org>');
        expect(await s.reply()).to.match(/^250 /);
        s.send('DATA');
        expect(await s.reply()).to.match(/^354 /);
        return mailFrom;
      };
      const a = await rawAuthenticated(r);
      await open(a);
      a.send(Buffer.from(`Subject: a\r\n\r\n${`${line}\r\n`.repeat(150)}`));
      await eventually(() => budget.inUse >= 150_000, 5000, "the first message's bytes held");

      const b = await rawAuthenticated(r);
      expect(await open(b, ' SIZE=200000')).to.equal('452 4.3.1 Insufficient system storage: too much mail being received at once, try again later\r\n');
      await open(b); // without SIZE= the relay learns it as the data comes
      b.send(Buffer.from(`Subject: b\r\n\r\n${`${line}\r\n`.repeat(195)}.\r\n`));
      expect(await b.reply()).to.equal('452 4.3.1 Insufficient system storage: too much mail being received at once, try again later\r\n');
      expect(budget.inUse, "b's bytes went back at once").to.be.below(160_000);

      a.send('.');
      expect(await a.reply()).to.match(/^250 2\.0\.0 Ok: queued as /);
      expect(budget.inUse, 'committed: its bytes went back').to.equal(0);
      await open(b);
      b.send(Buffer.from(`Subject: b again\r\n\r\n${`${line}\r\n`.repeat(195)}.\r\n`));
      expect(await b.reply(), 'the retry fits').to.match(/^250 2\.0\.0 Ok: queued as /);

      const c = await rawAuthenticated(r);
      await open(c);
      c.send(Buffer.from(`Subject: c\r\n\r\n${`${line}\r\n`.repeat(100)}`));
      await eventually(() => budget.inUse >= 100_000, 5000, "the cut-off message's bytes held");
      c.close(); // gone mid-DATA
      await eventually(() => budget.inUse === 0, 5000, 'the bytes of a client gone mid-DATA back');
      for (const s of [a, b]) s.close();
      expect(r.messages.list().map((m) => m.size).sort()).to.have.length(2);
    });

    it('an idle client is dropped with 421 after the idle timeout', async () => {
      r = await startRelay({ sessionTimeouts: { idleMs: 200 } });
      const s = await raw(r.submissionPort);
      expect(await s.reply()).to.match(/^220 /);
      const started = Date.now();
      expect(await s.reply()).to.match(/^421 /);
      expect(Date.now() - started).to.be.within(150, 2000);
      s.close();
    });

    it('a busy client is still ended with 421 4.4.2 at the session limit (NOOPs reset only the idle timer)', async () => {
      r = await startRelay({ sessionTimeouts: { idleMs: 10_000, maxSessionMs: 400, graceMs: 5000 } });
      const s = await raw(r.submissionPort);
      await s.reply();
      const started = Date.now();
      let last = '';
      while (Date.now() - started < 3000) {
        s.send('NOOP');
        last = await s.reply();
        if (!last.startsWith('250')) break;
        await sleep(50);
      }
      expect(last).to.equal('421 4.4.2 Session time limit reached, reconnect to go on\r\n');
      expect(Date.now() - started).to.be.within(300, 2000);
      s.close();
    });

    it('at the session limit a transaction in progress is finished first (250), then the session ends; one that outlasts the grace is cut', async () => {
      r = await startRelay({ sessionTimeouts: { idleMs: 10_000, maxSessionMs: 1500, graceMs: 1500 } });
      await configure(r, { sink: provider.port });
      const s = await rawAuthenticated(r);
      s.send('MAIL FROM:<app@example.com>');
      expect(await s.reply()).to.match(/^250 /);
      s.send('RCPT TO:<slow@example.org>');
      expect(await s.reply()).to.match(/^250 /);
      s.send('DATA');
      expect(await s.reply()).to.match(/^354 /);
      s.send('Subject: slow');
      s.send('');
      await sleep(1800); // past the session limit, inside the grace
      s.send('the end');
      s.send('.');
      expect(await s.reply()).to.match(/^250 2\.0\.0 Ok: queued as /);
      expect(await s.reply()).to.equal('421 4.4.2 Session time limit reached, reconnect to go on\r\n');
      s.close();

      // A transaction still open at limit + grace is cut.
      const t = await rawAuthenticated(r);
      t.send('MAIL FROM:<app@example.com>');
      expect(await t.reply()).to.match(/^250 /);
      const started = Date.now();
      let last = '';
      while (Date.now() - started < 6000) {
        t.send('NOOP');
        last = await t.reply();
        if (!last.startsWith('250')) break;
        await sleep(100);
      }
      expect(last).to.equal('421 4.4.2 Session time limit reached, reconnect to go on\r\n');
      t.close();
    });
  });
});
