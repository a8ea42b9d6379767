// src/proxy/certs.ts: a TLS handshake per served TLS host tells whether Caddy has its certificate.
import { expect } from 'chai';
import { CertWatch, probeCertificate, type CertState, type ProbeResult } from '../../src/proxy/certs.js';
import { render } from '../../src/proxy/render.js';
import { freePort, hasCaddy, startBackend, startCaddy, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { route } from './fixture.js';

describe('proxy/certs: CertWatch (fake clock)', () => {
  function harness(results: Map<string, ProbeResult>) {
    let now = 0;
    const timers: { fn: () => void; at: number }[] = [];
    const probed: string[] = [];
    const seen: ReadonlyMap<string, CertState>[] = [];
    const watch = new CertWatch({
      probe: (host) => (probed.push(host), Promise.resolve(results.get(host) ?? { ok: false, reason: 'alert internal error' })),
      now: () => now,
      setTimer: (fn, ms) => (timers.push({ fn, at: now + ms }), timers.at(-1)),
      clearTimer: (t) => void timers.splice(timers.indexOf(t as (typeof timers)[number]), 1),
      graceMs: 60_000,
      intervalMs: 30_000,
      onChange: (s) => void seen.push(s),
    });
    /** Moves the clock to the next timer and runs it to the end of its probes. */
    const tick = async () => {
      timers.sort((a, b) => a.at - b.at);
      const t = timers.shift();
      if (!t) throw new Error('no timer set');
      now = Math.max(now, t.at);
      t.fn();
      await watch.runDue();
    };
    return { watch, probed, seen, tick, at: () => now };
  }

  it('a host without a certificate is pending during the grace, then failed with the reason; a fix shows at the next probe', async () => {
    const results = new Map<string, ProbeResult>([['ok.example.test', { ok: true, issuer: 'Caddy Local Authority', notAfter: '2026-12-08T00:00:00.000Z' }]]);
    const h = harness(results);
    h.watch.watch(new Map([['ok.example.test', 'v1'], ['bad.example.com', 'v1']]));
    await h.tick();
    expect(h.probed).to.deep.equal(['ok.example.test', 'bad.example.com']);
    expect(h.watch.states().get('ok.example.test')).to.deep.equal({ state: 'ok', issuer: 'Caddy Local Authority', not_after: '2026-12-08T00:00:00.000Z' });
    expect(h.watch.states().get('bad.example.com')).to.deep.equal({ state: 'pending', reason: 'alert internal error' });
    await h.tick(); // 30 s
    expect(h.watch.states().get('bad.example.com')?.state).to.equal('pending');
    await h.tick(); // 60 s: the grace is over
    expect(h.at()).to.equal(60_000);
    expect(h.watch.states().get('bad.example.com')).to.deep.equal({ state: 'failed', reason: 'alert internal error' });
    results.set('bad.example.com', { ok: true, issuer: 'Test CA', notAfter: '2027-01-01T00:00:00.000Z' });
    await h.tick();
    expect(h.watch.states().get('bad.example.com')?.state).to.equal('ok');
  });

  it('forgets hosts no longer served, and reports only changes', async () => {
    const h = harness(new Map([['a.example.test', { ok: true, issuer: 'X', notAfter: '2027-01-01T00:00:00.000Z' }]]));
    h.watch.watch(new Map([['a.example.test', 'v1'], ['b.example.test', 'v1']]));
    await h.tick();
    const changes = h.seen.length;
    await h.tick();
    expect(h.seen.length, 'the same results again: no change reported').to.equal(changes);
    h.watch.watch(new Map([['a.example.test', 'v1']]));
    expect([...h.watch.states().keys()]).to.deep.equal(['a.example.test']);
    expect(h.seen.length).to.equal(changes + 1);
    h.watch.stop();
  });

  it('a host whose route changed starts over: probed at once, with a new grace', async () => {
    const h = harness(new Map());
    h.watch.watch(new Map([['x.example.com', 'v1']]));
    for (let i = 0; i < 3; i++) await h.tick();
    expect(h.watch.states().get('x.example.com')?.state).to.equal('failed');
    const probes = h.probed.length;
    h.watch.watch(new Map([['x.example.com', 'v2']]));
    expect(h.watch.states().get('x.example.com')).to.deep.equal({ state: 'pending', reason: null });
    await h.tick();
    expect(h.probed.length).to.equal(probes + 1);
    expect(h.at(), 'probed at once, not 30 s later').to.equal(60_000);
    expect(h.watch.states().get('x.example.com')?.state).to.equal('pending');
  });
});

describe('proxy/certs: probeCertificate against a real Caddy', function () {
  this.timeout(60_000);
  let caddy: RunningCaddy;
  let backend: Backend;

  before(async function () {
    if (!hasCaddy()) this.skip();
    caddy = await startCaddy();
    backend = await startBackend('a');
    const { config } = render({
      settings: { httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, listenIp: '127.0.0.1', admin: caddy.adminListen },
      routes: [route('api:internal', ['secure.example.test'], [backend.dial], { tls: 'internal' }), route('api:acme', ['nocert.example.com'], [backend.dial], { tls: 'acme' })],
    });
    // An ACME directory nobody answers (no internet here either way): the issuance fails at once.
    const closed = await freePort();
    const apps = (config as { apps: { tls: { automation: { policies: { subjects: string[]; issuers: object[] }[] } } } }).apps;
    for (const p of apps.tls.automation.policies) if (p.subjects.includes('nocert.example.com')) p.issuers = [{ module: 'acme', ca: `https://127.0.0.1:${closed}/dir` }];
    await caddy.load(config);
  });

  after(async () => {
    await caddy?.stop();
    await backend?.close();
  });

  it('a tls internal host: ok, issued by the local CA, with its expiry', async () => {
    const r = await probeCertificate({ ip: '127.0.0.1', port: caddy.httpsPort, servername: 'secure.example.test' });
    expect(r.ok, JSON.stringify(r)).to.equal(true);
    if (r.ok) {
      expect(r.issuer).to.match(/Caddy Local Authority/);
      expect(Date.parse(r.notAfter)).to.be.greaterThan(Date.now());
    }
  });

  it('an acme host whose issuer cannot be reached: the handshake fails, and the reason says so', async () => {
    const r = await probeCertificate({ ip: '127.0.0.1', port: caddy.httpsPort, servername: 'nocert.example.com' });
    expect(r.ok).to.equal(false);
    if (!r.ok) expect(r.reason).to.match(/^TLS handshake for nocert\.example\.com failed \(.+\): Caddy has no certificate for it/);
  });

  it('nothing listening: a failure, not a hang', async () => {
    const r = await probeCertificate({ ip: '127.0.0.1', port: await freePort(), servername: 'x.example.test', timeoutMs: 2_000 });
    expect(r.ok).to.equal(false);
  });
});
