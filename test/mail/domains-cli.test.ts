// `dnsproxy mail domain add|list|check|remove` against a real API and our real DNS server: the
// check prints a pass/fail table and exits 1 when a row fails.
import { expect } from 'chai';
import { DnsServer } from '../../src/dns/server.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { listenApi, runCli } from './cli-run.js';

describe('mail: domain CLI', function () {
  let f: ApiFixture;
  let dns: DnsServer;
  let url: string;

  before(async () => {
    let port = 0;
    f = await apiFixture({ dnsPort: () => port });
    dns = new DnsServer({ host: '127.0.0.1', port: 0, index: f.index, upstreams: [], axfrAllow: [], recursionAllow: ['127.0.0.1'] });
    await dns.start();
    port = dns.address().port;
    url = await listenApi(f);
  });
  after(async () => {
    await dns.stop();
    await f.close();
  });

  const cli = (args: string[]) => runCli({ url, token: f.token }, args);

  it('add publishes, check passes every row (exit 0), a missing record fails its row (exit 1), remove takes them away', async () => {
    const dry = await cli(['mail', 'domain', 'add', 'lab.example', '--dry-run']);
    expect(dry, dry.stderr).to.include({ code: 0 });
    expect(dry.stdout).to.match(/^dry run, nothing applied:/).and.include('_dmarc.lab.example.');
    const add = await cli(['mail', 'domain', 'add', 'lab.example', '--dmarc', 'quarantine']);
    expect(add, add.stderr).to.include({ code: 0 });
    expect(add.stdout).to.match(/^published lab\.example: lab\.example\. MX, lab\.example\. TXT, dnsproxy\._domainkey\.lab\.example\. TXT, _dmarc/);
    const list = await cli(['mail', 'domain', 'list']);
    expect(list.stdout).to.match(/^lab\.example\s+lab\.example\.\s+quarantine\s+testing\s+dnsproxy\s+-$/m);

    const check = await cli(['mail', 'domain', 'check', 'lab.example']);
    expect(check, check.stderr).to.include({ code: 0 });
    for (const row of ['MX', 'SPF', 'DKIM dnsproxy', 'DMARC', 'MTA-STS', 'TLS-RPT']) expect(check.stdout, check.stdout).to.match(new RegExp(`^${row}\\s+PASS\\s`, 'm'));

    // Someone deletes the DMARC record by hand: the check says so.
    expect((await f.app.inject({ method: 'DELETE', url: '/api/v1/records/_dmarc.lab.example./TXT', headers: f.auth })).statusCode).to.equal(204);
    const failing = await cli(['mail', 'domain', 'check', 'lab.example']);
    expect(failing.code).to.equal(1);
    expect(failing.stdout, failing.stdout).to.match(/^DMARC\s+FAIL\s/m).and.match(/^DKIM dnsproxy\s+PASS\s/m);
    expect(failing.stderr).to.include('DMARC failed');

    const removed = await cli(['mail', 'domain', 'remove', 'lab.example']);
    expect(removed, removed.stderr).to.include({ code: 0 });
    expect(f.records.list({ zone: 'lab.example.' })).to.deep.equal([]);
    expect((await cli(['mail', 'domain', 'check', 'lab.example'])).code).to.equal(1);
  });
});
