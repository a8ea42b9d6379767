import { expect } from 'chai';
import net from 'node:net';
import { MAX_TCP_PER_ADDRESS, TCP_IDLE_MS, TCP_MESSAGE_MS, TcpDeadline, type DnsServer } from '../../src/dns/server.js';
import { decode, FakeClock, frame, query, startServer, tcpExchange, tcpUntilClosed } from './fixture.js';

/** What a connection receives: at time `t`, a chunk that completes a message (`whole`) and/or leaves part of one (`partial`). */
type Read = [t: number, whole: boolean, partial: boolean];

/** When a connection opened at 0 that reads `reads` is closed (each read happens only if the deadline has not passed). */
function closedAt(reads: Read[]): number {
  const d = new TcpDeadline(0);
  for (const [t, whole, partial] of reads) {
    if (t >= d.at()) return d.at();
    d.read(t, whole, partial);
  }
  return d.at();
}

/** A connected client socket on 127.0.0.1 (or `from`), with its replies collected. */
async function client(port: number, from?: string): Promise<{ s: net.Socket; replies: Buffer[]; closed: Promise<void>; next: () => Promise<Buffer> }> {
  const s = net.connect({ host: '127.0.0.1', port, ...(from ? { localAddress: from } : {}) });
  s.on('error', () => undefined);
  const replies: Buffer[] = [];
  let waiting: ((b: Buffer) => void) | null = null;
  let buf = Buffer.alloc(0);
  s.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const m = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + m.length);
      if (waiting) waiting(m);
      else replies.push(m);
      waiting = null;
    }
  });
  const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
  await new Promise((r) => s.once('connect', r));
  const next = () => {
    const queued = replies.shift();
    return queued ? Promise.resolve(queued) : new Promise<Buffer>((resolve) => (waiting = resolve));
  };
  return { s, replies, closed, next };
}

describe('dns/tcp limits', () => {
  describe('TcpDeadline', () => {
    const table: [string, Read[], number][] = [
      ['a connection that sends nothing: the idle limit', [], TCP_IDLE_MS],
      ['a 29-byte query fed one byte every 6 s: 5 s after its first byte', Array.from({ length: 29 }, (_, i): Read => [6000 * (i + 1), false, true]), 6000 + TCP_MESSAGE_MS],
      ['one byte a second: 5 s after the first', Array.from({ length: 29 }, (_, i): Read => [1000 * (i + 1), false, true]), 1000 + TCP_MESSAGE_MS],
      ['a whole query every 9 s for a minute: open until 10 s after the last', Array.from({ length: 7 }, (_, i): Read => [9000 * i, true, false]), 54_000 + TCP_IDLE_MS],
      ['a whole query at 8 s, then a trickle: 5 s after the trickle began', [[8000, true, false], [9000, false, true], [11_000, false, true], [13_000, false, true]], 9000 + TCP_MESSAGE_MS],
      ['a message finished with the next one begun in the same chunk: that one has its own 5 s', [[1000, false, true], [5000, true, true], [9000, false, true]], 5000 + TCP_MESSAGE_MS],
      ['a message in two chunks 4 s apart: idle limit from its end', [[1000, false, true], [5000, true, false]], 5000 + TCP_IDLE_MS],
    ];
    for (const [what, reads, at] of table) it(`${what} → closed at ${at} ms`, () => expect(closedAt(reads)).to.equal(at));

    it('a reply or a forwarded query in flight counts as activity', () => {
      const d = new TcpDeadline(0);
      d.replied(8000);
      expect(d.at()).to.equal(8000 + TCP_IDLE_MS);
      d.busy(17_000);
      expect(d.at()).to.equal(17_000 + TCP_IDLE_MS);
    });
  });

  describe('on the server (fake clock)', () => {
    let clock: FakeClock;
    let server: DnsServer;
    let port: number;

    beforeEach(async () => {
      clock = new FakeClock();
      ({ server, port } = await startServer({ clock }));
    });
    afterEach(async () => {
      await server.stop();
    });

    it('closes a connection whose message is not whole 5 s after its first byte, however the bytes trickle in', async () => {
      let armed = clock.armed();
      const c = await client(port);
      await armed; // accepted: idle deadline set
      armed = clock.armed();
      c.s.write(Buffer.from([0]));
      await armed; // the first byte of a message moved the deadline closer
      clock.advance(TCP_MESSAGE_MS - 1000);
      c.s.write(Buffer.from([29]));
      clock.advance(999);
      expect(server.tcpConnections()).to.equal(1);
      clock.advance(1);
      expect(server.tcpConnections()).to.equal(0);
      await c.closed;
    });

    it('closes a connection idle for 10 s after its last answer, and answers before that', async () => {
      const armed = clock.armed();
      const c = await client(port);
      await armed;
      clock.advance(TCP_IDLE_MS - 1);
      c.s.write(frame(query('llm.home.arpa', 'A')));
      expect(decode(await c.next()).answers).to.have.length(1);
      // The answer restarted the idle limit.
      clock.advance(TCP_IDLE_MS - 1);
      expect(server.tcpConnections()).to.equal(1);
      clock.advance(1);
      expect(server.tcpConnections()).to.equal(0);
      await c.closed;
    });
  });

  describe('per-address cap', () => {
    let server: DnsServer;
    let port: number;

    before(async () => {
      ({ server, port } = await startServer());
    });
    after(async () => {
      await server.stop();
    });

    it(`takes ${MAX_TCP_PER_ADDRESS} connections from one address, closes the next at once, and serves other addresses`, async function () {
      this.timeout(20_000);
      const open: Awaited<ReturnType<typeof client>>[] = [];
      try {
        for (let i = 0; i < MAX_TCP_PER_ADDRESS; i++) {
          const c = await client(port);
          open.push(c);
          // An answer shows the server took (and counted) the connection.
          c.s.write(frame(query('llm.home.arpa', 'A', { id: i })));
          expect(decode(await c.next()).id).to.equal(i);
        }
        expect(server.tcpConnections()).to.equal(MAX_TCP_PER_ADDRESS);
        // One more from the same address: closed without an answer.
        expect(await tcpUntilClosed(port, frame(query('llm.home.arpa', 'A')), 5000)).to.deep.equal({ replies: [], closed: true });
        // Another address is served.
        const other = await client(port, '127.0.0.2');
        other.s.write(frame(query('llm.home.arpa', 'A')));
        expect(decode(await other.next()).answers).to.have.length(1);
        other.s.destroy();
        // A slot freed on the first address is taken again.
        const first = open.shift();
        first?.s.destroy();
        await first?.closed;
        while (server.tcpConnections() > MAX_TCP_PER_ADDRESS - 1) await new Promise((r) => setImmediate(r));
        const [ok] = await tcpExchange(port, frame(query('llm.home.arpa', 'A')), 1);
        expect(decode(ok).answers).to.have.length(1);
      } finally {
        for (const c of open) c.s.destroy();
      }
    });
  });
});
