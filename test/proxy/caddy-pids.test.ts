// caddyPids(admin): the "more than one caddy" warning counts only the Caddies serving this
// stack's admin address, never another user's (or another stack's) Caddy on the same host.
import { expect } from 'chai';
import { caddyPids } from '../../src/proxy/process.js';
import { hasCaddy, startCaddy, type RunningCaddy } from '../helpers/caddy.js';

describe('proxy/process: caddyPids counts only this stack\'s Caddy', function () {
  this.timeout(60_000);
  const running: RunningCaddy[] = [];

  before(async function () {
    if (!hasCaddy()) this.skip();
    running.push(await startCaddy(), await startCaddy({ admin: 'tcp' }));
  });
  after(async () => Promise.all(running.map((c) => c.stop())));

  it('finds each real Caddy by its admin address (unix socket or loopback port), not the other one', () => {
    const [a, b] = running as [RunningCaddy, RunningCaddy];
    expect(caddyPids(a.adminListen)).to.deep.equal([a.pid]);
    expect(caddyPids(b.adminListen)).to.deep.equal([b.pid]);
    expect(caddyPids('unix//nonexistent/caddy-admin.sock')).to.deep.equal([]);
  });
});
