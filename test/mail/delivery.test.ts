// The queue as an operator sees it: status, attempts and the delivery log of messages whose
// provider is down, refuses, or keeps failing; and a lease left by a crashed relay.
import { expect } from 'chai';
import { tempDir } from '../helpers/tmp.js';
import { client, configure, deadPort, eachRelayAndSinks, eventually, mail, message, queuedIds, startRelay, type RelayFixture } from './helpers.js';

describe('mail: delivery (retries, bounces, fallback, leases)', function () {
  let r: RelayFixture | undefined;
  const newSink = eachRelayAndSinks(() => r, () => (r = undefined));

  it('provider down: the message is deferred with the connection error logged, then delivered once the provider is up', async () => {
    const port = await deadPort();
    r = await startRelay();
    await configure(r, { smtp: port });
    const [id] = queuedIds((await client(r).sendMail(mail({ subject: 'patience' }))).response);
    const deferred = await eventually(() => (r!.messages.get(id!)?.attempts ?? 0) >= 2 && message(r!, id!), 5000, 'two failed attempts');
    expect(deferred.status).to.be.oneOf(['deferred', 'sending']);
    const log = r.messages.deliveries(id!);
    expect(log[0]).to.include({ provider: 'smtp', outcome: 'transient', code: null });
    expect(log[0]!.response).to.match(/ECONNREFUSED|connect/i);
    // Backoff: the second attempt came at least base (50 ms) after the first.
    expect(log[1]!.at_ms - log[0]!.at_ms).to.be.at.least(50);

    const up = await newSink(port);
    await eventually(() => r!.messages.get(id!)?.status === 'delivered', 5000, 'delivery after the provider came up');
    expect(up.received).to.have.length(1);
    expect(up.received[0]!.raw.toString()).to.include('Subject: patience');
    expect(r.messages.deliveries(id!).at(-1)).to.include({ outcome: 'delivered', code: 250 });
  });

  it('provider answers 550: the message is bounced after one attempt, the reply in the delivery log', async () => {
    const s = await newSink();
    s.reject = { code: 550, text: 'mailbox unavailable' };
    r = await startRelay();
    await configure(r, { strict: s.port });
    const [id] = queuedIds((await client(r).sendMail(mail())).response);
    const m = await eventually(() => r!.messages.get(id!)?.status === 'bounced' && message(r!, id!), 5000, 'bounced');
    expect(m.attempts).to.equal(1);
    expect(m.last_error).to.match(/^strict: 550 mailbox unavailable/);
    expect(r.messages.deliveries(id!).map((d) => [d.outcome, d.code])).to.deep.equal([['permanent', 550]]);
  });

  it('primary keeps answering 451: after two attempts the fallback provider delivers the message', async () => {
    const primary = await newSink();
    primary.reject = { code: 451, text: 'try again later' };
    const fallback = await newSink();
    r = await startRelay({ fallbackAfter: 2 });
    await configure(r, { primary: primary.port, backup: fallback.port }, { fallback: 'backup' });
    const [id] = queuedIds((await client(r).sendMail(mail({ subject: 'via the fallback' }))).response);
    const m = await eventually(() => r!.messages.get(id!)?.status === 'delivered' && message(r!, id!), 5000, 'delivered by the fallback');
    expect(m.provider).to.equal('backup');
    expect(fallback.received[0]!.raw.toString()).to.include('Subject: via the fallback');
    expect(r.messages.deliveries(id!).map((d) => [d.provider, d.outcome, d.code])).to.deep.equal([
      ['primary', 'transient', 451],
      ['primary', 'transient', 451],
      ['backup', 'delivered', 250],
    ]);
  });

  it('gives up once the give-up time has passed: status failed, attempts in the log', async () => {
    const port = await deadPort();
    r = await startRelay({ retry: { baseMs: 50, maxMs: 100, giveUpMs: 400 } });
    await configure(r, { smtp: port });
    const [id] = queuedIds((await client(r).sendMail(mail())).response);
    const m = await eventually(() => r!.messages.get(id!)?.status === 'failed' && message(r!, id!), 5000, 'failed');
    expect(m.last_error).to.match(/^gave up after \d+ attempts; last: smtp: /);
    expect(r.messages.deliveries(id!).length).to.equal(m.attempts).and.be.at.least(3);
  });

  it('a message leased by a relay that died mid-delivery is delivered once its lease lapses', async () => {
    const s = await newSink();
    r = await startRelay();
    await configure(r, { smtp: s.port });
    // A message another relay claimed and never finished: its lease holds for an hour.
    const [id] = r.messages.enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['late@example.org'], raw: Buffer.from('Subject: orphan\r\n\r\nbody\r\n') }, Date.now());
    const lease = r.db.prepare(`UPDATE mail_messages SET status = 'sending', lease_owner = 'crashed-relay', lease_until = ? WHERE id = ?`);
    lease.run(Date.now() + 3_600_000, id);
    // Not while the lease holds: a message queued after it is claimed and delivered (a claim pass
    // that saw the leased one ran), the leased one is not.
    const [other] = queuedIds((await client(r).sendMail(mail({ to: ['now@example.org'] }))).response);
    await eventually(() => r!.messages.get(other!)?.status === 'delivered', 5000, 'the other message delivered');
    expect(s.received.map((x) => x.to)).to.deep.equal([['now@example.org']]);
    expect(r.messages.get(id!)).to.include({ status: 'sending', lease_owner: 'crashed-relay' });
    // The lease lapses (its end is now past): the next poll takes it over.
    lease.run(Date.now() - 1, id);
    await eventually(() => r!.messages.get(id!)?.status === 'delivered', 5000, 'delivery after the lease lapsed');
    expect(s.received.map((x) => x.to)).to.deep.equal([['now@example.org'], ['late@example.org']]);
  });

  it('a queued message survives a relay restart and is delivered by the next one', async () => {
    const port = await deadPort();
    const tmp = tempDir('dnsproxy-mail-');
    try {
      r = await startRelay({}, tmp.dir);
      await configure(r, { smtp: port });
      const [id] = queuedIds((await client(r).sendMail(mail({ subject: 'across restarts' }))).response);
      await eventually(() => r!.messages.deliveries(id!).length >= 1, 5000, 'a failed attempt');
      await r.close();
      const up = await newSink(port);
      r = await startRelay({}, tmp.dir);
      await eventually(() => r!.messages.get(id!)?.status === 'delivered', 5000, 'delivery by the restarted relay');
      expect(up.received).to.have.length(1);
    } finally {
      await r?.close();
      r = undefined;
      tmp.cleanup();
    }
  });
});
