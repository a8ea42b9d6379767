// Name compression (RFC 1035 §4.1.4) and what truncation leaves out (RFC 2181 §9, RFC 9471):
// answers that fit once compressed go over UDP, the additional section is filled only as far as it
// fits, and TC is set only when the answer or a referral's in-domain glue does not fit.
import { expect } from 'chai';
import { handle } from '../../src/dns/handler.js';
import { ZoneIndex } from '../../src/dns/zone.js';
import type { RecordData, StoredRecord } from '../../src/model/record.js';
import { decode, HOME, query, rec, ZONES } from './fixture.js';

function reply(records: StoredRecord[], name: string, type: string, edns?: number, transport: 'udp' | 'tcp' = 'udp'): Buffer {
  const index = new ZoneIndex(ZONES);
  index.load(HOME, 1, records);
  const out = handle(query(name, type, edns ? { edns } : {}), transport, '127.0.0.1', { index, forwarding: false, recursionAllowed: () => false, transferAllowed: () => true });
  if (out.kind !== 'reply') throw new Error(`expected a reply, got ${out.kind}`);
  return out.message;
}

const h = (name: string, data: RecordData) => rec(HOME, name, data);

/** 14 MX records whose exchanges each have an A and an AAAA: answer ~540 bytes, with all addresses over 1,232. */
function mxZone(): StoredRecord[] {
  const hosts = Array.from({ length: 14 }, (_, i) => `mail-exchanger-${String(i).padStart(2, '0')}`);
  return [
    h('@', { type: 'MX', values: hosts.map((x, i) => ({ preference: 10 + i, exchange: `${x}.home.arpa.` })) }),
    ...hosts.flatMap((x, i) => [h(x, { type: 'A', values: [`192.0.2.${100 + i}`] }), h(x, { type: 'AAAA', values: [`2001:db8::${100 + i}`] })]),
  ];
}

/** A delegation to 13 in-domain nameservers with glue: 1,427 bytes uncompressed, under 1,232 compressed. */
function referralZone(): StoredRecord[] {
  const ns = Array.from({ length: 13 }, (_, i) => `ns${String(i).padStart(2, '0')}.delegated-subzone`);
  return [h('delegated-subzone', { type: 'NS', values: ns.map((n) => `${n}.home.arpa.`) }), ...ns.map((n, i) => h(n, { type: 'A', values: [`192.0.2.${10 + i}`] }))];
}

describe('dns: name compression and truncation', () => {
  it('compresses names: owners, NS/MX/CNAME/SOA targets point at earlier names', () => {
    const msg = reply(referralZone(), 'www.delegated-subzone.home.arpa.', 'A', 1232);
    const r = decode(msg);
    expect([r.tc, r.authorities.length, r.additionals.length]).to.deep.equal([false, 13, 13]);
    // 13 NS owners + 13 targets + 13 glue owners, each at most a label and a pointer.
    expect(msg.length).to.be.below(700);
    expect(r.authorities.map((a) => a.data)).to.include('ns00.delegated-subzone.home.arpa');
  });

  it('a referral that fits only compressed is answered over UDP whole (was TC=1 at 1,427 bytes)', () => {
    const r = decode(reply(referralZone(), 'host.delegated-subzone.home.arpa.', 'A', 1232));
    expect([r.tc, r.aa, r.authorities.length, r.additionals.length]).to.deep.equal([false, false, 13, 13]);
  });

  it('sets TC when a referral\'s in-domain glue does not fit (RFC 9471), not an empty referral', () => {
    const zone = referralZone();
    const ns = Array.from({ length: 13 }, (_, i) => `ns${String(i).padStart(2, '0')}.delegated-subzone`);
    // Each nameserver with eight addresses: the glue cannot fit in 512 bytes.
    const big = [zone[0] as StoredRecord, ...ns.map((n, i) => h(n, { type: 'A', values: Array.from({ length: 8 }, (_, k) => `192.0.${i}.${k + 1}`) }))];
    expect(decode(reply(big, 'host.delegated-subzone.home.arpa.', 'A')).tc).to.equal(true);
    const tcp = decode(reply(big, 'host.delegated-subzone.home.arpa.', 'A', undefined, 'tcp'));
    expect([tcp.tc, tcp.additionals.length]).to.deep.equal([false, 104]);
  });

  it('14 MX records: TC=0 with the whole answer, the additional section only as far as it fits (RFC 2181 §9)', () => {
    const msg = reply(mxZone(), 'home.arpa.', 'MX', 700);
    const r = decode(msg);
    expect([r.tc, r.answers.length]).to.deep.equal([false, 14]);
    expect(r.additionals.length).to.be.within(1, 27);
    expect(msg.length).to.be.at.most(700);
    // A records first (as NSD orders them), then AAAA.
    expect(r.additionals[0]?.type).to.equal('A');
    // Compressed, everything fits in 1,232 bytes; without EDNS (512) the answer alone still fits.
    expect(decode(reply(mxZone(), 'home.arpa.', 'MX', 1232)).additionals).to.have.length(28);
    const small = reply(mxZone(), 'home.arpa.', 'MX');
    expect([decode(small).tc, decode(small).answers.length]).to.deep.equal([false, 14]);
    expect(small.length).to.be.at.most(512);
  });

  it('sets TC when the answer itself does not fit, with the question and OPT only', () => {
    const values = Array.from({ length: 40 }, (_, i) => `txt-${i}-${'x'.repeat(40)}`);
    const r = decode(reply([h('t', { type: 'TXT', values })], 't.home.arpa.', 'TXT', 1232));
    expect([r.tc, r.answers.length, r.additionals.length]).to.deep.equal([true, 0, 0]);
  });
});
