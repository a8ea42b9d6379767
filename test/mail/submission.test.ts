// The relay's SMTP side as a client sees it: what gets 250 (and reaches the provider), and what
// is refused with which reply. Real sockets: nodemailer → relay → sink.
import { expect } from 'chai';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { dkimTxt, generateDkimPrivateKey } from '../../src/mail/credentials/keys.js';
import { MAX_REFUSED_RECIPIENTS } from '../../src/mail/smtp/server.js';
import { authPlain, client, eventually, mail, message, queuedIds, raw, rawAuthenticated, rawTls, refusal, relayWithSink, sink, type RelayFixture, type Sink } from './helpers.js';

describe('mail: submission (STARTTLS + AUTH, policy replies)', function () {
  let r: RelayFixture;
  let provider: Sink;
  relayWithSink({ maxClients: 3 }, (f) => ({ r, provider } = f));

  it('accepts an authenticated message over STARTTLS, stored before the 250, and the provider receives it with our envelope', async () => {
    const info = await client(r).sendMail(mail({ to: ['one@example.org', 'two@example.org'], subject: 'vertical slice' }));
    expect(info.response).to.match(/^250 2\.0\.0 Ok: queued as [0-9a-f]+$/);
    const [id] = queuedIds(info.response);
    // The 250 came after the commit: the controller's own handle on the file already sees the row.
    expect(r.messages.get(id!)).to.include({ account: 'app', mail_from: 'app@example.com', recipient_domain: 'example.org' });
    const got = await eventually(() => provider.received[0], 5000, 'the sink to receive the message');
    expect(got.from).to.equal('app@example.com');
    expect(got.to).to.deep.equal(['one@example.org', 'two@example.org']);
    expect(got.raw.toString()).to.include('Subject: vertical slice').and.match(/^Received: from .*\s+by relay\.example\.net \(dnsproxy\) with ESMTPSA/s);
    const m = await eventually(() => r.messages.get(id!)?.status === 'delivered' && message(r, id!), 5000, 'status delivered');
    expect(m).to.include({ provider: 'sink', attempts: 1, body_id: null }); // delivered: the body is purged
    const log = r.messages.deliveries(id!);
    expect(log).to.have.length(1);
    expect(log[0]).to.include({ provider: 'sink', outcome: 'delivered', code: 250 });
  });

  it('queues one message per recipient domain, each routed by its own rule', async () => {
    const other = sink();
    await other.listen();
    try {
      r.store.putProvider({ name: 'other', config: { type: 'smtp', host: '127.0.0.1', port: other.port, security: 'starttls', tls_verify: false, allow_private: true } });
      r.store.addRule({ priority: 10, sender_domain: null, recipient_domain: 'example.net', account: null, provider: 'other', fallback_provider: null });
      const info = await client(r).sendMail(mail({ to: ['a@example.org', 'b@example.net'] }));
      expect(queuedIds(info.response)).to.have.length(2);
      await eventually(() => provider.received.length === 1 && other.received.length === 1, 5000, 'both sinks');
      expect(provider.received[0]!.to).to.deep.equal(['a@example.org']);
      expect(other.received[0]!.to).to.deep.equal(['b@example.net']);
    } finally {
      await other.close();
    }
  });

  it("signs with the sender domain's DKIM key, and mailauth verifies the signature the provider received", async () => {
    const privateKey = await generateDkimPrivateKey();
    r.store.putDkimKey({ domain: 'example.com', selector: 'relay1', private_key: privateKey });
    await client(r).sendMail(mail({ subject: 'signed' }));
    const got = await eventually(() => provider.received[0], 5000, 'the signed message');
    expect(got.raw.toString()).to.match(/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com;/);
    const asked: string[] = [];
    const result = await dkimVerify(got.raw, {
      resolver: async (name: string, type: string) => {
        asked.push(`${name} ${type}`);
        if (name === 'relay1._domainkey.example.com' && type === 'TXT') return [[dkimTxt(privateKey)]];
        throw Object.assign(new Error('NXDOMAIN'), { code: 'ENOTFOUND' });
      },
    });
    expect(asked).to.deep.equal(['relay1._domainkey.example.com TXT']);
    expect(result.results.map((x) => [x.status.result, x.signingDomain])).to.deep.equal([['pass', 'example.com']]);
  });

  it('refuses MAIL FROM without AUTH with 530 5.7.0: never an open relay', async () => {
    const e = await refusal(client(r, { auth: false }).sendMail(mail()));
    expect(e.responseCode).to.equal(530);
    expect(e.response).to.include('5.7.0');
    expect(r.messages.list()).to.have.length(0);
    expect(provider.received).to.have.length(0);
  });

  it('on the SMTP port without AUTH (no mail_domains), every recipient is 550 5.7.1 relaying denied, as an MX answers: never an open relay', async () => {
    const s = await raw(r.smtpPort);
    try {
      expect(await s.reply()).to.match(/^220 /);
      s.send('EHLO client.example.org');
      expect(await s.reply()).to.match(/^250[- ]/);
      s.send('MAIL FROM:<app@example.com>');
      expect(await s.reply()).to.match(/^250 /);
      for (const rcpt of ['x@example.net', 'rcpt@example.org']) {
        s.send(`RCPT TO:<${rcpt}>`);
        expect(await s.reply()).to.match(/^550 5\.7\.1 Relaying denied: /);
      }
      s.send('DATA');
      expect(await s.reply()).to.match(/^503 /); // no recipient: no message
    } finally {
      s.close();
    }
    expect(r.messages.list()).to.have.length(0);
    expect(provider.received).to.have.length(0);
  });

  it('on the SMTP port, AUTH after an unauthenticated MAIL FROM is 503 5.5.1 (RFC 4954): the sender is checked as the account\'s after RSET', async () => {
    const s = await rawTls(r, r.smtpPort);
    try {
      s.send('MAIL FROM:<ceo@victim.example>'); // taken under the inbound policy: any sender
      expect(await s.reply()).to.match(/^250 /);
      s.send(authPlain());
      expect(await s.reply()).to.match(/^503 5\.5\.1 AUTH is not permitted during a mail transaction/);
      s.send('RSET');
      expect(await s.reply()).to.match(/^250 /);
      s.send(authPlain());
      expect(await s.reply()).to.match(/^235 /);
      s.send('MAIL FROM:<ceo@victim.example>'); // now the account's sender domains apply
      expect(await s.reply()).to.match(/^550 5\.7\.1 /);
    } finally {
      s.close();
    }
    expect(r.messages.list()).to.have.length(0);
  });

  it(`on the SMTP port without AUTH, after ${MAX_REFUSED_RECIPIENTS} refused recipients the next gets 421 and the connection ends`, async () => {
    const s = await raw(r.smtpPort);
    await s.reply();
    s.send('EHLO client.example.org');
    await s.reply();
    s.send('MAIL FROM:<probe@example.org>');
    await s.reply();
    for (let i = 0; i < MAX_REFUSED_RECIPIENTS; i++) {
      s.send(`RCPT TO:<user${i}@example.net>`);
      expect(await s.reply()).to.match(/^550 5\.7\.1 /);
    }
    s.send('RCPT TO:<one-more@example.net>');
    expect(await s.reply()).to.match(/^421 4\.7\.0 Too many refused recipients/);
    expect(await s.reply(), 'the connection ended').to.equal('(closed)');
  });

  it('offers AUTH only after STARTTLS: EHLO in plain text lists none, AUTH gets 530 5.7.0 and no credential is asked for or read', async () => {
    for (const port of [r.submissionPort, r.smtpPort]) {
      const s = await raw(port);
      try {
        await s.reply(); // greeting
        s.send('EHLO client.example.com');
        const ehlo = await s.reply();
        expect(ehlo, `port ${port}`).to.include('STARTTLS').and.not.match(/AUTH/);
        s.send(authPlain()); // the credentials on the AUTH line itself: dropped unread
        expect(await s.reply()).to.equal('530 5.7.0 Must issue a STARTTLS command first\r\n');
        s.send('AUTH LOGIN'); // no 334 prompt for a user name
        expect(await s.reply()).to.equal('530 5.7.0 Must issue a STARTTLS command first\r\n');
        s.send('STARTTLS');
        expect(await s.reply()).to.match(/^220 /);
        const t = await s.upgrade(r.cert);
        t.send('EHLO client.example.com');
        expect(await t.reply()).to.match(/^250-AUTH PLAIN LOGIN\r$/m);
        t.send(authPlain());
        expect(await t.reply()).to.match(/^235 /);
        t.close();
      } finally {
        s.close();
      }
    }
    // A client that would log in without TLS sees no AUTH, so it never sends its password; MAIL FROM is 530.
    const e = await refusal(client(r, { tls: false }).sendMail(mail()));
    expect(e.responseCode).to.equal(530);
    expect(r.messages.list()).to.have.length(0);
  });

  it("refuses a sender outside the account's domains with 550 5.7.1", async () => {
    const e = await refusal(client(r).sendMail(mail({ from: 'ceo@example.net' })));
    expect(e.responseCode).to.equal(550);
    expect(e.response).to.match(/5\.7\.1 Sender <ceo@example\.net> is not allowed for account app/);
    expect(r.messages.list()).to.have.length(0);
  });

  it('refuses a recipient no rule routes with 550 5.7.1', async () => {
    r.store.removeRule(r.store.rules()[0]!.id);
    r.store.addRule({ priority: 1, sender_domain: null, recipient_domain: 'example.org', account: null, provider: 'sink', fallback_provider: null });
    const e = await refusal(client(r).sendMail(mail({ to: ['x@example.net'] })));
    expect(e.responseCode).to.equal(550);
    expect(e.response).to.equal('550 5.7.1 Relaying to <x@example.net> is not configured'); // the enhanced code once
  });

  it('refuses a message over the size limit with 552 and queues nothing (SIZE is advertised and enforced)', async () => {
    const s = await rawAuthenticated(r);
    s.send('MAIL FROM:<app@example.com> SIZE=5000000');
    expect(await s.reply()).to.match(/^552 /);
    s.close();
    const e = await refusal(client(r).sendMail(mail({ text: 'x'.repeat(1_200_000) })));
    expect(e.responseCode).to.equal(552);
    expect(e.response).to.include('5.3.4');
    expect(r.messages.list()).to.have.length(0);
  });

  it('answers the connection over the client limit with 421 at connect', async () => {
    const held = await Promise.all([raw(r.submissionPort), raw(r.submissionPort), raw(r.submissionPort)]);
    for (const s of held) expect(await s.reply()).to.match(/^220 /);
    const over = await raw(r.submissionPort);
    expect(await over.reply()).to.match(/^421 /);
    for (const s of [...held, over]) s.close();
  });

  it('answers a wrong password with 535 after a delay, while another client logs in without waiting', async () => {
    const start = Date.now();
    const bad = refusal(client(r, { pass: 'wrong password' }).sendMail(mail()));
    const good = client(r).sendMail(mail()).then(() => Date.now() - start);
    const [e, goodMs] = await Promise.all([bad, good]);
    const badMs = Date.now() - start;
    expect(e.responseCode).to.equal(535);
    expect(e.response).to.include('5.7.8');
    expect(badMs).to.be.at.least(300); // FAST.authThrottle.baseMs
    expect(goodMs).to.be.below(badMs);
    // Failures from the same address with no login in between wait twice as long each time. The
    // good login above may have come after the bad one and reset the count, so one more failure
    // first: the one after it is at least the second in a row.
    await refusal(client(r, { user: 'nobody', pass: 'wrong password' }).sendMail(mail()));
    const t = Date.now();
    await refusal(client(r, { user: 'nobody', pass: 'wrong password' }).sendMail(mail()));
    expect(Date.now() - t).to.be.at.least(600);
  });

  it('survives a client that resets mid-DATA and one that sends garbage; the next message is accepted', async () => {
    const s = await rawAuthenticated(r);
    s.send('MAIL FROM:<app@example.com>');
    expect(await s.reply()).to.match(/^250 /);
    s.send('RCPT TO:<a@example.org>');
    expect(await s.reply()).to.match(/^250 /);
    s.send('DATA');
    expect(await s.reply()).to.match(/^354 /);
    s.send('Subject: cut off\r\n\r\nhalf a mess');
    s.close(); // reset before the final dot

    const g = await raw(r.submissionPort);
    await g.reply();
    g.send(Buffer.from([0xff, 0xfe, 0x00, 0x1b, 0x0d, 0x0a]));
    expect(await g.reply()).to.match(/^[45]\d\d /);
    g.send(`EHLO ${'x'.repeat(5000)}`);
    expect(await g.reply()).to.match(/^(?:[45]\d\d |\(closed\))/);
    g.close();

    const info = await client(r).sendMail(mail({ subject: 'after the resets' }));
    expect(info.response).to.match(/^250 /);
    expect(r.messages.list().map((m) => m.id)).to.deep.equal(queuedIds(info.response)); // the cut-off one was never queued
  });
});
