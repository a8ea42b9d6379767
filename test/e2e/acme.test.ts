// Issue "Certificates", item 2 (ACME HTTP-01): one issuance proves DNS + proxy + ACME together.
// Real controller (bin/dnsproxy serve), real Caddy 2.6.2, real pebble (test/helpers/pebble.ts):
// pebble asks OUR DNS server for the name, gets the address Caddy's HTTP server listens on,
// fetches the HTTP-01 token from Caddy there, and issues; Caddy then serves a chain that
// verifies against pebble's issuing root, and the controller's certificate probe shows the route
// `active`. Both kinds of acme names: a plain proxied record (certificate on demand, no load)
// and an explicit route (its own automation policy).
import { expect } from 'chai';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { startController, TOKEN, type Running } from '../helpers/controller.js';
import { hasCaddy, request, startBackend, startCaddy, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { hasPebble, startPebble, type RunningPebble } from '../helpers/pebble.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/until.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
/** Issuance against pebble takes ~1 s here; a loaded box, many times that. */
const ISSUE_LIMIT_MS = 60_000;
/** The controller probes a host without a certificate again every 30 s (CERT_PROBE_INTERVAL_MS). */
const ACTIVE_LIMIT_MS = 75_000;

/** A port free for both UDP and TCP on 127.0.0.1 a moment ago (our DNS server binds both). */
async function freeDnsPort(): Promise<number> {
  for (;;) {
    const tcp = net.createServer();
    await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(0, '127.0.0.1', resolve));
    const { port } = tcp.address() as net.AddressInfo;
    const udp = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (ok) return port;
  }
}

/** A TLS handshake with SNI `servername` whose chain must verify against `ca` alone: the leaf's SAN and issuer, or the error. */
function verifiedHandshake(port: number, servername: string, ca: string): Promise<{ san: string; issuer: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca }, () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      resolve({ san: cert.subjectaltname ?? '', issuer: [cert.issuer?.CN ?? ''].flat().join(', '), fingerprint: cert.fingerprint256 });
    });
    socket.setTimeout(20_000, () => socket.destroy(new Error('handshake timed out')));
    socket.once('error', reject);
  });
}

interface RouteView {
  id: string;
  hosts: string[];
  status: string;
  mode?: string;
  error: string | null;
}

interface AcmeStack {
  caddy: RunningCaddy;
  pebble: RunningPebble;
  c: Running;
  backend: Backend;
}

/**
 * Registers in the enclosing describe a before-all hook that starts a real Caddy, a backend `b`, pebble and a
 * controller for example.net whose ACME CA is pebble, with `env(pebble)` on top (the suite is skipped without
 * Caddy or pebble), and an after-all hook that stops them all. `started` gets them once they run.
 */
function eachAcmeController(env: (pebble: RunningPebble) => Record<string, string>, started: (s: AcmeStack) => void): void {
  let tmp: ReturnType<typeof tempDir> | undefined;
  const s: Partial<AcmeStack> = {};
  before(async function () {
    if (!hasCaddy() || !hasPebble()) return this.skip();
    tmp = tempDir();
    const caddy = (s.caddy = await startCaddy());
    const backend = (s.backend = await startBackend('b'));
    const dnsPort = await freeDnsPort();
    // Pebble validates HTTP-01 on Caddy's HTTP port, at the address our DNS gives for the name.
    const pebble = (s.pebble = await startPebble({ dnsServer: `127.0.0.1:${dnsPort}`, httpPort: caddy.httpPort, tlsPort: caddy.httpsPort }));
    const c = (s.c = await startController(
      tmp.dir,
      {
        DNSPROXY_CADDY_ADMIN: caddy.adminListen,
        DNSPROXY_HTTP_PORT: String(caddy.httpPort),
        DNSPROXY_HTTPS_PORT: String(caddy.httpsPort),
        DNSPROXY_NODE_IP: '127.0.0.1',
        // A zone under a public suffix: the API refuses tls acme for private names (.arpa, .internal, ...).
        DNSPROXY_ZONE: 'example.net',
        DNSPROXY_ACME_CA: pebble.directoryUrl,
        ...env(pebble),
      },
      { dnsPort },
    ));
    started({ caddy, pebble, c, backend });
  });
  after(async () => {
    await s.c?.stop();
    await s.pebble?.stop();
    await s.caddy?.stop();
    await s.backend?.close();
    tmp?.cleanup();
  });
}

describe('e2e: ACME HTTP-01 from pebble through our DNS and Caddy', function () {
  this.timeout(240_000);
  let caddy: RunningCaddy;
  let pebble: RunningPebble;
  let c: Running;
  let backend: Backend;

  eachAcmeController(
    (p) => ({
      DNSPROXY_TLS_ON_DEMAND: 'acme',
      DNSPROXY_ACME_CA_ROOT: p.httpsRootFile,
      DNSPROXY_ACME_EMAIL: 'ops@example.org',
      // Only HTTP-01, so the issuance proves that path (TLS-ALPN-01 would also reach Caddy).
      DNSPROXY_ACME_CHALLENGES: 'http-01',
    }),
    (s) => ({ caddy, pebble, c, backend } = s),
  );

  const routes = async (): Promise<RouteView[]> => ((await (await fetch(`${c.apiUrl}/api/v1/routes`, { headers: auth })).json()) as { routes: RouteView[] }).routes;
  const routeOf = async (host: string) => (await routes()).find((r) => r.hosts.includes(host));
  /** pebble's log line for an HTTP-01 validation of `host` on Caddy's HTTP port. */
  const validatedOverHttp = (host: string) => pebble.output().includes(`Attempting to validate w/ HTTP: http://${host}:${caddy.httpPort}/.well-known/acme-challenge/`);

  it('a plain proxied record with tls acme gets its certificate on demand: the chain verifies against pebble\'s root', async () => {
    const host = 'shop.example.net';
    const res = await fetch(`${c.apiUrl}/api/v1/records`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ name: host, type: 'A', values: ['127.0.0.1'], proxy: { enabled: true, upstreams: [backend.dial], tls: 'acme' } }),
    });
    expect(res.status, await res.text()).to.equal(201);
    const start = Date.now();
    const leaf = await until(`a certificate for ${host} that verifies against pebble's root`, ISSUE_LIMIT_MS, () => verifiedHandshake(caddy.httpsPort, host, pebble.issuingRootPem), 200);
    const issuedMs = Date.now() - start;
    expect(leaf.san).to.equal(`DNS:${host}`);
    expect(leaf.issuer).to.match(/^Pebble Intermediate CA/);
    // pebble asked our DNS for the name and fetched the token from Caddy's HTTP port.
    expect(validatedOverHttp(host), pebble.output()).to.equal(true);
    const reply = await request({ port: caddy.httpsPort, host, tls: { servername: host } });
    expect(JSON.parse(reply.body)).to.include({ backend: 'b' });
    const r = await until(`${host} active`, ACTIVE_LIMIT_MS, async () => {
      const v = await routeOf(host);
      return v?.status === 'active' ? v : undefined;
    }, 200);
    expect(r.mode).to.equal('dynamic');
    console.log(`      on-demand acme certificate for ${host} verified ${issuedMs} ms after its 201`);
  });

  it('an explicit tls acme route gets its certificate from its own policy; the certificate probe shows it active', async () => {
    const host = 'api.example.net';
    // Routes carry no DNS record: the name needs an A record for the CA to find Caddy.
    const a = await fetch(`${c.apiUrl}/api/v1/records`, { method: 'POST', headers: auth, body: JSON.stringify({ name: host, type: 'A', values: ['127.0.0.1'] }) });
    expect(a.status, await a.text()).to.equal(201);
    const res = await fetch(`${c.apiUrl}/api/v1/routes`, { method: 'POST', headers: auth, body: JSON.stringify({ hosts: [host], upstreams: [backend.dial], tls: 'acme' }) });
    expect(res.status, await res.text()).to.equal(201);
    const start = Date.now();
    const leaf = await until(`a certificate for ${host} that verifies against pebble's root`, ISSUE_LIMIT_MS, () => verifiedHandshake(caddy.httpsPort, host, pebble.issuingRootPem), 200);
    const issuedMs = Date.now() - start;
    expect(leaf.san).to.equal(`DNS:${host}`);
    expect(validatedOverHttp(host), pebble.output()).to.equal(true);
    // Caddy runs our policy for the name with the configured CA, trusted root, email and challenges.
    const config = JSON.stringify(await caddy.get('/config/apps/tls/automation/policies'));
    expect(config).to.contain(pebble.directoryUrl).and.contain(pebble.httpsRootFile).and.contain('"tls-alpn":{"disabled":true}').and.contain(host);
    const r = await until(`${host} active`, ACTIVE_LIMIT_MS, async () => {
      const v = await routeOf(host);
      return v?.status === 'active' ? v : undefined;
    }, 200);
    expect(r).to.include({ mode: 'explicit', error: null });
    const reply = await request({ port: caddy.httpsPort, host, tls: { servername: host } });
    expect(JSON.parse(reply.body)).to.include({ backend: 'b' });
    console.log(`      explicit acme route ${host}: certificate verified ${issuedMs} ms after its 201, active ${Date.now() - start} ms after`);
  });

  it('a Caddy restart keeps both certificates: the same ones are served again, nothing is issued anew', async () => {
    const issued = () => (pebble.output().match(/Issued certificate serial/g) ?? []).length;
    const before = issued();
    const hosts = ['shop.example.net', 'api.example.net'];
    const served = await Promise.all(hosts.map((h) => verifiedHandshake(caddy.httpsPort, h, pebble.issuingRootPem)));
    await caddy.kill();
    const start = Date.now();
    await caddy.restart();
    // The controller notices the empty config and loads ours again; Caddy reads the certificates from its storage.
    const again = await Promise.all(hosts.map((h) => until(`${h} served again`, ISSUE_LIMIT_MS, () => verifiedHandshake(caddy.httpsPort, h, pebble.issuingRootPem), 100)));
    expect(again.map((a) => a.fingerprint)).to.deep.equal(served.map((s) => s.fingerprint));
    expect(issued()).to.equal(before);
    console.log(`      both certificates served again ${Date.now() - start} ms after Caddy restarted, ${issued() - before} issued`);
  });
});

describe('e2e: ACME without the CA\'s trusted root', function () {
  this.timeout(180_000);
  let caddy: RunningCaddy;
  let pebble: RunningPebble;
  let c: Running;
  let backend: Backend;
  /** The grace the test gives an issuance before the route shows error (the default is a minute). */
  const GRACE_MS = 1_500;

  // acme_ca without acme_ca_root: nothing Caddy trusts signed pebble's HTTPS certificate.
  eachAcmeController(
    () => ({ DNSPROXY_CERT_GRACE_MS: String(GRACE_MS) }),
    (s) => ({ caddy, pebble, c, backend } = s),
  );

  it('Caddy refuses to talk to the CA, nothing is ordered, and the route turns error with the reason after the grace', async () => {
    const host = 'api.example.net';
    const a = await fetch(`${c.apiUrl}/api/v1/records`, { method: 'POST', headers: auth, body: JSON.stringify({ name: host, type: 'A', values: ['127.0.0.1'] }) });
    expect(a.status, await a.text()).to.equal(201);
    const res = await fetch(`${c.apiUrl}/api/v1/routes`, { method: 'POST', headers: auth, body: JSON.stringify({ hosts: [host], upstreams: [backend.dial], tls: 'acme' }) });
    expect(res.status, await res.text()).to.equal(201);
    const routes = async () => ((await (await fetch(`${c.apiUrl}/api/v1/routes`, { headers: auth })).json()) as { routes: RouteView[] }).routes;
    const failed = await until(`${host} in error`, ACTIVE_LIMIT_MS, async () => (await routes()).find((r) => r.hosts.includes(host) && r.status === 'error'), 200);
    expect(failed.error).to.match(/^certificate for api\.example\.net: TLS handshake for api\.example\.net failed/);
    // Caddy tried: its log names the unknown authority; pebble never got as far as an account.
    expect(caddy.output()).to.match(/x509: certificate signed by unknown authority/);
    expect(pebble.output()).to.not.contain('POST /sign-me-up');
  });
});
