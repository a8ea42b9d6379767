import { expect } from 'chai';
import { adminTcpPort, ownEndpoints, routeHostProblem, routeOwnProblem, upstreamOwnProblem } from '../../src/model/endpoints.js';

describe('model/endpoints: routes never reach our own listeners', () => {
  const own = ownEndpoints({
    node_ip: '100.64.0.7',
    listen_ip: '100.64.0.7',
    caddy_admin: '127.0.0.1:2019',
    api_port: 8080,
    dns_port: 53,
    http_port: 80,
    https_port: 443,
    smtp_port: 25,
    submission_port: 587,
    smtps_port: 465,
    hostname: 'Node1',
  });

  it('ownEndpoints: every listener with what it is; node_ip, listen_ip and the host name; port 0 and a unix admin name nothing', () => {
    expect(own.ports.map((p) => `${p.port} ${p.what}`)).to.deep.equal([
      '2019 Caddy admin API (caddy_admin)',
      '8080 HTTP API (api_port)',
      '53 DNS server (dns_port)',
      '80 Caddy HTTP port (http_port)',
      '443 Caddy HTTPS port (https_port)',
      '25 mail relay SMTP port (smtp_port)',
      '587 mail relay submission port (submission_port)',
      '465 mail relay implicit-TLS port (smtps_port)',
    ]);
    expect(own.hosts).to.deep.equal(['100.64.0.7', 'node1']);
    const unix = ownEndpoints({ node_ip: '192.0.2.10', listen_ip: '127.0.0.1', caddy_admin: 'unix//run/caddy-admin.sock', api_port: 0, dns_port: 53, http_port: 80, https_port: 443, smtp_port: 25, submission_port: 587 });
    expect(unix.ports.map((p) => p.port)).to.deep.equal([53, 80, 443, 25, 587]);
    expect([adminTcpPort('unix//run/a.sock'), adminTcpPort('[::1]:2019'), adminTcpPort('localhost:19')]).to.deep.equal([null, 2019, 19]);
  });

  const refused = [
    '127.0.0.1:2019', // the route
    '127.0.0.2:8080',
    'localhost:2019',
    'LOCALHOST.:53',
    'admin.localhost:2019',
    '[::1]:8080',
    '[::ffff:127.0.0.1]:2019',
    '0.0.0.0:2019',
    '[::]:25',
    '100.64.0.7:587', // node_ip / listen_ip
    '[::ffff:100.64.0.7]:443',
    'node1:80', // this host's name (127.0.1.1 in Debian's /etc/hosts)
    '127.1:2019', // IPv4 shorthand: getaddrinfo reads these as 127.0.0.1
    '2130706433:2019',
    '0x7f.1:2019',
    '127.0.0.1:465',
  ];
  for (const u of refused)
    it(`refuses upstream ${u}`, () => expect(upstreamOwnProblem(u, own)).to.match(/^.+ is this node's .+ \((caddy_admin|api_port|dns_port|http_port|https_port|smtp_port|submission_port|smtps_port)\): a route must not reach dnsproxy's own listeners$/));

  const allowed = [
    '127.0.0.1:11434', // a local service on another port
    'localhost:3000',
    '100.64.0.8:2019', // another tailnet node
    '192.0.2.5:8080',
    'nas.home.arpa:443', // names are resolved later; render checks what they resolve to in our zones
    '[2001:db8::1]:53',
  ];
  for (const u of allowed) it(`allows upstream ${u}`, () => expect(upstreamOwnProblem(u, own)).to.equal(null));

  it('names the listener in the message', () => {
    expect(upstreamOwnProblem('127.0.0.1:2019', own)).to.equal("127.0.0.1:2019 is this node's Caddy admin API (caddy_admin): a route must not reach dnsproxy's own listeners");
    expect(upstreamOwnProblem('localhost:8080', own)).to.include('HTTP API (api_port)');
  });

  it('refuses route hosts that always mean this host: localhost, *.localhost, loopback and unspecified literals', () => {
    for (const h of ['localhost', 'Localhost.', 'admin.localhost', '*.localhost', 'localhost.localdomain', '127.0.0.1', '127.9.9.9', '0.0.0.0', '[::1]', '::1'])
      expect(routeHostProblem(h), h).to.be.a('string');
    expect(routeHostProblem('localhost')).to.equal('localhost always means this host (RFC 6761); a route must not serve it');
    expect(routeHostProblem('127.0.0.1')).to.equal('127.0.0.1 is a loopback address; a route must not serve it');
    for (const h of ['app.home.arpa', '*.home.arpa', 'localhost.home.arpa', '100.64.0.7', '192.0.2.5']) expect(routeHostProblem(h), h).to.equal(null);
  });

  it('routeOwnProblem: the first problem of a route, hosts before upstreams', () => {
    expect(routeOwnProblem({ hosts: ['localhost'], upstreams: ['127.0.0.1:2019'] }, own)).to.match(/^host localhost always means this host/);
    expect(routeOwnProblem({ hosts: ['x.home.arpa'], upstreams: ['192.0.2.5:80', '127.0.0.1:2019'] }, own)).to.match(/^upstream 127\.0\.0\.1:2019 is this node's Caddy admin API/);
    expect(routeOwnProblem({ hosts: ['x.home.arpa'], upstreams: ['127.0.0.1:3000'] }, own)).to.equal(null);
  });
});
