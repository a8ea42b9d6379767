// The README tour and the durability promise, against the real process.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { BIN, dig, eachTempDir, startController, TOKEN, type Running } from '../helpers/controller.js';
import { ZoneIndex } from '../../src/dns/zone.js';
import { decode, frame, query, rec, startServer, tcpExchange, udpExchange } from '../dns/fixture.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const llm = { service_name: 'llm', name: 'llm', ip: '100.1.1.1', port: 8080, forward_to_ip: '100.2.2.2', proxy_enabled: true };

describe('e2e: dnsproxy serve', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  let c: Running | undefined;
  eachTempDir((t) => (tmp = t), () => c);

  it('add-record → dig answers with aa; unknown names are NXDOMAIN with the SOA', async function () {
    c = await startController(tmp.dir);
    const res = await fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify(llm) });
    expect(res.status).to.equal(201);
    const answer = await dig(c.dnsPort, ['llm.home.arpa', 'A']);
    if (answer === undefined) return this.skip();
    expect(answer).to.match(/flags: qr aa/);
    expect(answer).to.match(/^llm\.home\.arpa\.\s+\d+\s+IN\s+A\s+100\.1\.1\.1$/m);
    const nope = await dig(c.dnsPort, ['nope.home.arpa', 'A']);
    expect(nope).to.include('status: NXDOMAIN');
    expect(nope).to.match(/AUTHORITY SECTION:\nhome\.arpa\.\s+\d+\s+IN\s+SOA\s/);
  });

  it('split horizon: a view client (127.0.0.2) gets its values over UDP and TCP, before and after a restart', async () => {
    c = await startController(tmp.dir);
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${c!.apiUrl}${path}`, { method: 'POST', headers: auth, body: JSON.stringify(body) });
      expect(res.status, await res.clone().text()).to.equal(201);
    };
    await post('/api/v1/views', { name: 'tailnet', cidrs: ['100.64.0.0/10', '127.0.0.2'] });
    await post('/api/v1/records', { name: 'nas', type: 'A', values: ['192.0.2.20'], views: { tailnet: { values: ['100.64.0.5'] } } });
    const ask = async (from: string, tcp = false) => {
      const q = query('nas.home.arpa', 'A');
      const reply = tcp ? (await tcpExchange(c!.dnsPort, frame(q), 1, 3000, from))[0] : await udpExchange(c!.dnsPort, q, 3000, from);
      return decode(reply).answers.map((a) => a.data);
    };
    for (const tcp of [false, true]) {
      expect(await ask('127.0.0.2', tcp)).to.deep.equal(['100.64.0.5']);
      expect(await ask('127.0.0.1', tcp)).to.deep.equal(['192.0.2.20']);
    }
    await c.kill();
    c = await startController(tmp.dir);
    expect(await ask('127.0.0.2')).to.deep.equal(['100.64.0.5']);
    expect(await ask('127.0.0.3', true)).to.deep.equal(['192.0.2.20']);
  });

  it('a record acknowledged with 201 survives SIGKILL the next instant', async function () {
    c = await startController(tmp.dir);
    const names = Array.from({ length: 20 }, (_, i) => `svc${i}`);
    for (const name of names) {
      const res = await fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify({ ...llm, name, service_name: name }) });
      expect(res.status).to.equal(201);
    }
    await c.kill();
    c = await startController(tmp.dir);
    const list = (await (await fetch(`${c.apiUrl}/list-records`, { headers: auth })).json()) as { records: { name: string }[] };
    expect(list.records.map((r) => r.name).sort()).to.deep.equal(names.map((n) => `${n}.home.arpa`).sort());
    const answer = await dig(c.dnsPort, ['svc19.home.arpa', 'A', '+short']);
    if (answer !== undefined) expect(answer.trim()).to.equal('100.1.1.1');
  });

  it('/metrics counts the stored record sets per zone, as of the scrape', async () => {
    c = await startController(tmp.dir);
    const counted = async () => Number(/^dnsproxy_records\{zone="home\.arpa\."\} (\d+)$/m.exec(await (await fetch(`${c!.apiUrl}/metrics`)).text())?.[1]);
    const stored = async () => ((await (await fetch(`${c!.apiUrl}/api/v1/records`, { headers: auth })).json()) as { records: unknown[] }).records.length;
    const seen = [await counted()];
    await fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify(llm) });
    expect(await counted()).to.equal(await stored());
    seen.push(await counted());
    await fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify({ ...llm, name: 'two', service_name: 'two' }) });
    expect(await counted()).to.equal(await stored());
    seen.push(await counted());
    expect((await fetch(`${c.apiUrl}/remove-record?name=llm`, { method: 'DELETE', headers: { authorization: auth.authorization } })).status).to.equal(200);
    expect(await counted()).to.equal(await stored());
    seen.push(await counted());
    expect(seen[1]).to.be.greaterThan(seen[0]!);
    expect(seen[2]).to.be.greaterThan(seen[1]!);
    expect(seen[3]).to.be.lessThan(seen[2]!);
  });

  it('logs one JSON line per API request and per change; stops cleanly on SIGTERM', async () => {
    c = await startController(tmp.dir);
    await fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify(llm) });
    expect(await c.stop()).to.equal(0);
    const lines = c.output().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.message === 'request' && l.route === '/add-record')).to.include({ status: 201, module: 'api' });
    expect(lines.find((l) => l.message === 'records changed')).to.deep.include({ zone: 'home.arpa.', upserted: ['llm.home.arpa. A'] });
    expect(c.output()).not.to.include(TOKEN);
  });

  it('generates an admin token on first start, prints it once, and never again', async () => {
    c = await startController(tmp.dir, { DNSPROXY_ADMIN_TOKEN: '' });
    const m = /admin API token \(shown once, stored hashed\): (dp_\S+)/.exec(c.output());
    expect(m, c.output()).to.not.equal(null);
    expect((await fetch(`${c.apiUrl}/list-records`, { headers: { authorization: `Bearer ${m![1]}` } })).status).to.equal(200);
    await c.stop();
    c = await startController(tmp.dir, { DNSPROXY_ADMIN_TOKEN: '' });
    expect(c.output()).not.to.include('admin API token');
  });

  it('forwards names outside our zones only for clients in recursion_allow; our zones answer everyone', async () => {
    const org = 'example.org.';
    const index = new ZoneIndex([{ name: org, nameservers: ['ns1.example.org.'], hostmaster: 'hostmaster.example.org.', nodeIp: '203.0.113.1' }]);
    index.load(org, 1, [rec(org, 'www', { type: 'A', values: ['203.0.113.10'] })]);
    const upstream = await startServer({ index });
    try {
      c = await startController(tmp.dir, { DNSPROXY_UPSTREAMS: `127.0.0.1:${upstream.port}`, DNSPROXY_RECURSION_ALLOW: '127.0.0.1/32' });
      const ask = async (name: string, from: string) => decode(await udpExchange(c!.dnsPort, query(name, 'A'), 2000, from));
      expect((await ask('www.example.org', '127.0.0.1')).answers.map((a) => a.data)).to.deep.equal(['203.0.113.10']);
      expect((await ask('www.example.org', '127.0.0.2')).rcode).to.equal('REFUSED');
      expect((await ask('ns1.home.arpa', '127.0.0.2')).answers.map((a) => a.data)).to.deep.equal(['192.0.2.10']);
      const started = c.output().split('\n').find((l) => l.includes('"dns listening"'));
      expect(JSON.parse(started ?? '{}')).to.deep.include({ recursion_allow: ['127.0.0.1/32'] });
    } finally {
      await upstream.server.stop();
    }
  });

  it('keeps the data dir private: 0700 and 0600 from the first start, loose modes tightened at the next, umask 077', async () => {
    const data = join(tmp.dir, 'data');
    const mode = (f: string) => statSync(join(data, f)).mode & 0o777;
    const files = ['dnsproxy.sqlite', 'dnsproxy.sqlite-wal', 'dnsproxy.sqlite-shm'];
    c = await startController(data);
    expect(readFileSync(`/proc/${c.proc.pid}/status`, 'utf8')).to.match(/^Umask:\s+0077$/m);
    expect((await fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify(llm) })).status).to.equal(201);
    expect([mode('.'), ...files.map(mode)]).to.deep.equal([0o700, 0o600, 0o600, 0o600]);
    // As an older version (or a careless copy) left them; SIGKILL leaves the -wal and -shm files behind.
    await c.kill();
    chmodSync(data, 0o755);
    for (const f of files) chmodSync(join(data, f), 0o644);
    c = await startController(data);
    expect([mode('.'), ...files.map(mode)]).to.deep.equal([0o700, 0o600, 0o600, 0o600]);
    const tightened = c.output().split('\n').filter((l) => l.includes('permissions tightened'));
    expect(tightened.map((l) => (JSON.parse(l) as { path: string; from: string }).from)).to.deep.equal(['0755', '0644', '0644', '0644']);
  });

  it('refuses to start when it cannot make the data dir private (a file of another user)', async function () {
    if (process.getuid?.() !== 0) return this.skip(); // needs root to run as another user
    const nobody = 65534;
    const data = join(tmp.dir, 'data');
    mkdirSync(data, { mode: 0o700 });
    chownSync(tmp.dir, nobody, nobody);
    chownSync(data, nobody, nobody);
    writeFileSync(join(data, 'dnsproxy.sqlite'), '', { mode: 0o644 }); // root's, readable by all
    chmodSync(join(data, 'dnsproxy.sqlite'), 0o644);
    const proc = spawn(BIN, ['serve', '--data-dir', data, '--dns-port', '0', '--api-port', '0'], { uid: nobody, gid: nobody, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    expect(code, out).to.equal(1);
    expect(out).to.include(`${join(data, 'dnsproxy.sqlite')}: mode 0644 lets other users in, and it cannot be changed (EPERM): it belongs to uid 0, this process runs as uid ${nobody}`);
    expect(statSync(join(data, 'dnsproxy.sqlite')).mode & 0o777).to.equal(0o644);
  });

  it('exits non-zero with one line per bad setting', async () => {
    try {
      await startController(tmp.dir, { DNSPROXY_ZONE: 'a b', DNSPROXY_UPSTREAMS: 'x' });
      expect.fail('should not start');
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).to.match(/exited \(2\)/);
      expect(msg).to.include('config: zones.0:');
      expect(msg).to.include('config: upstreams.0:');
    }
  });
});
