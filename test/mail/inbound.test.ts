// Inbound mail on the SMTP port (we are the MX of example.net): what an unauthenticated sender
// gets, what the mailbox host receives, and that nothing without AUTH leaves for other domains.
// Real sockets (nodemailer / a raw line client → relay → sink); the relay's DNS is an in-memory
// zone (resolver.ts memoryResolver), so SPF, DKIM and DMARC are evaluated against known records.
import { expect } from 'chai';
import * as packet from 'dns-packet';
import { createSocket } from 'node:dgram';
import nodemailer from 'nodemailer';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { signMessage } from '../../src/mail/delivery/dkim.js';
import { relayOptions } from '../../src/mail/index.js';
import { inboundRecipient, receivedCount, stripOwnAuthResults, verdict } from '../../src/mail/smtp/inbound.js';
import { dkimTxt, generateDkimPrivateKey } from '../../src/mail/credentials/keys.js';
import { dns2Resolver, mailDnsProblem, memoryResolver, systemResolver, type DnsResolver } from '../../src/mail/resolver.js';
import type { Rule } from '../../src/model/mail.js';
import { ACCOUNT, client, configure, eventually, HOSTNAME, message, queuedIds, raw, refusal, sink, startRelay, type RelayFixture, type Sink } from './helpers.js';

/** The TXT chunks of a long value, as DNS carries them (255 bytes each). */
const chunks = (v: string) => v.match(/.{1,255}/g) ?? [];

/**
 * The senders' zones:
 *   example.org   SPF allows 127.0.0.1 (the test client), DMARC p=reject, DKIM key `sel`
 *   example.com   SPF allows only 192.0.2.10, DMARC p=reject, no DKIM key
 */
function zone(dkimTxtValue: string) {
  return {
    'example.org': { TXT: [['v=spf1 ip4:127.0.0.1 -all']], MX: [{ exchange: 'relay.example.net', priority: 10 }] },
    '_dmarc.example.org': { TXT: [['v=DMARC1; p=reject']] },
    'sel._domainkey.example.org': { TXT: [chunks(dkimTxtValue)] },
    'example.com': { TXT: [['v=spf1 ip4:192.0.2.10 -all']] },
    '_dmarc.example.com': { TXT: [['v=DMARC1; p=reject']] },
    // DNS failing: example.info's DMARC record cannot be fetched; example.biz's SPF cannot (its DMARC is p=reject).
    'example.info': { TXT: [['v=spf1 ip4:127.0.0.1 -all']] },
    '_dmarc.example.info': 'SERVFAIL' as const,
    'example.biz': 'SERVFAIL' as const,
    '_dmarc.example.biz': { TXT: [['v=DMARC1; p=reject']] },
  };
}

const rfc822 = (o: { from: string; to: string; subject: string; headers?: string }) =>
  Buffer.from(
    `${o.headers ?? ''}From: <${o.from}>\r\nTo: <${o.to}>\r\nSubject: ${o.subject}\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n` +
      `Message-ID: <${Math.random().toString(16).slice(2)}@example.org>\r\n\r\nHello from outside.\r\n`,
  );

/** A sending MTA: no AUTH, opportunistic STARTTLS (verifying the relay's certificate), EHLO mx.example.org. */
function mta(r: RelayFixture) {
  return nodemailer.createTransport({ host: '127.0.0.1', port: r.smtpPort, secure: false, name: 'mx.example.org', tls: { ca: r.cert, servername: HOSTNAME }, logger: false });
}

/** The header section of a message, unfolded, one field per entry. */
function headers(rawMessage: Buffer): string[] {
  const head = rawMessage.toString('latin1').split(/\r?\n\r?\n/)[0] ?? '';
  return head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/);
}
const authResults = (rawMessage: Buffer) => headers(rawMessage).filter((h) => /^authentication-results:/i.test(h));

describe('mail: inbound for hosted domains (SPF/DKIM/DMARC, no open relay)', function () {
  let r: RelayFixture;
  let isp: Sink;
  let mailbox: Sink;
  let privateKey: string;
  let dns: ReturnType<typeof memoryResolver>;
  /** Set to make every DNS query hang (the check's timeout). */
  let hang = false;

  before(async () => {
    privateKey = await generateDkimPrivateKey();
    dns = memoryResolver(zone(dkimTxt(privateKey)));
    const resolver: DnsResolver = (name, rrtype) => (hang ? new Promise(() => undefined) : dns(name, rrtype));
    isp = sink();
    mailbox = sink();
    await isp.listen();
    await mailbox.listen();
    r = await startRelay({ mailDomains: ['example.net', 'unrouted.example.net'], resolver, inboundCheckTimeoutMs: 500 });
    // Outgoing mail (the catch-all) goes to the ISP; mail for example.net to the mailbox host.
    await configure(r, { isp: isp.port, mailbox: mailbox.port });
    r.store.addRule({ priority: 10, sender_domain: null, recipient_domain: 'example.net', account: null, provider: 'mailbox', fallback_provider: null });
  });

  after(async () => {
    await r.close();
    await isp.close();
    await mailbox.close();
  });

  beforeEach(() => {
    isp.received.length = 0;
    mailbox.received.length = 0;
    hang = false;
  });

  it('delivers mail for a hosted domain to the sink its rule names, with Authentication-Results (spf, dkim, dmarc) on top', async () => {
    // The sender also tries to forge our verdict; a third party's Authentication-Results stays.
    const forged = `Authentication-Results: ${HOSTNAME}; dmarc=pass header.from=example.org\r\nAuthentication-Results: mx.example.org; spf=pass\r\n`;
    const info = await mta(r).sendMail({ envelope: { from: 'alice@example.org', to: ['bob@example.net'] }, raw: rfc822({ from: 'alice@example.org', to: 'bob@example.net', subject: 'inbound 1', headers: forged }) });
    expect(info.response).to.match(/^250 2\.0\.0 Ok: queued as [0-9a-f]+$/);
    const [id] = queuedIds(info.response);
    expect(r.messages.get(id!)).to.include({ account: '', source: 'inbound', mail_from: 'alice@example.org', recipient_domain: 'example.net' });

    const got = await eventually(() => mailbox.received[0], 5000, 'the mailbox sink to receive it');
    expect(got.from).to.equal('alice@example.org');
    expect(got.to).to.deep.equal(['bob@example.net']);
    expect(isp.received).to.have.length(0); // the catch-all is for outgoing mail only
    const fields = headers(got.raw);
    const ours = authResults(got.raw).filter((h) => h.toLowerCase().startsWith(`authentication-results: ${HOSTNAME}`));
    expect(ours).to.have.length(1); // the forged one is gone
    expect(ours[0]).to.match(/\bspf=pass\b.*smtp\.mailfrom=(alice@)?example\.org/).and.match(/\bdkim=none\b/).and.match(/\bdmarc=pass\b.*header\.from=example\.org/);
    expect(authResults(got.raw).some((h) => h.includes('mx.example.org; spf=pass'))).to.equal(true);
    // Our Authentication-Results and Received-SPF above our Received, above the sender's headers.
    expect(fields.findIndex((h) => h.startsWith(`Authentication-Results: ${HOSTNAME}`))).to.be.lessThan(fields.findIndex((h) => h.startsWith('Received: from mx.example.org')));
    expect(fields.some((h) => /^Received-SPF: pass/.test(h))).to.equal(true);
    expect(fields.find((h) => h.startsWith('Received: from mx.example.org'))).to.match(/by relay\.example\.net \(dnsproxy\) with ESMTPS /);
    expect(got.raw.toString()).to.include('Subject: inbound 1').and.include('Hello from outside.');
    await eventually(() => r.messages.get(id!)?.status === 'delivered', 5000, 'status delivered');
    // Never signed with our keys on the way out, even though the relay holds none here: no DKIM-Signature appeared.
    expect(fields.some((h) => /^dkim-signature:/i.test(h))).to.equal(false);
  });

  it('a message DKIM-signed by its From: domain gets dkim=pass, and DMARC passes on DKIM alone when SPF fails', async () => {
    const signed = await signMessage(rfc822({ from: 'news@example.org', to: 'bob@example.net', subject: 'signed' }), { domain: 'example.org', selector: 'sel', private_key: privateKey });
    // MAIL FROM in example.com, whose SPF does not list 127.0.0.1: only the aligned signature carries DMARC.
    await mta(r).sendMail({ envelope: { from: 'bounces@example.com', to: ['bob@example.net'] }, raw: signed });
    const got = await eventually(() => mailbox.received[0], 5000, 'the mailbox sink to receive it');
    const [ar] = authResults(got.raw);
    expect(ar).to.match(/\bdkim=pass\b[^;]*header\.[di]=@?example\.org/).and.match(/\bspf=fail\b/).and.match(/\bdmarc=pass\b/);
    expect(dns.queries).to.include('sel._domainkey.example.org TXT');
  });

  it('SPF fail with DMARC p=reject and no signature is refused with 550 5.7.1 and the reason; nothing is queued', async () => {
    const before = r.messages.list().length;
    const e = await refusal(mta(r).sendMail({ envelope: { from: 'ceo@example.com', to: ['bob@example.net'] }, raw: rfc822({ from: 'ceo@example.com', to: 'bob@example.net', subject: 'wire money' }) }));
    expect(e.responseCode).to.equal(550);
    expect(e.response).to.match(/^550 5\.7\.1 DMARC policy of example\.com is reject and the message fails it \(spf=fail, dkim=none\)/);
    expect(r.messages.list()).to.have.length(before);
  });

  it('without AUTH, a recipient outside the hosted domains is refused with 550 5.7.1: not an open relay', async () => {
    const s = await raw(r.smtpPort);
    try {
      expect(await s.reply()).to.match(/^220 /);
      s.send('EHLO mx.example.org');
      expect(await s.reply()).to.match(/^250[- ]/);
      s.send('MAIL FROM:<spammer@example.org>');
      expect(await s.reply()).to.match(/^250 /); // any sender: the recipient decides
      s.send('RCPT TO:<victim@example.com>');
      expect(await s.reply()).to.match(/^550 5\.7\.1 Relaying denied: <victim@example\.com> is not in a domain this server receives mail for/);
      s.send('RCPT TO:<bob@sub.example.net>'); // a subdomain is not hosted unless listed
      expect(await s.reply()).to.match(/^550 5\.7\.1 Relaying denied/);
      s.send('RCPT TO:<bob@example.net>'); // same session: the hosted domain still goes
      expect(await s.reply()).to.match(/^250 /);
      s.send('QUIT');
    } finally {
      s.close();
    }
    // A hosted domain that only the catch-all would route: temporary, so fixing the rules lets the mail in.
    const t = await raw(r.smtpPort);
    try {
      await t.reply();
      t.send('EHLO mx.example.org');
      await t.reply();
      t.send('MAIL FROM:<alice@example.org>');
      await t.reply();
      t.send('RCPT TO:<bob@unrouted.example.net>');
      expect(await t.reply()).to.match(/^451 4\.3\.5 /);
    } finally {
      t.close();
    }
    // The submission port never takes mail without AUTH, not even for a hosted domain.
    const u = await raw(r.submissionPort);
    try {
      await u.reply();
      u.send('EHLO mx.example.org');
      await u.reply();
      u.send('MAIL FROM:<alice@example.org>');
      expect(await u.reply()).to.match(/^530 5\.7\.0 /);
    } finally {
      u.close();
    }
    expect(isp.received).to.have.length(0);
  });

  it('authenticated submission on the SMTP port still works: any recipient, routed by the catch-all, no Authentication-Results', async () => {
    const submit = client({ ...r, submissionPort: r.smtpPort });
    const info = await submit.sendMail({ from: ACCOUNT.email, to: ['rcpt@example.org'], subject: 'submitted on 25', text: 'hi' });
    const [id] = queuedIds(info.response);
    expect(message(r, id!)).to.include({ account: 'app', source: 'submission' });
    const got = await eventually(() => isp.received[0], 5000, 'the ISP sink to receive it');
    expect(got.to).to.deep.equal(['rcpt@example.org']);
    expect(authResults(got.raw)).to.have.length(0);
    expect(got.raw.toString()).to.match(/^Received: from .*\s+by relay\.example\.net \(dnsproxy\) with ESMTPSA/s);
    // A wrong password on the SMTP port is refused as on the submission port (no fallback to inbound).
    const e = await refusal(client({ ...r, submissionPort: r.smtpPort }, { pass: 'wrong password!' }).sendMail({ from: ACCOUNT.email, to: ['bob@example.net'], subject: 'x', text: 'x' }));
    expect(e.responseCode).to.equal(535);
  });

  it('a recipient the mailbox host refuses splits off (still inbound) and bounces to the sender through the outgoing route', async () => {
    mailbox.rejectRcpt['gone@example.net'] = { code: 550, text: '5.1.1 No such mailbox' };
    try {
      const info = await mta(r).sendMail({ envelope: { from: 'alice@example.org', to: ['bob@example.net', 'gone@example.net'] }, raw: rfc822({ from: 'alice@example.org', to: 'bob@example.net', subject: 'two' }) });
      const [id] = queuedIds(info.response);
      const split = await eventually(() => r.messages.list().find((m) => m.parent_id === id && m.mail_from !== ''), 5000, 'the refused recipient split off');
      expect(split).to.include({ source: 'inbound', account: '', status: 'bounced' });
      expect(split.rcpt_to).to.deep.equal(['gone@example.net']);
      // The DSN is outgoing mail (source submission), so the catch-all carries it to the sender's domain.
      const dsn = await eventually(() => isp.received.find((m) => m.from === ''), 5000, 'the DSN at the ISP');
      expect(dsn.to).to.deep.equal(['alice@example.org']);
      expect(r.messages.list().find((m) => m.parent_id === split.id && m.mail_from === '')).to.include({ source: 'submission' });
      expect(mailbox.received.map((m) => m.to)).to.deep.equal([['bob@example.net']]);
    } finally {
      delete mailbox.rejectRcpt['gone@example.net'];
    }
  });

  it('a DMARC verdict that a DNS failure decides is 451 4.4.3 (the sender retries), not a pass for a p=reject spoof nor a 550 for a real sender', async () => {
    const policyUnknown = await refusal(mta(r).sendMail({ envelope: { from: 'ceo@example.info', to: ['bob@example.net'] }, raw: rfc822({ from: 'ceo@example.info', to: 'bob@example.net', subject: 'policy lookup fails' }) }));
    expect(policyUnknown.response).to.equal('451 4.4.3 The DMARC policy of example.info could not be looked up (DNS: temperror), try again later');
    const spfUnknown = await refusal(mta(r).sendMail({ envelope: { from: 'ceo@example.biz', to: ['bob@example.net'] }, raw: rfc822({ from: 'ceo@example.biz', to: 'bob@example.net', subject: 'spf lookup fails' }) }));
    expect(spfUnknown.response).to.equal('451 4.4.3 DMARC of example.biz (p=reject) fails only because a DNS lookup failed (spf=temperror, dkim=none), try again later');
    expect(mailbox.received).to.have.length(0);
  });

  it('answers 451 4.4.3 when the DNS checks cannot finish, and 554 5.4.6 to a message that has looped', async () => {
    hang = true;
    const slow = await refusal(mta(r).sendMail({ envelope: { from: 'alice@example.org', to: ['bob@example.net'] }, raw: rfc822({ from: 'alice@example.org', to: 'bob@example.net', subject: 'dns down' }) }));
    expect(slow.response).to.match(/^451 4\.4\.3 /);
    hang = false;
    const loop = 'Received: from a.example.net by b.example.net; Mon, 01 Jan 2024 00:00:00 +0000\r\n'.repeat(100);
    const looped = await refusal(mta(r).sendMail({ envelope: { from: 'alice@example.org', to: ['bob@example.net'] }, raw: rfc822({ from: 'alice@example.org', to: 'bob@example.net', subject: 'loop', headers: loop }) }));
    expect(looped.response).to.match(/^554 5\.4\.6 Too many hops \(100 Received fields\)/);
    expect(mailbox.received).to.have.length(0);
  });
});

describe('mail: inbound decisions, config and DNS resolvers', () => {
  const rule = (over: Partial<Rule>): Rule => ({ id: over.provider ?? 'r', priority: 100, sender_domain: null, recipient_domain: null, account: null, provider: 'isp', fallback_provider: null, ...over });
  const hosted = new Set(['example.net']);

  it('routes only hosted domains, and only by rules naming the recipient domain', () => {
    const catchAll = rule({ provider: 'isp' });
    const mailbox = rule({ provider: 'mailbox', recipient_domain: 'example.net', priority: 200 });
    const byAccount = rule({ provider: 'acct', recipient_domain: 'example.net', account: 'app', priority: 1 });
    const table: [string, Rule[], string, string][] = [
      // recipient domain, rules, expected kind, expected provider
      ['example.org', [catchAll, mailbox], 'not_hosted', ''],
      ['', [catchAll], 'not_hosted', ''],
      ['example.net', [catchAll], 'no_route', ''],
      ['example.net', [catchAll, mailbox], 'routed', 'mailbox'], // the catch-all comes first and is skipped
      ['example.net', [byAccount, mailbox], 'routed', 'mailbox'], // inbound mail has no account
    ];
    for (const [domain, rules, kind, provider] of table) {
      const got = inboundRecipient(hosted, rules, 'example.org', domain);
      expect(got.kind, domain).to.equal(kind);
      if (got.kind === 'routed') expect(got.rule.provider).to.equal(provider);
    }
  });

  it('rejects only a DMARC fail whose policy is reject; defers (451) what a DNS failure decides', () => {
    const table: [string, string, string | undefined, 'accept' | 'reject' | 'defer'][] = [
      // dmarc, spf, policy, verdict
      ['fail', 'fail', 'reject', 'reject'],
      ['fail', 'fail', 'quarantine', 'accept'],
      ['fail', 'fail', 'none', 'accept'],
      ['pass', 'fail', 'reject', 'accept'],
      ['none', 'fail', undefined, 'accept'],
      ['none', 'temperror', undefined, 'accept'], // no policy to apply: SPF's temperror is in Authentication-Results
      ['temperror', 'pass', undefined, 'defer'], // the policy is unknown: a p=reject spoof must not pass because our DNS failed
      ['fail', 'temperror', 'reject', 'defer'], // it may pass once SPF can be evaluated
      ['fail', 'temperror', 'quarantine', 'accept'],
      ['permerror', 'fail', undefined, 'accept'],
    ];
    for (const [dmarc, spf, policy, kind] of table)
      expect(verdict({ spf, dkim: 'none', dmarc, dmarcDomain: 'example.com', ...(policy ? { dmarcPolicy: policy } : {}) }).kind, `${dmarc}/${spf}/${policy}`).to.equal(kind);
  });

  it('mail serve refuses mail_dns_servers that name our own DNS server while it has no upstreams (every outside name would be temperror)', () => {
    const c = (over: Record<string, unknown>) => ({ mail_dns_servers: [] as string[], upstreams: [] as string[], listen_ip: '127.0.0.1', dns_port: 53, node_ip: '192.0.2.10', ...over });
    const ours: Record<string, unknown>[] = [
      { mail_dns_servers: ['127.0.0.1:53'] },
      { mail_dns_servers: ['127.0.0.1'] }, // port 53 by default
      { mail_dns_servers: ['127.0.0.53'], listen_ip: '0.0.0.0' }, // any loopback address reaches a wildcard listener
      { mail_dns_servers: ['[::1]:53'], listen_ip: '::' },
      { mail_dns_servers: ['9.9.9.9', '192.0.2.10:5353'], listen_ip: '192.0.2.10', dns_port: 5353 }, // node:dns stops at our REFUSED
      { mail_dns_servers: ['192.0.2.10'], listen_ip: '0.0.0.0' },
    ];
    for (const over of ours) expect(mailDnsProblem(c(over)), JSON.stringify(over)).to.match(/^mail_dns_servers: .* is this node's own DNS server, which answers only its own zones while upstreams is empty/);
    const fine: Record<string, unknown>[] = [
      {},
      { mail_dns_servers: ['127.0.0.1:53'], upstreams: ['9.9.9.9'] }, // ours forwards
      { mail_dns_servers: ['9.9.9.9', '1.1.1.1:53'] },
      { mail_dns_servers: ['127.0.0.1:5353'] }, // another port: not ours (e.g. a local unbound)
      { mail_dns_servers: ['127.0.0.1:53'], dns_port: 0 }, // no DNS server of ours runs
      { mail_dns_servers: ['192.0.2.10'], listen_ip: '127.0.0.1' }, // ours listens on loopback only
      { mail_dns_servers: ['127.0.0.11'] }, // Docker's resolver, not ours on 127.0.0.1
      { mail_dns_servers: ['[::1]:53'], listen_ip: '0.0.0.0' }, // an IPv4 wildcard does not take ::1
    ];
    for (const over of fine) expect(mailDnsProblem(c(over)), JSON.stringify(over)).to.equal(undefined);
  });

  it('removes only the Authentication-Results in our name, keeping every other byte', () => {
    const msg = Buffer.from(
      'Authentication-Results: Relay.Example.NET (forged);\r\n dmarc=pass\r\n' +
        'Authentication-Results: mx.example.org; spf=pass\r\n' +
        'Subject: caf\xe9\r\n\r\nAuthentication-Results: relay.example.net; in the body stays\r\n',
      'latin1',
    );
    const out = stripOwnAuthResults(msg, 'relay.example.net').toString('latin1');
    expect(out).to.equal('Authentication-Results: mx.example.org; spf=pass\r\nSubject: caf\xe9\r\n\r\nAuthentication-Results: relay.example.net; in the body stays\r\n');
    const clean = Buffer.from('Subject: x\r\n\r\nbody\r\n');
    expect(stripOwnAuthResults(clean, 'relay.example.net')).to.equal(clean);
    expect(receivedCount(Buffer.from('Received: a\r\n b\r\nreceived: c\r\nSubject: x\r\n\r\nReceived: body\r\n'))).to.equal(2);
  });

  it('mail_domains and mail_dns_servers come from the environment as lists, normalised, and reach the relay', () => {
    const env = { DNSPROXY_MAIL_DOMAINS: 'Example.NET., example.org', DNSPROXY_MAIL_DNS_SERVERS: '127.0.0.1:53,[2001:db8::53]:53' };
    const c = loadConfig({ env, interfaces: {} });
    expect(c.mail_domains).to.deep.equal(['example.net', 'example.org']);
    expect(relayOptions(c)).to.deep.include({ mailDomains: ['example.net', 'example.org'], dnsServers: ['127.0.0.1:53', '[2001:db8::53]:53'] });
    expect(loadConfig({ env: {}, interfaces: {} }).mail_domains).to.deep.equal([]); // default: the SMTP port is submission only
    expect(() => loadConfig({ env: { DNSPROXY_MAIL_DOMAINS: 'not a domain' }, interfaces: {} })).to.throw(ConfigError, /mail_domains\.0/);
  });

  it('the in-memory resolver tells NXDOMAIN from NODATA from SERVFAIL, as node:dns does', async () => {
    const z = memoryResolver({ 'example.org': { TXT: [['v=spf1 -all']] }, 'broken.example.org': 'SERVFAIL' });
    expect(await z('Example.ORG.', 'TXT')).to.deep.equal([['v=spf1 -all']]);
    const code = (p: Promise<unknown>) => p.then(() => 'answer', (e: { code: string }) => e.code);
    expect(await code(z('example.org', 'MX'))).to.equal('ENODATA');
    expect(await code(z('nowhere.example.org', 'TXT'))).to.equal('ENOTFOUND');
    expect(await code(z('broken.example.org', 'TXT'))).to.equal('ESERVFAIL');
    expect(z.queries).to.deep.equal(['example.org TXT', 'example.org MX', 'nowhere.example.org TXT', 'broken.example.org TXT']);
  });

  it('the node:dns resolver gives mailauth the same codes from a real DNS server (TXT, NODATA, NXDOMAIN)', async () => {
    // A UDP server: example.org has a TXT record only; every other name is NXDOMAIN.
    const server = createSocket('udp4');
    server.on('message', (msg, from) => {
      const q = packet.decode(msg);
      const question = q.questions?.[0];
      const known = question?.name.toLowerCase() === 'example.org';
      const answers: packet.Answer[] = known && question?.type === 'TXT' ? [{ type: 'TXT', name: 'example.org', ttl: 60, data: ['v=spf1 ', '-all'] }] : [];
      const reply = packet.encode({ id: q.id, type: 'response', flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (known ? 0 : 3), questions: q.questions ?? [], answers });
      server.send(reply, from.port, from.address);
    });
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    try {
      const dnsr = systemResolver([`127.0.0.1:${server.address().port}`], 1000);
      const code = (p: Promise<unknown>) => p.then(() => 'answer', (e: { code: string }) => e.code);
      expect(await dnsr('example.org', 'TXT')).to.deep.equal([['v=spf1 ', '-all']]);
      expect(await code(dnsr('example.org', 'MX'))).to.equal('ENODATA');
      expect(await code(dnsr('nowhere.example.org', 'TXT'))).to.equal('ENOTFOUND');
    } finally {
      server.close();
    }
  });

  it('the dns2 resolver (mail domain check) asks again when a query goes unanswered, then reports ETIMEOUT', async () => {
    // Drops the first query of each name, answers the second; "silent.example.org" never gets one.
    const seen = new Map<string, number>();
    const server = createSocket('udp4');
    server.on('message', (msg, from) => {
      const q = packet.decode(msg);
      const name = q.questions?.[0]?.name.toLowerCase() ?? '';
      seen.set(name, (seen.get(name) ?? 0) + 1);
      if (name === 'silent.example.org' || seen.get(name) === 1) return;
      const reply = packet.encode({ id: q.id, type: 'response', flags: packet.AUTHORITATIVE_ANSWER, questions: q.questions ?? [], answers: [{ type: 'TXT', name, ttl: 60, data: ['v=DMARC1; p=none'] }] });
      server.send(reply, from.port, from.address);
    });
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    try {
      const dnsr = dns2Resolver('127.0.0.1', server.address().port, 300);
      expect(await dnsr('_dmarc.example.org', 'TXT')).to.deep.equal([['v=DMARC1; p=none']]);
      expect(seen.get('_dmarc.example.org')).to.equal(2);
      const failed = await dnsr('silent.example.org', 'TXT').then(() => 'answer', (e: { code: string }) => e.code);
      expect(failed).to.equal('ETIMEOUT');
      expect(seen.get('silent.example.org')).to.equal(2);
    } finally {
      server.close();
    }
  });
});
