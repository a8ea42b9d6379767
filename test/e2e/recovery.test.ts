// Issue 15 item 3, "recovery probing for a backend marked dead": a real controller (its own
// timers: a watch every 5 s, `health.recovery_interval: 1s`) in front of a real Caddy 2.6.2 and
// two real backends. A stopped backend is taken out of Caddy's config after its failed request,
// shown `down` by the API and the CLI, and is back after its first good probe once it runs again.
import { expect } from 'chai';
import { cli, startController, TOKEN, type Running } from '../helpers/controller.js';
import { backendBehind, hasCaddy, startBackend, startCaddy, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/until.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const HOST = 'recover.home.arpa';

interface Health {
  address: string;
  state: string;
  reason?: string;
  since?: string;
  next_probe_at?: string;
}

describe('e2e: a backend failing requests is taken out and probed back', function () {
  this.timeout(180_000);
  let tmp: ReturnType<typeof tempDir>;
  let caddy: RunningCaddy;
  let c: Running;
  let a: Backend, b: Backend | null;
  let id: string;
  const health = async (): Promise<Health[]> => ((await (await fetch(`${c.apiUrl}/api/v1/routes/${id}`, { headers: auth })).json()) as { route: { backend_health?: Health[] } }).route.backend_health ?? [];

  before(async function () {
    if (!hasCaddy()) return this.skip();
    tmp = tempDir();
    caddy = await startCaddy();
    a = await startBackend('a', 0);
    b = await startBackend('b', 0);
    c = await startController(tmp.dir, { DNSPROXY_CADDY_ADMIN: caddy.adminListen, DNSPROXY_HTTP_PORT: String(caddy.httpPort), DNSPROXY_HTTPS_PORT: String(caddy.httpsPort) });
    const r = await fetch(`${c.apiUrl}/api/v1/routes`, { method: 'POST', headers: auth, body: JSON.stringify({ hosts: [HOST], upstreams: [a.dial, b.dial], health: { passive: { fail_duration: '30s' }, recovery_interval: '1s' } }) });
    expect(r.status).to.equal(201);
    id = ((await r.json()) as { route: { id: string } }).route.id;
    await until('route served by both', 20_000, async () => {
      const seen = new Set([await backendBehind(caddy.httpPort, HOST).catch(() => ''), await backendBehind(caddy.httpPort, HOST).catch(() => '')]);
      return seen.has('a') && seen.has('b') ? true : undefined;
    });
  });
  after(async () => {
    await c?.stop();
    await caddy?.stop();
    await Promise.all([a, b].filter((x) => x).map((x) => x!.close()));
    tmp?.cleanup();
  });

  it('out after the failure (API and CLI say down, probed every 1s), back once it answers again', async () => {
    const port = b!.port;
    const dial = b!.dial;
    await b!.close();
    b = null;
    // Requests (each answered by a: the dial error is retried) until the controller has marked b down.
    const down = await until('the stopped backend shown down', 30_000, async () => {
      expect(await backendBehind(caddy.httpPort, HOST)).to.equal('a');
      const h = (await health()).find((x) => x.address === dial);
      return h?.state === 'down' ? h : undefined;
    }, 200);
    expect(down.reason).to.equal('failed requests; probed every 1s');
    expect(Date.parse(down.next_probe_at!)).to.be.above(Date.parse(down.since!) - 1);
    await until('Caddy runs the config without it', 20_000, async () => (JSON.stringify(await caddy.get('/config/')).includes(dial) ? undefined : true));
    for (let i = 0; i < 20; i++) expect(await backendBehind(caddy.httpPort, HOST)).to.equal('a');
    // The plan compares with what the reconciler renders (the marked backend out): nothing pending.
    const plan = await until('the plan in sync', 20_000, async () => {
      const p = (await (await fetch(`${c.apiUrl}/api/v1/plan`, { headers: auth })).json()) as { in_sync: boolean; plan: { caddy_reload: boolean; routes: { changed: unknown[] } } };
      return p.in_sync ? p : undefined;
    });
    expect(plan.plan.caddy_reload, JSON.stringify(plan.plan.routes)).to.equal(false);
    expect(plan.plan.routes.changed).to.deep.equal([]);
    const listed = await cli(['routes'], { DNSPROXY_API_URL: c.apiUrl, DNSPROXY_TOKEN: TOKEN });
    expect(listed.code, listed.stderr).to.equal(0);
    expect(listed.stdout).to.include(`${dial} (down: failed requests; probed every 1s)`);

    b = await startBackend('b', port);
    await until('the backend probed back into Caddy', 30_000, async () => (JSON.stringify(await caddy.get('/config/')).includes(dial) ? true : undefined), 200);
    const seen: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      const name = await backendBehind(caddy.httpPort, HOST);
      seen[name] = (seen[name] ?? 0) + 1;
    }
    expect(seen, JSON.stringify(seen)).to.deep.equal({ a: 10, b: 10 });
    expect((await health()).map((h) => h.state)).to.deep.equal(['up', 'up']);
  });

  it('alive by hand puts a backend marked down back at once; dead by hand wins over the mark', async () => {
    const port = b!.port;
    const dial = b!.dial;
    await b!.close();
    b = null;
    await until('the stopped backend shown down again', 30_000, async () => {
      await backendBehind(caddy.httpPort, HOST);
      return (await health()).find((x) => x.address === dial)?.state === 'down' ? true : undefined;
    }, 200);
    const post = (state: string) => fetch(`${c.apiUrl}/api/v1/routes/${id}/backends/${dial}/${state}`, { method: 'POST', headers: { authorization: auth.authorization } });
    expect((await post('alive')).status).to.equal(200);
    expect((await health()).find((x) => x.address === dial)?.state, 'the mark is gone').to.not.equal('down');
    await until('Caddy runs it again', 20_000, async () => (JSON.stringify(await caddy.get('/config/')).includes(dial) ? true : undefined), 200);
    expect((await post('dead')).status).to.equal(200);
    expect((await health()).find((x) => x.address === dial)?.state).to.equal('dead');
    await until('Caddy runs the config without it', 20_000, async () => (JSON.stringify(await caddy.get('/config/')).includes(dial) ? undefined : true), 200);
    b = await startBackend('b', port);
    expect((await post('alive')).status).to.equal(200);
    await until('back in Caddy', 20_000, async () => (JSON.stringify(await caddy.get('/config/')).includes(dial) ? true : undefined), 200);
    expect((await health()).map((h) => h.state)).to.not.include('down');
  });
});
