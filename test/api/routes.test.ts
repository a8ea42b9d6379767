import { expect } from 'chai';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: /api/v1/routes, plan, dry runs', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  const req = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });
  const llm = { service_name: 'llm', name: 'llm', ip: '100.1.1.1', port: 8080, forward_to_ip: '100.2.2.2', proxy_enabled: true };

  it('creates an explicit route (pending until applied) and lists it beside record-derived ones', async () => {
    const res = await req('POST', '/api/v1/routes', { hosts: ['App.Home.Arpa.'], upstreams: ['192.0.2.5:3000', '192.0.2.6:3000'], tls: 'internal', path: '/ui/' });
    expect(res.statusCode, res.body).to.equal(201);
    const route = res.json().route;
    expect(route).to.include({ source: 'api', status: 'pending', path: '/ui', tls: 'internal' });
    expect(route.id).to.match(/^api:[0-9a-f]{8}$/);
    expect(route.hosts).to.deep.equal(['app.home.arpa']);
    await req('POST', '/add-record', llm);
    const list = (await req('GET', '/api/v1/routes')).json().routes;
    expect(list.map((r: { id: string }) => r.id)).to.deep.equal([route.id, 'record:llm.home.arpa']);
    expect(list[1]).to.deep.include({ source: 'record', hosts: ['llm.home.arpa'], upstreams: ['100.2.2.2:8080'], tls: 'off' });
  });

  it('reports the status the reconciler gave, and pending again after a change', async () => {
    const id = (await req('POST', '/api/v1/routes', { hosts: ['a.home.arpa'], upstreams: ['192.0.2.5:80'] })).json().route.id;
    f.proxy.report(new Map([[id, { status: 'error' as const, error: 'caddy said no' }]]));
    expect((await req('GET', `/api/v1/routes/${id}`)).json().route).to.include({ status: 'error', error: 'caddy said no' });
    await req('PUT', `/api/v1/routes/${id}`, { hosts: ['a.home.arpa'], upstreams: ['192.0.2.6:80'] });
    expect((await req('GET', `/api/v1/routes/${id}`)).json().route).to.include({ status: 'pending', error: null });
  });

  it('resolves upstream names in our zones through our records; an unresolvable one is an error status', async () => {
    await req('POST', '/api/v1/records', { name: 'nas', type: 'A', values: ['192.0.2.20', '192.0.2.21'] });
    const ok = (await req('POST', '/api/v1/routes', { hosts: ['files.home.arpa'], upstreams: ['nas.home.arpa:5000', 'laptop:8000'] })).json().route;
    expect(f.proxy.build().routes.find((r) => r.id === ok.id)?.upstreams).to.deep.equal(['192.0.2.20:5000', '192.0.2.21:5000', 'laptop:8000']);
    const bad = (await req('POST', '/api/v1/routes', { hosts: ['x.home.arpa'], upstreams: ['ghost.home.arpa:80'] })).json().route;
    expect(bad.status).to.equal('error');
    expect(bad.error).to.include('ghost.home.arpa has no A or AAAA record');
    expect(f.proxy.build().routes.map((r) => r.id)).not.to.include(bad.id);
  });

  it('a change to an upstream name\'s record re-resolves the route; routes nothing changed keep their object (per-route caches)', async () => {
    await req('POST', '/api/v1/records', { name: 'nas', type: 'A', values: ['192.0.2.20'] });
    const byName = (await req('POST', '/api/v1/routes', { hosts: ['files.home.arpa'], upstreams: ['nas.home.arpa:5000'] })).json().route.id as string;
    const literal = (await req('POST', '/api/v1/routes', { hosts: ['b.home.arpa'], upstreams: ['192.0.2.5:80'] })).json().route.id as string;
    const find = (id: string) => f.proxy.build().routes.find((r) => r.id === id);
    const [named0, literal0] = [find(byName), find(literal)];
    expect((await req('PUT', '/api/v1/records/nas.home.arpa/A', { name: 'nas', type: 'A', values: ['192.0.2.30'] })).statusCode).to.equal(200);
    expect(find(byName)?.upstreams).to.deep.equal(['192.0.2.30:5000']);
    expect(find(byName)).not.to.equal(named0);
    expect(find(literal)).to.equal(literal0);
    expect((await req('DELETE', '/api/v1/records/nas.home.arpa/A')).statusCode).to.be.within(200, 204);
    expect(find(byName)).to.equal(undefined);
    expect((await req('GET', `/api/v1/routes/${byName}`)).json().route.error).to.include('nas.home.arpa has no A or AAAA record');
  });

  it('409 when a host is already served, in either direction; record routes change through their record', async () => {
    await req('POST', '/add-record', llm);
    const clash = await req('POST', '/api/v1/routes', { hosts: ['llm.home.arpa'], upstreams: ['192.0.2.5:80'] });
    expect(clash.statusCode).to.equal(409);
    expect(clash.json().error.message).to.include('already served by route record:llm.home.arpa');
    expect((await req('POST', '/api/v1/routes', { hosts: ['llm.home.arpa'], path: '/api', upstreams: ['192.0.2.5:80'] })).statusCode).to.equal(201);
    await req('POST', '/api/v1/routes', { hosts: ['web.home.arpa'], upstreams: ['192.0.2.5:80'] });
    const back = await req('POST', '/add-record', { ...llm, name: 'web', service_name: 'web' });
    expect(back.statusCode).to.equal(409);
    expect(f.records.get('web.home.arpa.', 'A')).to.equal(undefined);
    const del = await req('DELETE', '/api/v1/routes/record:llm.home.arpa');
    expect(del.statusCode).to.equal(409);
    expect(del.json().error.message).to.include('follows its DNS record');
  });

  const injections: [string, object, string][] = [
    ['a Caddyfile block in a host', { hosts: ['a.home.arpa {\n}'], upstreams: ['192.0.2.5:80'] }, 'hosts.0'],
    ['quotes in a host', { hosts: ['"a.home.arpa"'], upstreams: ['192.0.2.5:80'] }, 'hosts.0'],
    ['a placeholder in a host', { hosts: ['{$ENV}.home.arpa'], upstreams: ['192.0.2.5:80'] }, 'hosts.0'],
    ['a placeholder in an upstream', { hosts: ['a.home.arpa'], upstreams: ['{env.HOME}:80'] }, 'upstreams.0'],
    ['a newline in an upstream', { hosts: ['a.home.arpa'], upstreams: ['192.0.2.5:80\nrespond 200'] }, 'upstreams.0'],
    ['a brace in a path', { hosts: ['a.home.arpa'], upstreams: ['192.0.2.5:80'], path: '/a}' }, 'path'],
    ['a bad escape in a health path', { hosts: ['a.home.arpa'], upstreams: ['192.0.2.5:80'], health_path: '/%zz' }, 'health_path'],
    ['an unknown tls mode', { hosts: ['a.home.arpa'], upstreams: ['192.0.2.5:80'], tls: 'self' }, 'tls'],
    ['no upstreams', { hosts: ['a.home.arpa'], upstreams: [] }, 'upstreams'],
    ['a short-form IPv4 host ("127.1" is 127.0.0.1 to inet_aton)', { hosts: ['a.home.arpa'], upstreams: ['127.1:2019'] }, 'upstreams.0'],
    ['a decimal IPv4 host', { hosts: ['a.home.arpa'], upstreams: ['2130706433:2019'] }, 'upstreams.0'],
    ['a hexadecimal IPv4 host', { hosts: ['a.home.arpa'], upstreams: ['0x7f000001:2019'] }, 'upstreams.0'],
    ['an octal dotted IPv4 host', { hosts: ['a.home.arpa'], upstreams: ['0177.0.0.1:2019'] }, 'upstreams.0'],
    ['"_" in a host', { hosts: ['a.home.arpa', 'my_app.home.arpa'], upstreams: ['192.0.2.5:80'] }, 'hosts.1'],
    ...['app.home.arpa', 'nas.internal', 'nas.lan', 'printer.local', 'app.localhost', 'a.test', 'a.invalid', 'www.example', 'nas', '192.0.2.5', '*.example.com'].map(
      (host): [string, object, string] => [`tls acme for ${host}`, { hosts: ['public.example.com', host], upstreams: ['192.0.2.5:80'], tls: 'acme' }, 'tls'],
    ),
  ];
  for (const [what, body, field] of injections) {
    it(`400 for ${what} (field "${field}")`, async () => {
      const res = await req('POST', '/api/v1/routes', body);
      expect(res.statusCode).to.equal(400);
      expect(res.json().error.fields.map((x: { path: string }) => x.path)).to.include(field);
      expect(f.routes.list()).to.have.length(0);
    });
  }

  // Every view of the routes and records that once went down with one bad row.
  const allViewsAnswer = async () => {
    for (const url of ['/api/v1/routes', '/api/v1/plan', '/api/v1/caddyfile', '/api/v1/records', '/list-records', '/api/v1/zones/home.arpa/export'])
      expect((await req('GET', url)).statusCode, url).to.equal(200);
  };

  for (const [field, value] of [['path', '//'], ['path', '/./'], ['path', '/a/../b'], ['path', '/a//b'], ['health_path', '//'], ['health_path', '/..']] as const) {
    it(`400 for ${field} ${JSON.stringify(value)} on POST and PUT; nothing stored, every list still answers`, async () => {
      const body = { hosts: ['bad.home.arpa'], upstreams: ['192.0.2.5:80'] };
      const posted = await req('POST', '/api/v1/routes', { ...body, [field]: value });
      expect(posted.statusCode, posted.body).to.equal(400);
      expect(posted.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal([field]);
      expect(f.db.prepare('SELECT count(*) FROM routes').pluck().get()).to.equal(0);
      const id = (await req('POST', '/api/v1/routes', body)).json().route.id as string;
      const put = await req('PUT', `/api/v1/routes/${id}`, { ...body, [field]: value });
      expect(put.statusCode, put.body).to.equal(400);
      expect((await req('GET', `/api/v1/routes/${id}`)).json().route).to.include({ path: null, health_path: null });
      await allViewsAnswer();
      expect((await req('POST', '/add-record', llm)).statusCode).to.equal(201);
    });
  }

  it('a stored route that no longer parses is listed with status error and the reason, never served, and can be replaced or removed', async () => {
    // What the old code stored for path "//": an empty path, which no schema accepts.
    f.db.prepare(`INSERT INTO routes (id, hosts, path, upstreams, tls, health_path, created_at, updated_at) VALUES ('api:00000000', '["bad.home.arpa"]', '', '["192.0.2.5:80"]', 'off', NULL, 't', 't')`).run();
    const created = await req('POST', '/api/v1/routes', { hosts: ['good.home.arpa'], upstreams: ['192.0.2.5:80'] });
    expect(created.statusCode, created.body).to.equal(201);
    const good = created.json().route.id as string;
    await allViewsAnswer();
    const listed = (await req('GET', '/api/v1/routes')).json().routes as { id: string; status: string; error: string | null; hosts: string[] }[];
    expect(listed.map((r) => r.id)).to.deep.equal(['api:00000000', good]);
    expect(listed[0]).to.deep.include({ status: 'error', hosts: ['bad.home.arpa'] });
    expect(listed[0]?.error).to.match(/does not parse \(path: .*\)/);
    expect((await req('GET', '/api/v1/routes/api:00000000')).json().route.status).to.equal('error');
    expect(f.proxy.desired().routes.map((r) => r.id)).to.deep.equal([good]);
    expect((await req('GET', '/api/v1/caddyfile')).body).not.to.include('bad.home.arpa');
    expect((await req('POST', '/add-record', llm)).statusCode).to.equal(201);
    const repaired = await req('PUT', '/api/v1/routes/api:00000000', { hosts: ['bad.home.arpa'], upstreams: ['192.0.2.5:80'], path: '/ok' });
    expect(repaired.statusCode, repaired.body).to.equal(200);
    expect(repaired.json().route).to.include({ status: 'pending', path: '/ok' });
    f.db.prepare(`UPDATE routes SET upstreams = 'not json' WHERE id = 'api:00000000'`).run();
    expect((await req('GET', '/api/v1/routes/api:00000000')).json().route.error).to.include('unreadable');
    expect((await req('DELETE', '/api/v1/routes/api:00000000')).statusCode).to.equal(204);
    await allViewsAnswer();
  });

  it('tls acme for a public name is taken; the refusal says to use tls internal', async () => {
    expect((await req('POST', '/api/v1/routes', { hosts: ['public.example.com'], upstreams: ['192.0.2.5:80'], tls: 'acme' })).statusCode).to.equal(201);
    const res = await req('POST', '/api/v1/routes', { hosts: ['app.home.arpa'], upstreams: ['192.0.2.5:80'], tls: 'acme' });
    expect(res.json().error.fields).to.deep.equal([{ path: 'tls', message: 'acme: no public CA issues a certificate for app.home.arpa (.arpa is not a public domain); use tls internal (Caddy\'s own CA; trust its root on your devices) for private names' }]);
    expect((await req('POST', '/api/v1/routes', { hosts: ['app.home.arpa'], upstreams: ['192.0.2.5:80'], tls: 'internal' })).statusCode).to.equal(201);
  });

  it('an acme route for a private name stored before the check is an error, left out of Caddy\'s config', async () => {
    const { route } = f.routes.put({ hosts: ['old.home.arpa'], upstreams: ['192.0.2.5:80'], tls: 'acme' });
    expect((await req('GET', `/api/v1/routes/${route.id}`)).json().route).to.deep.include({ status: 'error' });
    expect((await req('GET', `/api/v1/routes/${route.id}`)).json().route.error).to.include('no public CA issues a certificate for old.home.arpa');
    expect(f.proxy.build().routes).to.deep.equal([]);
  });

  it('?dry_run=true shows the DNS and route plan and applies nothing', async () => {
    const heard: unknown[] = [];
    f.records.onChange((c) => heard.push(c));
    f.routes.onChange(() => heard.push('route'));
    const res = await req('POST', '/add-record?dry_run=true', llm);
    expect(res.statusCode).to.equal(200);
    const { plan } = res.json();
    expect(plan.dns).to.deep.equal({ added: ['llm.home.arpa. A'], changed: [], removed: [] });
    expect(plan.routes.added.map((r: { id: string }) => r.id)).to.deep.equal(['record:llm.home.arpa']);
    const route = await req('POST', '/api/v1/routes?dry_run=true', { hosts: ['b.home.arpa'], upstreams: ['192.0.2.5:80'] });
    expect(route.json().plan.routes.added).to.have.length(1);
    expect(f.records.count()).to.equal(0);
    expect(f.routes.list()).to.have.length(0);
    expect(heard).to.have.length(0);
    await req('POST', '/add-record', llm);
    const removal = (await req('DELETE', '/api/v1/records/llm/A?dry_run=true')).json().plan;
    expect(removal.dns.removed).to.deep.equal(['llm.home.arpa. A']);
    expect(removal.routes.removed.map((r: { id: string }) => r.id)).to.deep.equal(['record:llm.home.arpa']);
    expect(f.records.count()).to.equal(1);
  });

  it('GET /api/v1/plan diffs desired routes against what Caddy runs', async () => {
    await req('POST', '/add-record', llm);
    let body = (await req('GET', '/api/v1/plan')).json();
    expect(body.plan.routes.added.map((r: { id: string }) => r.id)).to.deep.equal(['record:llm.home.arpa']);
    f.applied.value = f.proxy.desired();
    await req('POST', '/add-record', { ...llm, port: 9090 });
    body = (await req('GET', '/api/v1/plan')).json();
    expect(body.plan.routes.added).to.have.length(0);
    expect(body.plan.routes.changed[0].after.upstreams).to.deep.equal(['100.2.2.2:9090']);
    expect(body).to.include({ caddy_up: true, in_sync: true });
  });

  it('404 for unknown routes, 400 for malformed ids', async () => {
    expect((await req('GET', '/api/v1/routes/api:deadbeef')).statusCode).to.equal(404);
    expect((await req('DELETE', '/api/v1/routes/api:deadbeef')).statusCode).to.equal(404);
    expect((await req('GET', '/api/v1/routes/x y')).statusCode).to.equal(400);
  });
});

describe('api: plain names (dynamic mode) and whether a change reloads Caddy', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture({ resolver: 'udp/127.0.0.1:5300' })));
  afterEach(async () => f.close());

  const req = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });
  const llm = { service_name: 'llm', name: 'llm', ip: '100.1.1.1', port: 8080, forward_to_ip: '100.2.2.2', proxy_enabled: true };

  it('a plain record is mode dynamic and its dry run needs no reload; an explicit route is and does', async () => {
    const dry = (await req('POST', '/add-record?dry_run=true', llm)).json();
    expect(dry.plan.caddy_reload).to.equal(false);
    expect(dry.plan.routes.added.map((r: { id: string }) => r.id)).to.deep.equal(['record:llm.home.arpa']);
    await req('POST', '/add-record', llm);
    expect((await req('GET', '/api/v1/routes/record:llm.home.arpa')).json().route).to.include({ mode: 'dynamic' });
    await f.pipeline.settled();
    expect(f.plain.has('llm.home.arpa')).to.equal(true);
    // Nothing explicit pending: the plan has no Caddy changes.
    f.applied.value = f.proxy.desired();
    expect((await req('GET', '/api/v1/plan')).json().plan).to.deep.include({ caddy_reload: false, routes: { added: [], changed: [], removed: [] } });

    const route = (await req('POST', '/api/v1/routes?dry_run=true', { hosts: ['llm.home.arpa'], path: '/admin', upstreams: ['192.0.2.5:80'] })).json();
    expect(route.plan.caddy_reload).to.equal(true);
    const made = (await req('POST', '/api/v1/routes', { hosts: ['llm.home.arpa'], path: '/admin', upstreams: ['192.0.2.5:80'] })).json().route;
    expect(made).to.include({ mode: 'explicit' });
    // The record's name is claimed by an explicit route now: it is explicit too, and the plan shows the reload.
    expect((await req('GET', '/api/v1/routes/record:llm.home.arpa')).json().route).to.include({ mode: 'explicit' });
    const plan = (await req('GET', '/api/v1/plan')).json().plan;
    expect(plan.caddy_reload).to.equal(true);
    expect(plan.routes.added.map((r: { id: string }) => r.id).sort()).to.deep.equal([made.id, 'record:llm.home.arpa'].sort());
    await f.pipeline.settled();
    expect(f.plain.has('llm.home.arpa')).to.equal(false);
  });

  it('a plain record whose upstream is a name outside our zones stays explicit', async () => {
    const res = await req('POST', '/api/v1/records', { name: 'nas', type: 'A', values: ['100.1.1.2'], proxy: { enabled: true, upstreams: ['nas.tailnet.example:5000'] } });
    expect(res.statusCode, res.body).to.equal(201);
    expect((await req('GET', '/api/v1/routes/record:nas.home.arpa')).json().route).to.include({ mode: 'explicit' });
  });
});
