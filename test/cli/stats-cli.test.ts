// `dnsproxy stats [host] [--watch]` against a real API fed by a HostStats.
import { expect } from 'chai';
import { HostStats } from '../../src/proxy/stats.js';
import { statsTable } from '../../src/cli/stats.js';
import { eachCliApi } from '../mail/cli-run.js';

const line = (host: string, status: number, size: number) =>
  JSON.stringify({ logger: 'http.log.access.dnsproxy-stats', msg: 'handled request', request: { host }, duration: 0.004, size, status });

describe('cli: stats', function () {
  this.timeout(60_000);
  const stats = new HostStats();
  const cli = eachCliApi(() => {
    for (let i = 0; i < 4; i++) stats.ingest(line('web.home.arpa', 200, 50));
    stats.ingest(line('web.home.arpa', 503, 0));
  }, { stats });

  it('prints every host, one host, JSON, and watches a given number of times', async () => {
    const all = await cli(['stats']);
    expect(all, all.stderr).to.include({ code: 0 });
    expect(all.stdout).to.match(/^HOST\s+REQ\/1M/m).and.match(/^web\.home\.arpa\s+5\s+4\/0\/0\/1\s+200\s+/m);
    const one = await cli(['stats', 'web.home.arpa', '--json']);
    expect(JSON.parse(one.stdout).stats.minute.requests).to.equal(5);
    const watch = await cli(['stats', '--watch', '--interval', '1', '--count', '2']);
    expect(watch, watch.stderr).to.include({ code: 0 });
    expect(watch.stdout.match(/^HOST/gm)).to.have.length(2);
    const bad = await cli(['stats', '--watch', '--interval', '0']);
    expect(bad.code).to.equal(2);
    const badHost = await cli(['stats', 'bad_host!']);
    expect(badHost.code).to.equal(1);
    expect(badHost.stderr).to.include('host');
  });

  it('says so when nothing was seen', () => {
    expect(statsTable([])).to.equal('no requests in the last hour');
  });
});
