// Plain names' backends in DNS (src/dns/upstreams.ts): answered to this node's own addresses only,
// never cached, never forwarded; user records cannot take the reserved label.
import { expect } from 'chai';
import dnsPacket from 'dns-packet';
import { handle, type HandlerConfig } from '../../src/dns/handler.js';
import { PlainUpstreams, backendOf } from '../../src/dns/upstreams.js';
import { recordInput } from '../../src/model/record.js';
import { buildIndex, dig, hasDig, startServer } from './fixture.js';

/** Answer data and RCODE of a reply (dns-packet's types leave rcode out and data off OPT). */
const datas = (m: dnsPacket.Packet) => (m.answers ?? []).map((a) => (a as { data: unknown }).data);
const rcode = (m: dnsPacket.Packet) => (m as { rcode?: string }).rcode;

const ask = (name: string, type: string) => dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: type as 'SRV', name }] });

describe('dns: plain names for Caddy', () => {
  const table = new PlainUpstreams();
  const upgrades: string[] = [];
  table.onUpgrade = (host) => upgrades.push(host);
  table.replace(
    new Map([
      ['app.home.arpa', { backends: ['192.0.2.7:8080', '[2001:db8::7]:9090'].map(backendOf), tls: 'off' as const }],
      ['secure.home.arpa', { backends: ['192.0.2.8:8443'].map(backendOf), tls: 'internal' as const }],
    ]),
  );
  const cfg = (allowed: boolean): HandlerConfig => ({ index: buildIndex(), forwarding: true, recursionAllowed: () => true, transferAllowed: () => false, plain: { table, allowed: () => allowed } });

  it('answers SRV (one target per backend) and the targets’ addresses to allowed addresses, uncached', () => {
    const srv = handle(ask('_px._tcp.App.home.arpa', 'SRV'), 'udp', '127.0.0.1', cfg(true));
    expect(srv).to.include({ kind: 'reply', cacheable: false });
    const msg = dnsPacket.decode((srv as { message: Buffer }).message);
    expect(datas(msg)).to.deep.equal([
      { priority: 10, weight: 10, port: 8080, target: 'u0._px._tcp.app.home.arpa' },
      { priority: 10, weight: 10, port: 9090, target: 'u1._px._tcp.app.home.arpa' },
    ]);
    const v4 = dnsPacket.decode((handle(ask('u0._px._tcp.app.home.arpa', 'A'), 'udp', '127.0.0.1', cfg(true)) as { message: Buffer }).message);
    expect(datas(v4)).to.deep.equal(['192.0.2.7']);
    const v6 = dnsPacket.decode((handle(ask('u1._px._tcp.app.home.arpa', 'AAAA'), 'udp', '127.0.0.1', cfg(true)) as { message: Buffer }).message);
    expect(datas(v6)).to.deep.equal(['2001:db8::7']);
    const none = dnsPacket.decode((handle(ask('u0._px._tcp.app.home.arpa', 'AAAA'), 'udp', '127.0.0.1', cfg(true)) as { message: Buffer }).message);
    expect(rcode(none)).to.equal('NOERROR');
    expect(none.answers).to.have.length(0);
  });

  it('each question kind: tls off on HTTP only, a TLS name on HTTPS with its backends and on HTTP at the redirect responder; upgrades are reported', () => {
    const srv = (name: string) => datas(dnsPacket.decode((handle(ask(name, 'SRV'), 'udp', '127.0.0.1', cfg(true)) as { message: Buffer }).message));
    const addr = (name: string) => datas(dnsPacket.decode((handle(ask(name, 'A'), 'udp', '127.0.0.1', cfg(true)) as { message: Buffer }).message));
    expect(srv('_tls._px._tcp.secure.home.arpa')).to.deep.equal([{ priority: 10, weight: 10, port: 8443, target: 'u0._tls._px._tcp.secure.home.arpa' }]);
    expect(addr('u0._tls._px._tcp.secure.home.arpa')).to.deep.equal(['192.0.2.8']);
    expect(srv('_tls._px._tcp.app.home.arpa')).to.deep.equal([]);
    // No redirect responder yet: a TLS name is not served on HTTP.
    table.redirectTo(null);
    expect(srv('_px._tcp.secure.home.arpa')).to.deep.equal([]);
    table.redirectTo({ ip: '127.0.0.1', port: 40123 });
    expect(srv('_px._tcp.secure.home.arpa')).to.deep.equal([{ priority: 10, weight: 10, port: 40123, target: 'u0._px._tcp.secure.home.arpa' }]);
    expect(addr('u0._px._tcp.secure.home.arpa')).to.deep.equal(['127.0.0.1']);
    expect(upgrades).to.deep.equal([]);
    expect(srv('_ws._px._tcp.app.home.arpa')).to.have.length(2);
    expect(srv('_tlsws._px._tcp.secure.home.arpa')).to.have.length(1);
    expect(srv('_tlsws._px._tcp.app.home.arpa')).to.deep.equal([]);
    expect(srv('_ws._px._tcp.nobody.home.arpa')).to.deep.equal([]);
    expect(upgrades).to.deep.equal(['app.home.arpa', 'secure.home.arpa']);
    // Unknown leading labels are not ours.
    expect(table.answer('_x._px._tcp.app.home.arpa.', '_x._px._tcp.app.home.arpa.', 'SRV')).to.equal(null);
    expect(table.answer('u0._x._px._tcp.app.home.arpa.', 'u0._x._px._tcp.app.home.arpa.', 'A')).to.equal(null);
    table.redirectTo(null);
  });

  it('other clients get what the zone holds there (nothing), uncached; reserved names are never forwarded', () => {
    const other = handle(ask('_px._tcp.app.home.arpa', 'SRV'), 'udp', '100.64.0.9', cfg(false));
    expect(other).to.include({ kind: 'reply', cacheable: false });
    expect(rcode(dnsPacket.decode((other as { message: Buffer }).message))).to.equal('NXDOMAIN');
    const unknown = handle(ask('_px._tcp.nobody.home.arpa', 'SRV'), 'udp', '127.0.0.1', cfg(true));
    expect(rcode(dnsPacket.decode((unknown as { message: Buffer }).message))).to.equal('NXDOMAIN');
    const outside = handle(ask('_px._tcp.example.com', 'SRV'), 'udp', '127.0.0.1', cfg(true));
    expect(outside.kind).to.equal('reply');
    expect(rcode(dnsPacket.decode((outside as { message: Buffer }).message))).to.equal('REFUSED');
  });

  it('through the server: a refused answer to one client is not served from the cache to Caddy', async function () {
    if (!hasDig) return this.skip();
    const { server, port } = await startServer({ plain: { table, allow: ['127.0.0.1/32'] } });
    try {
      const denied = await dig(port, ['-b', '127.0.0.2', '_px._tcp.app.home.arpa', 'SRV']);
      expect(denied.status).to.equal('NXDOMAIN');
      const allowed = await dig(port, ['-b', '127.0.0.1', '_px._tcp.app.home.arpa', 'SRV']);
      expect(allowed.status).to.equal('NOERROR');
      expect(allowed.answer).to.have.length(2);
    } finally {
      await server.stop();
    }
  });

  it('record names may not use the reserved label', () => {
    const r = recordInput.safeParse({ name: 'x._px.app', type: 'TXT', values: ['hi'] });
    expect(r.success).to.equal(false);
    expect(JSON.stringify(r.error?.issues)).to.include('reserved');
  });
});
