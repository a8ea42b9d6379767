// Bounces and partial refusals as the sender sees them: a DSN (RFC 3464) in the sender's own
// mailbox (a second sink, reached through a rule for the sender's domain), and per-recipient
// outcomes when the provider refuses some recipients at RCPT TO. Real sockets throughout.
import { expect } from 'chai';
import { client, configure, deadPort, eachRelayAndSinks, eventually, mail, message, queuedIds, startRelay, type Received, type RelayFixture, type Sink } from './helpers.js';

describe('mail: bounces (DSN to the sender) and per-recipient outcomes', function () {
  let r: RelayFixture | undefined;
  const newSink = eachRelayAndSinks(() => r, () => (r = undefined));

  /** The relay with `providers` (the first is the catch-all) and the sender's mailbox `home`, routed by a rule for example.com. */
  async function relayWithMailbox(providers: Record<string, number>, home: Sink, over: Parameters<typeof startRelay>[0] = {}) {
    r = await startRelay(over);
    await configure(r, { ...providers, home: home.port });
    r.store.addRule({ priority: 10, sender_domain: null, recipient_domain: 'example.com', account: null, provider: 'home', fallback_provider: null });
    return r;
  }

  /** The DSN's three parts, split at its boundary. */
  function parts(dsn: Received): { head: string; human: string; status: string; headers: string } {
    const text = dsn.raw.toString('utf8');
    const boundary = /boundary="([^"]+)"/.exec(text)?.[1];
    if (!boundary) throw new Error(`no MIME boundary in\n${text}`);
    const [head = '', human = '', status = '', headers = ''] = text.split(`--${boundary}`);
    return { head, human, status, headers };
  }

  it('provider answers 550: the sender receives a DSN from <> naming the recipient, the 5.1.1 status and the reply, with the original headers only', async () => {
    const strict = await newSink();
    strict.reject = { code: 550, text: '5.1.1 <gone@example.org>: mailbox unavailable' };
    const home = await newSink();
    await relayWithMailbox({ strict: strict.port }, home);
    const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['gone@example.org'], subject: 'quarterly report', text: 'the secret body' }))).response);

    const dsn = await eventually(() => home.received[0], 5000, 'the DSN in the sender mailbox');
    expect(dsn.from).to.equal(''); // MAIL FROM:<>
    expect(dsn.to).to.deep.equal(['app@example.com']);
    const p = parts(dsn);
    expect(p.head).to.match(/^From: Mail Delivery System <MAILER-DAEMON@example\.com>\r\n/m);
    expect(p.head).to.include('Content-Type: multipart/report; report-type=delivery-status;').and.include('Auto-Submitted: auto-replied');
    expect(p.human).to.include('Content-Type: text/plain').and.include('<gone@example.org>').and.include('Status: 5.1.1').and.include(id!).and.include('quarterly report');
    expect(p.status).to.include('Content-Type: message/delivery-status');
    expect(p.status).to.include('Reporting-MTA: dns; relay.example.net');
    expect(p.status).to.include('Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: mailbox unavailable');
    expect(p.headers).to.include('Content-Type: text/rfc822-headers').and.include('Subject: quarterly report');
    expect(dsn.raw.toString()).not.to.include('the secret body');

    expect(message(r!, id!)).to.include({ status: 'bounced' });
    const [queued] = r!.messages.list().filter((m) => m.parent_id === id);
    expect(queued).to.include({ mail_from: '', recipient_domain: 'example.com', account: 'app' });
    await eventually(() => r!.messages.get(queued!.id)?.status === 'delivered', 5000, 'the DSN delivered');
  });

  it('a DSN the sender side refuses too is not bounced again (never a DSN for a DSN)', async () => {
    const strict = await newSink();
    strict.reject = { code: 550, text: 'no' };
    const home = await newSink();
    home.reject = { code: 550, text: 'no bounces here' };
    await relayWithMailbox({ strict: strict.port }, home);
    const [id] = queuedIds((await client(r!).sendMail(mail())).response);
    const dsn = await eventually(() => r!.messages.list().find((m) => m.parent_id === id && m.status === 'bounced'), 5000, 'the DSN bounced');
    // The settle that marks a message bounced queues its DSN in the same transaction: a (wrong)
    // DSN for this DSN would be in the table by the time its status reads bounced.
    expect(r!.messages.list().map((m) => [m.id, m.status])).to.have.deep.members([
      [id, 'bounced'],
      [dsn.id, 'bounced'],
    ]);
  });

  it('gave up (provider unreachable): the DSN says the relay gave up, Status 4.4.1, the connection error as diagnostic', async () => {
    const home = await newSink();
    await relayWithMailbox({ down: await deadPort() }, home, { retry: { baseMs: 50, maxMs: 100, giveUpMs: 300 } });
    const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['far@example.org'] }))).response);
    const dsn = await eventually(() => home.received[0], 5000, 'the DSN');
    const p = parts(dsn);
    expect(p.human).to.include('has now given up').and.include('<far@example.org>');
    expect(p.status).to.include('Final-Recipient: rfc822; far@example.org\r\nAction: failed\r\nStatus: 4.4.1\r\nDiagnostic-Code: X-dnsproxy; ');
    expect(p.status).to.match(/Diagnostic-Code: X-dnsproxy; .*(ECONNREFUSED|connect)/i);
    expect(message(r!, id!).status).to.equal('failed');
  });

  it('provider refuses one recipient with 550 and defers another with 450: the rest are delivered once, the refused one bounces (DSN naming only it), the deferred one is retried alone', async () => {
    const isp = await newSink();
    isp.rejectRcpt = {
      'gone@example.org': { code: 550, text: '5.1.1 no such user' },
      'busy@example.org': { code: 450, text: '4.2.1 mailbox busy, try later' },
    };
    const home = await newSink();
    await relayWithMailbox({ isp: isp.port }, home);
    const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['ok@example.org', 'gone@example.org', 'busy@example.org'], subject: 'three of them' }))).response);

    const dsn = await eventually(() => home.received[0], 5000, 'the DSN for gone@');
    const p = parts(dsn);
    expect(p.status).to.include('Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user');
    for (const part of [p.human, p.status]) expect(part).not.to.include('ok@example.org').and.not.include('busy@example.org');

    expect(message(r!, id!)).to.deep.include({ status: 'delivered', rcpt_to: ['ok@example.org'] });
    const split = (rcpt: string) => r!.messages.list().find((m) => m.parent_id === id && m.rcpt_to.includes(rcpt));
    expect(split('gone@example.org')).to.include({ status: 'bounced', mail_from: 'app@example.com' });
    expect(r!.messages.deliveries(split('gone@example.org')!.id).map((d) => [d.outcome, d.code])).to.deep.equal([['permanent', 550]]);

    // busy@ is retried on its own; once its mailbox takes mail it is delivered, the others are not sent again.
    const busy = split('busy@example.org')!;
    expect(busy.status).to.be.oneOf(['deferred', 'sending']);
    isp.rejectRcpt = {};
    await eventually(() => r!.messages.get(busy.id)?.status === 'delivered', 5000, 'busy@ delivered on a retry');
    expect(isp.received.map((x) => x.to)).to.deep.equal([['ok@example.org'], ['busy@example.org']]);
    expect(r!.messages.deliveries(busy.id).map((d) => [d.outcome, d.code])[0]).to.deep.equal(['transient', 450]);
    expect(home.received).to.have.length(1); // one DSN, for gone@ only
  });
});
