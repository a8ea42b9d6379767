// Issue acceptance for the Caddy reconciler: real controller process, real Caddy, real backends.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { cli, eachController, TOKEN, type CaddyController, type Running } from '../helpers/controller.js';
import { request, startBackend, type Backend, type RunningCaddy } from '../helpers/caddy.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

/** Polls `probe` every 25 ms until it returns true; resolves with the ms it took, rejects after `limitMs`. */
async function within(limitMs: number, probe: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await probe().catch(() => false)) return Date.now() - start;
    if (Date.now() - start > limitMs) throw new Error(`not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Caddy pushes counted from the controller's own metrics. */
async function loads(c: Running): Promise<number> {
  const text = await (await fetch(`${c.apiUrl}/metrics`)).text();
  const m = /^dnsproxy_caddy_applies_total\{result="ok"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Change-pipeline passes that asked nothing of Caddy (`unchanged`), or another outcome, from /metrics. */
async function passes(c: Running, outcome = 'unchanged'): Promise<number> {
  const text = await (await fetch(`${c.apiUrl}/metrics`)).text();
  const m = new RegExp(`^dnsproxy_proxy_passes_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('e2e: proxied records and routes through a real Caddy', function () {
  this.timeout(120_000);
  let tmp: CaddyController['tmp'];
  let caddy: RunningCaddy;
  let c: Running;
  let backend: Backend;
  let env: Record<string, string>;
  const via = (host: string, path = '/') => request({ port: caddy.httpPort, host, path });

  eachController(async (s) => {
    ({ tmp, caddy, c, env } = s);
    backend = await startBackend('llm-backend');
    await within(5000, async () => (await via('nothing.home.arpa')).status === 404);
  });
  after(async () => {
    await backend?.close();
  });

  // A plain name is served through DNS: Caddy re-asks a name's SRV every DYNAMIC_REFRESH (1 s), so a removal shows within 2 s.
  it('POST /add-record (proxied) is served within 1 s; removing it gives the catch-all 404 within 2 s', async () => {
    const [host, port] = backend.dial.split(':');
    const res = await fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify({ service_name: 'llm', name: 'llm', ip: '127.0.0.1', port: Number(port), forward_to_ip: host, proxy_enabled: true }) });
    expect(res.status).to.equal(201);
    const up = await within(1000, async () => (await via('llm.home.arpa')).body.includes('llm-backend'));
    const reply = JSON.parse((await via('llm.home.arpa', '/v1/models')).body);
    expect(reply).to.include({ backend: 'llm-backend', url: '/v1/models' });
    expect(reply.headers['x-forwarded-for']).to.equal('127.0.0.1');
    expect(reply.headers['x-real-ip']).to.equal('127.0.0.1');
    const del = await fetch(`${c.apiUrl}/remove-record?name=llm`, { method: 'DELETE', headers: { authorization: auth.authorization } });
    expect(del.status).to.equal(200);
    const down = await within(2000, async () => (await via('llm.home.arpa')).status === 404);
    console.log(`      route live after ${up} ms, gone after ${down} ms`);
  });

  it('dnsproxy add-route / remove-route do the same, and `routes` shows the status', async () => {
    const add = await cli(['add-route', 'app.home.arpa', backend.dial], env);
    expect(add.code, add.stderr).to.equal(0);
    await within(1000, async () => (await via('app.home.arpa')).body.includes('llm-backend'));
    const routes = JSON.parse((await cli(['--json', 'routes'], env)).stdout).routes;
    expect(routes.find((r: { hosts: string[] }) => r.hosts.includes('app.home.arpa'))).to.include({ status: 'active', source: 'api' });
    expect((await cli(['remove-route', 'app.home.arpa'], env)).code).to.equal(0);
    await within(1000, async () => (await via('app.home.arpa')).status === 404);
  });

  it('a burst of 500 plain record adds causes no Caddy load and all 500 hosts are served', async () => {
    const before = await loads(c);
    const [host, port] = backend.dial.split(':');
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify({ service_name: `s${i}`, name: `s${i}`, ip: '127.0.0.1', port: Number(port), forward_to_ip: host, proxy_enabled: true }) }).then((r) => expect(r.status).to.equal(201)),
      ),
    );
    const acked = Date.now() - started;
    await within(3000, async () => (await via('s499.home.arpa')).body.includes('llm-backend'));
    await within(3000, async () => JSON.parse((await cli(['--json', 'plan'], env)).stdout).in_sync === true);
    const pushes = (await loads(c)) - before;
    console.log(`      500 adds acknowledged in ${acked} ms → ${pushes} Caddy load(s)`);
    expect(pushes).to.equal(0);
    for (const i of [0, 137, 250, 499]) expect((await via(`s${i}.home.arpa`)).body).to.include('llm-backend');
  });

  it('an unchanged state causes no load', async () => {
    await within(3000, async () => JSON.parse((await cli(['--json', 'plan'], env)).stdout).in_sync === true);
    const before = await loads(c);
    const [noop, triggered] = [await passes(c), await passes(c, 'trigger')];
    const [host, port] = backend.dial.split(':');
    // Re-sending the same record rewrites the row but renders the same config.
    const res = await fetch(`${c.apiUrl}/add-record`, { method: 'POST', headers: auth, body: JSON.stringify({ service_name: 's1', name: 's1', ip: '127.0.0.1', port: Number(port), forward_to_ip: host, proxy_enabled: true }) });
    expect(res.status).to.equal(200);
    // The pipeline's pass over the rewrite is done once its no-op count moves: no trigger, no load.
    await within(5000, async () => (await passes(c)) > noop);
    expect(await passes(c, 'trigger')).to.equal(triggered);
    expect(await loads(c)).to.equal(before);
  });

  it('stats off (the default): Caddy runs no access log and GET /api/v1/stats says how to turn it on', async () => {
    const config = (await caddy.get('/config/')) as { logging?: unknown; apps: { http: { servers: Record<string, { logs?: unknown }> } } };
    expect(config).not.to.have.property('logging');
    for (const [name, server] of Object.entries(config.apps.http.servers)) expect(server, name).not.to.have.property('logs');
    const res = await fetch(`${c.apiUrl}/api/v1/stats`, { headers: auth });
    expect(res.status).to.equal(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).to.equal('feature_off');
  });

  it('after Caddy is SIGKILLed and started again, every route is back within 2 s with no API call', async () => {
    await caddy.kill();
    await caddy.restart();
    const ms = await within(2000, async () => (await via('s499.home.arpa')).body.includes('llm-backend'));
    console.log(`      routes restored ${ms} ms after Caddy came back`);
    expect((await via('s0.home.arpa')).body).to.include('llm-backend');
  });

  it('the Caddyfile export adapts cleanly with caddy adapt', async () => {
    const text = await (await fetch(`${c.apiUrl}/api/v1/caddyfile`, { headers: { authorization: auth.authorization } })).text();
    expect(text).to.include('s499.home.arpa');
    const file = `${tmp.dir}/Caddyfile`;
    (await import('node:fs')).writeFileSync(file, text);
    const { stderr } = await promisify(execFile)('caddy', ['adapt', '--config', file, '--adapter', 'caddyfile'], { env: { ...process.env, HOME: tmp.dir } });
    expect(stderr).not.to.match(/WARN/);
  });

  it('/health reports the proxy component; plan is empty when in sync', async () => {
    const health = (await (await fetch(`${c.apiUrl}/health`)).json()) as { status: string; components: Record<string, { status: string }> };
    expect(health.components.proxy?.status).to.equal('ok');
    const plan = JSON.parse((await cli(['--json', 'plan'], env)).stdout);
    expect(plan).to.include({ caddy_up: true, in_sync: true });
    expect(plan.plan.routes).to.deep.equal({ added: [], changed: [], removed: [] });
  });

  // Last in this file: Caddy 2.6.2 can leave the HTTP listener of a load that failed on a taken
  // port open beside the running one (SO_REUSEPORT), and that listener answers from the failed
  // config for a share of later connections: tests after it saw hosts missing at random.
  it('add-route waits for the reconciler: a route Caddy cannot load (its HTTPS port is taken) exits 1 with the reason', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve, reject) => blocker.once('error', reject).listen(caddy.httpsPort, '0.0.0.0', resolve));
    try {
      const bad = await cli(['add-route', 'secure.home.arpa', backend.dial, '--tls', 'internal'], env);
      expect(bad.code).to.equal(1);
      expect(bad.stderr).to.match(/^dnsproxy: route api:[0-9a-f]{8} is in error: .*address already in use/);
      expect(bad.stdout).to.match(/^api:[0-9a-f]{8}\s+secure\.home\.arpa\s+\S+\s+internal\s+error: /m);
    } finally {
      await cli(['remove-route', 'secure.home.arpa'], env);
      await new Promise((resolve) => blocker.close(resolve));
    }
    await within(5000, async () => JSON.parse((await cli(['--json', 'plan'], env)).stdout).in_sync === true);
  });
});
