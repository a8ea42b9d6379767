// Issue acceptance for plain names served through DNS (no Caddy reload per change): real
// controller process, real Caddy 2.6.2, real backends, a real websocket session through Caddy.
import { expect } from 'chai';
import tls from 'node:tls';
import { cli, eachController, TOKEN, type Running } from '../helpers/controller.js';
import { request, startBackend, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { startWsEcho, wsConnect, type WsEcho } from '../helpers/ws.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

/** Polls `probe` (one real request each) until true; resolves with the ms it took, rejects after `limitMs`. */
async function within(limitMs: number, probe: () => Promise<boolean>, since = Date.now()): Promise<number> {
  for (;;) {
    if (await probe().catch(() => false)) return Date.now() - since;
    if (Date.now() - since > limitMs) throw new Error(`not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves when `p` does; rejects after `limitMs`. */
function deadline<T>(p: Promise<T>, limitMs: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${limitMs} ms`)), limitMs))]);
}

/** Caddy loads accepted, from the controller's own metrics (all reasons, or one). */
async function loads(c: Running, reason = '\\w+'): Promise<number> {
  const text = await (await fetch(`${c.apiUrl}/metrics`)).text();
  return [...text.matchAll(new RegExp(`^dnsproxy_caddy_loads_total\\{reason="${reason}"\\} (\\d+)`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
}

/** A TLS handshake to Caddy with SNI `servername`: the certificate's SAN, or the error (certificate read, not verified). */
function handshake(port: number, servername: string): Promise<{ san: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const san = socket.getPeerCertificate().subjectaltname ?? '';
      socket.destroy();
      resolve({ san });
    });
    socket.setTimeout(15_000, () => socket.destroy(new Error('handshake timed out')));
    socket.on('error', (e) => resolve({ error: e.message }));
  });
}

describe('e2e: plain names through DNS, websockets across changes', function () {
  this.timeout(180_000);
  let caddy: RunningCaddy;
  let c: Running;
  let other: Backend;
  let w1: WsEcho;
  let w2: WsEcho;
  let env: Record<string, string>;
  const via = (host: string) => request({ port: caddy.httpPort, host });
  const put = (name: string, dial: string) => {
    const [host, port] = dial.split(':');
    return fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify({ service_name: name, name, ip: '127.0.0.1', port: Number(port), forward_to_ip: host, proxy_enabled: true }) });
  };
  const remove = (name: string) => fetch(`${c.apiUrl}/remove-record?name=${name}`, { method: 'DELETE', headers: { authorization: auth.authorization } });
  const route = async (id: string) => ((await (await fetch(`${c.apiUrl}/api/v1/routes/${id}`, { headers: { authorization: auth.authorization } })).json()) as { route: { mode: string; status: string } }).route;

  eachController(async (s) => {
    ({ caddy, c, env } = s);
    other = await startBackend('other');
    w1 = await startWsEcho('w1');
    w2 = await startWsEcho('w2');
    await within(5000, async () => (await via('nothing.home.arpa')).status === 404);
  });
  after(async () => {
    await other?.close();
    await w1?.close();
    await w2?.close();
  });

  it('a websocket through plain name A keeps echoing across 100 other changes and its own backend change, with no Caddy load; it ends when A becomes explicit', async () => {
    const res = await put('a', w1.dial);
    expect(res.status).to.equal(201);
    const served = await within(1000, async () => (await via('a.home.arpa')).body === 'w1', Date.now());
    expect(await route('record:a.home.arpa')).to.include({ mode: 'dynamic', status: 'active' });
    const ws = await wsConnect(caddy.httpPort, 'a.home.arpa');
    expect(await ws.ask('hello')).to.equal('w1:hello');
    const before = await loads(c);

    // 100 changes to other plain names: 50 adds, 25 backend changes (p0-p24), 25 removals (p25-p49); A echoes after each.
    for (let i = 0; i < 100; i++) {
      let r: Response;
      if (i < 50) r = await put(`p${i}`, other.dial);
      else if (i < 75) r = await put(`p${i - 50}`, w2.dial);
      else r = await remove(`p${i - 50}`);
      expect(r.status, `change ${i}`).to.be.oneOf([200, 201]);
      expect(await ws.ask(`m${i}`)).to.equal(`w1:m${i}`);
    }
    // A new name is served within 1 s of its 201, a changed backend within 2 s, a removed name 404s within 2 s.
    const t0 = Date.now();
    expect((await put('fresh', other.dial)).status).to.equal(201);
    const fresh = await within(1000, async () => (await via('fresh.home.arpa')).body.includes('"backend":"other"'), t0);
    const t1 = Date.now();
    expect((await put('p10', w1.dial)).status).to.equal(200);
    const changed = await within(2000, async () => (await via('p10.home.arpa')).body === 'w1', t1);
    const t2 = Date.now();
    expect((await remove('p20')).status).to.equal(200);
    const gone = await within(2000, async () => (await via('p20.home.arpa')).status === 404, t2);
    expect((await via('p30.home.arpa')).status).to.equal(404);
    expect((await via('p0.home.arpa')).body).to.equal('w2');

    // A's own backend changes: new requests reach w2, the open session stays with w1.
    const t3 = Date.now();
    expect((await put('a', w2.dial)).status).to.equal(200);
    const moved = await within(2000, async () => (await via('a.home.arpa')).body === 'w2', t3);
    expect(await ws.ask('still')).to.equal('w1:still');
    expect(await loads(c)).to.equal(before);
    console.log(`      A served ${served} ms after 201; fresh name ${fresh} ms, changed backend ${changed} ms, removed 404 ${gone} ms, A moved ${moved} ms; 0 loads in 100+ changes`);

    // A gets a route of its own (a path route): it becomes explicit, Caddy loads once, the session ends.
    const add = await cli(['add-route', 'a.home.arpa', other.dial, '--path', '/admin'], env);
    expect(add.code, add.stderr).to.equal(0);
    await deadline(ws.ended, 5000, 'session end after A became explicit');
    expect(await loads(c)).to.equal(before + 1);
    expect(await route('record:a.home.arpa')).to.include({ mode: 'explicit' });
    expect((await via('a.home.arpa')).body).to.equal('w2');
    // And back: removing that route makes A plain again (one more load, which drops the route).
    const id = /api:[0-9a-f]{8}/.exec(add.stdout)?.[0];
    expect(id, add.stdout).to.be.a('string');
    expect((await cli(['remove-route', id!], env)).code).to.equal(0);
    await within(3000, async () => (await route('record:a.home.arpa')).mode === 'dynamic');
    await within(2000, async () => (await via('a.home.arpa')).body === 'w2');
  });

  it('removing plain name A ends its websocket session with one close_sessions load; removing names that never had one loads nothing', async () => {
    expect((await put('b', w1.dial)).status).to.equal(201);
    await within(1000, async () => (await via('b.home.arpa')).body === 'w1');
    const ws = await wsConnect(caddy.httpPort, 'b.home.arpa');
    expect(await ws.ask('hello')).to.equal('w1:hello');
    const before = await loads(c);
    const closes = await loads(c, 'close_sessions');
    // 100 changes to other plain names (none ever had a websocket), and b's own backend: DNS only.
    for (let i = 0; i < 100; i++) {
      const r = i % 2 === 0 ? await put(`q${i >> 1}`, other.dial) : await remove(`q${i >> 1}`);
      expect(r.status, `change ${i}`).to.be.oneOf([200, 201]);
    }
    expect((await put('b', w2.dial)).status).to.equal(200);
    await within(2000, async () => (await via('b.home.arpa')).body === 'w2');
    expect(await ws.ask('still')).to.equal('w1:still');
    expect(await loads(c)).to.equal(before);
    // b is removed: its session ends, through one load.
    const t0 = Date.now();
    expect((await remove('b')).status).to.equal(200);
    await deadline(ws.ended, 5000, 'session end after b was removed');
    const ended = Date.now() - t0;
    await within(2000, async () => (await loads(c, 'close_sessions')) === closes + 1);
    expect(await loads(c)).to.equal(before + 1);
    await within(2000, async () => (await via('b.home.arpa')).status === 404);
    console.log(`      b's session ended ${ended} ms after its removal (1 close_sessions load; 0 loads in 101 changes before)`);
  });

  it('tls internal plain names: the first brings the HTTPS listener (one load, and the dry run says so); every later one is served over HTTPS with its certificate and no load', async () => {
    const add = (name: string, dry = false) =>
      fetch(`${c.apiUrl}/api/v1/records${dry ? '?dry_run=true' : ''}`, { method: 'POST', headers: auth, body: JSON.stringify({ name, type: 'A', values: ['127.0.0.1'], proxy: { enabled: true, upstreams: [other.dial], tls: 'internal' } }) });
    const https = async (host: string) => JSON.parse((await request({ port: caddy.httpsPort, host, tls: { servername: host } })).body).backend === 'other';
    const first = await loads(c);
    expect(((await (await add('sec0', true)).json()) as { plan: { caddy_reload: boolean } }).plan.caddy_reload).to.equal(true);
    expect((await add('sec0')).status).to.equal(201);
    await within(5000, async () => (await route('record:sec0.home.arpa')).status === 'active');
    await within(5000, () => https('sec0.home.arpa'));
    expect(await loads(c)).to.equal(first + 1);

    const before = await loads(c);
    expect(((await (await add('sec', true)).json()) as { plan: { caddy_reload: boolean } }).plan.caddy_reload).to.equal(false);
    const t0 = Date.now();
    const res = await add('sec');
    expect(res.status, await res.clone().text()).to.equal(201);
    const served = await within(5000, () => https('sec.home.arpa'), t0);
    expect(await handshake(caddy.httpsPort, 'sec.home.arpa')).to.deep.equal({ san: 'DNS:sec.home.arpa' });
    const plain = await via('sec.home.arpa');
    expect(plain.status).to.equal(308);
    expect(plain.headers.location).to.equal(`https://sec.home.arpa:${caddy.httpsPort}/`);
    expect(await route('record:sec.home.arpa')).to.include({ mode: 'dynamic' });
    await within(5000, async () => (await route('record:sec.home.arpa')).status === 'active');
    // A name we do not serve gets no certificate; removing TLS names costs no load either.
    expect(await handshake(caddy.httpsPort, 'nobody.home.arpa')).to.have.property('error');
    expect((await remove('sec0')).status).to.equal(200);
    await within(2000, async () => 'error' in (await handshake(caddy.httpsPort, 'sec0.home.arpa')) || (await request({ port: caddy.httpsPort, host: 'sec0.home.arpa', tls: { servername: 'sec0.home.arpa' } })).status === 404);
    expect(await loads(c)).to.equal(before);
    console.log(`      tls internal plain name served over HTTPS ${served} ms after its 201, 0 loads`);
  });

  it('after Caddy is SIGKILLed and started again, plain names serve again within 2 s', async () => {
    expect((await put('k', other.dial)).status).to.equal(201);
    await within(1000, async () => (await via('k.home.arpa')).status === 200);
    await caddy.kill();
    await caddy.restart();
    const ms = await within(2000, async () => (await via('k.home.arpa')).body.includes('"backend":"other"'));
    console.log(`      plain names back ${ms} ms after Caddy restarted`);
  });
});
