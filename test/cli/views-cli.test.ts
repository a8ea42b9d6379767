// `dnsproxy views add|list|remove` and `add-record --view NAME=VALUE` against a real API, and the
// answers our DNS server then gives a tailnet-view client (127.0.0.2) and everyone else.
import { expect } from 'chai';
import { DnsServer } from '../../src/dns/server.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { listenApi, runCli } from '../mail/cli-run.js';
import { decode, query, udpExchange } from '../dns/fixture.js';

describe('cli: views', function () {
  this.timeout(60_000);
  let f: ApiFixture;
  let dns: DnsServer;
  let url: string;

  before(async () => {
    f = await apiFixture();
    dns = new DnsServer({ host: '127.0.0.1', port: 0, index: f.index, upstreams: [], axfrAllow: [], views: f.viewTable });
    await dns.start();
    url = await listenApi(f);
  });
  after(async () => {
    await dns.stop();
    await f.close();
  });

  const cli = (args: string[]) => runCli({ url, token: f.token }, args);

  it('adds views, gives a record per-view values, lists them, and refuses what it must', async () => {
    const add = await cli(['views', 'add', 'tailnet', '100.64.0.0/10', 'fd7a:115c:a1e0::/48', '127.0.0.2']);
    expect(add, add.stderr).to.include({ code: 0 });
    expect(add.stdout.trim()).to.equal('view tailnet: 100.64.0.0/10, fd7a:115c:a1e0::/48, 127.0.0.2');
    expect((await cli(['views', 'add', 'lan', '192.168.1.0/24'])).code).to.equal(0);
    const overlap = await cli(['views', 'add', 'office', '100.100.0.0/16']);
    expect(overlap.code).to.equal(1);
    expect(overlap.stderr).to.include('cidrs.0').and.include('tailnet');
    const bad = await cli(['views', 'add', 'office', '10.0.0.0/33']);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.include('cidrs.0').and.include('prefix length');
    const list = await cli(['views', 'list']);
    expect(list.stdout).to.match(/^lan\s+192\.168\.1\.0\/24$/m).and.match(/^tailnet\s+100\.64\.0\.0\/10, fd7a:115c:a1e0::\/48, 127\.0\.0\.2$/m);

    const rec = await cli(['add-record', 'nas', '192.0.2.20', '--view', 'tailnet=100.64.0.5', '--view', 'lan=192.168.1.5', '--view', 'lan=192.168.1.6']);
    expect(rec, rec.stderr).to.include({ code: 0 });
    expect(rec.stdout).to.include('192.0.2.20 (lan: 192.168.1.5, 192.168.1.6; tailnet: 100.64.0.5)');
    const malformed = await cli(['add-record', 'nas', '192.0.2.20', '--view', 'tailnet']);
    expect(malformed.code).to.equal(2);
    expect(malformed.stderr).to.include('NAME=VALUE');
    const unknown = await cli(['add-record', 'nas', '192.0.2.20', '--view', 'nope=10.0.0.1']);
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.include('views.nope');

    await f.pipeline.settled();
    const port = dns.address().port;
    const answer = async (from: string) => decode(await udpExchange(port, query('nas.home.arpa', 'A'), 2000, from)).answers.map((a) => a.data);
    expect(await answer('127.0.0.2')).to.deep.equal(['100.64.0.5']);
    expect(await answer('127.0.0.1')).to.deep.equal(['192.0.2.20']);

    const busy = await cli(['views', 'remove', 'lan']);
    expect(busy.code).to.equal(1);
    expect(busy.stderr).to.include('nas.home.arpa. A');
    const json = await runCli({ url, token: f.token }, ['--json', 'views', 'list']);
    expect(JSON.parse(json.stdout).views).to.have.length(2);
    expect((await cli(['add-record', 'nas', '192.0.2.20'])).code).to.equal(0);
    const removed = await cli(['views', 'remove', 'lan']);
    expect(removed, removed.stderr).to.include({ code: 0 });
    expect(removed.stdout.trim()).to.equal('removed view lan');
  });
});
