// A record set whose answer cannot fit in any DNS message is refused at every edge; the size is
// computed, and a set exactly at the limit is served whole over TCP by the real server.
import { expect } from 'chai';
import { ZoneIndex } from '../../src/dns/index.js';
import { MAX_DNS_MESSAGE, rrsetResponseBytes, type RecordData } from '../../src/model/record.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { decode, frame, HOME, query, rec, startServer, tcpExchange, ZONES } from '../dns/fixture.js';

// t.home.arpa. is 13 octets: header 12 + question 17 + OPT 11 = 40; a 4000-byte value is 4000 + 16
// length octets, its record 12 + 4016. Sixteen of them take 64,448: the 17th fits with 1,030 bytes.
// The values differ (an RRset never holds the same RDATA twice, RFC 2181 §5).
const FULL = Array.from({ length: 16 }, (_, i) => `${'x'.repeat(3998)}${String(i).padStart(2, '0')}`);
const atLimit: RecordData = { type: 'TXT', values: [...FULL, 'y'.repeat(1030)] };
const overLimit: RecordData = { type: 'TXT', values: [...FULL, 'y'.repeat(1031)] };

describe('model: record sets that cannot fit in a DNS message', () => {
  it('computes the response size', () => {
    expect(rrsetResponseBytes('t.home.arpa.', atLimit)).to.equal(MAX_DNS_MESSAGE);
    expect(rrsetResponseBytes('t.home.arpa.', overLimit)).to.equal(MAX_DNS_MESSAGE + 1);
    expect(rrsetResponseBytes('*.home.arpa.', { type: 'TXT', values: [''] })).to.equal(12 + 255 + 4 + 11 + 12 + 1);
  });

  it('the real server answers a set at the limit whole over TCP, and truncates one byte more', async () => {
    const index = new ZoneIndex(ZONES);
    index.load(HOME, 1, [rec(HOME, 't', atLimit), rec(HOME, 'u', overLimit)]);
    const { server, port } = await startServer({ index });
    try {
      const [fits] = await tcpExchange(port, frame(query('t.home.arpa', 'TXT', { edns: 1232 })), 1);
      expect(fits?.length).to.equal(MAX_DNS_MESSAGE);
      expect(decode(fits)).to.deep.include({ tc: false });
      expect(decode(fits).answers).to.have.length(17);
      // ("u" is as long as "t", so the one-byte-longer value is the only difference.)
      const [over] = await tcpExchange(port, frame(query('u.home.arpa', 'TXT', { edns: 1232 })), 1);
      expect(decode(over)).to.deep.include({ tc: true });
      expect(decode(over).answers).to.have.length(0);
    } finally {
      await server.stop();
    }
  });

  describe('API and zone import', () => {
    let f: ApiFixture;
    beforeEach(async () => (f = await apiFixture()));
    afterEach(async () => f.close());

    it('POST/PUT a TXT set too large for any DNS message: 400 naming values; one at the limit is stored', async () => {
      const post = await f.app.inject({ method: 'POST', url: '/api/v1/records', headers: f.auth, payload: { name: 't', ...overLimit } });
      expect(post.statusCode, post.body.slice(0, 300)).to.equal(400);
      expect(post.json().error.fields).to.deep.equal([{ path: 'values', message: post.json().error.fields[0].message }]);
      expect(post.json().error.fields[0].message).to.include('65536-byte DNS response');
      const ok = await f.app.inject({ method: 'PUT', url: '/api/v1/records/t/TXT', headers: f.auth, payload: { name: 't', ...atLimit } });
      expect(ok.statusCode, ok.body.slice(0, 300)).to.equal(201);
      const put = await f.app.inject({ method: 'PUT', url: '/api/v1/records/t/TXT', headers: f.auth, payload: { name: 't', ...overLimit } });
      expect(put.statusCode).to.equal(400);
      expect(f.records.get('t.home.arpa.', 'TXT')?.values).to.deep.equal(atLimit.values);
    });

    it('zone import of such a set: 400 naming the line, nothing applied', async () => {
      const chunks = (v: string) => (v.match(/.{1,250}/g) ?? []).map((c) => `"${c}"`).join(' ');
      const text = `ok A 192.0.2.1\n${overLimit.values.map((v) => `t TXT ${chunks(v as string)}`).join('\n')}\n`;
      const res = await f.app.inject({ method: 'POST', url: '/api/v1/zones/home.arpa/import', headers: { ...f.auth, 'content-type': 'text/plain' }, payload: text });
      expect(res.statusCode, res.body.slice(0, 300)).to.equal(400);
      expect(res.json().error.code).to.equal('invalid_zone_file');
      expect(res.json().error.fields).to.have.length(1);
      expect(res.json().error.fields[0].path).to.equal('line 2');
      expect(res.json().error.fields[0].message).to.include('DNS response');
      expect(f.records.count()).to.equal(0);
    });
  });
});
