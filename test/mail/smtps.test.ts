// Submission over implicit TLS (RFC 8314, the port 465 listener, `smtps_port`): TLS from the first
// byte, then the submission policy as on the submission port. Real sockets: nodemailer → relay → sink.
import { expect } from 'chai';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import nodemailer from 'nodemailer';
import { ACCOUNT, eventually, HOSTNAME, mail, queuedIds, refusal, relayWithSink, type RelayFixture, type Sink } from './helpers.js';

describe('mail: submission over implicit TLS (smtps_port)', function () {
  let r: RelayFixture;
  let provider: Sink;
  relayWithSink({ smtpsPort: 0 }, (f) => ({ r, provider } = f));

  /** nodemailer with `secure: true` (TLS at connect), verifying the relay's certificate. */
  const client = (auth = true) =>
    nodemailer.createTransport({
      host: '127.0.0.1',
      port: r.smtpsPort!,
      secure: true,
      tls: { ca: r.cert, servername: HOSTNAME },
      ...(auth ? { auth: { user: ACCOUNT.name, pass: ACCOUNT.password } } : {}),
      logger: false,
    });

  /** The EHLO reply over a TLS connection to the implicit-TLS port. */
  const ehlo = () =>
    new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ port: r.smtpsPort!, host: '127.0.0.1', servername: HOSTNAME, ca: r.cert });
      let buf = '';
      let greeted = false;
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        if (!greeted && /^220 .*\r\n/m.test(buf)) {
          greeted = true;
          buf = '';
          s.write('EHLO client.example.com\r\n');
        } else if (greeted && /^250 .*\r\n/m.test(buf)) {
          s.destroy();
          resolve(buf);
        }
      });
      s.once('error', reject);
    });

  it('accepts an authenticated message with TLS from the first byte; the provider receives it, Received says ESMTPSA', async () => {
    expect(r.smtpsPort).to.be.a('number').and.not.equal(r.submissionPort);
    const info = await client().sendMail(mail({ subject: 'implicit tls' }));
    const [id] = queuedIds(info.response);
    expect(r.messages.get(id!)).to.include({ account: 'app', mail_from: 'app@example.com' });
    const got = await eventually(() => provider.received[0], 5000, 'the sink to receive the message');
    expect(got.raw.toString()).to.include('Subject: implicit tls').and.match(/^Received: from .*\s+by relay\.example\.net \(dnsproxy\) with ESMTPSA/s);
  });

  it('offers AUTH and no STARTTLS (the session is already encrypted), and still wants AUTH before MAIL FROM (530 5.7.0)', async () => {
    const reply = await ehlo();
    expect(reply).to.match(/^250-AUTH PLAIN LOGIN\r$/m);
    expect(reply).not.to.include('STARTTLS');
    const e = await refusal(client(false).sendMail(mail()));
    expect(e.responseCode).to.equal(530);
    expect(r.messages.list()).to.have.length(0);
  });

  it('a plain-text client gets no greeting and is disconnected; the listener goes on serving', async () => {
    const plain = connect(r.smtpsPort!, '127.0.0.1');
    let got = '';
    plain.on('data', (d: Buffer) => (got += d.toString('latin1')));
    plain.on('error', () => undefined);
    plain.write('EHLO client.example.com\r\n');
    await new Promise((resolve) => plain.once('close', resolve));
    expect(got).not.to.match(/^220 /m);
    const info = await client().sendMail(mail());
    expect(info.response).to.match(/^250 /);
  });
});
