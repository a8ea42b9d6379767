// A generated zone for the differential test against NSD (test/dns/nsd.test.ts): every record
// type and feature we serve, as zone-file text both servers load, and the queries to ask.
// Deterministic: a seeded generator, so a failure names the same query on every run.
import { prng } from '../helpers/prng.js';

export const ZONE = 'diff.test.';
export const NODE_IP = '192.0.2.1';
export const SERIAL = 2026120701;

export interface Generated {
  text: string;
  /** Owner names (absolute, lower-case) and the types stored there. */
  names: Map<string, Set<string>>;
  /** Names that are delegation points. */
  cuts: string[];
  /** [name, type] to ask, before case mixing. */
  queries: [string, string][];
}

export function generateZone(): Generated {
  const rand = prng(19);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const lines: string[] = [];
  const names = new Map<string, Set<string>>();
  const add = (owner: string, ttl: number, type: string, rdata: string) => {
    const abs = owner === '@' ? ZONE : `${owner}.${ZONE}`;
    lines.push(`${owner} ${ttl} IN ${type} ${rdata}`);
    if (!names.has(abs)) names.set(abs, new Set());
    names.get(abs)?.add(type);
  };
  lines.push(`$ORIGIN ${ZONE}`, '$TTL 300');
  // The SOA dnsproxy synthesises for this zone (src/dns/soa.ts timers), so both serve the same one.
  lines.push(`@ 300 IN SOA ns1.${ZONE} hostmaster.${ZONE} ${SERIAL} 3600 600 604800 60`);
  add('@', 3600, 'NS', `ns1.${ZONE}`);
  add('ns1', 3600, 'A', NODE_IP);
  add('@', 300, 'A', '192.0.2.2');
  add('@', 300, 'AAAA', '2001:db8::2');
  add('@', 300, 'MX', `10 mail.${ZONE}`);
  add('@', 300, 'MX', '20 mx.example.net.');
  add('@', 300, 'TXT', '"v=spf1 mx -all"');
  add('@', 300, 'CAA', '0 issue "letsencrypt.org"');
  add('mail', 300, 'A', '192.0.2.25');
  add('mail', 300, 'AAAA', '2001:db8::25');

  // Hosts: one to three addresses, some AAAA and TXT.
  const hosts: string[] = [];
  for (let i = 0; i < 160; i++) {
    const h = `h${String(i).padStart(3, '0')}`;
    hosts.push(h);
    const n = 1 + Math.floor(rand() * 3);
    for (let k = 0; k < n; k++) add(h, 300, 'A', `198.51.${i % 256}.${k + 1}`);
    if (rand() < 0.5) add(h, 600, 'AAAA', `2001:db8:${i.toString(16)}::${n}`);
    if (rand() < 0.3) add(h, 300, 'TXT', `"host ${h}" "role=${pick(['web', 'db', 'cache'])}"`);
  }
  // CNAME chains (1-3 hops) ending at hosts, outside the zone, nowhere, or in a loop.
  for (let i = 0; i < 40; i++) {
    const c = `c${String(i).padStart(2, '0')}`;
    const hops = 1 + (i % 3);
    for (let k = 0; k < hops - 1; k++) add(k === 0 ? c : `${c}-${k}`, 300, 'CNAME', `${c}-${k + 1}.${ZONE}`);
    add(hops === 1 ? c : `${c}-${hops - 1}`, 300, 'CNAME', i % 10 === 7 ? 'www.example.com.' : i % 10 === 8 ? `gone-${i}.${ZONE}` : `${pick(hosts)}.${ZONE}`);
  }
  add('loop1', 300, 'CNAME', `loop2.${ZONE}`);
  add('loop2', 300, 'CNAME', `loop1.${ZONE}`);
  add('towild', 300, 'CNAME', `x.w1.${ZONE}`);
  // Wildcards at several depths, beside existing names and empty non-terminals.
  add('*.w1', 300, 'A', '192.0.2.41');
  add('*.w1', 300, 'TXT', '"wild one"');
  add('exists.w1', 300, 'TXT', '"here"');
  add('*.a.w2', 300, 'A', '192.0.2.42');
  add('x.a.w2', 300, 'AAAA', '2001:db8::42');
  add('*.w3', 300, 'CNAME', `h001.${ZONE}`);
  add('*.w4', 300, 'MX', `5 mail.${ZONE}`);
  add('d.e.f.w4', 300, 'A', '192.0.2.44');
  // Delegations: with in-domain glue, without glue, a large one, sibling glue.
  const cuts = ['sub1', 'sub2', 'sub3', 'sub4'].map((c) => `${c}.${ZONE}`);
  add('sub1', 300, 'NS', `ns.sub1.${ZONE}`);
  add('sub1', 300, 'NS', `ns2.sub1.${ZONE}`);
  add('ns.sub1', 300, 'A', '192.0.2.51');
  add('ns2.sub1', 300, 'AAAA', '2001:db8::51');
  add('sub2', 300, 'NS', 'ns1.example.net.');
  add('sub2', 300, 'NS', 'ns2.example.net.');
  for (let i = 0; i < 13; i++) {
    add('sub3', 300, 'NS', `ns${String(i).padStart(2, '0')}.sub3.${ZONE}`);
    add(`ns${String(i).padStart(2, '0')}.sub3`, 300, 'A', `192.0.2.${100 + i}`);
  }
  add('sub4', 300, 'NS', `h002.${ZONE}`);
  add('sub4', 300, 'NS', `ns.sub1.${ZONE}`);
  // 14 MX whose exchanges have addresses: the additional section cannot hold them all in 512.
  for (let i = 0; i < 14; i++) {
    add('mx14', 300, 'MX', `${10 + i} mail-exchanger-${String(i).padStart(2, '0')}.${ZONE}`);
    add(`mail-exchanger-${String(i).padStart(2, '0')}`, 300, 'A', `203.0.113.${i + 1}`);
    add(`mail-exchanger-${String(i).padStart(2, '0')}`, 300, 'AAAA', `2001:db8:1::${i + 1}`);
  }
  // Long TXT sets: many values, and a value longer than one character-string.
  for (let i = 0; i < 60; i++) add('big', 300, 'TXT', `"value-${String(i).padStart(2, '0')}-${'x'.repeat(40)}"`);
  add('long', 300, 'TXT', `"${'a'.repeat(255)}" "${'b'.repeat(255)}" "${'c'.repeat(90)}"`);
  add('split', 300, 'TXT', '"one" "two" "three"');
  // Services, reverse names, CAA.
  add('_sip._tcp', 300, 'SRV', `10 60 5060 h003.${ZONE}`);
  add('_sip._tcp', 300, 'SRV', `20 40 5060 h004.${ZONE}`);
  add('_ldap._tcp', 300, 'SRV', `0 0 389 ldap.example.net.`);
  for (let i = 0; i < 30; i++) add(`${i}.rev`, 300, 'PTR', `${pick(hosts)}.${ZONE}`);
  add('caa', 300, 'CAA', '0 issue "ca.example.net; account=230123"');
  add('caa', 300, 'CAA', '0 iodef "mailto:security@example.net"');
  add('caa', 300, 'CAA', '128 tbs "Unknown"');

  // Issue 19: duplicates (folded), null MX, SRV target ".", TXT bytes, more types, generic form.
  add('dup', 300, 'A', '192.0.2.77');
  add('dup', 300, 'A', '192.0.2.77');
  add('dup', 300, 'AAAA', '2001:db8::77');
  add('dup', 300, 'AAAA', '2001:DB8:0:0::77');
  add('dup', 300, 'TXT', '"same"');
  add('dup', 300, 'TXT', 'same');
  add('nomail', 300, 'MX', '0 .');
  add('_imap._tcp', 300, 'SRV', '0 0 0 .');
  add('esc', 300, 'TXT', String.raw`"a\010b\255" "\"q\" \\ ;" ""`);
  add('esc', 300, 'TXT', String.raw`"caf\195\169" "x=1"`);
  add('sub1', 300, 'DS', '60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118');
  add('sub1', 300, 'DS', '60485 8 2 ( 2BB183AF5F22588179A53B0A98631FAD1A292118 2BB183AF5F22588179A53B0A98631FAD )');
  add('svc', 300, 'HTTPS', '1 . alpn=h2,h3 ipv4hint=192.0.2.7 port=8443');
  add('svc', 300, 'HTTPS', `2 h005.${ZONE} alpn="h2" ipv6hint=2001:db8::7 mandatory=alpn`);
  add('alias', 300, 'HTTPS', `0 h006.${ZONE}`);
  add('_8443._https.api', 300, 'SVCB', `1 api.${ZONE} alpn=h2 key65000="x"`);
  add('api', 300, 'A', '192.0.2.8');
  add('_443._tcp.h001', 300, 'TLSA', `3 1 1 ${'ab'.repeat(32)}`);
  add('h002', 300, 'SSHFP', `4 2 ${'cd'.repeat(32)}`);
  add('h002', 300, 'SSHFP', `1 1 ${'ef'.repeat(20)}`);
  add('caa', 300, 'CAA', '0 issuewild ";"');
  add('caa', 300, 'CAA', '0 issue letsencrypt.org');
  add('gen', 300, 'TYPE65534', '\\# 4 0A000001');
  add('gen', 300, 'TYPE65000', '\\# 0');
  add('gen', 300, 'TYPE260', '\\# 3 ABCDEF');

  const queries: [string, string][] = [];
  const TYPES = ['A', 'AAAA', 'TXT', 'MX', 'NS', 'SOA', 'CNAME', 'SRV', 'PTR', 'CAA', 'ANY', 'DS', 'HTTPS', 'TLSA'];
  for (const [name, types] of names) {
    for (const t of types) queries.push([name, t]);
    queries.push([name, pick(TYPES)]);
  }
  for (let i = 0; i < 40; i++) queries.push([`nx-${i}.${ZONE}`, pick(TYPES)]);
  for (let i = 0; i < 20; i++) queries.push([`q${i}.w1.${ZONE}`, pick(['A', 'TXT', 'MX', 'ANY'])]);
  for (let i = 0; i < 10; i++) queries.push([`deep.q${i}.a.w2.${ZONE}`, pick(['A', 'AAAA'])]);
  for (const q of [`a.w2.${ZONE}`, `w2.${ZONE}`, `e.f.w4.${ZONE}`, `z.e.f.w4.${ZONE}`, `q.w3.${ZONE}`, `q.w4.${ZONE}`]) queries.push([q, 'A'], [q, 'MX']);
  for (const cut of cuts) queries.push([cut, 'NS'], [cut, 'DS'], [cut, 'A'], [`host.${cut}`, 'A'], [`deep.host.${cut}`, 'TXT']);
  return { text: `${lines.join('\n')}\n`, names, cuts, queries };
}

/** `name` with its letters' case mixed (seeded), as resolvers using 0x20 encoding ask. */
export function mixCase(name: string, seed: number): string {
  const rand = prng(seed);
  return name.replace(/[a-z]/g, (c) => (rand() < 0.5 ? c.toUpperCase() : c));
}

/** RFC 4592 §2.2.1's example zone, whole: the SOA and SRV RDATA it leaves open filled in. */
export const RFC4592_ZONE = 'example.';
export const RFC4592_SERIAL = 2024010101;
export const RFC4592_TEXT = `$ORIGIN example.
example.                 3600 IN  SOA   ns.example.com. hostmaster.example.com. ${RFC4592_SERIAL} 7200 1200 1209600 300
example.                 3600     NS    ns.example.com.
example.                 3600     NS    ns.example.net.
*.example.               3600     TXT   "this is a wildcard"
*.example.               3600     MX    10 host1.example.
sub.*.example.           3600     TXT   "this is not a wildcard"
host1.example.           3600     A     192.0.2.1
_ssh._tcp.host1.example. 3600     SRV   0 0 22 host1.example.
_ssh._tcp.host2.example. 3600     SRV   0 0 22 host2.example.
subdel.example.          3600     NS    ns.example.com.
subdel.example.          3600     NS    ns.example.net.
`;

/** The RFC's own queries (§2.2.1, synthesised and not), then every name of the zone and some around it with each type. */
export function rfc4592Queries(): [string, string][] {
  const rfc: [string, string][] = [
    ['host3.example.', 'MX'],
    ['host3.example.', 'A'],
    ['foo.bar.example.', 'TXT'],
    ['host1.example.', 'MX'],
    ['sub.*.example.', 'MX'],
    ['_telnet._tcp.host1.example.', 'SRV'],
    ['host.subdel.example.', 'A'],
    ['ghost.*.example.', 'MX'],
  ];
  const names = ['example.', '*.example.', 'sub.*.example.', 'host1.example.', '_tcp.host1.example.', '_ssh._tcp.host1.example.', '_ssh._tcp.host2.example.', '_tcp.host2.example.', 'host2.example.', 'subdel.example.', 'x.sub.*.example.', '*.*.example.', 'a.b.c.example.', 'host1.host3.example.', 'deep.host.subdel.example.'];
  const types = ['A', 'AAAA', 'MX', 'TXT', 'SRV', 'NS', 'SOA', 'DS', 'CNAME', 'ANY'];
  return [...rfc, ...names.flatMap((n) => types.map((t): [string, string] => [n, t]))];
}
