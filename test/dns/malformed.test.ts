import { expect } from 'chai';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { DnsServer } from '../../src/dns/server.js';
import { captureLog, decode, frame, query, startServer, tcpExchange, tcpUntilClosed, udpBeforeSentinel, udpExchange } from './fixture.js';
import { until } from '../helpers/until.js';
import { prng } from '../helpers/prng.js';

/** Header with the given counts followed by `body`. */
function raw(h: { id?: number; flags?: number; qd?: number; an?: number; ns?: number; ar?: number }, body: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(h.id ?? 0x1234, 0);
  head.writeUInt16BE(h.flags ?? 0, 2);
  head.writeUInt16BE(h.qd ?? 1, 4);
  head.writeUInt16BE(h.an ?? 0, 6);
  head.writeUInt16BE(h.ns ?? 0, 8);
  head.writeUInt16BE(h.ar ?? 0, 10);
  return Buffer.concat([head, body]);
}

/** Wire name from raw labels (bytes kept as given). */
function wireName(labels: (string | Buffer)[]): Buffer {
  return Buffer.concat([...labels.map((l) => (typeof l === 'string' ? Buffer.from(l, 'latin1') : l)).map((l) => Buffer.concat([Buffer.from([l.length]), l])), Buffer.from([0])]);
}

const typeClass = (type: number, cls = 1) => Buffer.from([type >> 8, type & 0xff, cls >> 8, cls & 0xff]);
const OPT = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);


describe('dns/malformed input', () => {
  let server: DnsServer;
  let port: number;
  let lines: ReturnType<typeof captureLog>['lines'];

  before(async () => {
    const captured = captureLog();
    lines = captured.lines;
    ({ server, port } = await startServer({ log: captured.log }));
  });
  after(async () => {
    await server.stop();
  });

  // [what, packet, expected RCODE or null for no reply]
  const table: [string, () => Buffer, string | null][] = [
    ['a response (QR=1)', () => raw({ flags: 0x8000 }, Buffer.concat([wireName(['llm', 'home', 'arpa']), typeClass(1)])), null],
    ['five bytes', () => Buffer.from([1, 2, 3, 4, 5]), null],
    ['a bare header with no question', () => raw({ qd: 0 }, Buffer.alloc(0)), 'FORMERR'],
    ['two questions', () => raw({ qd: 2 }, Buffer.concat([wireName(['llm', 'home', 'arpa']), typeClass(1), wireName(['llm', 'home', 'arpa']), typeClass(1)])), 'FORMERR'],
    ['a question cut short', () => raw({}, Buffer.concat([wireName(['llm', 'home', 'arpa']), Buffer.from([0, 1])])), 'FORMERR'],
    ['a compression pointer in the question', () => raw({}, Buffer.concat([Buffer.from([0xc0, 0x0c]), typeClass(1)])), 'FORMERR'],
    ['a label running past the end', () => raw({}, Buffer.from([40, 0x61, 0x62])), 'FORMERR'],
    ['an answer count with no answers', () => raw({ an: 65535 }, Buffer.concat([wireName(['llm', 'home', 'arpa']), typeClass(1)])), 'FORMERR'],
    ['two OPT records', () => raw({ ar: 2 }, Buffer.concat([wireName(['llm', 'home', 'arpa']), typeClass(1), OPT, OPT])), 'FORMERR'],
    ['opcode NOTIFY', () => raw({ flags: 4 << 11 }, Buffer.concat([wireName(['home', 'arpa']), typeClass(6)])), 'NOTIMP'],
    ['opcode UPDATE', () => raw({ flags: 5 << 11 }, Buffer.concat([wireName(['home', 'arpa']), typeClass(6)])), 'NOTIMP'],
    ['opcode STATUS with no question', () => raw({ flags: 2 << 11, qd: 0 }, Buffer.alloc(0)), 'NOTIMP'],
    ['opcode 15 with no question and RD', () => raw({ flags: (15 << 11) | 0x0100, qd: 0 }, Buffer.alloc(0)), 'NOTIMP'],
    ['opcode UPDATE with two zone entries', () => raw({ flags: 5 << 11, qd: 2 }, Buffer.concat([wireName(['home', 'arpa']), typeClass(6), wireName(['home', 'arpa']), typeClass(6)])), 'NOTIMP'],
    ['opcode NOTIFY with a question cut short', () => raw({ flags: 4 << 11 }, Buffer.from([4, 0x68])), 'NOTIMP'],
    ['class CHAOS', () => raw({}, Buffer.concat([wireName(['version', 'bind']), typeClass(16, 3)])), 'REFUSED'],
    ['a dot inside a label', () => raw({}, Buffer.concat([wireName(['a.b', 'home', 'arpa']), typeClass(1)])), 'NXDOMAIN'],
  ];
  for (const [what, packet, rcode] of table) {
    it(`${what} → ${rcode ?? 'no reply'}`, async () => {
      // No reply: nothing came back before the answer to a valid query sent after it.
      if (rcode === null) return expect(await udpBeforeSentinel(port, packet(), query('llm.home.arpa', 'A', { id: 0x5e57 }))).to.deep.equal([]);
      const reply = await udpExchange(port, packet());
      const r = decode(reply);
      expect(r.rcode).to.equal(rcode);
      expect(r.id).to.equal(0x1234);
      // The reply keeps the query's opcode (RFC 1035 §4.1.1).
      expect((reply as Buffer).readUInt16BE(2) & 0x7800).to.equal(packet().readUInt16BE(2) & 0x7800);
    });
  }

  it('answers a wildcard for a label of raw bytes with the question bytes as owner', async () => {
    const name = wireName([Buffer.from([0xff, 0x00, 0x41]), 'wild', 'home', 'arpa']);
    const reply = (await udpExchange(port, raw({}, Buffer.concat([name, typeClass(1)])))) as Buffer;
    expect(reply.subarray(12, 12 + name.length).equals(name)).to.equal(true);
    expect(reply.readUInt16BE(6)).to.equal(1);
    // The answer's owner is a pointer to the question name (offset 12).
    expect(reply.readUInt16BE(12 + name.length + 4)).to.equal(0xc00c);
    expect(decode(reply).answers.map((a) => a.data)).to.deep.equal(['192.0.2.40']);
  });

  it('survives 12,000 random and mutated UDP packets and still answers', async function () {
    this.timeout(20000);
    const rand = prng(20260101);
    const int = (n: number) => Math.floor(rand() * n);
    const seeds = [query('llm.home.arpa', 'A'), query('big.home.arpa', 'TXT', { edns: 4096 }), query('home.arpa', 'AXFR'), query('x.wild.home.arpa', 'ANY'), query('example.com', 'A', { edns: 512 }), query('www.home.arpa', 'A')];
    const mutate = (i: number): Buffer => {
      const seed = Buffer.from(seeds[int(seeds.length)] as Buffer);
      switch (i % 6) {
        case 0:
          return Buffer.from(Array.from({ length: int(600) }, () => int(256)));
        case 1:
          for (let k = 0, n = 1 + int(8); k < n; k++) {
            const bit = int(seed.length * 8);
            seed[bit >> 3] = (seed[bit >> 3] as number) ^ (1 << (bit & 7));
          }
          return seed;
        case 2:
          return seed.subarray(0, int(seed.length));
        case 3:
          for (let k = 4; k < 12; k += 2) if (rand() < 0.5) seed.writeUInt16BE(rand() < 0.5 ? 0xffff : int(65536), k);
          return seed;
        case 4:
          for (let k = 0, n = 1 + int(4); k < n; k++) seed[12 + int(seed.length - 12)] = int(256);
          return seed;
        default:
          // Valid header, random tail: exercises name, OPT and RR walking.
          return Buffer.concat([seed.subarray(0, 12), Buffer.from(Array.from({ length: int(300) }, () => (rand() < 0.3 ? 0xc0 : int(256))))]);
      }
    };
    const client = dgram.createSocket('udp4');
    const replies: Buffer[] = [];
    // A valid query sent after the fuzz, on the same socket: the server reads datagrams in order,
    // so its answer comes once every fuzz packet the kernel delivered has been handled.
    const SENTINEL_ID = 0x5e57;
    let sentinel!: () => void;
    const sentinelAnswered = new Promise<void>((r) => (sentinel = r));
    client.on('message', (m) => {
      if (m.readUInt16BE(0) === SENTINEL_ID && m.length >= 12) {
        const d = dnsPacket.decode(m);
        if (d.questions?.[0]?.name === 'llm.home.arpa' && d.answers?.length) return sentinel();
      }
      replies.push(m);
    });
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    const total = 12_000;
    try {
      for (let i = 0; i < total; i++) {
        client.send(mutate(i), port, '127.0.0.1');
        // Pacing, so the socket buffers are not simply overrun.
        if (i % 200 === 199) await new Promise((r) => setTimeout(r, 2));
      }
      // The sentinel may be dropped like any datagram under load: sent again every 200 ms until answered.
      const ask = () => client.send(query('llm.home.arpa', 'A', { id: SENTINEL_ID }), port, '127.0.0.1');
      ask();
      const again = setInterval(ask, 200);
      let limit: NodeJS.Timeout | undefined;
      try {
        await Promise.race([sentinelAnswered, new Promise((_, reject) => (limit = setTimeout(() => reject(new Error('the sentinel query: no answer within 10 s')), 10_000)))]);
      } finally {
        clearInterval(again);
        clearTimeout(limit);
      }
    } finally {
      client.close();
    }
    expect(replies.length).to.be.greaterThan(1000).and.at.most(total);
    for (const m of replies) {
      expect(m.length).to.be.at.least(12);
      expect((m[2] as number) & 0x80, 'every reply has QR=1').to.equal(0x80);
      expect(() => dnsPacket.decode(m)).not.to.throw();
    }
    expect(lines.filter((l) => l.level === 'warn'), 'no handler errors').to.deep.equal([]);
    expect(server.status()).to.equal('ok');
    const r = decode(await udpExchange(port, query('llm.home.arpa', 'A')));
    expect(r.answers.map((a) => a.data)).to.deep.equal(['192.0.2.10']);
  });

  it('survives hundreds of garbage TCP frames and length prefixes and still answers', async function () {
    this.timeout(20000);
    const rand = prng(7);
    const int = (n: number) => Math.floor(rand() * n);
    const valid = query('llm.home.arpa', 'A');
    let frames = 0;
    const runs: Promise<Buffer[]>[] = [];
    for (let c = 0; c < 40; c++) {
      const parts: Buffer[] = [];
      for (let k = 0; k < 8; k++, frames++) {
        const kind = int(4);
        if (kind === 0) parts.push(frame(Buffer.from(Array.from({ length: int(200) }, () => int(256)))));
        else if (kind === 1) parts.push(Buffer.from([int(256), int(256)]), Buffer.from(Array.from({ length: int(50) }, () => int(256))));
        else if (kind === 2) {
          const m = Buffer.from(valid);
          m[12 + int(m.length - 12)] = int(256);
          parts.push(frame(m));
        } else parts.push(frame(valid));
      }
      runs.push(tcpExchange(port, Buffer.concat(parts), 8, 1500));
    }
    const results = await Promise.all(runs);
    expect(frames).to.equal(320);
    for (const m of results.flat()) expect((m[2] as number) & 0x80).to.equal(0x80);
    // A length prefix below the header size cannot start a message: the connection is closed at
    // once — by the server, within 3 s, so not by a timeout (TCP_MESSAGE_MS 5 s, idle 10 s).
    expect(await tcpUntilClosed(port, Buffer.from([0, 3, 1, 2, 3]), 3000)).to.deep.equal({ replies: [], closed: true });
    expect(lines.filter((l) => l.level === 'warn')).to.deep.equal([]);
    const [ok] = await tcpExchange(port, frame(valid), 1);
    expect(decode(ok).answers.map((a) => a.data)).to.deep.equal(['192.0.2.10']);
  });

  it('caps concurrent TCP connections at 256 and keeps serving', async function () {
    this.timeout(10000);
    const open: net.Socket[] = [];
    try {
      // Spread over loopback addresses: one address may hold only MAX_TCP_PER_ADDRESS of them.
      for (let i = 0; i < 256; i++) {
        const s = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${1 + (i % 16)}` });
        s.on('error', () => undefined);
        open.push(s);
        await new Promise((r) => s.once('connect', r));
      }
      // Connected on our side; the server has all 256 once it counts them.
      await until('the server holding 256 connections', 5_000, async () => (server.tcpConnections() === 256 ? true : undefined), 5);
      // The 257th is accepted by the kernel and closed by us at once, without an answer.
      expect(await tcpUntilClosed(port, frame(query('llm.home.arpa', 'A')), 2000)).to.deep.equal({ replies: [], closed: true });
    } finally {
      for (const s of open) s.destroy();
    }
    await until('the server seeing the 256 closed', 5_000, async () => (server.tcpConnections() === 0 ? true : undefined), 5);
    const [ok] = await tcpExchange(port, frame(query('llm.home.arpa', 'A')), 1);
    expect(decode(ok).answers).to.have.length(1);
    expect(decode(await udpExchange(port, query('llm.home.arpa', 'A'))).answers).to.have.length(1);
  });

  it('closes open TCP connections (even mid-frame) on stop()', async () => {
    const other = await startServer();
    const s = net.connect({ host: '127.0.0.1', port: other.port });
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.from([0xff, 0xff, 1, 2, 3]));
    const closed = new Promise((r) => s.once('close', r));
    // Mid-frame on the server's side: it has read the 5 bytes (a length prefix and part of a message).
    const conns = (other.server as unknown as { conns: Set<net.Socket> }).conns;
    await until('the server reading the partial frame', 5_000, async () => ([...conns].some((c) => c.bytesRead >= 5) ? true : undefined), 5);
    const t0 = Date.now();
    await other.server.stop();
    await closed;
    expect(Date.now() - t0).to.be.lessThan(1000);
    expect(other.server.status()).to.equal('down');
  });
});
