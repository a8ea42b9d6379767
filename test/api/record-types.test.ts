// Issue 19 through the API: TXT strings kept as given, duplicates folded (and said so), null MX,
// SRV target ".", TXT bytes, DS/SSHFP/TLSA/SVCB/HTTPS, CAA's full syntax and RFC 3597 TYPEnnn;
// each stored, served over DNS exactly, exported and imported back.
import { expect } from 'chai';
import dnsPacket from 'dns-packet';
import { handle } from '../../src/dns/handler.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { query } from '../dns/fixture.js';

/** The answer records' RDATA (hex) for `name` `type` (a type code), as our DNS server answers now. */
function served(f: ApiFixture, name: string, code: number): string[] {
  const q = query(name, 'A');
  q.writeUInt16BE(code, q.length - 4);
  const out = handle(q, 'tcp', '127.0.0.1', { index: f.index, forwarding: false, recursionAllowed: () => false, transferAllowed: () => false });
  if (out.kind !== 'reply') throw new Error(out.kind);
  const p = dnsPacket.decode(out.message);
  return (p.answers ?? []).map((a) => {
    const d = (a as { data: unknown }).data;
    return Buffer.isBuffer(d) ? d.toString('hex') : JSON.stringify(d, (_k, v: unknown) => (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('hex') : v));
  });
}

describe('api: record types and values of issue 19', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());
  const post = (payload: object) => f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload });

  it('TXT: a list of strings is stored and served as given ("one" "two" "three" stays three strings)', async () => {
    const res = await post({ name: 'split', type: 'TXT', values: [['one', 'two', 'three'], 'v=spf1 -all', [{ hex: '00ff0a' }, 'k=v']] });
    expect(res.statusCode, res.body).to.equal(201);
    expect(res.json().record.values).to.deep.equal([['one', 'two', 'three'], 'v=spf1 -all', [{ hex: '00ff0a' }, 'k=v']]);
    const hex = (...l: string[]) => JSON.stringify(l.map((x) => Buffer.from(x).toString('hex')));
    expect(served(f, 'split.home.arpa', 16)).to.deep.equal([hex('one', 'two', 'three'), hex('v=spf1 -all'), `["00ff0a","${Buffer.from('k=v').toString('hex')}"]`]);
  });

  it('duplicates: folded in canonical form, stored and served once, and the response says so', async () => {
    const a = await post({ name: 'dup', type: 'A', values: ['192.0.2.77', '192.0.2.77'] });
    expect(a.statusCode, a.body).to.equal(201);
    expect(a.json().record.values).to.deep.equal(['192.0.2.77']);
    expect(a.json().warnings).to.deep.equal(['values.1 repeats values.0 ("192.0.2.77"): stored once (RFC 2181 §5)']);
    const six = await f.app.inject({ method: 'PUT', url: '/api/v1/records/dup/AAAA', headers: f.auth, payload: { name: 'dup', type: 'AAAA', values: ['2001:db8::77', '2001:DB8:0:0::77', '2001:db8::78'] } });
    expect(six.statusCode, six.body).to.equal(201);
    expect(six.json().record.values).to.deep.equal(['2001:db8::77', '2001:db8::78']);
    expect(six.json().warnings).to.have.length(1);
    expect(served(f, 'dup.home.arpa', 28)).to.have.length(2);
    const txt = await post({ name: 'dup', type: 'TXT', values: ['same', ['same']] });
    expect(txt.json().record.values).to.deep.equal(['same']);
  });

  it('zone import: duplicate lines are served once', async () => {
    const res = await f.app.inject({ method: 'POST', url: '/api/v1/zones/home.arpa/import', headers: { ...f.auth, 'content-type': 'text/plain' }, payload: 'dup A 192.0.2.77\ndup A 192.0.2.77\ndup AAAA 2001:db8::77\ndup AAAA 2001:0db8::0:77\n' });
    expect(res.statusCode, res.body).to.equal(200);
    expect(res.json().warnings).to.deep.equal([
      { path: 'line 2', message: 'A: repeats the record on line 1 (the same data in canonical form): served once (RFC 2181 §5)' },
      { path: 'line 4', message: 'AAAA: repeats the record on line 3 (the same data in canonical form): served once (RFC 2181 §5)' },
    ]);
    expect(f.records.get('dup.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.77']);
    expect(f.records.get('dup.home.arpa.', 'AAAA')?.values).to.deep.equal(['2001:db8::77']);
    expect(served(f, 'dup.home.arpa', 1)).to.deep.equal(['"192.0.2.77"']);
  });

  it('null MX (RFC 7505) and SRV target "." (RFC 2782) are stored and served; a null MX beside others is refused', async () => {
    expect((await post({ name: '@', type: 'MX', values: [{ preference: 0, exchange: '.' }] })).statusCode).to.equal(201);
    expect(served(f, 'home.arpa', 15)).to.deep.equal(['{"preference":0,"exchange":"."}']);
    const srv = await post({ name: '_imap._tcp.home.arpa', type: 'SRV', values: [{ priority: 0, weight: 0, port: 0, target: '.' }] });
    expect(srv.statusCode, srv.body).to.equal(201);
    expect(served(f, '_imap._tcp.home.arpa', 33)).to.deep.equal(['{"priority":0,"weight":0,"port":0,"target":"."}']);
    const mixed = await post({ name: 'm', type: 'MX', values: [{ preference: 0, exchange: '.' }, { preference: 10, exchange: 'mail.example.net' }] });
    expect(mixed.statusCode).to.equal(400);
    expect(mixed.json().error.fields.map((x: { path: string }) => x.path)).to.include('values.0.exchange');
  });

  const typed: [string, string, number, string, string][] = [
    ['DS', 'sub.home.arpa', 43, '60485 5 1 2bb183af5f22588179a53b0a98631fad1a292118', '60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118'],
    ['SSHFP', 'host.home.arpa', 44, `4 2 ${'cd'.repeat(32)}`, `4 2 ${'CD'.repeat(32)}`],
    ['TLSA', '_443._tcp.www.home.arpa', 52, `3 1 1 ${'ab'.repeat(32)}`, `3 1 1 ${'AB'.repeat(32)}`],
    ['SVCB', '_8443._https.api.home.arpa', 64, '1 api.home.arpa port=8443 alpn=h2', '1 api.home.arpa. alpn="h2" port=8443'],
    ['HTTPS', 'www.home.arpa', 65, '1 . ipv6hint=2001:DB8:0::7 alpn="h3,h2" mandatory=alpn', '1 . mandatory=alpn alpn="h3,h2" ipv6hint=2001:db8::7'],
    ['TYPE65534', 'gen.home.arpa', 65534, '\\# 4 0a000001', '\\# 4 0A000001'],
  ];
  for (const [type, name, code, given, canonical] of typed)
    it(`${type}: stored in canonical form and served as given`, async () => {
      const res = await post({ name, type, values: [given] });
      expect(res.statusCode, res.body).to.equal(201);
      expect(res.json().record.values).to.deep.equal([canonical]);
      expect(served(f, name, code)).to.have.length(1);
      const got = await f.app.inject({ method: 'GET', url: `/api/v1/records/${name}/${type.toLowerCase()}`, headers: f.auth });
      expect(got.json().record.values).to.deep.equal([canonical]);
    });

  it('refuses bad presentation data, naming the value', async () => {
    for (const [type, value] of [
      ['DS', '1 2 3 xyz'],
      ['HTTPS', '1 . alpn'],
      ['HTTPS', '0 . alpn=h2'],
      ['SVCB', '1 . mandatory=port'],
      ['TYPE65534', '\\# 2 00'],
      ['TYPE1', '\\# 4 0a000001'],
      ['TYPE255', '\\# 0'],
    ] as const) {
      const res = await post({ name: 'bad', type, values: [value] });
      expect(res.statusCode, `${type} ${value}: ${res.body}`).to.equal(400);
      expect(res.json().error.fields.map((x: { path: string }) => x.path)[0], `${type} ${value}`).to.match(/^(values\.0|type)$/);
    }
    expect(f.records.count()).to.equal(0);
  });

  it('CAA: any flags, tags and text values', async () => {
    const res = await post({ name: '@', type: 'CAA', values: [{ flags: 128, tag: 'tbs', value: 'Unknown' }, { flags: 0, tag: 'issue', value: 'ca.example.net; account=230123' }, { flags: 0, tag: 'iodef', value: 'mailto:sécurité@example.net' }] });
    expect(res.statusCode, res.body).to.equal(201);
    expect(served(f, 'home.arpa', 257)).to.have.length(3);
  });

  it('export → import gives back every value of the new kinds', async () => {
    for (const body of [
      { name: 'split', type: 'TXT', values: [['one', 'two'], [{ hex: 'ff' }], 'a\nb', 'x'.repeat(300)] },
      { name: '@', type: 'MX', values: [{ preference: 0, exchange: '.' }] },
      ...typed.map(([type, name, , given]) => ({ name, type, values: [given] })),
    ])
      expect((await post(body)).statusCode).to.equal(201);
    const before = (await f.app.inject({ method: 'GET', url: '/api/v1/records', headers: f.auth })).json().records;
    const text = (await f.app.inject({ method: 'GET', url: '/api/v1/zones/home.arpa/export', headers: f.auth })).body;
    const g = await apiFixture();
    try {
      const res = await g.app.inject({ method: 'POST', url: '/api/v1/zones/home.arpa/import', headers: { ...g.auth, 'content-type': 'text/plain' }, payload: text });
      expect(res.statusCode, res.body).to.equal(200);
      const after = (await g.app.inject({ method: 'GET', url: '/api/v1/records', headers: g.auth })).json().records;
      const strip = (l: { name: string; type: string; values: unknown[] }[]) => l.map(({ name, type, values }) => ({ name, type, values })).filter((r) => r.type !== 'NS');
      expect(strip(after)).to.deep.equal(strip(before));
    } finally {
      await g.close();
    }
  });
});
