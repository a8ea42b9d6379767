// A route may not serve localhost or reach this node's own listeners (Caddy's admin API on TCP,
// the API, DNS, Caddy's ports, the mail relay): explicit routes, proxied records, /add-record and
// their dry runs answer 400 naming the field and store nothing; render() leaves out such a row
// already in the database, or a name in our zones that resolves to this node.
import { expect } from 'chai';
import { render } from '../../src/proxy/render.js';
import { apiFixture, NODE_IP, type ApiFixture } from '../helpers/api.js';

describe("api: routes never reach dnsproxy's own endpoints", () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  const req = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) });
  const fieldsOf = (res: { json(): { error: { fields?: { path: string; message: string }[] } } }) => (res.json().error.fields ?? []).map((x) => `${x.path}: ${x.message}`);
  const ADMIN = "127.0.0.1:2019 is this node's Caddy admin API (caddy_admin): a route must not reach dnsproxy's own listeners";

  it("the issue's route (localhost → the admin address) is 400 naming both fields, for real and as a dry run; nothing is stored", async () => {
    expect(f.proxy.settings.admin, 'the fixture runs the admin API on loopback TCP').to.equal('127.0.0.1:2019');
    for (const url of ['/api/v1/routes', '/api/v1/routes?dry_run=true']) {
      const res = await req('POST', url, { hosts: ['localhost'], upstreams: ['127.0.0.1:2019'] });
      expect(res.statusCode, res.body).to.equal(400);
      expect(res.json().error.code).to.equal('invalid_body');
      expect(fieldsOf(res)).to.deep.equal(['hosts.0: localhost always means this host (RFC 6761); a route must not serve it', `upstreams.0: ${ADMIN}`]);
    }
    expect((await req('GET', '/api/v1/routes')).json().routes).to.deep.equal([]);
  });

  it('each of our listeners on loopback, localhost, node_ip or listen_ip is refused; other loopback ports are fine', async () => {
    const cases: [string, string][] = [
      [`${NODE_IP}:8080`, 'HTTP API (api_port)'],
      ['localhost:53', 'DNS server (dns_port)'],
      ['[::1]:80', 'Caddy HTTP port (http_port)'],
      ['0.0.0.0:443', 'Caddy HTTPS port (https_port)'],
      ['127.0.0.1:25', 'mail relay SMTP port (smtp_port)'],
      ['127.0.0.1:587', 'mail relay submission port (submission_port)'],
    ];
    for (const [upstream, what] of cases) {
      const res = await req('POST', '/api/v1/routes', { hosts: ['x.home.arpa'], upstreams: ['192.0.2.5:80', upstream] });
      expect(res.statusCode, upstream).to.equal(400);
      expect(fieldsOf(res), upstream).to.deep.equal([`upstreams.1: ${upstream} is this node's ${what}: a route must not reach dnsproxy's own listeners`]);
    }
    const ok = await req('POST', '/api/v1/routes', { hosts: ['x.home.arpa'], upstreams: ['127.0.0.1:11434'] });
    expect(ok.statusCode, ok.body).to.equal(201);
    // Changing it to the admin API is refused too, and leaves it as it was.
    const id = ok.json().route.id;
    const put = await req('PUT', `/api/v1/routes/${id}`, { hosts: ['x.home.arpa', '*.localhost'], upstreams: ['127.0.0.1:2019'] });
    expect(fieldsOf(put)).to.deep.equal(['hosts.1: *.localhost always means this host (RFC 6761); a route must not serve it', `upstreams.0: ${ADMIN}`]);
    expect((await req('GET', `/api/v1/routes/${id}`)).json().route.upstreams).to.deep.equal(['127.0.0.1:11434']);
    const loopbackHost = await req('POST', '/api/v1/routes?dry_run=true', { hosts: ['127.0.0.1'], upstreams: ['192.0.2.5:80'] });
    expect(fieldsOf(loopbackHost)).to.deep.equal(['hosts.0: 127.0.0.1 is a loopback address; a route must not serve it']);
  });

  it('proxied records: proxy.upstreams naming a listener is 400 (POST, PUT, dry run); nothing is stored', async () => {
    const record = { name: 'admin', type: 'A', values: ['192.0.2.7'], proxy: { enabled: true, upstreams: ['localhost:2019'] } };
    for (const [method, url] of [['POST', '/api/v1/records'], ['POST', '/api/v1/records?dry_run=true'], ['PUT', '/api/v1/records/admin/A']] as const) {
      const res = await req(method, url, record);
      expect(res.statusCode, `${method} ${url}`).to.equal(400);
      expect(fieldsOf(res)).to.deep.equal([`proxy.upstreams.0: localhost:2019 is this node's Caddy admin API (caddy_admin): a route must not reach dnsproxy's own listeners`]);
    }
    // A disabled proxy block may not keep such an upstream either (enabling it later must not be the only check).
    const off = await req('POST', '/api/v1/records', { ...record, proxy: { enabled: false, upstreams: ['127.0.0.1:2019'] } });
    expect(fieldsOf(off)).to.deep.equal([`proxy.upstreams.0: ${ADMIN}`]);
    expect((await req('GET', '/api/v1/records?proxied=true')).json().records).to.deep.equal([]);
  });

  it('POST /add-record: forward_to_ip:port, ip:port or the node IP:port naming a listener is 400 on that field', async () => {
    const base = { service_name: 'x', name: 'x', proxy_enabled: true };
    const cases: [object, string, string][] = [
      [{ forward_to_ip: '127.0.0.1', port: 2019 }, 'forward_to_ip', ADMIN],
      [{ ip: '127.0.0.1', port: 2019 }, 'ip', ADMIN],
      [{ port: 8080 }, 'port', `${NODE_IP}:8080 is this node's HTTP API (api_port): a route must not reach dnsproxy's own listeners`],
    ];
    for (const [body, field, message] of cases)
      for (const url of ['/add-record', '/add-record?dry_run=true']) {
        const res = await req('POST', url, { ...base, ...body });
        expect(res.statusCode, `${url} ${JSON.stringify(body)}`).to.equal(400);
        expect(fieldsOf(res)).to.deep.equal([`${field}: ${message}`]);
      }
    expect((await req('GET', '/list-records')).json().records).to.deep.equal([]);
    expect((await req('POST', '/add-record', { ...base, forward_to_ip: '127.0.0.1', port: 3000 })).statusCode).to.equal(201);
  });

  it('render leaves out such a route already in the database, and a name in our zones that resolves to this node', async () => {
    // A row written before this check existed (or by hand): straight into the table.
    const at = new Date().toISOString();
    f.db
      .prepare('INSERT INTO routes (id, hosts, path, upstreams, tls, health_path, created_at, updated_at) VALUES (?, ?, NULL, ?, ?, NULL, ?, ?)')
      .run('api:0ld0ld00', JSON.stringify(['localhost']), JSON.stringify(['127.0.0.1:2019']), 'off', at, at);
    // The API cannot see where a name in our zones will point; render checks what it resolves to.
    expect((await req('POST', '/api/v1/records', { name: 'loop', type: 'A', values: ['127.0.0.1'] })).statusCode).to.equal(201);
    const viaName = (await req('POST', '/api/v1/routes', { hosts: ['sneaky.home.arpa'], upstreams: ['loop.home.arpa:2019'] })).json().route.id;
    const fine = (await req('POST', '/api/v1/routes', { hosts: ['fine.home.arpa'], upstreams: ['loop.home.arpa:3000'] })).json().route.id;

    const rendered = render(f.proxy.desired());
    expect(rendered.skipped).to.deep.equal([
      { id: 'api:0ld0ld00', reason: 'host localhost always means this host (RFC 6761); a route must not serve it' },
      { id: viaName, reason: `upstream ${ADMIN}` },
    ].sort((a, b) => (a.id < b.id ? -1 : 1)));
    expect(rendered.warnings).to.include(`route ${viaName} left out: upstream ${ADMIN}`);
    const text = JSON.stringify(rendered.config);
    expect(text).not.to.include('"localhost"');
    expect(text).not.to.include('"dial":"127.0.0.1:2019"');
    expect(text).to.include('"dial":"127.0.0.1:3000"');
    expect(text).to.include('fine.home.arpa');
    expect(f.proxy.build().routes.map((r) => r.id)).to.include(fine);
  });
});
