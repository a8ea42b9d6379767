// Presentation RDATA (src/model/rdata.ts): each type's wire form and canonical text, and the
// refusals, each naming what is wrong.
import { expect } from 'chai';
import { canonicalIpv6, parseRdata } from '../../src/model/rdata.js';

const ok: [string, string, string, string][] = [
  // type, given, canonical text, wire hex
  ['DS', '60485 5 1 2bb183af 5f22588179a53b0a98631fad1a292118', '60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118', 'ec4505012bb183af5f22588179a53b0a98631fad1a292118'],
  ['SSHFP', '1 1 ABCD', '1 1 ABCD', '0101abcd'],
  ['TLSA', '3 1 1 00ff', '3 1 1 00FF', '03010100ff'],
  ['HTTPS', '0 Pool.Example.', '0 pool.example.', '000004706f6f6c076578616d706c6500'],
  ['HTTPS', '1 .', '1 .', '000100'],
  ['SVCB', '1 . no-default-alpn alpn=h2', '1 . alpn="h2" no-default-alpn', '00010000010003026832' + '00020000'],
  ['SVCB', '1 . port=53 ipv4hint=192.0.2.1,192.0.2.2', '1 . port=53 ipv4hint=192.0.2.1,192.0.2.2', '00010000030002003500040008c0000201c0000202'],
  ['SVCB', '1 . ech=AAEC key65000 key7="a b"', '1 . ech=AAEC key7="a\\032b" key65000', '000100' + '00050003000102' + '000700036120' + '62' + 'fde80000'],
  ['SVCB', '1 . alpn="a\\\\,b,c"', '1 . alpn="a\\\\,b,c"', '0001000001000603612c620163'],
  ['SVCB', '1 . ipv6hint=2001:DB8::1', '1 . ipv6hint=2001:db8::1', '00010000060010' + '20010db8000000000000000000000001'],
  ['TYPE65534', '\\# 4 0a 000001', '\\# 4 0A000001', '0a000001'],
  ['TYPE65000', '\\# 0', '\\# 0', ''],
  ['DS', '\\# 4 00010203', '\\# 4 00010203', '00010203'],
];

const bad: [string, string, string][] = [
  ['DS', '1 2 3', 'the digest is missing'],
  ['DS', '70000 1 1 00', 'the key tag must be a number 0-65535'],
  ['TLSA', '3 1 1 0', 'hex digits'],
  ['SVCB', '1', 'the target name is missing'],
  ['SVCB', '1 bad_name!', 'is not a domain name'],
  ['SVCB', '1 . alpn=h2 alpn=h3', 'alpn is given twice'],
  ['SVCB', '1 . foo=1', 'unknown SvcParam key'],
  ['SVCB', '1 . mandatory=alpn', 'mandatory lists alpn, which is not given'],
  ['SVCB', '1 . mandatory=mandatory', 'may not list itself'],
  ['SVCB', '1 . port=x', 'the port must be a number'],
  ['SVCB', '1 . ipv4hint=2001:db8::1', 'is not an IPv4 address'],
  ['SVCB', '1 . ech=@@', 'must be base64'],
  ['SVCB', '1 . no-default-alpn=1', 'takes no value'],
  ['SVCB', '0 . alpn=h2', 'AliasMode'],
  ['SVCB', '1 . alpn="h2', 'unterminated'],
  ['TYPE65534', '\\# 3 00', 'the length says 3 bytes'],
  ['TYPE65534', '00', 'generic form'],
  ['TYPE65534', '\\# x', 'the length must be a number'],
];

describe('model: presentation RDATA', () => {
  for (const [type, given, text, hex] of ok)
    it(`${type} ${given} → ${text}`, () => {
      const p = parseRdata(type, given);
      if ('error' in p) throw new Error(p.error);
      expect(p.text).to.equal(text);
      expect(p.wire.toString('hex')).to.equal(hex);
      // Canonical text parses to itself.
      expect(parseRdata(type, text)).to.deep.equal(p);
    });
  for (const [type, given, why] of bad)
    it(`refuses ${type} ${given}: ${why}`, () => {
      const p = parseRdata(type, given);
      expect('error' in p ? p.error : 'accepted').to.include(why);
    });
  it('canonical IPv6 text folds spellings', () => {
    expect(['2001:db8::77', '2001:DB8:0:0::77', '2001:0db8:0000::0077'].map(canonicalIpv6)).to.deep.equal(Array(3).fill('2001:db8::77'));
  });
});
