// Issue "Day one", item 2: a route whose certificate fails shows `error` with the reason. Real
// controller, real Caddy; no ACME CA is reachable here, so a public name's certificate never comes.
import { expect } from 'chai';
import { eachController, TOKEN, type Running } from '../helpers/controller.js';
import { startBackend, type Backend } from '../helpers/caddy.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
/** The grace the test gives an issuance (the default is a minute). */
const GRACE_MS = 1_500;

interface RouteView {
  id: string;
  hosts: string[];
  status: string;
  error: string | null;
}

describe('e2e: certificate status of TLS routes', function () {
  this.timeout(120_000);
  let c: Running;
  let backend: Backend;

  eachController(async (s) => {
    ({ c } = s);
    backend = await startBackend('b');
  }, { DNSPROXY_CERT_GRACE_MS: String(GRACE_MS) });
  after(async () => {
    await backend?.close();
  });

  const route = async (host: string): Promise<RouteView | undefined> => ((await (await fetch(`${c.apiUrl}/api/v1/routes`, { headers: auth })).json()) as { routes: RouteView[] }).routes.find((r) => r.hosts.includes(host));
  /** Waits for the route's status to settle at `status` (the controller's own probe decides when). */
  const settled = async (host: string, status: string, limitMs: number) => {
    const start = Date.now();
    for (;;) {
      const r = await route(host);
      if (r?.status === status) return r;
      if (Date.now() - start > limitMs) throw new Error(`${host}: ${JSON.stringify(r)} after ${limitMs} ms`);
      await new Promise((res) => setTimeout(res, 100));
    }
  };

  it('an acme route whose certificate cannot be had turns error with the reason after the grace; the others stay active', async () => {
    for (const [host, tls] of [['secure.home.arpa', 'internal'], ['shop.example.com', 'acme']] as const) {
      const res = await fetch(`${c.apiUrl}/api/v1/routes`, { method: 'POST', headers: auth, body: JSON.stringify({ hosts: [host], upstreams: [backend.dial], tls }) });
      expect(res.status, await res.text()).to.equal(201);
    }
    const failed = await settled('shop.example.com', 'error', 30_000);
    expect(failed.error).to.match(/^certificate for shop\.example\.com: TLS handshake for shop\.example\.com failed \(.+\): Caddy has no certificate for it/);
    // The internal one has its certificate from Caddy's local CA: active, and still so after a probe round past the grace.
    await new Promise((res) => setTimeout(res, GRACE_MS));
    expect(await route('secure.home.arpa')).to.include({ status: 'active', error: null });
  });

  it('turning the failing route to tls internal makes it active again', async () => {
    const r = (await route('shop.example.com'))!;
    const res = await fetch(`${c.apiUrl}/api/v1/routes/${r.id}`, { method: 'PUT', headers: auth, body: JSON.stringify({ hosts: ['shop.example.com'], upstreams: [backend.dial], tls: 'internal' }) });
    expect(res.status, await res.text()).to.equal(200);
    await settled('shop.example.com', 'active', 30_000);
  });
});
