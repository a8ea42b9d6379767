// Server-side requests from the relay: where an `smtp` or `http` provider may send the relay.
// The save-time checks as a table; then real deliveries: an SMTP sink and an HTTP server on
// loopback, reached through names our own DNS server answers (as a public name could be made to
// resolve to 127.0.0.1), and refused unless the provider says allow_private.
import { expect } from 'chai';
import { Resolver } from 'node:dns/promises';
import { createServer } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { ZoneIndex } from '../../src/dns/zone.js';
import { Deliverer } from '../../src/mail/delivery/deliver.js';
import { hostSyntaxProblem, providerDestinationIssues, refusedHost } from '../../src/mail/delivery/destination.js';
import { memoryResolver } from '../../src/mail/resolver.js';
import { providerConfig, type Provider } from '../../src/model/mail.js';
import { rec, startServer, ZONES } from '../dns/fixture.js';
import { sinkSet } from './helpers.js';

const own = new Set(['192.0.2.10']);

describe('mail: provider destinations (no server-side requests to this host)', function () {
  describe('save time: an IP literal or localhost name is refused unless allow_private, naming the field', () => {
    const refused: [string, unknown, string][] = [
      ['Caddy admin API over http', { type: 'http', format: 'raw', url: 'http://127.0.0.1:2019/stop' }, 'url'],
      ['loopback written as a number', { type: 'http', format: 'raw', url: 'http://2130706433:2019/stop' }, 'url'],
      ['loopback written in hex', { type: 'http', format: 'raw', url: 'http://0x7f.1/' }, 'url'],
      ['IPv6 loopback', { type: 'http', format: 'raw', url: 'http://[::1]:8080/' }, 'url'],
      ['IPv4-mapped loopback', { type: 'http', format: 'raw', url: 'http://[::ffff:127.0.0.1]/' }, 'url'],
      ['cloud metadata', { type: 'http', format: 'raw', url: 'http://169.254.169.254/latest/meta-data/' }, 'url'],
      ['localhost', { type: 'http', format: 'raw', url: 'https://localhost/send' }, 'url'],
      ['a name under localhost', { type: 'http', format: 'raw', url: 'https://api.localhost/send' }, 'url'],
      ['this node', { type: 'http', format: 'raw', url: 'http://192.0.2.10:8080/api/v1/records' }, 'url'],
      ['smtp to loopback', { type: 'smtp', host: '127.0.0.1', port: 25 }, 'host'],
      ['smtp to 0.0.0.0', { type: 'smtp', host: '0.0.0.0', port: 25 }, 'host'],
      ['smtp to link-local', { type: 'smtp', host: '169.254.169.254', port: 80 }, 'host'],
      ['smtp to Alibaba metadata', { type: 'smtp', host: '100.100.100.200', port: 80 }, 'host'],
      ['smtp to ::1', { type: 'smtp', host: '::1', port: 25 }, 'host'],
      ['smtp to localhost', { type: 'smtp', host: 'LOCALHOST.', port: 25 }, 'host'],
      ['smtp to this node', { type: 'smtp', host: '192.0.2.10', port: 587 }, 'host'],
    ];
    for (const [what, input, path] of refused)
      it(`refused: ${what}`, () => {
        const c = providerConfig.parse(input);
        const issues = providerDestinationIssues(c, own);
        expect(issues.map((i) => i.path)).to.deep.equal([path]);
        expect(issues[0]!.message).to.match(/: the relay does not connect there unless the provider sets allow_private: true$/);
        expect(providerDestinationIssues(providerConfig.parse({ ...(input as object), allow_private: true }), own), 'with allow_private').to.deep.equal([]);
      });

    it('allowed: a LAN smarthost, a Tailscale peer, public hosts and names (names are checked again when resolved)', () => {
      for (const input of [
        { type: 'smtp', host: '192.168.1.20', port: 25, security: 'none' },
        { type: 'smtp', host: '100.101.102.103', port: 587 },
        { type: 'smtp', host: 'smtp.example.net', port: 587 },
        { type: 'smtp', host: '2001:db8::25', port: 587 },
        { type: 'http', format: 'sendgrid', url: 'https://api.sendgrid.com/v3/mail/send' },
        { type: 'http', format: 'raw', url: 'http://10.0.0.5:8025/send' },
        { type: 'mx' },
      ])
        expect(providerDestinationIssues(providerConfig.parse(input), own), JSON.stringify(input)).to.deep.equal([]);
    });

    it('an smtp host that is neither a host name nor an IP address is refused, allow_private or not', () => {
      for (const host of ['[[', 'a..b', '-smtp.example.net', 'smtp-.example.net', '.', '::::', '[::1]', '127.1', '2130706433', '0x7f000001', '0177.0.0.1', 'fe80::1%eth0', `${'a'.repeat(64)}.example.net`]) {
        expect(hostSyntaxProblem(host), host).to.be.a('string');
        const c = providerConfig.safeParse({ type: 'smtp', host, port: 25, allow_private: true });
        if (c.success) expect(providerDestinationIssues(c.data, own).map((i) => i.path), host).to.deep.equal(['host']);
      }
      for (const host of ['smtp.example.net', 'smtp.example.net.', 'mail', 'a-b.c0.example', '192.0.2.25', '2001:db8::25', '1e100.net'])
        expect(hostSyntaxProblem(host), host).to.equal(undefined);
    });

    it('refusedHost() names the class and this node', () => {
      expect(refusedHost('127.0.0.53', own)).to.equal('127.0.0.53 is a loopback address (this host)');
      expect(refusedHost('[fe80::1]', own)).to.equal('fe80::1 is a link-local address (cloud metadata services answer there)');
      expect(refusedHost('192.0.2.10', own)).to.equal("192.0.2.10 is this node's own address");
      expect(refusedHost('ip6-localhost', own)).to.equal('ip6-localhost is this host (localhost)');
      expect(refusedHost('192.0.2.11', own)).to.equal(undefined);
      expect(refusedHost('smtp.example.net', own)).to.equal(undefined);
    });
  });

  describe('delivery time: what a name resolves to (our DNS server answering)', () => {
    const sinks = sinkSet();
    let stopDns: (() => Promise<void>) | undefined;
    let closeApi: (() => Promise<void>) | undefined;
    let deliverer: Deliverer | undefined;

    afterEach(async () => {
      deliverer?.close();
      await sinks.closeAll();
      await stopDns?.();
      await closeApi?.();
      stopDns = closeApi = deliverer = undefined;
    });

    /** A Deliverer whose provider names are looked up in our DNS server: smarthost and api at 127.0.0.1, partner at this node's address. */
    async function setup(): Promise<Deliverer> {
      const lab = ZONES.find((z) => z.name === 'lab.example.')!;
      const index = new ZoneIndex([lab]);
      index.load(lab.name, 1, [rec(lab.name, 'smarthost', { type: 'A', values: ['127.0.0.1'] }), rec(lab.name, 'api', { type: 'A', values: ['127.0.0.1'] }), rec(lab.name, 'partner', { type: 'A', values: ['192.0.2.10'] })]);
      const started = await startServer({ index });
      stopDns = () => started.server.stop();
      const dns = new Resolver({ timeout: 1000, tries: 1 });
      dns.setServers([`127.0.0.1:${started.port}`]);
      const lookup = ((host: string, _o: unknown, cb: (e: Error | null, a: { address: string; family: number }[] | string) => void) =>
        void dns.resolve4(host).then(
          (a) => cb(null, a.map((address) => ({ address, family: 4 }))),
          (e: Error) => cb(e, ''),
        )) as unknown as LookupFunction;
      return (deliverer = new Deliverer('relay.example.net', { resolver: memoryResolver({}), ownAddresses: [...own], lookup }));
    }

    const envelope = { from: 'app@example.com', to: ['ann@example.org'] };
    const body = Buffer.from('Subject: x\r\n\r\nhello\r\n');

    it('smtp: a name that resolves to loopback is a permanent failure naming host and address, and the sink sees nothing; allow_private delivers', async () => {
      const d = await setup();
      const sink = await sinks.start();
      const config = { type: 'smtp', host: 'smarthost.lab.example', port: sink.port, security: 'starttls', tls_verify: false, max_connections: 1 } as const;
      const refused = await d.send({ name: 'lan', config }, envelope, body);
      expect(refused).to.include({ outcome: 'permanent', code: null, provider: 'lan' });
      expect(refused.response).to.equal('5.3.5 provider host smarthost.lab.example: resolves to 127.0.0.1, a loopback address (this host): refused (set allow_private on the provider to allow it)');
      expect(sink.received).to.have.length(0);
      const ok = await d.send({ name: 'lan', config: { ...config, allow_private: true } }, envelope, body);
      expect(ok).to.include({ outcome: 'delivered', code: 250 });
      expect(sink.received.map((m) => m.to)).to.deep.equal([['ann@example.org']]);
    });

    it("smtp: an IP literal stored before this check (no save-time refusal) and this node's own address are refused when dialled", async () => {
      const d = await setup();
      const sink = await sinks.start();
      const literal: Provider = { name: 'old', config: { type: 'smtp', host: '127.0.0.1', port: sink.port, security: 'starttls', tls_verify: false, max_connections: 1 } };
      expect(await d.send(literal, envelope, body)).to.include({ outcome: 'permanent', response: '5.3.5 provider host 127.0.0.1: 127.0.0.1 is a loopback address (this host): refused (set allow_private on the provider to allow it)' });
      const partner: Provider = { name: 'partner', config: { type: 'smtp', host: 'partner.lab.example', port: 25, security: 'starttls', tls_verify: true, max_connections: 1 } };
      expect((await d.send(partner, envelope, body)).response).to.equal("5.3.5 provider host partner.lab.example: resolves to 192.0.2.10, this node's own address: refused (set allow_private on the provider to allow it)");
      expect(sink.received).to.have.length(0);
    });

    it('http: a URL whose name resolves to loopback is never requested (permanent failure); allowed, the log keeps the status line, not the body', async () => {
      const d = await setup();
      const requests: string[] = [];
      const api = createServer((req, res) => {
        requests.push(`${req.method} ${req.url}`);
        req.resume();
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"admin_secret":"caddy config and everything else this host serves"}'));
      });
      await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
      closeApi = () => new Promise<void>((resolve) => api.close(() => resolve()));
      const url = `http://api.lab.example:${(api.address() as AddressInfo).port}/stop`;
      const refused = await d.send({ name: 'gw', config: { type: 'http', format: 'raw', url } }, envelope, body);
      expect(refused).to.include({ outcome: 'permanent', code: null, response: '5.3.5 provider host api.lab.example: resolves to 127.0.0.1, a loopback address (this host): refused (set allow_private on the provider to allow it)' });
      const literal = await d.send({ name: 'gw', config: { type: 'http', format: 'raw', url: url.replace('api.lab.example', '127.0.0.1') } }, envelope, body);
      expect(literal).to.include({ outcome: 'permanent' });
      expect(requests).to.deep.equal([]);
      const allowed = await d.send({ name: 'gw', config: { type: 'http', format: 'raw', url, allow_private: true } }, envelope, body);
      expect(allowed).to.include({ outcome: 'delivered', response: 'HTTP 200 OK' });
      expect(requests).to.deep.equal(['POST /stop']);
    });
  });
});
