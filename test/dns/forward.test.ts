import { expect } from 'chai';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { Forwarder, parseUpstream } from '../../src/dns/forward.js';
import { DnsServer as DnsServerClass, type DnsServer } from '../../src/dns/server.js';
import { ZoneIndex } from '../../src/dns/zone.js';
import { decode, frame, query, rec, startServer, tcpExchange, udpExchange } from './fixture.js';

const ORG = 'example.org.';

/** An authoritative index for example.org., our stand-in for the Internet. */
function orgIndex(): ZoneIndex {
  const index = new ZoneIndex([{ name: ORG, nameservers: ['ns1.example.org.'], hostmaster: 'hostmaster.example.org.', nodeIp: '203.0.113.1' }]);
  index.load(ORG, 7, [rec(ORG, 'www', { type: 'A', values: ['203.0.113.10'] }, 120)]);
  return index;
}

interface Fake {
  port: number;
  udp: number;
  tcp: number;
  close(): Promise<void>;
}

/**
 * A scripted upstream on UDP and TCP of one port: `reply` gets the query and transport and
 * returns the response packet (ID and question default to the query's), or null to stay
 * silent. `delayMs` holds UDP replies back.
 */
async function fakeUpstream(reply: (q: dnsPacket.DecodedPacket, transport: 'udp' | 'tcp') => dnsPacket.Packet | null, delayMs = 0): Promise<Fake> {
  const fake: Fake = { port: 0, udp: 0, tcp: 0, close: async () => undefined };
  const respond = (msg: Buffer, transport: 'udp' | 'tcp') => {
    const q = dnsPacket.decode(msg);
    const r = reply(q, transport);
    return r && dnsPacket.encode({ type: 'response', id: q.id, questions: q.questions, ...r });
  };
  const conns = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    s.on('data', (chunk: Buffer) => {
      fake.tcp++;
      const out = respond(chunk.subarray(2), 'tcp');
      if (out) s.write(frame(out));
    });
  });
  // UDP on an ephemeral port, then TCP on the same number; another process may hold that TCP port, so retry.
  let udp: dgram.Socket | undefined;
  for (let attempt = 1; !udp; attempt++) {
    const candidate = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => candidate.bind(0, '127.0.0.1', resolve));
    const port = candidate.address().port;
    try {
      await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(port, '127.0.0.1', () => (tcp.off('error', reject), resolve())));
      udp = candidate;
      fake.port = port;
    } catch (e) {
      await new Promise<void>((r) => candidate.close(() => r()));
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 10) throw e;
    }
  }
  const sock = udp;
  sock.on('message', (msg, rinfo) => {
    fake.udp++;
    const out = respond(msg, 'udp');
    if (out) setTimeout(() => sock.send(out, rinfo.port, rinfo.address), delayMs);
  });
  fake.close = async () => {
    for (const s of conns) s.destroy();
    await Promise.all([new Promise<void>((r) => sock.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
  };
  return fake;
}

const aRecords = (n: number, name: string) => Array.from({ length: n }, (_, i) => ({ type: 'A' as const, name, ttl: 60, data: `203.0.113.${i + 1}` }));

describe('dns/forward', () => {
  describe('parseUpstream', () => {
    const table: [string, string | null][] = [
      ['192.0.2.53', '192.0.2.53 53'],
      ['192.0.2.53:5353', '192.0.2.53 5353'],
      ['2001:db8::53', '2001:db8::53 53'],
      ['[2001:db8::53]:5353', '2001:db8::53 5353'],
      ['[192.0.2.53]:53', null],
      ['resolver.example:53', null],
      ['192.0.2.53:70000', null],
    ];
    for (const [text, want] of table)
      it(`${text} → ${want ?? 'error'}`, () => {
        if (want === null) expect(() => parseUpstream(text)).to.throw(/must be ip/);
        else {
          const u = parseUpstream(text);
          expect(`${u.host} ${u.port}`).to.equal(want);
        }
      });
  });

  describe('through the server', () => {
    let upstream: { server: DnsServer; port: number };
    let proxy: { server: DnsServer; port: number };

    before(async () => {
      upstream = await startServer({ index: orgIndex() });
      proxy = await startServer({ upstreams: [`127.0.0.1:${upstream.port}`] });
    });
    after(async () => {
      await proxy.server.stop();
      await upstream.server.stop();
    });

    it('forwards names we do not own, with RA set, AA clear and the question case echoed', async () => {
      const r = decode(await udpExchange(proxy.port, query('WwW.ExAmPlE.oRg', 'A', { flags: dnsPacket.RECURSION_DESIRED })));
      expect(r.rcode).to.equal('NOERROR');
      expect(r.ra).to.equal(true);
      expect(r.aa).to.equal(false);
      expect(r.rd).to.equal(true);
      expect(r.questions[0]?.name).to.equal('WwW.ExAmPlE.oRg');
      expect(r.answers.map((a) => [a.type, a.data, a.ttl])).to.deep.equal([['A', '203.0.113.10', 120]]);
    });

    it('forwards negative answers with the upstream SOA', async () => {
      const r = decode(await udpExchange(proxy.port, query('nx.example.org', 'A')));
      expect(r.rcode).to.equal('NXDOMAIN');
      expect(r.authorities.map((a) => a.type)).to.deep.equal(['SOA']);
    });

    it('still answers our own zones authoritatively, now with RA', async () => {
      const r = decode(await udpExchange(proxy.port, query('llm.home.arpa', 'A')));
      expect([r.aa, r.ra, r.answers.length]).to.deep.equal([true, true, 1]);
    });

    it('serves repeats from its cache once the upstream is gone', async () => {
      await upstream.server.stop();
      const r = decode(await udpExchange(proxy.port, query('www.example.org', 'A')));
      expect(r.answers.map((a) => a.data)).to.deep.equal(['203.0.113.10']);
      expect(r.answers[0]?.ttl).to.be.within(118, 120);
      const nx = decode(await udpExchange(proxy.port, query('nx.example.org', 'A')));
      expect(nx.rcode).to.equal('NXDOMAIN');
    });

    it('answers SERVFAIL when every upstream fails (silent, then closed port)', async function () {
      this.timeout(5000);
      const silent = await fakeUpstream(() => null);
      const closed = await fakeUpstream(() => null);
      await closed.close();
      const p = await startServer({ upstreams: [`127.0.0.1:${silent.port}`, `127.0.0.1:${closed.port}`] });
      try {
        const t0 = Date.now();
        const r = decode(await udpExchange(p.port, query('www.example.net', 'A'), 4000));
        expect(r.rcode).to.equal('SERVFAIL');
        expect(Date.now() - t0).to.be.within(1400, 3000);
        expect(silent.udp).to.equal(1);
      } finally {
        await p.server.stop();
        await silent.close();
      }
    });
  });

  describe('recursion allow-list (loopback aliases stand in for clients)', () => {
    let upstream: { server: DnsServer; port: number };
    let proxy: { server: DnsServer; port: number };
    let open: { server: DnsServer; port: number };

    before(async () => {
      upstream = await startServer({ index: orgIndex() });
      proxy = await startServer({ upstreams: [`127.0.0.1:${upstream.port}`], recursionAllow: ['127.0.0.1/32', '127.0.0.3'] });
      open = await startServer({ upstreams: [`127.0.0.1:${upstream.port}`] });
    });
    after(async () => {
      await Promise.all([proxy.server.stop(), open.server.stop(), upstream.server.stop()]);
    });

    it('refuses names outside our zones to a client outside the list, over UDP and TCP, without RA', async () => {
      const r = decode(await udpExchange(proxy.port, query('www.example.org', 'A', { flags: dnsPacket.RECURSION_DESIRED }), 1000, '127.0.0.2'));
      expect([r.rcode, r.ra, r.aa, r.answers.length]).to.deep.equal(['REFUSED', false, false, 0]);
      expect(r.questions[0]?.name).to.equal('www.example.org');
      const [tcp] = await tcpExchange(proxy.port, frame(query('www.example.org', 'A')), 1, 2000, '127.0.0.2');
      expect(decode(tcp).rcode).to.equal('REFUSED');
    });

    it('still answers our own zones to that client', async () => {
      const r = decode(await udpExchange(proxy.port, query('llm.home.arpa', 'A'), 1000, '127.0.0.2'));
      expect([r.rcode, r.aa, r.answers.map((a) => a.data)]).to.deep.equal(['NOERROR', true, ['192.0.2.10']]);
    });

    it('forwards for listed addresses and networks, even right after refusing the same query to another client', async () => {
      const q = query('www.example.org', 'A', { id: 77 });
      expect(decode(await udpExchange(proxy.port, q, 1000, '127.0.0.2')).rcode).to.equal('REFUSED');
      for (const from of ['127.0.0.1', '127.0.0.3']) {
        const r = decode(await udpExchange(proxy.port, q, 1000, from));
        expect([from, r.rcode, r.ra, r.answers.map((a) => a.data)]).to.deep.equal([from, 'NOERROR', true, ['203.0.113.10']]);
      }
    });

    it('defaults to loopback (all of 127.0.0.0/8)', async () => {
      const r = decode(await udpExchange(open.port, query('www.example.org', 'A'), 1000, '127.0.0.2'));
      expect([r.rcode, r.answers.map((a) => a.data)]).to.deep.equal(['NOERROR', ['203.0.113.10']]);
    });

    it('rejects a malformed entry when built', () => {
      expect(() => new DnsServerClass({ host: '127.0.0.1', port: 0, index: orgIndex(), upstreams: [], axfrAllow: [], recursionAllow: ['10.0.0.0/33'] })).to.throw(/prefix length must be 0-32/);
    });
  });

  describe('upstream behaviour', () => {
    it('retries over TCP when the upstream truncates, and truncates for a small client itself', async () => {
      const fake = await fakeUpstream((q, transport) => (transport === 'udp' ? { flags: dnsPacket.TRUNCATED_RESPONSE } : { answers: aRecords(40, q.questions?.[0]?.name ?? '') }));
      const p = await startServer({ upstreams: [`127.0.0.1:${fake.port}`] });
      try {
        const [tcp] = await tcpExchange(p.port, frame(query('many.example.net', 'A')), 1);
        const r = decode(tcp);
        expect(r.answers).to.have.length(40);
        expect(r.tc).to.equal(false);
        expect([fake.udp, fake.tcp]).to.deep.equal([1, 1]);
        // 40 A records do not fit 512 bytes: a UDP client without EDNS gets TC and no records.
        const small = decode(await udpExchange(p.port, query('many.example.net', 'A')));
        expect([small.tc, small.answers.length]).to.deep.equal([true, 0]);
      } finally {
        await p.server.stop();
        await fake.close();
      }
    });

    it('sends identical questions in flight upstream once', async () => {
      const fake = await fakeUpstream((q) => ({ answers: aRecords(1, q.questions?.[0]?.name ?? '') }), 100);
      const p = await startServer({ upstreams: [`127.0.0.1:${fake.port}`] });
      try {
        const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => udpExchange(p.port, query('same.example.net', 'A', { id: i + 1 }), 2000)));
        expect(replies.map((m) => decode(m).id)).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
        expect(replies.every((m) => decode(m).answers.length === 1)).to.equal(true);
        expect(fake.udp).to.equal(1);
      } finally {
        await p.server.stop();
        await fake.close();
      }
    });

    it('ages TTLs while cached, refetches after expiry, and does not cache SERVFAIL', async () => {
      let rcode = 0;
      const fake = await fakeUpstream((q) => ({ flags: rcode, answers: rcode ? [] : aRecords(1, q.questions?.[0]?.name ?? '') }));
      let now = 1_000_000;
      const fwd = new Forwarder({ upstreams: [`127.0.0.1:${fake.port}`], now: () => now, timeoutMs: 500 });
      const ask = async () => {
        const out = await fwd.resolve({ question: query('ttl.example.net', 'A').subarray(12), edns: false, dnssecOk: false, cd: false });
        return out && decode(out);
      };
      try {
        expect((await ask())?.answers[0]?.ttl).to.equal(60);
        now += 25_000;
        expect((await ask())?.answers[0]?.ttl).to.equal(35);
        expect(fake.udp).to.equal(1);
        now += 40_000;
        rcode = 2; // upstream now says SERVFAIL
        expect(await ask()).to.equal(null);
        expect(fake.udp).to.equal(2);
        expect(fwd.cacheSize).to.equal(0);
      } finally {
        fwd.close();
        await fake.close();
      }
    });

    it('ignores replies whose ID or question do not match the query', async () => {
      const forge = { id: false, name: false };
      const fake = await fakeUpstream((q) => ({
        id: forge.id ? ((q.id ?? 0) + 1) & 0xffff : q.id,
        questions: forge.name ? [{ name: 'other.example.net', type: 'A' }] : q.questions,
        answers: aRecords(1, 'real.example.net'),
      }));
      const fwd = new Forwarder({ upstreams: [`127.0.0.1:${fake.port}`], timeoutMs: 300 });
      const ask = (name: string) => fwd.resolve({ question: query(name, 'A').subarray(12), edns: false, dnssecOk: false, cd: false });
      try {
        forge.id = true;
        expect(await ask('a.example.net')).to.equal(null);
        forge.id = false;
        forge.name = true;
        expect(await ask('b.example.net')).to.equal(null);
        forge.name = false;
        expect(decode(await ask('c.example.net')).answers).to.have.length(1);
      } finally {
        fwd.close();
        await fake.close();
      }
    });
  });
});
