import { expect } from 'chai';
import dnsPacket, { type Answer } from 'dns-packet';
import type { Rr } from '../../src/dns/wire.js';
import { lookup, MAX_CNAME_HOPS, type LookupKind } from '../../src/dns/lookup.js';
import { ZoneIndex } from '../../src/dns/zone.js';
import { buildIndex, HOME, rec, ZONES } from './fixture.js';

/** The record as dns-packet decodes its wire form (owner as given). */
export function decodeRr(rr: Rr): Answer {
  const head = Buffer.alloc(9);
  head.writeUInt16BE(rr.code, 1);
  head.writeUInt16BE(1, 3);
  head.writeUInt32BE(rr.ttl, 5);
  const rdata = rr.wire.subarray(rr.at, rr.at + 2 + rr.wire.readUInt16BE(rr.at));
  const codec = (dnsPacket as unknown as { answer: { decode(b: Buffer): Answer } }).answer;
  return { ...codec.decode(Buffer.concat([head, rdata])), name: rr.name };
}

/** One record as zone-file-like text: `owner ttl TYPE rdata`. */
export function rrText(rr: Rr): string {
  const a = decodeRr(rr);
  const d = (a as { data: unknown }).data;
  const n = (name: string) => `${name}.`.replace(/^\.\.$/, '.');
  let data: string;
  if (typeof d === 'string') data = ['CNAME', 'NS', 'PTR'].includes(a.type) ? n(d) : d;
  else if (Array.isArray(d)) data = d.map((b: Buffer) => `"${b.toString()}"`).join(' ');
  else if (a.type === 'MX') data = `${a.data.preference} ${n(a.data.exchange)}`;
  else if (a.type === 'SRV') data = `${a.data.priority} ${a.data.weight} ${a.data.port} ${n(a.data.target)}`;
  else if (a.type === 'CAA') data = `${a.data.flags} ${a.data.tag} "${a.data.value}"`;
  else if (a.type === 'SOA') data = `${n(a.data.mname)} ${n(a.data.rname)} ${a.data.serial}`;
  else data = JSON.stringify(d);
  return `${a.name} ${(a as { ttl?: number }).ttl} ${a.type} ${data}`;
}

const SOA60 = 'home.arpa. 60 SOA ns1.home.arpa. hostmaster.home.arpa. 2026010101';
const LLM_A = 'llm.home.arpa. 300 A 192.0.2.10';

// [query name, type, kind, answer, authority, additional]
const table: [string, string, LookupKind, string[], string[], string[]][] = [
  ['llm.home.arpa.', 'A', 'success', [LLM_A], [], []],
  ['LlM.HoMe.ArPa', 'AAAA', 'success', ['LlM.HoMe.ArPa. 300 AAAA 2001:db8::10'], [], []],
  ['www.home.arpa.', 'A', 'success', ['www.home.arpa. 300 CNAME llm.home.arpa.', LLM_A], [], []],
  ['www.home.arpa.', 'CNAME', 'success', ['www.home.arpa. 300 CNAME llm.home.arpa.'], [], []],
  ['chain1.home.arpa.', 'A', 'success', ['chain1.home.arpa. 300 CNAME chain2.home.arpa.', 'chain2.home.arpa. 300 CNAME chain3.home.arpa.', 'chain3.home.arpa. 300 CNAME llm.home.arpa.', LLM_A], [], []],
  ['loop1.home.arpa.', 'A', 'success', ['loop1.home.arpa. 300 CNAME loop2.home.arpa.', 'loop2.home.arpa. 300 CNAME loop1.home.arpa.'], [], []],
  ['alias.home.arpa.', 'A', 'success', ['alias.home.arpa. 300 CNAME app.lab.example.', 'app.lab.example. 300 A 198.51.100.5'], [], []],
  ['ext.home.arpa.', 'A', 'success', ['ext.home.arpa. 300 CNAME www.example.com.'], [], []],
  ['dangling.home.arpa.', 'A', 'nxdomain', ['dangling.home.arpa. 300 CNAME gone.home.arpa.'], [SOA60], []],
  ['long.home.arpa.', 'TXT', 'success', [`long.home.arpa. 300 TXT "${'a'.repeat(255)}" "${'b'.repeat(255)}" "${'c'.repeat(90)}"`], [], []],
  ['home.arpa.', 'MX', 'success', ['home.arpa. 300 MX 10 mail.home.arpa.'], [], ['mail.home.arpa. 300 A 192.0.2.25']],
  ['_sip._tcp.home.arpa.', 'SRV', 'success', ['_sip._tcp.home.arpa. 300 SRV 10 5 5060 sip.home.arpa.'], [], ['sip.home.arpa. 300 A 192.0.2.26']],
  ['10.2.0.192.in-addr.arpa.', 'PTR', 'success', ['10.2.0.192.in-addr.arpa. 300 PTR llm.home.arpa.'], [], []],
  ['home.arpa.', 'CAA', 'success', ['home.arpa. 300 CAA 0 issue "letsencrypt.org"'], [], []],
  ['home.arpa.', 'NS', 'success', ['home.arpa. 3600 NS ns1.home.arpa.'], [], ['ns1.home.arpa. 3600 A 192.0.2.1']],
  ['home.arpa.', 'SOA', 'success', ['home.arpa. 300 SOA ns1.home.arpa. hostmaster.home.arpa. 2026010101'], [], []],
  ['ns1.home.arpa.', 'A', 'success', ['ns1.home.arpa. 3600 A 192.0.2.1'], [], []],
  ['nx.home.arpa.', 'A', 'nxdomain', [], [SOA60], []],
  ['llm.home.arpa.', 'TXT', 'nodata', [], [SOA60], []],
  ['llm.home.arpa.', 'TYPE65', 'nodata', [], [SOA60], []],
  ['b.home.arpa.', 'A', 'nodata', [], [SOA60], []],
  ['x.b.home.arpa.', 'A', 'nxdomain', [], [SOA60], []],
  ['foo.wild.home.arpa.', 'A', 'success', ['foo.wild.home.arpa. 300 A 192.0.2.40'], [], []],
  ['A.Foo.Wild.home.arpa.', 'TXT', 'success', ['A.Foo.Wild.home.arpa. 300 TXT "wild"'], [], []],
  ['foo.wild.home.arpa.', 'MX', 'nodata', [], [SOA60], []],
  ['exists.wild.home.arpa.', 'A', 'nodata', [], [SOA60], []],
  ['ent.wild.home.arpa.', 'A', 'nodata', [], [SOA60], []],
  ['x.ent.wild.home.arpa.', 'A', 'nxdomain', [], [SOA60], []],
  ['host.sub.home.arpa.', 'A', 'delegation', [], ['sub.home.arpa. 300 NS ns.sub.home.arpa.'], ['ns.sub.home.arpa. 300 A 192.0.2.53']],
  ['sub.home.arpa.', 'NS', 'delegation', [], ['sub.home.arpa. 300 NS ns.sub.home.arpa.'], ['ns.sub.home.arpa. 300 A 192.0.2.53']],
  ['example.com.', 'A', 'notauth', [], [], []],
  ['arpa.', 'SOA', 'notauth', [], [], []],
];

describe('dns/lookup', () => {
  const index = buildIndex();
  for (const [qname, qtype, kind, answer, authority, additional] of table) {
    it(`${qname} ${qtype} → ${kind}`, () => {
      const r = lookup(index, qname, qtype);
      expect(r.kind).to.equal(kind);
      expect(r.answer.map(rrText)).to.deep.equal(answer);
      expect(r.authority.map(rrText)).to.deep.equal(authority);
      expect(r.additional.map(rrText)).to.deep.equal(additional);
    });
  }

  it('answers ANY with every RRset at the name, without following CNAMEs', () => {
    const apex = lookup(index, 'home.arpa.', 'ANY');
    expect(apex.kind).to.equal('success');
    expect(apex.answer.map((a) => a.type)).to.have.members(['SOA', 'NS', 'MX', 'CAA']);
    const www = lookup(index, 'www.home.arpa.', 'ANY');
    expect(www.answer.map(rrText)).to.deep.equal(['www.home.arpa. 300 CNAME llm.home.arpa.']);
  });

  it(`stops a CNAME chain after ${MAX_CNAME_HOPS} hops`, () => {
    const idx = new ZoneIndex(ZONES);
    const chain = Array.from({ length: 12 }, (_, i) => rec(HOME, `c${i}`, { type: 'CNAME', values: [`c${i + 1}.home.arpa.`] }));
    idx.load(HOME, 1, [...chain, rec(HOME, 'c12', { type: 'A', values: ['192.0.2.99'] })]);
    const r = lookup(idx, 'c0.home.arpa.', 'A');
    expect(r.kind).to.equal('success');
    expect(r.answer).to.have.length(MAX_CNAME_HOPS);
    expect(r.answer.every((a) => a.type === 'CNAME')).to.equal(true);
  });

  it('lets a user NS RRset at the apex replace the synthesised one', () => {
    const idx = new ZoneIndex(ZONES);
    idx.load(HOME, 1, [rec(HOME, '@', { type: 'NS', values: ['ns.example.net.'] })]);
    expect(lookup(idx, 'home.arpa.', 'NS').answer.map(rrText)).to.deep.equal(['home.arpa. 300 NS ns.example.net.']);
  });
});
