// Differential test: our authoritative answers against NSD's (Debian `nsd`, the reference) on the
// same generated zone (nsd-zone.ts), over UDP without EDNS, with small and large EDNS sizes, and
// over TCP. Compared per query: RCODE, AA/TC/RA/RD, EDNS presence and size, and the answer,
// authority and additional sections. Differences the RFCs allow, and so not compared:
//   - the order of records within a section (RFC 2181 §5: an RRset is a set; RFC 1034 §4.3.2
//     orders only a CNAME before what it leads to, which both do);
//   - the sections of a response with TC=1: the client ignores them and retries over TCP (RFC 2181
//     §9); we send the question and OPT only, NSD what fitted;
//   - the case of names other than an answer owner equal to the question (RFC 4343: names compare
//     case-insensitively; a compression pointer into the question gives its case);
//   - the zone's own NS RRset that NSD adds to the authority section of positive answers, and the
//     addresses of those nameservers it then adds to the additional section: optional (RFC 1034
//     §4.3.2 step 3a, RFC 2181 §6.1 calls it "may"); we answer minimally, as BIND's and Knot's
//     defaults do, which keeps answers smaller and further from TC;
//   - ANY: NSD answers with one RRset (RFC 8482 §4.2), we with every RRset at the name (RFC 1035
//     §3.2.3 allows both); checked: NSD's RRset is among ours, and when ours does not fit it is TC.
import { expect } from 'chai';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { DnsServer } from '../../src/dns/server.js';
import { ZoneIndex } from '../../src/dns/zone.js';
import { parseZoneFile } from '../../src/dns/zonefile.js';
import type { RecordInput, StoredRecord } from '../../src/model/record.js';
import { nsdMissing, startNsd, type Nsd } from '../helpers/nsd.js';
import { captureLog } from './fixture.js';
import { generateZone, mixCase, NODE_IP, RFC4592_SERIAL, RFC4592_TEXT, RFC4592_ZONE, rfc4592Queries, SERIAL, ZONE, type Generated } from './nsd-zone.js';

type Mode = { name: string; tcp: boolean; edns?: number };
const MODES: Mode[] = [
  { name: 'UDP without EDNS', tcp: false },
  { name: 'UDP, EDNS 512', tcp: false, edns: 512 },
  { name: 'UDP, EDNS 1232', tcp: false, edns: 1232 },
  { name: 'UDP, EDNS 4096', tcp: false, edns: 4096 },
  { name: 'TCP, EDNS 1232', tcp: true, edns: 1232 },
];
/** Type codes for the question (RFC 6895 registry). */
const CODES: Record<string, number> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, DS: 43, SSHFP: 44, TLSA: 52, SVCB: 64, HTTPS: 65, ANY: 255, CAA: 257 };
/** Queries in flight per server at once. */
const WINDOW = 32;
/** A loopback reply comes in microseconds; this only bounds a lost datagram. */
const REPLY_MS = 3000;

function stored(r: RecordInput): StoredRecord {
  const { name, service_name: _s, proxy: _p, ...data } = r as RecordInput & { proxy?: unknown };
  return { ...data, name, zone: ZONE, proxy: null, service_name: null, created_at: '', updated_at: '' };
}

/** One server's replies to many queries: UDP datagrams or one pipelined TCP connection, matched by ID. */
class Client {
  private readonly waiting = new Map<number, (m: Buffer) => void>();
  private udp?: dgram.Socket;
  private tcp?: net.Socket;
  private pending = Buffer.alloc(0);

  constructor(
    private readonly port: number,
    private readonly useTcp: boolean,
  ) {}

  async open(): Promise<void> {
    const deliver = (m: Buffer) => {
      if (m.length < 2) return;
      const done = this.waiting.get(m.readUInt16BE(0));
      if (done) {
        this.waiting.delete(m.readUInt16BE(0));
        done(m);
      }
    };
    if (!this.useTcp) {
      this.udp = dgram.createSocket('udp4');
      this.udp.on('message', deliver);
      await new Promise<void>((resolve) => this.udp?.bind(0, '127.0.0.1', resolve));
      return;
    }
    this.tcp = net.connect({ host: '127.0.0.1', port: this.port });
    this.tcp.on('data', (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 2 && this.pending.length >= 2 + this.pending.readUInt16BE(0)) {
        deliver(this.pending.subarray(2, 2 + this.pending.readUInt16BE(0)));
        this.pending = this.pending.subarray(2 + this.pending.readUInt16BE(0));
      }
    });
    await new Promise<void>((resolve, reject) => this.tcp?.once('connect', resolve).once('error', reject));
  }

  ask(msg: Buffer): Promise<Buffer> {
    const id = msg.readUInt16BE(0);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no reply to query id ${id} within ${REPLY_MS} ms on port ${this.port}`));
      }, REPLY_MS);
      this.waiting.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      if (this.udp) this.udp.send(msg, this.port, '127.0.0.1');
      else {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(msg.length);
        this.tcp?.write(Buffer.concat([len, msg]));
      }
    });
  }

  /** Sends `msg` and collects the replies carrying its ID until `done` says so (a zone transfer). */
  askMany(msg: Buffer, done: (m: Buffer) => boolean): Promise<Buffer[]> {
    const id = msg.readUInt16BE(0);
    const out: Buffer[] = [];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`transfer incomplete after ${REPLY_MS} ms on port ${this.port}`)), REPLY_MS);
      const next = (m: Buffer) => {
        out.push(m);
        if (done(m)) {
          clearTimeout(timer);
          resolve(out);
        } else this.waiting.set(id, next);
      };
      this.waiting.set(id, next);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      this.tcp?.write(Buffer.concat([len, msg]));
    });
  }

  close(): void {
    this.udp?.close();
    this.tcp?.destroy();
  }
}

const hex = (b: Buffer) => b.toString('hex');
/** RDATA as comparable text: buffers in hex, names lower-case. */
function dataText(data: unknown): string {
  return JSON.stringify(data, (_k, v: unknown) => {
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) return hex(Buffer.from((v as { data: number[] }).data));
    return typeof v === 'string' ? v.toLowerCase() : v;
  });
}

interface Seen {
  head: string;
  answer: string[];
  authority: string[];
  additional: string[];
  owners: string[];
}

function view(msg: Buffer): Seen {
  const p = dnsPacket.decode(msg) as ReturnType<typeof dnsPacket.decode> & { rcode: string };
  const rrs = (list: dnsPacket.Answer[] | undefined) =>
    (list ?? [])
      .filter((a) => a.type !== 'OPT')
      .map((a) => `${a.name.toLowerCase()} ${(a as { ttl?: number }).ttl} ${a.type} ${dataText((a as { data?: unknown }).data)}`)
      .sort();
  const opt = (p.additionals ?? []).find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  const head = `${p.rcode} aa=${p.flag_aa} tc=${p.flag_tc} ra=${p.flag_ra} rd=${p.flag_rd} opt=${opt ? opt.udpPayloadSize : 'none'}`;
  if (p.flag_tc) return { head, answer: [], authority: [], additional: [], owners: [] };
  return { head, answer: rrs(p.answers), authority: rrs(p.authorities), additional: rrs(p.additionals), owners: (p.answers ?? []).map((a) => a.name) };
}

/** NSD's view with the differences the RFCs allow (see the top of this file) brought to ours, when ours is within them. */
function allowed(nsd: Seen, ours: Seen, type: string, zone = ZONE): Seen {
  const out = { ...nsd };
  const apexNs = out.authority.filter((r) => r.startsWith(`${zone.slice(0, -1)} `) && r.split(' ')[2] === 'NS');
  if (out.answer.length && apexNs.length && !ours.authority.some((r) => apexNs.includes(r))) {
    const targets = apexNs.map((r) => `${(JSON.parse(r.split(' ').slice(3).join(' ')) as string).toLowerCase()} `);
    out.authority = out.authority.filter((r) => !apexNs.includes(r));
    out.additional = out.additional.filter((r) => !targets.some((t) => r.startsWith(t)) || ours.additional.includes(r));
  }
  if (type === 'ANY' && out.head.split(' ')[0] === ours.head.split(' ')[0]) {
    if (ours.head.includes('tc=true')) return ours;
    // Our further RRsets bring their targets' addresses: NSD's additional section must be among ours.
    if (out.answer.every((r) => ours.answer.includes(r)) && out.additional.every((r) => ours.additional.includes(r))) return { ...out, answer: ours.answer, additional: ours.additional, owners: ours.owners };
  }
  return out;
}

/** Every record of a zone transfer (RR text, sorted; the closing SOA dropped) from the server on `port`. */
async function axfr(port: number, zone = ZONE): Promise<string[]> {
  const c = new Client(port, true);
  await c.open();
  const rrs: string[] = [];
  let soas = 0;
  try {
    const q = dnsPacket.encode({ type: 'query', id: 7, questions: [{ name: zone, type: 'AXFR', class: 'IN' }] });
    // Every message of the transfer carries the query's ID: collect until the second SOA.
    const messages = await c.askMany(q, (m) => {
      for (const a of dnsPacket.decode(m).answers ?? []) if (a.type === 'SOA') soas++;
      return soas >= 2;
    });
    for (const m of messages) {
      const p = dnsPacket.decode(m) as ReturnType<typeof dnsPacket.decode> & { rcode: string };
      expect(p.rcode).to.equal('NOERROR');
      for (const a of p.answers ?? []) rrs.push(`${a.name.toLowerCase()} ${(a as { ttl?: number }).ttl} ${a.type} ${dataText((a as { data?: unknown }).data)}`);
    }
  } finally {
    c.close();
  }
  rrs.pop();
  return rrs.sort();
}

/** Asks both servers every query of `queries` in `mode` (a third of the names in mixed case); the answers that differ beyond what the RFCs allow. */
async function compare(mode: Mode, ours: number, nsdPort: number, queries: readonly [string, string][], zone: string): Promise<{ diffs: string[]; compared: number; answered: Set<string> }> {
  const a = new Client(ours, mode.tcp);
  const b = new Client(nsdPort, mode.tcp);
  await a.open();
  await b.open();
  const diffs: string[] = [];
  const answered = new Set<string>();
  let compared = 0;
  try {
    const list = queries.map(([name, type], i) => [i % 3 === 0 ? mixCase(name, i) : name, type, i] as const);
    for (let start = 0; start < list.length; start += WINDOW) {
      await Promise.all(
        list.slice(start, start + WINDOW).map(async ([name, type, i]) => {
          const q = dnsPacket.encode({
            type: 'query',
            id: i + 1,
            questions: [{ name, type: 'A', class: 'IN' }],
            additionals: mode.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: mode.edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
          });
          // dns-packet knows neither SVCB/HTTPS nor TYPEnnn by name: the type code goes in by hand.
          q.writeUInt16BE(CODES[type] ?? Number(type.replace(/^TYPE/, '')), 12 + Buffer.byteLength(name) + (name.endsWith('.') ? 1 : 2));
          const [x, y] = await Promise.all([a.ask(q), b.ask(q)]);
          const vx = view(x);
          const vy = allowed(view(y), vx, type, zone);
          compared++;
          if (vx.answer.length && !vx.head.includes('tc=true')) answered.add(type);
          if (JSON.stringify(vx) !== JSON.stringify(vy)) diffs.push(`${name} ${type}\n    ours: ${JSON.stringify(vx)}\n    nsd:  ${JSON.stringify(vy)}`);
        }),
      );
    }
  } finally {
    a.close();
    b.close();
  }
  return { diffs, compared, answered };
}

describe('dns: answers identical to NSD on a generated zone', function () {
  this.timeout(180_000);
  let gen: Generated;
  let nsd: Nsd | undefined;
  let server: DnsServer | undefined;
  let ours = 0;

  before(async function () {
    const missing = nsdMissing();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    gen = generateZone();
    const parsed = parseZoneFile(gen.text, ZONE);
    expect(parsed.errors, 'our import of the generated zone').to.deep.equal([]);
    const index = new ZoneIndex([{ name: ZONE, nameservers: [`ns1.${ZONE}`], hostmaster: `hostmaster.${ZONE}`, nodeIp: NODE_IP }]);
    expect(index.load(ZONE, SERIAL, parsed.records.map(stored))).to.deep.equal([]);
    server = new DnsServer({ host: '127.0.0.1', port: 0, index, upstreams: [], axfrAllow: ['127.0.0.1'], log: captureLog().log });
    await server.start();
    ours = server.address().port;
    nsd = await startNsd(ZONE, gen.text);
  });

  after(async () => {
    await server?.stop();
    await nsd?.stop();
  });

  it('the zone has at least 300 names, and at least 1,500 queries are compared', () => {
    expect(gen.names.size).to.be.at.least(300);
    expect(gen.queries.length * MODES.length).to.be.at.least(1500);
  });

  it('AXFR of the imported zone gives back exactly its records, as NSD transfers them', async () => {
    const [x, y] = await Promise.all([axfr(ours), axfr(nsd?.port ?? 0)]);
    expect(x.length).to.be.greaterThan(gen.names.size);
    expect(x).to.deep.equal(y);
  });

  for (const mode of MODES)
    it(`${mode.name}: every answer identical to NSD's`, async () => {
      const { diffs, compared, answered } = await compare(mode, ours, nsd?.port ?? 0, gen.queries, ZONE);
      expect(compared).to.equal(gen.queries.length);
      // Every type in the zone was asked for and answered (not only NODATA from both).
      const stored = new Set([...gen.names.values()].flatMap((t) => [...t]));
      expect([...stored].filter((t) => !answered.has(t)), 'types never answered').to.deep.equal([]);
      expect(diffs, `${diffs.length} of ${compared} answers differ:\n${diffs.slice(0, 8).join('\n')}`).to.deep.equal([]);
    });
});

// RFC 4592 §2.2.1: the example zone imported whole (its SOA fields kept, `sub.*.example.` an
// ordinary name), and its list of queries answered as NSD answers them.
describe('dns: the RFC 4592 example zone answered as NSD answers it', function () {
  this.timeout(120_000);
  let nsd: Nsd | undefined;
  let server: DnsServer | undefined;
  let ours = 0;
  const queries = rfc4592Queries();

  before(async function () {
    const missing = nsdMissing();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    const parsed = parseZoneFile(RFC4592_TEXT, RFC4592_ZONE);
    expect(parsed.errors, 'our import of the RFC 4592 zone').to.deep.equal([]);
    expect(parsed.records.map((r) => `${r.name} ${r.type}`)).to.include.members(['sub.*.example. TXT', '*.example. MX', '_ssh._tcp.host2.example. SRV', 'subdel.example. NS']);
    expect(parsed.records).to.have.length(8);
    const { serial, ...fields } = parsed.soa ?? { serial: 0 };
    expect(serial).to.equal(RFC4592_SERIAL);
    // The zone's own apex NS are the file's (outside the zone: no glue of ours).
    const index = new ZoneIndex([{ name: RFC4592_ZONE, nameservers: ['ns.example.com.'], hostmaster: 'hostmaster.example.', nodeIp: NODE_IP }]);
    // As the store serves an import: the file's SOA fields, a serial not below the file's.
    expect(index.load(RFC4592_ZONE, serial, parsed.records.map((r) => ({ ...stored(r), zone: RFC4592_ZONE })), fields as never)).to.deep.equal([]);
    server = new DnsServer({ host: '127.0.0.1', port: 0, index, upstreams: [], axfrAllow: ['127.0.0.1'], log: captureLog().log });
    await server.start();
    ours = server.address().port;
    nsd = await startNsd(RFC4592_ZONE, RFC4592_TEXT);
  });

  after(async () => {
    await server?.stop();
    await nsd?.stop();
  });

  it('AXFR gives back the zone as NSD transfers it, SOA fields included', async () => {
    const [x, y] = await Promise.all([axfr(ours, RFC4592_ZONE), axfr(nsd?.port ?? 0, RFC4592_ZONE)]);
    // SOA, 2 apex NS, 2 wildcard sets' records, sub.*, host1, 2 SRV, 2 delegation NS.
    expect(x, x.join('\n')).to.have.length(11);
    expect(x).to.deep.equal(y);
  });

  it('the RFC\'s queries get the RFC\'s kinds of answer', async () => {
    const kinds: string[] = [];
    const c = new Client(ours, false);
    await c.open();
    try {
      for (const [name, type] of queries.slice(0, 8)) {
        const p = dnsPacket.decode(await c.ask(dnsPacket.encode({ type: 'query', id: kinds.length + 1, questions: [{ name, type: type as 'A', class: 'IN' }] }))) as ReturnType<typeof dnsPacket.decode> & { rcode: string };
        kinds.push(`${name} ${type} ${p.rcode} ${p.flag_aa ? 'aa' : 'referral'} ${(p.answers ?? []).map((a) => `${a.name} ${a.type}`).join(',') || '-'}`);
      }
    } finally {
      c.close();
    }
    expect(kinds, kinds.join('\n')).to.deep.equal([
      'host3.example. MX NOERROR aa host3.example MX',
      'host3.example. A NOERROR aa -',
      'foo.bar.example. TXT NOERROR aa foo.bar.example TXT',
      'host1.example. MX NOERROR aa -',
      'sub.*.example. MX NOERROR aa -',
      '_telnet._tcp.host1.example. SRV NXDOMAIN aa -',
      'host.subdel.example. A NOERROR referral -',
      'ghost.*.example. MX NXDOMAIN aa -',
    ]);
  });

  for (const mode of MODES)
    it(`${mode.name}: the RFC's queries and every name with each type, identical to NSD`, async () => {
      const { diffs, compared } = await compare(mode, ours, nsd?.port ?? 0, queries, RFC4592_ZONE);
      expect(compared).to.equal(queries.length);
      expect(diffs, `${diffs.length} of ${compared} answers differ:\n${diffs.slice(0, 8).join('\n')}`).to.deep.equal([]);
    });
});
