// The CLI as scripts use it: exit codes, --json, one-line errors.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cli, startController, TOKEN, type Running } from '../helpers/controller.js';
import { tempDir } from '../helpers/tmp.js';

describe('e2e: dnsproxy CLI', function () {
  this.timeout(60_000);
  const tmp = tempDir();
  let c: Running;
  let env: Record<string, string>;
  before(async () => {
    c = await startController(tmp.dir);
    env = { DNSPROXY_API_URL: c.apiUrl, DNSPROXY_TOKEN: TOKEN };
  });
  after(async () => {
    await c.stop();
    tmp.cleanup();
  });

  it('add-record --json prints the stored record with its proxy block; list shows it', async () => {
    const add = await cli(['--json', 'add-record', 'llm', '100.1.1.1', '--proxy', '100.2.2.2:8080', '--service', 'llm'], env);
    expect(add.code, add.stderr).to.equal(0);
    expect(JSON.parse(add.stdout).record).to.deep.include({ name: 'llm.home.arpa.', type: 'A', values: ['100.1.1.1'], proxy: { enabled: true, upstreams: ['100.2.2.2:8080'] } });
    const list = await cli(['list', '--json'], env);
    expect(list.code).to.equal(0);
    const rec = JSON.parse(list.stdout).records.find((r: { name: string }) => r.name === 'llm.home.arpa.');
    expect(rec.proxy).to.deep.equal({ enabled: true, upstreams: ['100.2.2.2:8080'] });
    const human = await cli(['list'], env);
    expect(human.stdout.split('\n')[0]).to.match(/^NAME\s+TYPE\s+TTL\s+VALUE\s+PROXY\s+SERVICE$/);
    expect(human.stdout).to.match(/llm\.home\.arpa\.\s+A\s+300\s+100\.1\.1\.1\s+→ 100\.2\.2\.2:8080\s+llm/);
  });

  it('adds typed values (MX, SRV, CAA, TXT) from the command line', async () => {
    expect((await cli(['add-record', '@', '10 mail.home.arpa', '-t', 'MX'], env)).code).to.equal(0);
    expect((await cli(['add-record', '_sip._tcp.home.arpa', '10 5 5060 sip.home.arpa', '-t', 'srv'], env)).code).to.equal(0);
    expect((await cli(['add-record', '@', '0 issue "letsencrypt.org"', '-t', 'CAA'], env)).code).to.equal(0);
    expect((await cli(['add-record', 'note', 'hello world', '-t', 'TXT', '--ttl', '60'], env)).code).to.equal(0);
    const list = JSON.parse((await cli(['--json', 'list', '--name', '@', '-t', 'MX'], env)).stdout);
    expect(list.records[0].values).to.deep.equal([{ preference: 10, exchange: 'mail.home.arpa.' }]);
  });

  it('exit 1 with one clear line for API errors; the field is named', async () => {
    const bad = await cli(['add-record', 'x', '300.1.1.1'], env);
    expect(bad.code).to.equal(1);
    expect(bad.stderr.trim().split('\n')).to.have.length(1);
    expect(bad.stderr).to.match(/^dnsproxy: values\.0: must be an IPv4 address \(invalid_body, HTTP 400\)/);
    const missing = await cli(['remove', 'nope'], env);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.include('not_found');
    const token = await cli(['list'], { ...env, DNSPROXY_TOKEN: 'wrong' });
    expect(token.code).to.equal(1);
    expect(token.stderr).to.include('unauthorized');
    const down = await cli(['list'], { ...env, DNSPROXY_API_URL: 'http://127.0.0.1:9' });
    expect(down.code).to.equal(1);
    expect(down.stderr).to.include('cannot reach the API');
  });

  it('re-adding a proxied name without --proxy says which route and upstreams it removed; --dry-run shows it first', async () => {
    const proxied = await cli(['add-record', 'nas', '192.0.2.20', '--proxy', '192.0.2.31:8000', '--tls', 'internal', '--wait', '0'], env);
    expect(proxied.code, proxied.stderr).to.equal(0);
    const dry = await cli(['add-record', 'nas', '192.0.2.20', '--dry-run'], env);
    expect(dry.code, dry.stderr).to.equal(0);
    expect(dry.stdout).to.match(/^- route\s+record:nas\.home\.arpa\s+nas\.home\.arpa → 192\.0\.2\.31:8000$/m);
    const plain = await cli(['add-record', 'nas', '192.0.2.20'], env);
    expect(plain.code, plain.stderr).to.equal(0);
    expect(plain.stderr).to.equal('dnsproxy: removed route record:nas.home.arpa → 192.0.2.31:8000: the new record set has no --proxy (add --proxy 192.0.2.31:8000 --tls internal to keep it)\n');
    const json = JSON.parse((await cli(['--json', 'add-record', 'nas', '192.0.2.21'], env)).stdout);
    expect(json).not.to.have.property('removed_route');
    const routes = JSON.parse((await cli(['--json', 'routes'], env)).stdout).routes;
    expect(routes.map((r: { id: string }) => r.id)).not.to.include('record:nas.home.arpa');
    expect((await cli(['remove', 'nas'], env)).code).to.equal(0);
  });

  it('a CNAME to an IP address is refused with the hint to use an A record', async () => {
    const res = await cli(['add-record', 'x', '100.1.1.2', '--type', 'CNAME'], env);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.equal('dnsproxy: values.0: 100.1.1.2 is an IP address, but a CNAME target must be a host name: for an address use an A record (AAAA for IPv6) at this name (invalid_body, HTTP 400)\n');
  });

  it('add-route exits 1 and says why when the route it made is in error (an upstream name without a record)', async () => {
    const res = await cli(['add-route', 'files.home.arpa', 'ghost.home.arpa:5000'], env);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.match(/^dnsproxy: route api:[0-9a-f]{8} is in error: upstream ghost\.home\.arpa:5000: ghost\.home\.arpa has no A or AAAA record in our zones\n$/);
    expect(res.stdout).to.match(/^api:[0-9a-f]{8}\s+files\.home\.arpa\s+ghost\.home\.arpa:5000\s+off\s+error: /m);
    expect((await cli(['remove-route', 'files.home.arpa'], env)).code).to.equal(0);
  });

  it('exit 2 for usage errors', async () => {
    expect((await cli(['frobnicate'], env)).code).to.equal(2);
    expect((await cli(['add-record'], env)).code).to.equal(2);
    const type = await cli(['add-record', 'x', 'y', '-t', 'BOGUS'], env);
    expect(type.code).to.equal(2);
    expect(type.stderr).to.include('unknown record type');
    expect((await cli(['--version'], env)).code).to.equal(0);
  });

  it('remove deletes a record set; a second remove fails', async () => {
    await cli(['add-record', 'tmp', '192.0.2.3'], env);
    expect((await cli(['remove', 'tmp', 'A'], env)).code).to.equal(0);
    expect((await cli(['remove', 'tmp', 'A'], env)).code).to.equal(1);
  });

  it('zone export passes named-checkzone; import applies all or nothing with per-line errors', async function () {
    const file = join(tmp.dir, 'home.zone');
    const exp = await cli(['zone', 'export', 'home.arpa', '-o', file], env);
    expect(exp.code, exp.stderr).to.equal(0);
    try {
      const { stdout } = await promisify(execFile)('named-checkzone', ['home.arpa', file]);
      expect(stdout).to.include('OK');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const bad = join(tmp.dir, 'bad.zone');
    writeFileSync(bad, '$ORIGIN home.arpa.\nok1 300 IN A 192.0.2.1\nbroken 300 IN A 999.1.1.1\nalso 300 IN WHAT x\n');
    const imp = await cli(['zone', 'import', bad], env);
    expect(imp.code).to.equal(1);
    expect(imp.stderr).to.include('line 3').and.include('line 4');
    expect(JSON.parse((await cli(['--json', 'list', '--name', 'ok1'], env)).stdout).records).to.have.length(0);
    const good = join(tmp.dir, 'good.zone');
    writeFileSync(good, '$ORIGIN home.arpa.\nok1 300 IN A 192.0.2.1\nok2 IN TXT "hi there"\n');
    const ok = await cli(['--json', 'zone', 'import', good], env);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(JSON.parse(ok.stdout)).to.include({ applied: 2, created: 2 });
  });

  it('resolve queries our DNS server with the dns2 client', async () => {
    await cli(['add-record', 'res', '192.0.2.44'], env);
    const r = await cli(['resolve', 'res.home.arpa', 'A', '--port', String(c.dnsPort)], env);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include('NOERROR, authoritative').and.include('192.0.2.44');
    // Without --port it asks DNSPROXY_DNS_PORT, as the README tour exports it for run.sh's 5300.
    const byEnv = await cli(['resolve', 'res.home.arpa'], { ...env, DNSPROXY_DNS_PORT: String(c.dnsPort) });
    expect(byEnv.code, byEnv.stderr).to.equal(0);
    expect(byEnv.stdout).to.include('192.0.2.44');
    const nx = await cli(['--json', 'resolve', 'nope.home.arpa', '--port', String(c.dnsPort)], env);
    expect(nx.code).to.equal(1);
    expect(JSON.parse(nx.stdout).rcode).to.equal('NXDOMAIN');
  });

  it('token create (with a scope), list and revoke', async () => {
    const made = JSON.parse((await cli(['--json', 'token', 'create', 'ci'], env)).stdout);
    expect(made.token).to.match(/^dp_/);
    expect(made.scope).to.equal('write');
    expect((await cli(['list'], { ...env, DNSPROXY_TOKEN: made.token })).code).to.equal(0);
    const ro = await cli(['token', 'create', 'ro', '--scope', 'read'], env);
    expect(ro.stdout).to.match(/^token [0-9a-f]+ \(ro, scope read\), shown once:\ndp_/);
    const roToken = ro.stdout.trim().split('\n')[1]!;
    const denied = await cli(['add-record', 'ro-test', '192.0.2.1'], { ...env, DNSPROXY_TOKEN: roToken });
    expect(denied.code).to.equal(1);
    expect(denied.stderr).to.include('needs a token with scope write (this token has scope read)').and.include('forbidden, HTTP 403');
    expect((await cli(['token', 'create', 'x', '--scope', 'root'], env)).code).to.equal(2);
    const list = await cli(['token', 'list'], env);
    expect(list.stdout).to.match(/^ID\s+NAME\s+SCOPE\s+CREATED\s+LAST USED/);
    expect(list.stdout).to.match(/\bbootstrap\s+admin\b/).and.match(/\bci\s+write\b/).and.match(/\bro\s+read\b/);
    expect((await cli(['token', 'revoke', made.id], env)).code).to.equal(0);
    expect((await cli(['list'], { ...env, DNSPROXY_TOKEN: made.token })).code).to.equal(1);
  });
});
