import { expect } from 'chai';
import { parseZoneFile } from '../../src/dns/zonefile.js';
import type { Soa } from '../../src/dns/soa.js';

// Each case is zone text as a user would paste it for home.arpa, and what they get back:
// record sets ({name, type, ttl, values}), the SOA, and errors as `[line, part of the message]`.
interface Case {
  title: string;
  text: string;
  records?: { name: string; type: string; ttl: number; values: unknown[] }[];
  soa?: Soa;
  errors?: [number, string][];
}

const ZONE = 'home.arpa';
const A = (name: string, ttl: number, ...values: string[]) => ({ name, type: 'A', ttl, values });

const ok: Case[] = [
  {
    title: 'multi-line SOA with parentheses, comments and TTL units',
    text: `$TTL 1h
@ IN SOA ns1 hostmaster.home.arpa. ( ; primary, contact
        2024060101 ; serial
        1h         ; refresh
        10m        ; retry
        1w         ; expire
        60 )       ; minimum`,
    records: [],
    soa: { mname: 'ns1.home.arpa.', rname: 'hostmaster.home.arpa.', serial: 2024060101, refresh: 3600, retry: 600, expire: 604800, minimum: 60, ttl: 3600 },
  },
  {
    title: 'relative names, @ and blank owners (TTL from the last explicit one)',
    text: `@      300 IN A    192.0.2.1
           IN AAAA 2001:db8::1
www    60     A    192.0.2.2
mail          MX   10 @
              MX   20 mx.example.net.`,
    records: [
      A('home.arpa.', 300, '192.0.2.1'),
      { name: 'home.arpa.', type: 'AAAA', ttl: 300, values: ['2001:db8::1'] },
      A('www.home.arpa.', 60, '192.0.2.2'),
      { name: 'mail.home.arpa.', type: 'MX', ttl: 60, values: [{ preference: 10, exchange: 'home.arpa.' }, { preference: 20, exchange: 'mx.example.net.' }] },
    ],
  },
  {
    title: '$ORIGIN switch, absolute then relative',
    text: `$ORIGIN lab.home.arpa.
host   A     192.0.2.3
$ORIGIN sub
@      A     192.0.2.4
alias  CNAME host.lab.home.arpa.
ptr    PTR   host`,
    records: [
      A('host.lab.home.arpa.', 300, '192.0.2.3'),
      A('sub.lab.home.arpa.', 300, '192.0.2.4'),
      { name: 'alias.sub.lab.home.arpa.', type: 'CNAME', ttl: 300, values: ['host.lab.home.arpa.'] },
      { name: 'ptr.sub.lab.home.arpa.', type: 'PTR', ttl: 300, values: ['host.sub.lab.home.arpa.'] },
    ],
  },
  {
    title: 'TXT with escaped quotes, ";" inside quotes and \\DDD; strings on one line are kept as given (RFC 1035 §3.3.14)',
    text: String.raw`txt TXT "say \"hi\"; not a comment " "back\\slash \065" ; a comment`,
    records: [{ name: 'txt.home.arpa.', type: 'TXT', ttl: 300, values: [['say "hi"; not a comment ', 'back\\slash A']] }],
  },
  {
    title: 'TXT: "one" "two" "three" stays three strings; any byte through \\DDD; bytes that are not UTF-8 kept as hex',
    text: String.raw`split TXT "one" "two" "three"
split TXT "a\010b\000"
split TXT "\255\254" "ok"
split TXT "caf\195\169"`,
    records: [{ name: 'split.home.arpa.', type: 'TXT', ttl: 300, values: [['one', 'two', 'three'], 'a\nb\u0000', [{ hex: 'fffe' }, 'ok'], 'café'] }],
  },
  {
    title: 'TXT: 255-byte pieces of one text (as export writes a long value) read back as that text',
    text: `long TXT "${'a'.repeat(255)}" "${'b'.repeat(10)}"\nlist TXT "${'a'.repeat(254)}" "b"`,
    records: [
      { name: 'long.home.arpa.', type: 'TXT', ttl: 300, values: [`${'a'.repeat(255)}${'b'.repeat(10)}`] },
      { name: 'list.home.arpa.', type: 'TXT', ttl: 300, values: [[`${'a'.repeat(254)}`, 'b']] },
    ],
  },
  {
    title: 'TTL and class in either order; names are lower-cased',
    text: `a IN 1h A 192.0.2.5
B.Home.Arpa. 2m IN A 192.0.2.6
c 1h30m A 192.0.2.7`,
    records: [A('a.home.arpa.', 3600, '192.0.2.5'), A('b.home.arpa.', 120, '192.0.2.6'), A('c.home.arpa.', 5400, '192.0.2.7')],
  },
  {
    title: "lines with the same name and type merge; the first line's TTL wins",
    text: `multi 60 A 192.0.2.8
other A 192.0.2.1
multi 120 A 192.0.2.9`,
    records: [A('multi.home.arpa.', 60, '192.0.2.8', '192.0.2.9'), A('other.home.arpa.', 60, '192.0.2.1')],
  },
  {
    title: 'SRV, CAA, NS and a wildcard',
    text: `$TTL 300
_sip._tcp SRV 10 60 5060 sip
@         CAA 0 issue "letsencrypt.org"
sub       NS  ns1.sub
*         A   192.0.2.10`,
    records: [
      { name: '_sip._tcp.home.arpa.', type: 'SRV', ttl: 300, values: [{ priority: 10, weight: 60, port: 5060, target: 'sip.home.arpa.' }] },
      { name: 'home.arpa.', type: 'CAA', ttl: 300, values: [{ flags: 0, tag: 'issue', value: 'letsencrypt.org' }] },
      { name: 'sub.home.arpa.', type: 'NS', ttl: 300, values: ['ns1.sub.home.arpa.'] },
      A('*.home.arpa.', 300, '192.0.2.10'),
    ],
  },
  {
    title: 'CRLF line endings and a byte-order mark',
    text: '\uFEFFa A 192.0.2.1\r\n  A 192.0.2.2\r\n',
    records: [A('a.home.arpa.', 300, '192.0.2.1', '192.0.2.2')],
  },
];

const bad: Case[] = [
  { title: 'bad IPv4 address on its line', text: 'ok A 192.0.2.1\nbad A 192.0.2.256', errors: [[2, 'A: values.0: must be an IPv4 address (got "192.0.2.256")']] },
  { title: 'unknown type', text: '\nx HINFO "pc" "linux"', errors: [[2, 'unsupported record type "HINFO" (supported: A, AAAA, CNAME, TXT, MX, SRV, PTR, CAA, NS, DS, SSHFP, TLSA, SVCB, HTTPS, SOA; any other as TYPEnnn \\# <length> <hex>, RFC 3597)']] },
  {
    title: 'names outside the origin',
    text: 'www.example.org. A 192.0.2.1\nhome.arpa.evil. A 192.0.2.1\n$ORIGIN example.org.\nwww A 192.0.2.1',
    errors: [
      [1, 'name "www.example.org." is outside the zone home.arpa.'],
      [2, 'name "home.arpa.evil." is outside the zone home.arpa.'],
      [4, 'name "www.example.org." is outside the zone home.arpa.'],
    ],
  },
  { title: '"(" never closed', text: 'a A 192.0.2.1\n@ SOA ns1 hostmaster ( 1 2 3 4\nb A 192.0.2.2', errors: [[2, '"(" is never closed with ")"']] },
  { title: '")" without "("', text: 'a A 192.0.2.1 )', errors: [[1, '")" without a matching "("']] },
  {
    title: 'unterminated quote; the next line is still read',
    text: 't TXT "fine"\nu TXT "no end\nv A 192.0.2.1\nv A 192.0.2.x',
    errors: [[2, 'unterminated quoted string'], [4, 'A: values.1: must be an IPv4 address (got "192.0.2.x")']],
  },
  {
    title: 'injection attempts in names',
    text: '{$ENV} A 192.0.2.1\nmx MX 10 mail{x}\n"a b" A 192.0.2.1',
    errors: [
      [1, 'name "{$env}.home.arpa.": label "{$env}" may hold only letters'],
      [2, 'MX: values.0.exchange: label "mail{x}" may hold only letters'],
      [3, 'name "a b.home.arpa.": must not contain whitespace'],
    ],
  },
  {
    title: 'TXT string longer than 255 bytes',
    text: `t TXT "${'x'.repeat(256)}"`,
    errors: [[1, 'TXT: values.0: string 1 holds 256 bytes; a character-string holds at most 255']],
  },
  {
    title: 'directives and classes we do not take',
    text: '$INCLUDE /etc/passwd\n$GENERATE 1-9 h$ A 192.0.2.$\nx CH A 192.0.2.1\n$FOO bar\n$TTL forever',
    errors: [
      [1, '$INCLUDE is not supported'],
      [2, '$GENERATE is not supported'],
      [3, 'class CH is not supported (only IN)'],
      [4, 'unknown directive "$FOO"'],
      [5, '$TTL: "forever" is not a TTL'],
    ],
  },
  {
    title: 'numbers and field counts',
    text: 'm MX ten mail\ns SRV 1 2 70000 sip\nn MX 10\nt 5x A 192.0.2.1',
    errors: [
      [1, 'MX: values.0.preference: "ten" is not a number'],
      [2, 'SRV: values.0.port: Too big: expected number to be <=65535 (got 70000)'],
      [3, 'MX: takes 2 fields (preference exchange), found 1'],
      [4, '"5x" is not a TTL'],
    ],
  },
  { title: 'a bad second value reports its own line', text: 'mx MX 10 mail\n   MX 20 bad..name', errors: [[2, 'MX: values.1.exchange: has an empty label']] },
  {
    title: 'CNAME beside other data, at the apex, or twice',
    text: 'www CNAME a\nwww A 192.0.2.1\n@ CNAME b\nc CNAME a\nc CNAME b',
    errors: [
      [1, 'CNAME: www.home.arpa. also has A; a CNAME must be the only record at its name'],
      [3, 'CNAME: home.arpa. also has SOA'],
      [4, 'CNAME: values: a CNAME has exactly one target'],
    ],
  },
  { title: 'a blank owner before any owner', text: '   A 192.0.2.1', errors: [[1, 'no owner name']] },
  { title: 'SOA away from the apex', text: 'www SOA ns1 hostmaster 1 2 3 4 5', errors: [[1, 'SOA: must be at the zone apex home.arpa., not www.home.arpa.']] },
  { title: 'lines under an invalid owner are not blamed twice', text: 'bad{ A 192.0.2.1\n     A 192.0.2.2', errors: [[1, 'name "bad{.home.arpa."']] },
];

describe('dns/zonefile parse', () => {
  for (const c of ok) {
    it(c.title, () => {
      const got = parseZoneFile(c.text, ZONE);
      expect(got.errors.map((e) => `line ${e.line}: ${e.message}`)).to.deep.equal([]);
      expect(got.records.map(({ name, type, ttl, values }) => ({ name, type, ttl, values }))).to.deep.equal(c.records);
      expect(got.soa).to.deep.equal(c.soa);
    });
  }
  for (const c of bad) {
    it(`error: ${c.title}`, () => {
      const got = parseZoneFile(c.text, ZONE).errors.map((e) => `line ${e.line}: ${e.message}`);
      expect(got, got.join('\n')).to.have.length((c.errors ?? []).length);
      for (const [i, [line, message]] of (c.errors ?? []).entries()) expect(got[i]).to.include(`line ${line}: ${message}`);
    });
  }

  it('reports every error, in line order, and still returns the good records', () => {
    const got = parseZoneFile('z HINFO x\na A 192.0.2.999\nb A 192.0.2.2\n$INCLUDE x', ZONE);
    expect(got.errors.map((e) => e.line)).to.deep.equal([1, 2, 4]);
    expect(got.records.map((r) => r.name)).to.deep.equal(['b.home.arpa.']);
  });

  it('does not store the SOA as a record', () => {
    const got = parseZoneFile('@ 300 SOA ns1 hostmaster 1 2 3 4 5\n@ NS ns1', ZONE);
    expect(got.records.map((r) => r.type)).to.deep.equal(['NS']);
    expect(got.soa).to.include({ serial: 1, ttl: 300 });
  });
});
