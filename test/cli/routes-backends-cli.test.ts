// `dnsproxy routes backends add|remove|dead|alive` and `add-route --policy` against a real API.
import { expect } from 'chai';
import type { ApiFixture } from '../helpers/api.js';
import { eachCliApi } from '../mail/cli-run.js';

describe('cli: routes backends', function () {
  this.timeout(60_000);
  let f: ApiFixture;
  const cli = eachCliApi(
    (made) => {
      f = made;
    },
    // Caddy's pool as the API reads it: 192.0.2.6:80 unhealthy in its last health update.
    { upstreamPool: () => Promise.resolve(new Map([['192.0.2.6:80', { requests: 0, fails: 0, healthy: false }]])) },
  );

  it('adds, weighs, marks dead and alive, removes a backend by host and by id; bad input exits 1 naming the field', async () => {
    const add = await cli(['add-route', 'lb.home.arpa', '192.0.2.5:80', '--policy', 'first', '--retries', '1', '--wait', '0']);
    expect(add.code, add.stderr).to.equal(0);
    const id = f.routes.list()[0]!.id;
    expect(f.routes.get(id)?.balancing).to.deep.equal({ policy: 'first', retries: 1 });
    const weighted = await cli(['routes', 'backends', 'add', 'lb.home.arpa', '192.0.2.6:80', '--weight', '3']);
    expect(weighted.code, weighted.stderr).to.equal(0);
    expect(weighted.stdout).to.include('192.0.2.6:80 x3');
    const dead = await cli(['routes', 'backends', 'dead', id, '192.0.2.5:80']);
    expect(dead.code, dead.stderr).to.equal(0);
    expect(f.routes.get(id)?.backends).to.deep.equal({ '192.0.2.5:80': { dead: true }, '192.0.2.6:80': { weight: 3 } });
    expect((await cli(['routes'])).stdout).to.include('192.0.2.5:80 (dead), 192.0.2.6:80 x3 (down)');
    const dry = await cli(['routes', 'backends', 'alive', 'lb.home.arpa', '192.0.2.5:80', '--dry-run']);
    expect(dry.stdout).to.include('dry run, nothing applied');
    expect(f.routes.get(id)?.backends?.['192.0.2.5:80']).to.deep.equal({ dead: true });
    expect((await cli(['routes', 'backends', 'alive', 'lb.home.arpa', '192.0.2.5:80'])).code).to.equal(0);
    expect((await cli(['routes', 'backends', 'remove', 'lb.home.arpa', '192.0.2.6:80'])).code).to.equal(0);
    expect(f.routes.get(id)?.upstreams).to.deep.equal(['192.0.2.5:80']);
    expect(f.routes.get(id)).not.to.have.property('backends');
    const zero = await cli(['routes', 'backends', 'add', 'lb.home.arpa', '192.0.2.7:80', '--weight', '0']);
    expect(zero.code).to.equal(1);
    expect(zero.stderr).to.include('weight');
    const policy = await cli(['add-route', 'x.home.arpa', '192.0.2.5:80', '--policy', 'fastest', '--wait', '0']);
    expect(policy.code).to.equal(1);
    expect(policy.stderr).to.include('balancing.policy');
  });
});
