// `mx` and `http` providers as the sender and the receiving side see them, real sockets
// throughout: a relay on loopback, SMTP sinks standing in for MX hosts (a "down" host is an
// address nothing listens on: 127.0.0.2, same port), our own DNS server or an in-memory zone
// answering the MX queries, and a local HTTP server standing in for the e-mail API.
import { expect } from 'chai';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { rec, startServer, ZONES } from '../dns/fixture.js';
import { selfSignedCert } from '../../src/mail/credentials/cert.js';
import { setLogLevel } from '../../src/log/index.js';
import type { DnsServer } from '../../src/dns/server.js';
import { ZoneIndex } from '../../src/dns/zone.js';
import { memoryResolver, systemResolver } from '../../src/mail/resolver.js';
import type { MxResolver } from '../../src/mail/delivery/mx.js';
import type { ProviderConfig } from '../../src/model/mail.js';
import { ACCOUNT, client, eventually, mail, message, queuedIds, sinkSet, startRelay, type Received, type RelayFixture, type Sink } from './helpers.js';

/** A port free on 127.0.0.1 (a sink's) is one nothing listens on at 127.0.0.2: the "down" MX host. */
const DOWN = '127.0.0.2';
const UP = '127.0.0.1';

interface ApiRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An HTTP server answering each POST with the next scripted reply (the last one repeats), keeping the requests. */
async function fakeApi(replies: { status: number; body?: string; headers?: Record<string, string> }[]) {
  const requests: ApiRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      const reply = replies.length > 1 ? replies.shift()! : replies[0]!;
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers }).end(reply.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, UP, resolve));
  const url = `http://${UP}:${(server.address() as AddressInfo).port}`;
  return { url, requests, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** An SMTP server on 127.0.0.1 recording, per message, whether the session was encrypted; `hideStarttls`: it offers no STARTTLS. */
async function tlsRecorder(hideStarttls: boolean) {
  const sessions: { rcpt: string[]; secure: boolean }[] = [];
  const server = new SMTPServer({
    ...(await selfSignedCert('mx.example.org', new Date())),
    hideSTARTTLS: hideStarttls,
    authOptional: true,
    disableReverseLookup: true,
    closeTimeout: 100,
    logger: false,
    onData(stream, session, cb) {
      stream.resume();
      stream.on('end', () => {
        sessions.push({ rcpt: session.envelope.rcptTo.map((a) => a.address), secure: session.secure });
        cb(null);
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, UP, resolve));
  return { sessions, port: (server.server.address() as AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The DSN's delivery-status part. */
function deliveryStatus(dsn: Received): string {
  const text = dsn.raw.toString('utf8');
  const boundary = /boundary="([^"]+)"/.exec(text)?.[1];
  return text.split(`--${boundary}`).find((p) => p.includes('Content-Type: message/delivery-status')) ?? '';
}

describe('mail: mx and http providers', function () {
  let r: RelayFixture | undefined;
  let dns: DnsServer | undefined;
  const sinks = sinkSet();
  const closers: (() => Promise<void>)[] = [];
  const newSink = () => sinks.start();

  afterEach(async () => {
    await r?.close();
    r = undefined;
    await dns?.stop();
    dns = undefined;
    await Promise.all([sinks.closeAll(), ...closers.splice(0).map((c) => c())]);
  });

  /** A relay whose catch-all rule uses provider `out`, and whose sender mailbox (example.com, for DSNs) is the sink `home`. */
  async function relay(out: ProviderConfig, home: Sink, mxResolver?: MxResolver) {
    r = await startRelay(mxResolver ? { mxResolver } : {});
    await r.store.addAccount(ACCOUNT);
    // Every server here listens on loopback: allowed explicitly (destination.ts).
    r.store.putProvider({ name: 'out', config: { ...out, allow_private: true } });
    r.store.putProvider({ name: 'home', config: { type: 'smtp', host: UP, port: home.port, security: 'starttls', tls_verify: false, allow_private: true } });
    r.store.addRule({ priority: 100, sender_domain: null, recipient_domain: null, account: null, provider: 'out', fallback_provider: null });
    r.store.addRule({ priority: 10, sender_domain: null, recipient_domain: 'example.com', account: null, provider: 'home', fallback_provider: null });
    return r;
  }

  describe('mx', () => {
    it('the preferred MX host is down (in-memory zone): delivered by the next one, the attempt logged once as delivered', async () => {
      const mx2 = await newSink();
      const zone = memoryResolver({
        'example.org': { MX: [{ exchange: 'mx2.example.org', priority: 20 }, { exchange: 'mx1.example.org', priority: 10 }] },
        'mx1.example.org': { A: [DOWN] },
        'mx2.example.org': { A: [UP] },
      });
      await relay({ type: 'mx', port: mx2.port }, await newSink(), zone);
      const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['rcpt@example.org'], subject: 'direct' }))).response);
      const m = await eventually(() => r!.messages.get(id!)?.status === 'delivered' && message(r!, id!), 10_000, 'delivered');
      expect(mx2.received).to.have.length(1);
      expect(mx2.received[0]).to.include({ from: 'app@example.com' });
      expect(mx2.received[0]!.to).to.deep.equal(['rcpt@example.org']);
      expect(mx2.received[0]!.raw.toString()).to.include('Subject: direct');
      expect(m).to.include({ attempts: 1, provider: 'out' });
      expect(r!.messages.deliveries(id!).map((d) => [d.provider, d.outcome, d.code])).to.deep.equal([['out', 'delivered', 250]]);
      // mx1 (preference 10) was looked up before mx2.
      expect(zone.queries.filter((q) => q.startsWith('mx')).slice(0, 2)).to.deep.equal(['mx1.example.org A', 'mx1.example.org AAAA']);
    });

    it('through our own DNS server (node:dns, as in production): MX records of a zone we serve, preferred host down, delivered by the next', async () => {
      const mx2 = await newSink();
      const lab = ZONES.find((z) => z.name === 'lab.example.')!;
      const index = new ZoneIndex([lab]);
      index.load(lab.name, 1, [
        rec(lab.name, '@', { type: 'MX', values: [{ preference: 10, exchange: 'mx1.lab.example.' }, { preference: 20, exchange: 'mx2.lab.example.' }] }),
        rec(lab.name, 'mx1', { type: 'A', values: [DOWN] }),
        rec(lab.name, 'mx2', { type: 'A', values: [UP] }),
      ]);
      const started = await startServer({ index });
      dns = started.server;
      await relay({ type: 'mx', port: mx2.port }, await newSink(), systemResolver([`127.0.0.1:${started.port}`]));
      const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['ops@lab.example'], subject: 'via our resolver' }))).response);
      await eventually(() => r!.messages.get(id!)?.status === 'delivered', 10_000, 'delivered');
      expect(mx2.received.map((m) => m.to)).to.deep.equal([['ops@lab.example']]);
    });

    it('opportunistic STARTTLS: used when the MX host offers it (its self-signed certificate accepted), plain when it does not', async () => {
      const hosts = await Promise.all([tlsRecorder(false), tlsRecorder(true)]);
      closers.push(...hosts.map((h) => h.close));
      // Both on one port is impossible; two domains, each with its MX host on its own port, and two providers.
      const zone = memoryResolver({ 'tls.example': { MX: [{ exchange: 'mx.tls.example', priority: 10 }] }, 'plain.example': { MX: [{ exchange: 'mx.plain.example', priority: 10 }] }, 'mx.tls.example': { A: [UP] }, 'mx.plain.example': { A: [UP] } });
      await relay({ type: 'mx', port: hosts[0].port }, await newSink(), zone);
      r!.store.putProvider({ name: 'plain', config: { type: 'mx', port: hosts[1].port, allow_private: true } });
      r!.store.addRule({ priority: 20, sender_domain: null, recipient_domain: 'plain.example', account: null, provider: 'plain', fallback_provider: null });
      const ids = queuedIds((await client(r!).sendMail(mail({ to: ['a@tls.example', 'b@plain.example'] }))).response);
      await eventually(() => ids.every((id) => r!.messages.get(id)?.status === 'delivered'), 10_000, 'both delivered');
      expect(hosts[0].sessions).to.deep.equal([{ rcpt: ['a@tls.example'], secure: true }]);
      expect(hosts[1].sessions).to.deep.equal([{ rcpt: ['b@plain.example'], secure: false }]);
    });

    it('null MX ("0 ."): bounced after one attempt without dialling anyone; the sender gets a DSN with Status 5.1.10', async () => {
      const home = await newSink();
      const zone = memoryResolver({ 'example.org': { MX: [{ exchange: '', priority: 0 }] } });
      await relay({ type: 'mx', port: 25 }, home, zone);
      const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['nobody@example.org'], subject: 'to a domain without mail' }))).response);
      const dsn = await eventually(() => home.received[0], 10_000, 'the DSN in the sender mailbox');
      expect(message(r!, id!)).to.include({ status: 'bounced', attempts: 1 });
      expect(r!.messages.deliveries(id!).map((d) => [d.outcome, d.code, d.response])).to.deep.equal([['permanent', null, '5.1.10 example.org accepts no mail (null MX, RFC 7505)']]);
      expect(zone.queries).to.deep.equal(['example.org MX']);
      expect(dsn.to).to.deep.equal(['app@example.com']);
      const status = deliveryStatus(dsn);
      expect(status).to.include('Final-Recipient: rfc822; nobody@example.org\r\nAction: failed\r\nStatus: 5.1.10\r\nDiagnostic-Code: X-dnsproxy; 5.1.10 example.org accepts no mail (null MX, RFC 7505)');
    });
  });

  describe('http', () => {
    it('sendgrid: one POST with the bearer key and the message as JSON → delivered; the key is in no log line, queue row or delivery log', async () => {
      const api = await fakeApi([{ status: 202 }]);
      closers.push(api.close);
      const key = 'SG.test-key-never-shown';
      setLogLevel('debug'); // before the relay starts: its queue threads take the level on
      try {
        await relay({ type: 'http', format: 'sendgrid', url: `${api.url}/v3/mail/send`, auth: { scheme: 'bearer', token: key } }, await newSink());
      } finally {
        setLogLevel('error');
      }
      const out: string[] = [];
      const write = process.stdout.write.bind(process.stdout);
      setLogLevel('debug');
      process.stdout.write = ((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
      let id: string | undefined;
      try {
        [id] = queuedIds((await client(r!).sendMail(mail({ to: ['ann@example.org', 'bob@example.org'], subject: 'via the API', text: 'hello from the relay' }))).response);
        await eventually(() => r!.messages.get(id!)?.status === 'delivered', 10_000, 'delivered');
        // The delivery thread's lines reach this thread's stdout a little after its commit.
        await eventually(() => out.join('').includes('"delivered"'), 5000, 'the delivery log line');
      } finally {
        process.stdout.write = write;
        setLogLevel('error');
      }
      expect(api.requests).to.have.length(1);
      const req = api.requests[0]!;
      expect(req).to.include({ method: 'POST', url: '/v3/mail/send' });
      expect(req.headers).to.include({ authorization: `Bearer ${key}`, 'content-type': 'application/json' });
      expect(JSON.parse(req.body.toString())).to.deep.equal({
        personalizations: [{ to: [{ email: 'ann@example.org' }, { email: 'bob@example.org' }] }],
        from: { email: 'app@example.com' },
        subject: 'via the API',
        content: [{ type: 'text/plain', value: 'hello from the relay\n' }],
      });
      expect(r!.messages.deliveries(id!).map((d) => [d.provider, d.outcome, d.code, d.response])).to.deep.equal([['out', 'delivered', null, 'HTTP 202 Accepted']]);
      const everything = [out.join(''), JSON.stringify(r!.messages.list({ limit: 10 })), JSON.stringify(r!.messages.deliveries(id!))].join('\n');
      expect(everything).not.to.include(key);
    });

    it('500 → deferred and retried with backoff, then 202 → delivered; the log shows both attempts', async () => {
      const api = await fakeApi([{ status: 500, body: '{"error":"upstream hiccup"}' }, { status: 202 }]);
      closers.push(api.close);
      await relay({ type: 'http', format: 'raw', url: `${api.url}/send`, auth: { scheme: 'basic', user: 'relay', pass: 'pw-123' } }, await newSink());
      const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['ann@example.org'], subject: 'second time lucky' }))).response);
      const m = await eventually(() => r!.messages.get(id!)?.status === 'delivered' && message(r!, id!), 10_000, 'delivered');
      expect(m.attempts).to.equal(2);
      const log = r!.messages.deliveries(id!);
      expect(log.map((d) => [d.outcome, d.response])).to.deep.equal([
        ['transient', '4.0.0 HTTP 500 Internal Server Error'], // the status line only, never the body
        ['delivered', 'HTTP 202 Accepted'],
      ]);
      expect(log[1]!.at_ms - log[0]!.at_ms).to.be.at.least(50); // retry.baseMs
      expect(api.requests).to.have.length(2);
      expect(api.requests[1]!.headers.authorization).to.equal(`Basic ${Buffer.from('relay:pw-123').toString('base64')}`);
      const body = JSON.parse(api.requests[1]!.body.toString()) as { from: string; to: string[]; raw: string };
      expect(body).to.deep.include({ from: 'app@example.com', to: ['ann@example.org'] });
      const raw = Buffer.from(body.raw, 'base64').toString();
      expect(raw).to.match(/^Received: from /).and.include('Subject: second time lucky'); // the message as the relay accepted it
    });

    it('429 with Retry-After: 1 → the next attempt waits the second the API asked for (the backoff is 50 ms), then 202 → delivered', async () => {
      const api = await fakeApi([{ status: 429, headers: { 'retry-after': '1' } }, { status: 202 }]);
      closers.push(api.close);
      await relay({ type: 'http', format: 'raw', url: `${api.url}/send` }, await newSink());
      const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['ann@example.org'], subject: 'slow down' }))).response);
      await eventually(() => r!.messages.get(id!)?.status === 'delivered', 10_000, 'delivered');
      const log = r!.messages.deliveries(id!);
      expect(log.map((d) => [d.outcome, d.response])).to.deep.equal([
        ['transient', '4.4.5 HTTP 429 Too Many Requests (Retry-After: 1 s)'],
        ['delivered', 'HTTP 202 Accepted'],
      ]);
      expect(log[1]!.at_ms - log[0]!.at_ms).to.be.at.least(1000);
    });

    it('400 → bounced after one attempt; the sender gets a DSN with the status line (not the body)', async () => {
      const api = await fakeApi([{ status: 400, body: '{"errors":[{"message":"The from address does not match a verified Sender Identity."}]}' }]);
      closers.push(api.close);
      const home = await newSink();
      await relay({ type: 'http', format: 'sendgrid', url: `${api.url}/v3/mail/send`, auth: { scheme: 'bearer', token: 'SG.k' } }, home);
      const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['ann@example.org'], subject: 'refused' }))).response);
      const dsn = await eventually(() => home.received[0], 10_000, 'the DSN in the sender mailbox');
      expect(message(r!, id!)).to.include({ status: 'bounced', attempts: 1 });
      expect(api.requests).to.have.length(1);
      const status = deliveryStatus(dsn);
      expect(status).to.include('Final-Recipient: rfc822; ann@example.org\r\nAction: failed\r\nStatus: 5.0.0\r\n');
      expect(status).to.include('Diagnostic-Code: X-dnsproxy; 5.0.0 HTTP 400 Bad Request\r\n');
    });

    it('mailgun: a form with the envelope recipients and the message as accepted, basic auth as api', async () => {
      const api = await fakeApi([{ status: 200, body: '{"id":"<20260101.1@mg.example.com>","message":"Queued. Thank you."}' }]);
      closers.push(api.close);
      await relay({ type: 'http', format: 'mailgun', url: `${api.url}/v3/mg.example.com/messages.mime`, auth: { scheme: 'basic', user: 'api', pass: 'key-mg' } }, await newSink());
      const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['ann@example.org'], subject: 'as mime' }))).response);
      await eventually(() => r!.messages.get(id!)?.status === 'delivered', 10_000, 'delivered');
      const req = api.requests[0]!;
      expect(req.headers.authorization).to.equal(`Basic ${Buffer.from('api:key-mg').toString('base64')}`);
      const form = await new Response(req.body, { headers: { 'content-type': String(req.headers['content-type']) } }).formData();
      expect(form.getAll('to')).to.deep.equal(['ann@example.org']);
      expect(await (form.get('message') as File).text()).to.match(/^Received: from /).and.include('Subject: as mime');
      expect(r!.messages.deliveries(id!)[0]!.response).to.equal('HTTP 200 OK'); // the status line only
    });

    it('the API does not answer (nothing listens): deferred with the connection error, no reply code', async () => {
      const api = await fakeApi([{ status: 202 }]);
      await api.close(); // its port is now free: connection refused
      await relay({ type: 'http', format: 'raw', url: `${api.url}/send` }, await newSink());
      const [id] = queuedIds((await client(r!).sendMail(mail({ to: ['ann@example.org'] }))).response);
      const d = await eventually(() => r!.messages.deliveries(id!)[0], 10_000, 'an attempt');
      expect(d).to.include({ outcome: 'transient', code: null });
      expect(d.response).to.equal(`${new URL(api.url).host}: ECONNREFUSED`);
    });
  });
});
