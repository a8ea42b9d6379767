import { expect } from 'chai';
import { ZoneIndex } from '../../src/dns/index.js';
import { exportZone } from '../../src/dns/zonefile.js';
import { apiFixture, NODE_IP, type ApiFixture } from '../helpers/api.js';

describe('api: /api/v1/zones import and export', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  const importZone = (text: string, zone = 'home.arpa') =>
    f.app.inject({ method: 'POST', url: `/api/v1/zones/${zone}/import`, headers: { ...f.auth, 'content-type': 'text/plain' }, payload: text });

  it('refuses an AAAA value with an IPv6 zone id, naming the line; nothing applied', async () => {
    const res = await importZone('ok AAAA 2001:db8::1\nll AAAA fe80::1%eth0\n');
    expect(res.statusCode, res.body).to.equal(400);
    expect(res.json().error.code).to.equal('invalid_zone_file');
    expect(res.json().error.fields).to.have.length(1);
    expect(res.json().error.fields[0].path).to.equal('line 2');
    expect(res.json().error.fields[0].message).to.include('zone id');
    expect(f.records.count()).to.equal(0);
  });

  it('an AAAA with a zone id stored by older code is not served, and the export of a restarted index imports back', async () => {
    expect((await importZone('ok AAAA 2001:db8::1\n')).statusCode).to.equal(200);
    f.db.prepare(`INSERT INTO records (name, type, zone, ttl, data, proxy, service_name, created_at, updated_at) VALUES ('ll.home.arpa.', 'AAAA', 'home.arpa.', 300, '["fe80::1%eth0"]', NULL, NULL, 't', 't')`).run();
    const list = (await f.app.inject({ method: 'GET', url: '/api/v1/records', headers: f.auth })).json();
    expect(list.invalid.map((r: { name: string }) => r.name)).to.deep.equal(['ll.home.arpa.']);
    // As the controller loads its DNS index at start: from what the store lists.
    const index = new ZoneIndex([{ name: 'home.arpa.', nameservers: ['ns1.home.arpa.'], hostmaster: 'hostmaster.home.arpa.', nodeIp: NODE_IP }]);
    index.load('home.arpa.', f.records.serial('home.arpa.'), f.records.list({ zone: 'home.arpa.' }));
    const text = exportZone('home.arpa.', index.servedRecords('home.arpa.'));
    expect(text).to.include('2001:db8::1');
    expect(text).not.to.include('%');
    const again = await importZone(text);
    expect(again.statusCode, again.body).to.equal(200);
  });
});
