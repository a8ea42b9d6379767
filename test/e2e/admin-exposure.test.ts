// The issue's attack against a real controller and the real Caddy it runs (`caddy_spawn`): a
// route to Caddy's admin API through Caddy's HTTP port. With the default setup the admin API is
// an owner-only unix socket, Caddy's only TCP listener is listen_ip:http_port, and neither
// `Host: localhost:2019` nor any route reaches the admin API; with a loopback TCP admin set
// explicitly, the route to it is refused and a row already in the database is left out.
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { adminRequest, freePorts, hasCaddy, request, startBackend, tcpListeners, type Backend } from '../helpers/caddy.js';
import { cli, startController, TOKEN, type Running } from '../helpers/controller.js';
import { within } from '../helpers/supervisor.js';
import { tempDir } from '../helpers/tmp.js';
import { DB_FILE } from '../../src/store/db.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

/** PID of the `caddy` process the controller spawned (its child; `sh -c 'umask 077 && exec caddy …'` keeps the pid). */
function childCaddy(ppid: number): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const [, comm, rest] = /^\d+ \((.*)\) (.*)$/s.exec(stat) ?? [];
      if (comm === 'caddy' && Number(rest?.split(' ')[1]) === ppid) return Number(d);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** A route row written straight into the database, as one stored before the checks existed would be. */
function insertRoute(dataDir: string, id: string, hosts: string[], upstreams: string[]): void {
  const db = new Database(join(dataDir, DB_FILE));
  try {
    const at = new Date().toISOString();
    db.prepare('INSERT INTO routes (id, hosts, path, upstreams, tls, health_path, created_at, updated_at) VALUES (?, ?, NULL, ?, ?, NULL, ?, ?)').run(id, JSON.stringify(hosts), JSON.stringify(upstreams), 'off', at, at);
  } finally {
    db.close();
  }
}

describe("e2e: Caddy's admin API is not reachable through Caddy", function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  let c: Running | undefined;
  let backend: Backend;
  let httpPort = 0;
  let httpsPort = 0;
  let apiPort = 0;
  const via = (host: string, path = '/') => request({ port: httpPort, host, path });
  const post = async (url: string, body: object) => {
    const res = await fetch(`${c!.apiUrl}${url}`, { method: 'POST', headers: auth, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as { error?: { fields?: { path: string; message: string }[] }; route?: { id: string } } };
  };
  const routeStatus = async (id: string) =>
    ((await (await fetch(`${c!.apiUrl}/api/v1/routes/${id}`, { headers: auth })).json()) as { route: { status: string; error: string | null } }).route;

  before(async function () {
    if (!hasCaddy()) return this.skip();
    backend = await startBackend('app');
  });
  beforeEach(async () => {
    tmp = tempDir('dnsproxy-exposure-');
    [httpPort, httpsPort, apiPort] = (await freePorts(3)) as [number, number, number];
  });
  afterEach(async () => {
    await c?.stop();
    c = undefined;
    tmp?.cleanup();
  });
  after(async () => backend?.close());

  it('default setup: owner-only admin socket, no TCP admin, Host: localhost:2019 gets the catch-all, such routes are refused or left out', async () => {
    const data = join(tmp.dir, 'data');
    // No DNSPROXY_CADDY_ADMIN: the default. '' reads as unset.
    c = await startController(data, { DNSPROXY_CADDY_SPAWN: '1', DNSPROXY_CADDY_ADMIN: '', DNSPROXY_HTTP_PORT: String(httpPort), DNSPROXY_HTTPS_PORT: String(httpsPort) }, { apiPort });
    await within(15_000, async () => (await via('nothing.home.arpa')).status === 404);

    const socket = join(data, 'run', 'caddy-admin.sock');
    expect((statSync(socket).mode & 0o777).toString(8), 'admin socket mode').to.equal('700');
    expect((statSync(join(data, 'run')).mode & 0o777).toString(8), 'admin socket directory mode').to.equal('700');
    // The pushed config keeps admin.listen as the socket; Caddy's only TCP listener is listen_ip:http_port.
    expect(JSON.parse((await adminRequest({ socket }, 'GET', '/config/admin/listen')).text)).to.equal(`unix/${socket}`);
    const caddyPid = childCaddy(c.proc.pid!);
    expect(caddyPid, 'the controller runs its Caddy').to.be.a('number');
    expect(tcpListeners(caddyPid!)).to.deep.equal([`127.0.0.1:${httpPort}`]);

    // The issue's request, with and without a route: the catch-all answers, not the admin API.
    for (const host of ['localhost:2019', 'localhost', '127.0.0.1:2019', `127.0.0.1:${httpPort}`]) {
      const res = await via(host, '/config/');
      expect(res.status, host).to.equal(404);
      expect(res.body, host).to.equal('no route for this host');
    }
    const issue = await post('/api/v1/routes', { hosts: ['localhost'], upstreams: ['127.0.0.1:2019'] });
    expect(issue.status).to.equal(400);
    expect(issue.body.error?.fields?.map((f) => f.path)).to.deep.equal(['hosts.0']);
    // The socket itself is no upstream: not host:port.
    const toSocket = await post('/api/v1/routes', { hosts: ['admin.home.arpa'], upstreams: [`unix/${socket}`] });
    expect(toSocket.status).to.equal(400);
    expect(toSocket.body.error?.fields?.map((f) => f.path)).to.deep.equal(['upstreams.0']);
    const toApi = await post('/api/v1/routes', { hosts: ['api.home.arpa'], upstreams: [`127.0.0.1:${apiPort}`] });
    expect(toApi.body.error?.fields?.[0]?.message).to.match(/is this node's HTTP API \(api_port\)/);

    // Rows already in the database: left out by render, shown in error, never served.
    insertRoute(data, 'api:0ld10ca1', ['localhost'], [backend.dial]);
    insertRoute(data, 'api:0ld0a0a1', ['api.home.arpa'], [`127.0.0.1:${apiPort}`]);
    const ok = await post('/api/v1/routes', { hosts: ['app.home.arpa'], upstreams: [backend.dial] }); // a change makes the controller read the table again
    expect(ok.status).to.equal(201);
    await within(5000, async () => (await via('app.home.arpa')).body.includes('"backend":"app"'));
    expect(await routeStatus('api:0ld10ca1')).to.include({ status: 'error', error: 'host localhost always means this host (RFC 6761); a route must not serve it' });
    expect((await routeStatus('api:0ld0a0a1')).error).to.equal(`upstream 127.0.0.1:${apiPort} is this node's HTTP API (api_port): a route must not reach dnsproxy's own listeners`);
    expect((await via('localhost:2019', '/config/')).body).to.equal('no route for this host');
    expect((await via('api.home.arpa', '/api/v1/records')).body).to.equal('no route for this host');
  });

  it('serve refuses a non-loopback caddy_admin, and a data dir too deep for the default socket, with exit 2 and one line', async () => {
    const wide = await cli(['serve', '--data-dir', join(tmp.dir, 'data'), '--caddy-admin', '0.0.0.0:2019']);
    expect(wide.code).to.equal(2);
    expect(wide.stderr).to.match(/caddy_admin: must be unix\/<absolute path> or a loopback host:port .*on the network \(from --caddy-admin\)/);
    const deep = await cli(['serve', '--data-dir', join(tmp.dir, 'd'.repeat(100))], { DNSPROXY_CADDY_ADMIN: '' });
    expect(deep.code).to.equal(2);
    expect(deep.stderr).to.match(/caddy_admin: default unix\/.* is longer than 107 bytes .*; set caddy_admin/);
    for (const r of [wide, deep]) expect(r.stderr.trim().split('\n')).to.have.length(1);
  });

  it('loopback TCP admin set explicitly: the route to it is refused, a stored one is left out, Caddy still answers only the controller', async () => {
    const data = join(tmp.dir, 'data');
    const [adminPort] = (await freePorts(1)) as [number];
    const admin = `127.0.0.1:${adminPort}`;
    c = await startController(data, { DNSPROXY_CADDY_SPAWN: '1', DNSPROXY_CADDY_ADMIN: admin, DNSPROXY_HTTP_PORT: String(httpPort), DNSPROXY_HTTPS_PORT: String(httpsPort) }, { apiPort });
    await within(15_000, async () => (await via('nothing.home.arpa')).status === 404);
    expect(tcpListeners(childCaddy(c.proc.pid!)!)).to.deep.equal([admin, `127.0.0.1:${httpPort}`].sort());

    const refused = await post('/api/v1/routes?dry_run=true', { hosts: ['admin.home.arpa'], upstreams: [admin] });
    expect(refused.status).to.equal(400);
    expect(refused.body.error?.fields).to.deep.equal([{ path: 'upstreams.0', message: `${admin} is this node's Caddy admin API (caddy_admin): a route must not reach dnsproxy's own listeners` }]);
    const legacy = await post('/add-record', { service_name: 'a', name: 'a', proxy_enabled: true, forward_to_ip: 'localhost', port: adminPort });
    expect(legacy.status).to.equal(400);

    // The issue's exact route, already stored: left out, so neither Host reaches the admin API.
    insertRoute(data, 'api:0ld0ad01', ['localhost'], [admin]);
    insertRoute(data, 'api:0ld0ad02', ['admin.home.arpa'], [admin]);
    expect((await post('/api/v1/routes', { hosts: ['app.home.arpa'], upstreams: [backend.dial] })).status).to.equal(201);
    await within(5000, async () => (await via('app.home.arpa')).body.includes('"backend":"app"'));
    for (const [host, id] of [['localhost:2019', 'api:0ld0ad01'], [`localhost:${adminPort}`, 'api:0ld0ad01'], ['admin.home.arpa', 'api:0ld0ad02']] as const) {
      const res = await via(host, '/config/');
      expect(res.status, host).to.equal(404);
      expect(res.body, host).to.equal('no route for this host');
      expect((await routeStatus(id)).status).to.equal('error');
    }
    // The admin API still belongs to the controller: its listen address unchanged, no file_server anywhere.
    const running = JSON.parse((await adminRequest({ port: adminPort }, 'GET', '/config/')).text) as { admin: { listen: string } };
    expect(running.admin.listen).to.equal(admin);
    expect(JSON.stringify(running)).not.to.include('file_server');
  });
});
