// `dnsproxy add-route --options <file|->`: auth, headers and limits from a file or stdin (never
// the command line), checked by the API; the listing shows no secret.
import { expect } from 'chai';
import type { ApiFixture } from '../helpers/api.js';
import { eachCliApi } from '../mail/cli-run.js';

const PASSWORD = 'cli-Secret-pw-8812';

describe('cli: add-route --options', function () {
  this.timeout(60_000);
  let f: ApiFixture;
  const cli = eachCliApi((made) => {
    f = made;
  });

  it('takes auth, headers and limits from stdin; the answer and the listing hold no secret', async () => {
    const options = `auth:\n  basic:\n    accounts:\n      - username: bob\n        password: ${PASSWORD}\nheaders:\n  response:\n    set:\n      X-Served-By: dnsproxy\nlimits:\n  max_concurrent: 5\n`;
    const add = await cli(['add-route', 'app.home.arpa', '192.0.2.5:3000', '--options', '-', '--wait', '0', '--json'], options);
    expect(add, add.stderr).to.include({ code: 0 });
    expect(add.stdout).not.to.include(PASSWORD);
    const stored = f.routes.list()[0]!;
    expect(stored.auth?.basic?.accounts[0]).to.have.keys(['username', 'hash']);
    expect(stored.headers).to.deep.equal({ response: { set: { 'X-Served-By': 'dnsproxy' } } });
    expect(stored.limits).to.deep.equal({ max_concurrent: 5 });
    const list = await cli(['routes', '--json']);
    expect((JSON.parse(list.stdout) as { routes: { auth?: unknown }[] }).routes[0]?.auth).to.deep.equal({ basic: { accounts: [{ username: 'bob' }] } });
    expect(list.stdout).not.to.include(PASSWORD).and.not.include(stored.auth!.basic!.accounts[0]!.hash!.slice(7));
  });

  it('a bad limit is the API\'s 400 naming the field; an unknown key is a usage error', async () => {
    const bad = await cli(['add-route', 'b.home.arpa', '192.0.2.5:3000', '--options', '-', '--wait', '0'], '{"limits": {"max_concurrent": 0}}');
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.include('limits.max_concurrent');
    const unknown = await cli(['add-route', 'b.home.arpa', '192.0.2.5:3000', '--options', '-'], '{"hosts": ["x.home.arpa"]}');
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.include('unknown key(s) hosts');
  });
});
