// Direct delivery's decisions without sockets: which hosts an MX answer gives and in what order
// (tables against an in-memory zone that tells NXDOMAIN from NODATA), and which connections an
// attempt makes and what it reports (a scripted connect in place of SMTP).
import { expect } from 'chai';
import { lookupMx, MAX_ADDRESSES, mxDnsServers, MxSender, type MxConnect, type MxRoute } from '../../src/mail/delivery/mx.js';
import { memoryResolver } from '../../src/mail/resolver.js';
import type { Outcome } from '../../src/mail/delivery/smtp.js';

const mx = (priority: number, exchange: string) => ({ priority, exchange });

const ZONE = {
  'two.example': { MX: [mx(20, 'mx2.two.example'), mx(10, 'mx1.two.example')] },
  'ties.example': { MX: [mx(10, 'c.ties.example'), mx(10, 'a.ties.example.'), mx(5, 'first.ties.example'), mx(10, 'B.ties.example')] },
  'null.example': { MX: [mx(0, '')] },
  'nomx.example': { A: ['192.0.2.7'] },
  'dup.example': { MX: [mx(10, 'mx.dup.example'), mx(20, 'MX.dup.example.')] },
  'broken.example': 'SERVFAIL' as const,
  'weird.example': { MX: ['not an mx record'] },
};

describe('mail mx: lookup (RFC 5321 §5.1, RFC 7505)', () => {
  const stable = () => 0;
  const cases: [string, string, MxRoute][] = [
    ['lowest preference first', 'two.example', { kind: 'hosts', implicit: false, hosts: [{ name: 'mx1.two.example', preference: 10 }, { name: 'mx2.two.example', preference: 20 }] }],
    [
      'equal preferences: by random key, here constant, so by name; names lower-case without the dot',
      'ties.example',
      { kind: 'hosts', implicit: false, hosts: [{ name: 'first.ties.example', preference: 5 }, { name: 'a.ties.example', preference: 10 }, { name: 'b.ties.example', preference: 10 }, { name: 'c.ties.example', preference: 10 }] },
    ],
    ['null MX "0 ."', 'null.example', { kind: 'null' }],
    ['NODATA for MX: the domain itself (implicit MX)', 'nomx.example', { kind: 'hosts', implicit: true, hosts: [{ name: 'nomx.example', preference: 0 }] }],
    ['NXDOMAIN', 'gone.example', { kind: 'no_domain' }],
    ['SERVFAIL: an error to retry', 'broken.example', { kind: 'error', error: 'ESERVFAIL' }],
    ['a host named twice is tried once, at its best preference', 'dup.example', { kind: 'hosts', implicit: false, hosts: [{ name: 'mx.dup.example', preference: 10 }] }],
    ['an answer that is not MX records: an error to retry', 'weird.example', { kind: 'error', error: 'malformed MX answer' }],
  ];
  for (const [what, domain, want] of cases) it(`${domain}: ${what}`, async () => expect(await lookupMx(domain, memoryResolver(ZONE), stable)).to.deep.equal(want));

  it('equal preferences follow the random keys (RFC 5321: spread the load), lower preferences still first', async () => {
    const keys = [0.9, 0.1, 0.5, 0.3];
    const route = await lookupMx('ties.example', memoryResolver(ZONE), () => keys.shift()!);
    // Keys by record order: c 0.9, a 0.1, first 0.5, B 0.3.
    expect(route.kind === 'hosts' && route.hosts.map((h) => h.name)).to.deep.equal(['first.ties.example', 'a.ties.example', 'b.ties.example', 'c.ties.example']);
  });

  it('DNS servers: mail_dns_servers, else our server then the upstreams when it forwards, else the system', () => {
    expect(mxDnsServers({ configured: ['192.0.2.53'], upstreams: ['198.51.100.1'], listenIp: '127.0.0.1', dnsPort: 53 })).to.deep.equal(['192.0.2.53']);
    expect(mxDnsServers({ configured: [], upstreams: ['198.51.100.1'], listenIp: '0.0.0.0', dnsPort: 5300 })).to.deep.equal(['127.0.0.1:5300', '198.51.100.1']);
    expect(mxDnsServers({ configured: [], upstreams: ['198.51.100.1'], listenIp: '::', dnsPort: 53 })).to.deep.equal(['[::1]:53', '198.51.100.1']);
    expect(mxDnsServers({ configured: [], upstreams: [], listenIp: '127.0.0.1', dnsPort: 53 })).to.deep.equal([]);
  });
});

describe('mail mx: an attempt (which hosts, in what order, what is reported)', () => {
  const envelope = { from: 'app@example.com', to: ['rcpt@example.org'] };
  const message = Buffer.from('Subject: hi\r\n\r\nhello\r\n');
  const ok: Outcome = { outcome: 'delivered', code: 250, response: '250 2.0.0 Ok: queued' };
  const refused: Outcome = { outcome: 'transient', code: null, response: 'connect ECONNREFUSED' };
  const greylisted: Outcome = { outcome: 'transient', code: 451, response: '451 4.7.1 greylisted' };
  const unknownUser: Outcome = { outcome: 'permanent', code: 550, response: '550 5.1.1 no such user' };

  /** A connect that answers from `script` by address and records each call. */
  function scripted(script: Record<string, (Outcome & { tlsFailed?: boolean })[]>) {
    const calls: string[] = [];
    const connect: MxConnect = async ({ address, host, port, tls }) => {
      calls.push(`${host}[${address}]:${port}${tls ? '' : ' plain'}`);
      return script[address]?.shift() ?? refused;
    };
    return { calls, connect };
  }

  const zone = {
    'example.org': { MX: [mx(10, 'mx1.example.org'), mx(20, 'mx2.example.org'), mx(30, 'mx3.example.org')] },
    'mx1.example.org': { A: ['192.0.2.1'], AAAA: ['2001:db8::1'] },
    'mx2.example.org': { A: ['192.0.2.2'] },
    'mx3.example.org': { A: ['192.0.2.3'] },
  };

  it('connection refused and 4xx move on to the next address and host; the first that accepts delivers', async () => {
    const { calls, connect } = scripted({ '2001:db8::1': [greylisted], '192.0.2.2': [ok] });
    const out = await new MxSender(memoryResolver(zone), connect, () => 0).send(25, envelope, message);
    expect(out).to.deep.equal(ok);
    expect(calls).to.deep.equal(['mx1.example.org[192.0.2.1]:25', 'mx1.example.org[2001:db8::1]:25', 'mx2.example.org[192.0.2.2]:25']);
  });

  it('MX addresses that are this host, link-local or metadata are skipped; all skipped bounces (5.4.6); allow_private dials them', async () => {
    const own = new Set(['192.0.2.10']);
    const hostile = {
      'example.org': { MX: [mx(10, 'lo.example.org'), mx(20, 'meta.example.org'), mx(30, 'self.example.org'), mx(40, 'ok.example.org')] },
      'lo.example.org': { A: ['127.0.0.1'], AAAA: ['::1'] },
      'meta.example.org': { A: ['169.254.169.254'] },
      'self.example.org': { A: ['192.0.2.10'] },
      'ok.example.org': { A: ['192.0.2.4'] },
    };
    const first = scripted({ '192.0.2.4': [ok] });
    expect(await new MxSender(memoryResolver(hostile), first.connect, () => 0).send(25, envelope, message, own)).to.deep.equal(ok);
    expect(first.calls).to.deep.equal(['ok.example.org[192.0.2.4]:25']);

    const { 'ok.example.org': _, ...onlyInternal } = hostile;
    const none = scripted({});
    const out = await new MxSender(memoryResolver({ ...onlyInternal, 'example.org': { MX: hostile['example.org'].MX.slice(0, 3) } }), none.connect, () => 0).send(25, envelope, message, own);
    expect(none.calls).to.deep.equal([]);
    expect(out.outcome).to.equal('permanent');
    expect(out.response).to.match(/^5\.4\.6 no MX host of example\.org may be dialled: lo\.example\.org\[127\.0\.0\.1\]: not dialled, 127\.0\.0\.1 is a loopback address/);
    expect(out.response).to.include('169.254.169.254 is a link-local address').and.to.include("192.0.2.10 is this node's own address");

    const allowed = scripted({ '127.0.0.1': [ok] });
    expect(await new MxSender(memoryResolver(hostile), allowed.connect, () => 0).send(25, envelope, message, null)).to.deep.equal(ok);
    expect(allowed.calls).to.deep.equal(['lo.example.org[127.0.0.1]:25']);
  });

  it('a 5xx ends the attempt at that host: bounced, the next host is not asked', async () => {
    const { calls, connect } = scripted({ '192.0.2.1': [unknownUser] });
    expect(await new MxSender(memoryResolver(zone), connect, () => 0).send(25, envelope, message)).to.deep.equal(unknownUser);
    expect(calls).to.have.length(1);
  });

  it('a recipient refused with 5xx ends the attempt there too (settle() splits the recipients by their replies)', async () => {
    const mixed: Outcome = { outcome: 'transient', code: 451, response: '451 try later', refused: [{ rcpt: 'a@example.org', code: 550, response: '550 no' }, { rcpt: 'b@example.org', code: 451, response: '451 later' }] };
    const { calls, connect } = scripted({ '192.0.2.1': [mixed] });
    expect(await new MxSender(memoryResolver(zone), connect, () => 0).send(25, envelope, message)).to.deep.equal(mixed);
    expect(calls).to.have.length(1);
  });

  it('every host fails: deferred; the last reply speaks for the attempt and the log names every host tried', async () => {
    const { connect } = scripted({ '192.0.2.3': [greylisted] });
    const out = await new MxSender(memoryResolver(zone), connect, () => 0).send(25, envelope, message);
    expect(out).to.include({ outcome: 'transient', code: 451 });
    expect(out.response).to.equal(
      '451 4.7.1 greylisted (tried mx1.example.org[192.0.2.1]: connect ECONNREFUSED; mx1.example.org[2001:db8::1]: connect ECONNREFUSED; mx2.example.org[192.0.2.2]: connect ECONNREFUSED; mx3.example.org[192.0.2.3]: 451 4.7.1 greylisted)',
    );
  });

  it('no host answers at all: deferred with 4.4.1 and no reply code', async () => {
    const out = await new MxSender(memoryResolver(zone), scripted({}).connect, () => 0).send(2525, envelope, message);
    expect(out).to.include({ outcome: 'transient', code: null });
    expect(out.response).to.match(/^4\.4\.1 no MX host of example\.org took the message: mx1\.example\.org\[192\.0\.2\.1\]: connect ECONNREFUSED;/);
  });

  it(`at most ${MAX_ADDRESSES} connections per attempt`, async () => {
    const many = { 'example.org': { MX: Array.from({ length: 8 }, (_, i) => mx(i, `mx${i}.example.org`)) }, ...Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`mx${i}.example.org`, { A: [`192.0.2.${i + 10}`] }])) };
    const { calls, connect } = scripted({});
    await new MxSender(memoryResolver(many), connect, () => 0).send(25, envelope, message);
    expect(calls).to.have.length(MAX_ADDRESSES);
  });

  it('a failed STARTTLS handshake is retried once on the same address without TLS', async () => {
    const { calls, connect } = scripted({ '192.0.2.1': [{ ...refused, response: 'Error initiating TLS', tlsFailed: true }, ok] });
    expect(await new MxSender(memoryResolver(zone), connect, () => 0).send(25, envelope, message)).to.deep.equal(ok);
    expect(calls).to.deep.equal(['mx1.example.org[192.0.2.1]:25', 'mx1.example.org[192.0.2.1]:25 plain']);
  });

  const local: [string, Record<string, unknown>, Partial<Outcome>][] = [
    ['null MX: bounced with 5.1.10, nothing dialled', { 'example.org': { MX: [mx(0, '')] } }, { outcome: 'permanent', code: null, response: '5.1.10 example.org accepts no mail (null MX, RFC 7505)' }],
    ['NXDOMAIN: bounced with 5.1.2', {}, { outcome: 'permanent', code: null, response: '5.1.2 example.org does not exist (NXDOMAIN)' }],
    ['no MX and no address: bounced with 5.1.2', { 'example.org': { TXT: [['v=spf1 -all']] } }, { outcome: 'permanent', code: null, response: '5.1.2 example.org has no MX and no A/AAAA record' }],
    ['MX lookup fails: deferred with 4.4.3', { 'example.org': 'SERVFAIL' }, { outcome: 'transient', code: null, response: '4.4.3 MX lookup for example.org failed: ESERVFAIL' }],
    [
      'MX hosts without addresses: deferred, each named',
      { 'example.org': { MX: [mx(10, 'gone.example.org'), mx(20, 'sick.example.org')] }, 'sick.example.org': 'SERVFAIL' },
      { outcome: 'transient', code: null, response: '4.4.1 no MX host of example.org took the message: gone.example.org: no A/AAAA record; sick.example.org: address lookup failed: ESERVFAIL' },
    ],
  ];
  for (const [what, z, want] of local)
    it(what, async () => {
      const { calls, connect } = scripted({});
      expect(await new MxSender(memoryResolver(z as Parameters<typeof memoryResolver>[0]), connect, () => 0).send(25, envelope, message)).to.deep.equal(want);
      expect(calls).to.deep.equal([]);
    });

  it('implicit MX: the domain\'s own address is dialled', async () => {
    const { calls, connect } = scripted({ '192.0.2.7': [ok] });
    const out = await new MxSender(memoryResolver({ 'example.org': { A: ['192.0.2.7'] } }), connect, () => 0).send(25, envelope, message);
    expect(out).to.deep.equal(ok);
    expect(calls).to.deep.equal(['example.org[192.0.2.7]:25']);
  });
});
