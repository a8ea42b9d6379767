// Issue 15 item 7 acceptance: a real controller and a real Caddy 2.6.2; GET /api/v1/stats and
// `dnsproxy stats` equal the requests this test sent, for an explicit route and a plain name.
import { expect } from 'chai';
import { cli, eachController, TOKEN, type Running } from '../helpers/controller.js';
import { request, startBackend, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { until } from '../helpers/until.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

interface Win {
  requests: number;
  status: Record<string, number>;
  bytes: number;
}

describe('e2e: per-host stats from Caddy access logs', function () {
  this.timeout(180_000);
  let caddy: RunningCaddy;
  let c: Running;
  let backend: Backend;
  const stats = async (host: string) => ((await (await fetch(`${c.apiUrl}/api/v1/stats/${host}`, { headers: auth })).json()) as { stats: { minute: Win; hour: Win; routes: { status: string }[] } }).stats;

  eachController(async (s) => {
    ({ caddy, c } = s);
    backend = await startBackend('b');
    const r = await fetch(`${c.apiUrl}/api/v1/routes`, { method: 'POST', headers: auth, body: JSON.stringify({ hosts: ['explicit.home.arpa'], upstreams: [backend.dial] }) });
    expect(r.status).to.equal(201);
    const [host, port] = backend.dial.split(':');
    const rec = await fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify({ service_name: 'plain', name: 'plain', ip: '127.0.0.1', port: Number(port), forward_to_ip: host, proxy_enabled: true }) });
    expect(rec.status).to.be.oneOf([200, 201]);
    await until('both names served', 20_000, async () => {
      const a = await request({ port: caddy.httpPort, host: 'explicit.home.arpa' }).catch(() => null);
      const b = await request({ port: caddy.httpPort, host: 'plain.home.arpa' }).catch(() => null);
      return a?.status === 200 && b?.status === 200 ? true : undefined;
    });
  }, { DNSPROXY_STATS: 'on' });
  after(async () => {
    await backend?.close();
  });

  it('counts what was sent per host and status class, and the CLI prints it', async () => {
    const base = { explicit: (await stats('explicit.home.arpa')).hour, plain: (await stats('plain.home.arpa')).hour };
    const sizes: Record<string, number> = {};
    for (let i = 0; i < 30; i++) {
      const r = await request({ port: caddy.httpPort, host: 'explicit.home.arpa', path: `/e/${i}?q=secret` });
      expect(r.status).to.equal(200);
      sizes.explicit = (sizes.explicit ?? 0) + Buffer.byteLength(r.body);
    }
    for (let i = 0; i < 20; i++) {
      const r = await request({ port: caddy.httpPort, host: 'plain.home.arpa', path: `/p/${i}` });
      expect(r.status).to.equal(200);
      sizes.plain = (sizes.plain ?? 0) + Buffer.byteLength(r.body);
    }
    // A path no route serves on the explicit host is not there: the catch-all answers unknown hosts.
    for (let i = 0; i < 5; i++) expect((await request({ port: caddy.httpPort, host: 'nobody.home.arpa' })).status).to.equal(404);
    await until('stats caught up', 20_000, async () => ((await stats('explicit.home.arpa')).hour.requests - base.explicit.requests >= 30 && (await stats('plain.home.arpa')).hour.requests - base.plain.requests >= 20 ? true : undefined));
    const ex = await stats('explicit.home.arpa');
    expect(ex.hour.requests - base.explicit.requests).to.equal(30);
    expect(ex.hour.status['2xx']! - base.explicit.status['2xx']!).to.equal(30);
    expect(ex.hour.bytes - base.explicit.bytes).to.equal(sizes.explicit);
    expect(ex.routes.map((r) => r.status)).to.deep.equal(['active']);
    const pl = await stats('plain.home.arpa');
    expect(pl.hour.requests - base.plain.requests).to.equal(20);
    expect(pl.hour.bytes - base.plain.bytes).to.equal(sizes.plain);
    // Hosts no route serves are counted together (a client can make up any number of them).
    const unrouted = async () => ((await (await fetch(`${c.apiUrl}/api/v1/stats`, { headers: auth })).json()) as { hosts: { host: string; hour: Win }[] }).hosts.find((h) => h.host === '(unrouted)');
    const nobody = await until('404s counted', 20_000, async () => {
      const s = await unrouted();
      return s && s.hour.requests >= 5 ? s : undefined;
    });
    expect(nobody.hour.status['4xx']).to.equal(5);
    expect((await stats('nobody.home.arpa')).hour.requests).to.equal(0);

    const out = await cli(['stats'], { DNSPROXY_API_URL: c.apiUrl, DNSPROXY_TOKEN: TOKEN });
    expect(out.code, out.stderr).to.equal(0);
    expect(out.stdout).to.match(/^explicit\.home\.arpa\s+\d+/m).and.match(/^plain\.home\.arpa\s+\d+/m);
  });
});
