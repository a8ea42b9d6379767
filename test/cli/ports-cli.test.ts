// `dnsproxy add-route … --listen-port N` against a real API: stored with the route, own ports refused.
import { expect } from 'chai';
import type { ApiFixture } from '../helpers/api.js';
import { eachCliApi } from '../mail/cli-run.js';

describe('cli: add-route --listen-port', function () {
  this.timeout(60_000);
  let f: ApiFixture;
  const cli = eachCliApi((made) => {
    f = made;
  });

  it('stores the extra port and refuses one of our own ports naming listen.port', async () => {
    const ok = await cli(['--json', 'add-route', 'p.home.arpa', '10.0.0.5:80', '--listen-port', '9100', '--wait', '0']);
    expect(ok.code, ok.stderr).to.equal(0);
    const stored = f.routes.scan().routes.find((r) => r.hosts.includes('p.home.arpa'));
    expect(stored?.listen).to.deep.equal({ port: 9100 });
    const own = await cli(['add-route', 'q.home.arpa', '10.0.0.5:80', '--listen-port', String(f.proxy.settings.httpPort), '--wait', '0']);
    expect(own.code).to.equal(1);
    expect(own.stderr).to.include('listen.port');
  });
});
