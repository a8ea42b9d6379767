// Extra ports: grouping and refusals in render (listen.ts), the PortGuard (fake timers, fake
// probe), the route store round trip, and the real bind probe.
import { expect } from 'chai';
import net from 'node:net';
import { portGroups, portServerName, ownPortProblem } from '../../src/proxy/listen.js';
import { PortGuard, portFree } from '../../src/proxy/ports.js';
import { render } from '../../src/proxy/render.js';
import { splitRoutes } from '../../src/proxy/desired.js';
import { routeInput } from '../../src/model/route.js';
import type { Timers } from '../../src/timers.js';
import { apiFixture } from '../helpers/api.js';
import { desired, route } from './reconcile-fixture.js';

const onPort = (id: string, port: number, tls: 'off' | 'internal' = 'off') => route(id, '127.0.0.1:9000', { listen: { port }, tls });

describe('extra ports', () => {
  it('groups routes per port, leaving out our own ports, the other protocol and blocked ports', () => {
    const d = desired([onPort('a', 9100), onPort('b', 9100), onPort('c', 9100, 'internal'), onPort('d', 8080), onPort('e', 9200), onPort('f', 9300), route('g', '127.0.0.1:9000')]);
    const g = portGroups(d.routes, d.settings, new Map([[9300, 'port 9300 is in use']]));
    expect(g.groups.map((x) => [x.port, x.protocol, x.routes.map((r) => r.id)])).to.deep.equal([
      [9100, 'http', ['a', 'b']],
      [9200, 'http', ['e']],
    ]);
    expect(g.kept.map((r) => r.id)).to.deep.equal(['a', 'b', 'e', 'g']);
    expect(g.skipped.map((s) => s.id)).to.deep.equal(['c', 'd', 'f']);
    expect(g.skipped[0]!.reason).to.match(/served with http by route a/);
    expect(g.skipped[1]!.reason).to.match(/Caddy HTTP port/);
    expect(g.skipped[2]!.reason).to.equal('listen.port: port 9300 is in use');
    expect(ownPortProblem(5555, { ...d.settings, accessLog: 'tcp/127.0.0.1:5555' })).to.match(/stats_port/);
  });

  it('renders one server per port (HTTP without certificates, TLS without redirects) and reports skipped routes', () => {
    const d = desired([onPort('a', 9100), onPort('b', 9100), onPort('t', 9443, 'internal'), onPort('own', 8443)]);
    const out = render(d);
    const servers = (out.config as { apps: { http: { servers: Record<string, { listen: string[]; automatic_https: unknown; routes: { '@id'?: string }[] }> } } }).apps.http.servers;
    expect(Object.keys(servers).sort()).to.deep.equal(['dnsproxy-http', 'dnsproxy-https', portServerName(9100), portServerName(9443)].sort());
    expect(servers[portServerName(9100)]!.listen).to.deep.equal(['127.0.0.1:9100']);
    expect(servers[portServerName(9100)]!.automatic_https).to.deep.equal({ disable: true });
    expect(servers[portServerName(9443)]!.automatic_https).to.deep.equal({ disable_redirects: true });
    expect(servers[portServerName(9100)]!.routes.map((r) => r['@id'])).to.include('dnsproxy-route-a~2').and.include('dnsproxy-port-9100-catch-all');
    expect(out.skipped?.map((s) => s.id)).to.deep.equal(['own']);
    // Removing the last route of a port removes its server.
    const less = render(desired([onPort('t', 9443, 'internal')]));
    expect(Object.keys((less.config as { apps: { http: { servers: object } } }).apps.http.servers)).to.not.include(portServerName(9100));
  });

  it('keeps a route with an extra port explicit, and checks the port range', () => {
    const r = { ...onPort('record:x.home.arpa', 9100), hosts: ['x.home.arpa'] };
    expect(splitRoutes([r], true).explicit).to.have.length(1);
    for (const port of [0, 65536, 1.5]) expect(routeInput.safeParse({ hosts: ['a.b'], upstreams: ['1.2.3.4:80'], listen: { port } }).success, String(port)).to.equal(false);
    expect(routeInput.safeParse({ hosts: ['a.b'], upstreams: ['1.2.3.4:80'], listen: { port: 65535 } }).success).to.equal(true);
  });

  it('PortGuard blocks a port Caddy could not bind, re-checks it on its timer, and unblocks it when free', async () => {
    const pending: (() => void)[] = [];
    const timers: Timers = { setTimeout: (fn) => (pending.push(fn), pending.length), clearTimeout: () => undefined };
    let free = false;
    let changes = 0;
    const guard = new PortGuard({ ip: '127.0.0.1', listenPorts: () => new Set([9100]), onChange: () => changes++, timers, probe: () => Promise.resolve(free) });
    const err = 'http app module: start: listening on 127.0.0.1:9100: listen tcp 127.0.0.1:9100: bind: address already in use';
    guard.saw(new Map([['api:x', { status: 'error', error: 'something else' }]]));
    expect(changes).to.equal(0);
    guard.saw(new Map([['api:1', { status: 'error', error: err }]]));
    guard.saw(new Map([['api:1', { status: 'error', error: err }]])); // already blocked: no second change
    expect(changes).to.equal(1);
    expect([...guard.blocked.keys()]).to.deep.equal([9100]);
    const d = desired([onPort('a', 9100)]);
    expect(guard.apply(d).settings.blockedPorts?.get(9100)).to.match(/in use by another process/);
    // Still held at the first re-check.
    pending.shift()!();
    await new Promise((r) => setImmediate(r));
    expect(guard.blocked.size).to.equal(1);
    free = true;
    pending.shift()!();
    await new Promise((r) => setImmediate(r));
    expect(guard.blocked.size).to.equal(0);
    expect(changes).to.equal(2);
    expect(guard.apply(d)).to.equal(d);
    // A port no route wants is not blocked.
    guard.saw(new Map([['api:2', { status: 'error', error: err.replace(/9100/g, '9999') }]]));
    expect(guard.blocked.size).to.equal(0);
    guard.stop();
  });

  it('portFree binds and closes: false while another socket holds the port', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as net.AddressInfo;
    expect(await portFree('127.0.0.1', port)).to.equal(false);
    await new Promise<void>((r) => srv.close(() => r()));
    expect(await portFree('127.0.0.1', port)).to.equal(true);
  });

  it('exports the port in the state file and applies a changed one', async () => {
    const f = await apiFixture();
    try {
      const res = await f.app.inject({ method: 'POST', url: '/api/v1/routes', headers: f.auth, payload: { hosts: ['st.home.arpa'], upstreams: ['10.0.0.5:80'], listen: { port: 9100 } } });
      const id = res.json<{ route: { id: string } }>().route.id;
      const state = await f.app.inject({ method: 'GET', url: '/api/v1/state', headers: { ...f.auth, accept: 'application/json' } });
      expect(state.body).to.match(/port: 9100|"port":9100/);
      const doc = { version: 1, routes: [{ id, hosts: ['st.home.arpa'], upstreams: ['10.0.0.5:80'], listen: { port: 9200 } }] };
      const applied = await f.app.inject({ method: 'POST', url: '/api/v1/state', headers: f.auth, payload: doc });
      expect(applied.statusCode, applied.body).to.equal(200);
      expect(f.routes.get(id)?.listen).to.deep.equal({ port: 9200 });
      expect(applied.body).to.include(id);
    } finally {
      await f.close();
    }
  });

  it('stores the port with the route, shows it, and refuses what the API must', async () => {
    const f = await apiFixture();
    try {
      const post = (body: object) => f.app.inject({ method: 'POST', url: '/api/v1/routes', headers: f.auth, payload: { upstreams: ['10.0.0.5:80'], ...body } });
      const ok = await post({ hosts: ['p.home.arpa'], listen: { port: 9100 } });
      expect(ok.statusCode, ok.body).to.equal(201);
      const id = ok.json<{ route: { id: string; listen: { port: number } } }>().route.id;
      expect(ok.json<{ route: { listen: { port: number } } }>().route.listen).to.deep.equal({ port: 9100 });
      expect(f.routes.get(id)?.listen).to.deep.equal({ port: 9100 });
      expect((await post({ hosts: ['q.home.arpa'], listen: { port: 9100 } })).statusCode).to.equal(201);
      const clash = await post({ hosts: ['r.home.arpa'], tls: 'internal', listen: { port: 9100 } });
      expect(clash.statusCode).to.equal(409);
      // Changing the route itself to TLS is fine only if no other route holds the port with HTTP.
      const put = await f.app.inject({ method: 'PUT', url: `/api/v1/routes/${id}`, headers: f.auth, payload: { hosts: ['p.home.arpa'], upstreams: ['10.0.0.5:80'], tls: 'internal', listen: { port: 9100 } } });
      expect(put.statusCode).to.equal(409);
      const http = f.proxy.settings.httpPort;
      const own = await post({ hosts: ['s.home.arpa'], listen: { port: http } });
      expect(own.statusCode).to.equal(400);
      expect(own.json<{ error: { fields: { path: string; message: string }[] } }>().error.fields[0]).to.include({ path: 'listen.port' });
      const range = await post({ hosts: ['s.home.arpa'], listen: { port: 70000 } });
      expect(range.statusCode).to.equal(400);
      expect(range.json<{ error: { fields: { path: string }[] } }>().error.fields[0]!.path).to.equal('listen.port');
    } finally {
      await f.close();
    }
  });
});
