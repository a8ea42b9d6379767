import { expect } from 'chai';
import dnsPacket from 'dns-packet';
import DNS from 'dns2';
import dgram from 'node:dgram';
import net from 'node:net';
import type { DnsServer } from '../../src/dns/server.js';
import { dnsLatency, dnsQueries } from '../../src/metrics.js';
import type { ZoneIndex } from '../../src/dns/zone.js';
import { BIG_TXT, decode, dig, frame, hasDig, HOME, LONG_TXT, query, rec, SERIAL, startServer, tcpExchange, udpExchange, type DigResult } from './fixture.js';

const SOA = `home.arpa. SOA ns1.home.arpa. hostmaster.home.arpa. ${SERIAL} 3600 600 604800 60`;
const rrs = (r: DigResult['answer']) => r.map((x) => `${x.name} ${x.type} ${x.data}`);

// [name, type, status, authoritative, answer, authority, additional] — as dig prints them.
const table: [string, string, string, boolean, string[], string[], string[]][] = [
  ['llm.home.arpa', 'A', 'NOERROR', true, ['llm.home.arpa. A 192.0.2.10'], [], []],
  ['llm.home.arpa', 'AAAA', 'NOERROR', true, ['llm.home.arpa. AAAA 2001:db8::10'], [], []],
  ['LlM.HoMe.ArPa', 'A', 'NOERROR', true, ['LlM.HoMe.ArPa. A 192.0.2.10'], [], []],
  ['www.home.arpa', 'A', 'NOERROR', true, ['www.home.arpa. CNAME llm.home.arpa.', 'llm.home.arpa. A 192.0.2.10'], [], []],
  ['www.home.arpa', 'CNAME', 'NOERROR', true, ['www.home.arpa. CNAME llm.home.arpa.'], [], []],
  ['chain1.home.arpa', 'A', 'NOERROR', true, ['chain1.home.arpa. CNAME chain2.home.arpa.', 'chain2.home.arpa. CNAME chain3.home.arpa.', 'chain3.home.arpa. CNAME llm.home.arpa.', 'llm.home.arpa. A 192.0.2.10'], [], []],
  ['loop1.home.arpa', 'A', 'NOERROR', true, ['loop1.home.arpa. CNAME loop2.home.arpa.', 'loop2.home.arpa. CNAME loop1.home.arpa.'], [], []],
  ['long.home.arpa', 'TXT', 'NOERROR', true, [`long.home.arpa. TXT "${'a'.repeat(255)}" "${'b'.repeat(255)}" "${'c'.repeat(90)}"`], [], []],
  ['home.arpa', 'MX', 'NOERROR', true, ['home.arpa. MX 10 mail.home.arpa.'], [], ['mail.home.arpa. A 192.0.2.25']],
  ['_sip._tcp.home.arpa', 'SRV', 'NOERROR', true, ['_sip._tcp.home.arpa. SRV 10 5 5060 sip.home.arpa.'], [], ['sip.home.arpa. A 192.0.2.26']],
  ['10.2.0.192.in-addr.arpa', 'PTR', 'NOERROR', true, ['10.2.0.192.in-addr.arpa. PTR llm.home.arpa.'], [], []],
  ['home.arpa', 'CAA', 'NOERROR', true, ['home.arpa. CAA 0 issue "letsencrypt.org"'], [], []],
  ['home.arpa', 'NS', 'NOERROR', true, ['home.arpa. NS ns1.home.arpa.'], [], ['ns1.home.arpa. A 192.0.2.1']],
  ['home.arpa', 'SOA', 'NOERROR', true, [SOA], [], []],
  ['nx.home.arpa', 'A', 'NXDOMAIN', true, [], [SOA], []],
  ['llm.home.arpa', 'TXT', 'NOERROR', true, [], [SOA], []],
  ['b.home.arpa', 'A', 'NOERROR', true, [], [SOA], []],
  ['foo.wild.home.arpa', 'A', 'NOERROR', true, ['foo.wild.home.arpa. A 192.0.2.40'], [], []],
  ['exists.wild.home.arpa', 'A', 'NOERROR', true, [], [SOA], []],
  ['ent.wild.home.arpa', 'A', 'NOERROR', true, [], [SOA], []],
  ['host.sub.home.arpa', 'A', 'NOERROR', false, [], ['sub.home.arpa. NS ns.sub.home.arpa.'], ['ns.sub.home.arpa. A 192.0.2.53']],
  ['example.com', 'A', 'REFUSED', false, [], [], []],
];

describe('dns/server', function () {
  let server: DnsServer;
  let port: number;
  let index: ZoneIndex;

  before(async () => {
    ({ server, port, index } = await startServer());
  });
  after(async () => {
    await server.stop();
  });

  it('reports where it listens and that it is up; UDP and TCP share the port', async () => {
    expect(server.status()).to.equal('ok');
    expect(server.address()).to.deep.equal({ host: '127.0.0.1', port });
    expect(decode(await udpExchange(port, query('llm.home.arpa', 'A'))).answers).to.have.length(1);
    const [tcp] = await tcpExchange(port, frame(query('llm.home.arpa', 'A')), 1);
    expect(decode(tcp).answers).to.have.length(1);
  });

  for (const transport of ['+notcp', '+tcp']) {
    describe(`answers as dig sees them over ${transport === '+tcp' ? 'TCP' : 'UDP'}`, () => {
      for (const [name, type, status, aa, answer, authority, additional] of table) {
        it(`${name} ${type} → ${status}${aa ? ' aa' : ''}`, async function () {
          if (!hasDig) this.skip();
          const r = await dig(port, [transport, name, type]);
          expect(r.status).to.equal(status);
          expect(r.flags.includes('aa')).to.equal(aa);
          expect(r.flags).to.include('qr');
          expect(r.flags).not.to.include('ra');
          expect(rrs(r.answer)).to.deep.equal(answer);
          expect(rrs(r.authority)).to.deep.equal(authority);
          expect(rrs(r.additional)).to.deep.equal(additional);
        });
      }
    });
  }

  describe('through the dns2 client', () => {
    it('answers A over UDP and NXDOMAIN with the SOA', async () => {
      const resolve = DNS.UDPClient({ dns: '127.0.0.1', port });
      const ok = await resolve('llm.home.arpa', 'A');
      expect(ok.header.aa).to.equal(1);
      expect(ok.answers.map((x: { address?: string }) => x.address)).to.deep.equal(['192.0.2.10']);
      const nx = await resolve('nx.home.arpa', 'A');
      expect(nx.header.rcode).to.equal(3);
      expect(nx.authorities.map((x: { type: number }) => x.type)).to.deep.equal([DNS.Packet.TYPE.SOA]);
    });

    it('returns all 60 TXT strings over TCP', async () => {
      const resolve = DNS.TCPClient({ dns: '127.0.0.1', port });
      const r = await resolve('big.home.arpa', 'TXT');
      expect(r.answers).to.have.length(60);
      // dns2 gives each TXT record's character-strings as an array.
      expect(r.answers.map((x) => (x as unknown as { data: string[] }).data.join('')).sort()).to.deep.equal([...BIG_TXT].sort());
    });
  });

  describe('EDNS(0) and truncation', () => {
    it('echoes an OPT with our UDP size only when the query has one', async function () {
      if (!hasDig) this.skip();
      expect((await dig(port, ['+edns=0', 'llm.home.arpa', 'A'])).ednsUdp).to.equal(1232);
      expect((await dig(port, ['+noedns', 'llm.home.arpa', 'A'])).ednsUdp).to.equal(null);
    });

    it('answers EDNS version 1 with BADVERS', async function () {
      if (!hasDig) this.skip();
      const r = await dig(port, ['+edns=1', '+noednsneg', 'llm.home.arpa', 'A']);
      expect(r.status).to.equal('BADVERS');
      expect(r.answer).to.deep.equal([]);
    });

    it('sets TC on a large RRset over UDP without EDNS and sends it whole over TCP', async function () {
      if (!hasDig) this.skip();
      const udp = await dig(port, ['+noedns', '+notcp', '+ignore', 'big.home.arpa', 'TXT']);
      expect(udp.flags).to.include('tc');
      expect(udp.answer).to.deep.equal([]);
      const tcp = await dig(port, ['+noedns', '+tcp', 'big.home.arpa', 'TXT']);
      expect(tcp.flags).not.to.include('tc');
      expect(tcp.answer).to.have.length(60);
    });

    it('keeps the OPT in a truncated EDNS answer', async function () {
      if (!hasDig) this.skip();
      const r = await dig(port, ['+bufsize=1232', '+notcp', '+ignore', 'big.home.arpa', 'TXT']);
      expect(r.flags).to.include('tc');
      expect(r.ednsUdp).to.equal(1232);
    });

    it('honours the size the client advertises (512 minimum)', async function () {
      if (!hasDig) this.skip();
      // long.home.arpa TXT is about 650 bytes.
      expect((await dig(port, ['+bufsize=600', '+notcp', '+ignore', 'long.home.arpa', 'TXT'])).flags).to.include('tc');
      expect((await dig(port, ['+bufsize=1000', '+notcp', '+ignore', 'long.home.arpa', 'TXT'])).answer).to.have.length(1);
      expect((await dig(port, ['+bufsize=100', '+notcp', '+ignore', 'mail.home.arpa', 'A'])).answer).to.have.length(1);
      expect((await dig(port, ['+noedns', '+notcp', '+ignore', 'long.home.arpa', 'TXT'])).flags).to.include('tc');
      expect(LONG_TXT.length).to.equal(600);
    });
  });

  describe('zone transfer', () => {
    it('sends SOA, every record, SOA over TCP to an allowed address', async function () {
      if (!hasDig) this.skip();
      const r = await dig(port, ['home.arpa', 'AXFR']);
      const lines = r.raw.split('\n').filter((l) => l && !l.startsWith(';'));
      const served = index.servedRecords(HOME).reduce((n, x) => n + x.values.length, 0);
      expect(lines).to.have.length(served + 1);
      expect(lines[0]).to.match(/^home\.arpa\.\s+300\s+IN\s+SOA\s/);
      expect(lines.at(-1)).to.equal(lines[0]);
      expect(r.raw).to.include('llm.home.arpa.');
      expect(r.raw).to.include('value-59-');
    });

    it('splits a large zone over several messages', async () => {
      const big = await startServer();
      try {
        const records = Array.from({ length: 3000 }, (_, i) => rec(HOME, `h${i}`, { type: 'A', values: ['192.0.2.8'] }));
        big.index.load(HOME, 5, records);
        const soas = (m: Buffer) => decode(m).answers.filter((a) => a.type === 'SOA').length;
        const replies = await tcpExchange(big.port, frame(query('home.arpa', 'AXFR')), (r) => r.reduce((n, m) => n + soas(m), 0) >= 2, 5000);
        const decoded = replies.map((m) => decode(m));
        expect(decoded.length).to.be.greaterThan(1);
        const all = decoded.flatMap((d) => d.answers);
        expect(all).to.have.length(3000 + 4);
        expect(all[0]?.type).to.equal('SOA');
        expect(all.at(-1)?.type).to.equal('SOA');
        expect(decoded.every((d) => d.aa && d.rcode === 'NOERROR')).to.equal(true);
      } finally {
        await big.server.stop();
      }
    });

    it('refuses AXFR over UDP', async () => {
      const r = decode(await udpExchange(port, query('home.arpa', 'AXFR')));
      expect(r.rcode).to.equal('REFUSED');
      expect(r.answers).to.deep.equal([]);
    });

    it('refuses AXFR from an address not in axfrAllow', async () => {
      const other = await startServer({ axfrAllow: ['192.0.2.99'] });
      try {
        const [reply] = await tcpExchange(other.port, frame(query('home.arpa', 'AXFR')), 1);
        const r = decode(reply);
        expect(r.rcode).to.equal('REFUSED');
        expect(r.answers).to.deep.equal([]);
      } finally {
        await other.server.stop();
      }
    });

    it('matches IPv4-mapped IPv6 peers and list entries against their IPv4 form', async () => {
      const other = await startServer({ axfrAllow: ['::ffff:127.0.0.1'] });
      try {
        const [reply] = await tcpExchange(other.port, frame(query('home.arpa', 'AXFR')), 1);
        expect(decode(reply).answers[0]?.type).to.equal('SOA');
      } finally {
        await other.server.stop();
      }
    });
  });

  describe('changes', () => {
    it('serves a change on the very next query, with a higher SOA serial', async () => {
      const before = decode(await udpExchange(port, query('llm.home.arpa', 'A')));
      expect(before.answers.map((a) => a.data)).to.deep.equal(['192.0.2.10']);
      const soa0 = decode(await udpExchange(port, query('home.arpa', 'SOA'))).answers[0];
      index.apply({ zone: HOME, serial: SERIAL + 1, upserted: [rec(HOME, 'llm', { type: 'A', values: ['192.0.2.11'] }), rec(HOME, 'fresh', { type: 'A', values: ['192.0.2.12'] })], removed: [] });
      try {
        const after = decode(await udpExchange(port, query('llm.home.arpa', 'A')));
        expect(after.answers.map((a) => a.data)).to.deep.equal(['192.0.2.11']);
        const fresh = decode(await udpExchange(port, query('fresh.home.arpa', 'A')));
        expect(fresh.rcode).to.equal('NOERROR');
        expect(fresh.answers.map((a) => a.data)).to.deep.equal(['192.0.2.12']);
        const soa1 = decode(await udpExchange(port, query('home.arpa', 'SOA'))).answers[0];
        const serial = (r: typeof soa0) => (r?.data as { serial: number }).serial;
        expect(serial(soa1)).to.be.greaterThan(serial(soa0));
      } finally {
        index.apply({ zone: HOME, serial: SERIAL + 2, upserted: [rec(HOME, 'llm', { type: 'A', values: ['192.0.2.10'] })], removed: [{ name: 'fresh.home.arpa.', type: 'A' }] });
      }
      const gone = decode(await udpExchange(port, query('fresh.home.arpa', 'A')));
      expect(gone.rcode).to.equal('NXDOMAIN');
    });
  });

  describe('flags and lifecycle', () => {
    it('copies RD from the query and never sets RA without upstreams', async () => {
      const rd = decode(await udpExchange(port, query('llm.home.arpa', 'A', { flags: dnsPacket.RECURSION_DESIRED })));
      expect(rd.rd).to.equal(true);
      expect(rd.ra).to.equal(false);
      const norec = decode(await udpExchange(port, query('llm.home.arpa', 'A')));
      expect(norec.rd).to.equal(false);
      expect(norec.id).to.equal(4242);
    });

    it('answers pipelined queries on one TCP connection with their own IDs', async () => {
      const payload = Buffer.concat([frame(query('llm.home.arpa', 'A', { id: 1 })), frame(query('nx.home.arpa', 'A', { id: 2 })), frame(query('example.com', 'A', { id: 3 }))]);
      const replies = (await tcpExchange(port, payload, 3)).map((m) => decode(m));
      expect(replies.map((r) => [r.id, r.rcode])).to.deep.equal([
        [1, 'NOERROR'],
        [2, 'NXDOMAIN'],
        [3, 'REFUSED'],
      ]);
    });

    it('counts every query by type, rcode and transport, cache hits included, and times it', async () => {
      const count = async (labels: Record<string, string>) => (await dnsQueries.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k as keyof typeof v.labels] === x))?.value ?? 0;
      const timed = async () => (await dnsLatency.get()).values.find((v) => v.metricName?.endsWith('_count') && v.labels.transport === 'udp')?.value ?? 0;
      const nx = { qtype: 'MX', rcode: 'NXDOMAIN', transport: 'udp' };
      const [c0, t0] = [await count(nx), await timed()];
      for (let i = 0; i < 3; i++) await udpExchange(port, query('counted.home.arpa', 'MX', { id: i }));
      await tcpExchange(port, frame(query('llm.home.arpa', 'TYPE65')), 1);
      expect(await count(nx)).to.equal(c0 + 3);
      expect(await timed()).to.equal(t0 + 3);
      expect(await count({ qtype: 'other', rcode: 'NOERROR', transport: 'tcp' })).to.be.at.least(1);
    });

    it('sets TC over TCP when an answer exceeds 65535 bytes', async () => {
      const huge = Array.from({ length: 20 }, (_, i) => `${i}-${'y'.repeat(3990)}`);
      index.apply({ zone: HOME, serial: SERIAL + 3, upserted: [rec(HOME, 'huge', { type: 'TXT', values: huge })], removed: [] });
      try {
        const [reply] = await tcpExchange(port, frame(query('huge.home.arpa', 'TXT')), 1);
        const r = decode(reply);
        expect([r.rcode, r.tc, r.answers.length]).to.deep.equal(['NOERROR', true, 0]);
      } finally {
        index.apply({ zone: HOME, serial: SERIAL + 4, upserted: [], removed: [{ name: 'huge.home.arpa.', type: 'TXT' }] });
      }
    });

    it('stops cleanly after a failed start and can stop twice', async () => {
      const first = await startServer();
      const clash = await startServer({ port: first.port }).catch((e: NodeJS.ErrnoException) => e);
      expect((clash as NodeJS.ErrnoException).code).to.equal('EADDRINUSE');
      await first.server.stop();
      await first.server.stop();
      expect(first.server.status()).to.equal('down');
      // Stopped for real: its UDP and TCP ports are free to bind again (nothing is left to answer).
      const udp = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => udp.once('error', reject).bind(first.port, '127.0.0.1', resolve));
      udp.close();
      const tcp = net.createServer();
      await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(first.port, '127.0.0.1', resolve));
      await new Promise((r) => tcp.close(r));
    });
  });
});
