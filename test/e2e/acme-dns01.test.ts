// Issue 16, item 3: ACME DNS-01 from our own zones. A real ACME CA (Debian's pebble, validating
// through OUR DNS server), the real controller in this process (its certificate clock and renewal
// timers injected), real Caddy. A wildcard certificate is ordered through the API, issued after
// pebble read our `_acme-challenge` TXT answers, served by Caddy, renewed when the injected clock
// reaches two thirds of its lifetime, presented by the mail relay for its host name, and kept
// across a controller restart.
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { Controller } from '../../src/controller.js';
import { setLogLevel } from '../../src/log/index.js';
import type { Timers } from '../../src/timers.js';
import { freePort, hasCaddy, startBackend, startCaddy, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { servedFingerprint } from '../helpers/certs.js';
import { hasPebble, startPebble, type RunningPebble } from '../helpers/pebble.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/until.js';
import { presentedAt, startRelay } from '../mail/helpers.js';

/** How long Caddy may take to serve a change (a load is ~50 ms; the box is shared and loaded). */
const SERVED_WITHIN_MS = 20_000;

/** Timers the test fires by hand: the renewer's waits never run by themselves. */
class ManualTimers implements Timers {
  pending = new Map<number, { fn: () => void; ms: number }>();
  private next = 1;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { fn, ms });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Runs every pending callback once. */
  fire(): number {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const t of due) t.fn();
    return due.length;
  }
}

interface CertView {
  id: string;
  source: string;
  names: string[];
  not_before: string;
  not_after: string;
  fingerprint_sha256: string;
  renewal: { names: string[]; due_at: string; failures: number; last_error: string | null } | null;
}

describe('e2e: ACME DNS-01 from our own zones (pebble)', function () {
  this.timeout(180_000);
  let tmp: ReturnType<typeof tempDir>;
  let caddy: RunningCaddy;
  let pebble: RunningPebble;
  let backend: Backend;
  let controller: Controller;
  let api: string;
  let token: string;
  let dnsPort: number;
  /** A copy of pebble's HTTPS root, which outlives pebble (the restart below runs without it). */
  let rootFile: string;
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);
  const timers = new ManualTimers();
  let cert: CertView;

  const start = async () => {
    const config = loadConfig({
      env: {
        DNSPROXY_DATA_DIR: join(tmp.dir, 'data'),
        DNSPROXY_LISTEN_IP: '127.0.0.1',
        DNSPROXY_NODE_IP: '192.0.2.10',
        DNSPROXY_DNS_PORT: String(dnsPort),
        DNSPROXY_API_PORT: '0',
        DNSPROXY_ZONES: 'home.arpa.',
        DNSPROXY_CADDY_ADMIN: caddy.adminListen,
        DNSPROXY_HTTP_PORT: String(caddy.httpPort),
        DNSPROXY_HTTPS_PORT: String(caddy.httpsPort),
        DNSPROXY_ACME_CA: pebble.directoryUrl,
        DNSPROXY_ACME_CA_ROOT: rootFile,
        DNSPROXY_MAIL_HOSTNAME: 'mail.home.arpa',
      },
      interfaces: {},
    });
    controller = new Controller(config, (line) => (token = /token[^:]*: (\S+)$/.exec(line)?.[1] ?? token), { now, timers });
    api = `http://127.0.0.1:${(await controller.start()).apiPort}`;
  };
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${api}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  };
  const served = (servername: string) => servedFingerprint(caddy.httpsPort, servername);
  const servedSoon = async (servername: string, want: string, what: string) => {
    let last: string | null = null;
    for (const end = Date.now() + SERVED_WITHIN_MS; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if ((last = await served(servername)) === want) return;
    throw new Error(`${what}: ${servername} serves ${last}, not ${want}, after ${SERVED_WITHIN_MS} ms`);
  };

  /** The controller's log lines (JSON on stdout), kept off mocha's output. */
  const logs: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const logged = (message: string) => logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.message === message);

  before(async function () {
    if (!hasCaddy() || !hasPebble()) return this.skip();
    setLogLevel('info');
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
      if (text.startsWith('{"')) {
        logs.push(...text.split('\n').filter(Boolean));
        return true;
      }
      return write(chunk, ...rest);
    });
    tmp = tempDir();
    dnsPort = await freePort();
    caddy = await startCaddy();
    backend = await startBackend('b');
    pebble = await startPebble({ dnsServer: `127.0.0.1:${dnsPort}` });
    rootFile = join(tmp.dir, 'pebble-https-root.pem');
    writeFileSync(rootFile, pebble.httpsRootPem);
    await start();
  });
  after(async () => {
    process.stdout.write = write;
    setLogLevel('warn');
    await controller?.stop();
    await pebble?.stop();
    await caddy?.stop();
    await backend?.close();
    tmp?.cleanup();
  });

  it('a name outside our zones is 400 naming the field, before anything is ordered', async () => {
    const res = await call('POST', '/api/v1/certificates', { acme_dns01: { names: ['*.home.arpa', 'shop.example.com'] } });
    expect(res.status, res.text).to.equal(400);
    expect((res.json().error as { fields: unknown[] }).fields).to.deep.equal([{ path: 'acme_dns01.names.1', message: 'shop.example.com is outside the zones we serve (home.arpa.): DNS-01 needs its _acme-challenge name in our zone' }]);
    const dry = await call('POST', '/api/v1/certificates?dry_run=true', { acme_dns01: { names: ['*.home.arpa'] } });
    expect(dry.status, dry.text).to.equal(200);
    expect((await call('GET', '/api/v1/certificates')).json().certificates).to.deep.equal([]);
  });

  it('pebble issues a wildcard certificate through our DNS; Caddy serves it; the challenge records are gone', async () => {
    const route = await call('POST', '/api/v1/routes', { hosts: ['app.home.arpa'], upstreams: [backend.dial], tls: 'internal' });
    expect(route.status, route.text).to.equal(201);
    const res = await call('POST', '/api/v1/certificates', { acme_dns01: { names: ['*.home.arpa', 'home.arpa'] } });
    expect(res.status, `${res.text}\n${pebble.output().slice(-3000)}`).to.equal(201);
    cert = res.json().certificate as CertView;
    expect(cert).to.include({ source: 'acme-dns01' });
    expect(cert.names).to.have.members(['*.home.arpa', 'home.arpa']);
    expect(cert.renewal).to.include({ failures: 0, last_error: null });
    const lifetime = Date.parse(cert.not_after) - Date.parse(cert.not_before);
    expect(Date.parse(cert.renewal!.due_at) - Date.parse(cert.not_before)).to.be.closeTo((lifetime * 2) / 3, 1000);
    // Issued by pebble's issuing hierarchy (its root is /roots/0).
    const root = new X509Certificate(pebble.issuingRootPem);
    expect(root.subject).to.match(/Pebble Root CA/);

    await servedSoon('app.home.arpa', cert.fingerprint_sha256, 'the DNS-01 wildcard certificate');
    expect(logged('certificate issued').map((l) => l.id)).to.deep.equal([cert.id]);
    const records = (await call('GET', '/api/v1/records?type=TXT')).json().records as { name: string }[];
    expect(records.filter((r) => r.name.startsWith('_acme-challenge.'))).to.deep.equal([]);
    // The renewal is planned on the injected timers, not yet run.
    expect(timers.pending.size).to.equal(1);
  });

  it('the mail relay on the same data dir presents the issued certificate for its host name at STARTTLS', async () => {
    // As supervisord runs them: the relay opens the controller's database; mail.home.arpa is under the wildcard.
    const r = await startRelay({ hostname: 'mail.home.arpa', tlsPollMs: 50, smtpsPort: 0 }, join(tmp.dir, 'data'));
    try {
      await until('the relay to present the DNS-01 certificate', SERVED_WITHIN_MS, async () => ((await presentedAt(r.submissionPort)) === cert.fingerprint_sha256 ? true : undefined));
      for (const port of [r.submissionPort, r.smtpPort]) expect(await presentedAt(port), `STARTTLS on ${port}`).to.equal(cert.fingerprint_sha256);
    } finally {
      await r.close();
    }
  });

  it('renewal runs when the injected clock reaches two thirds of the lifetime; Caddy serves the new certificate', async () => {
    // Not yet due: a tick renews nothing.
    timers.fire();
    await new Promise((r) => setImmediate(r));
    expect(((await call('GET', `/api/v1/certificates/${cert.id}`)).json().certificate as CertView).fingerprint_sha256).to.equal(cert.fingerprint_sha256);

    offsetMs = Date.parse(cert.renewal!.due_at) - Date.now() + 1000;
    expect(timers.fire()).to.equal(1);
    let renewed: CertView | undefined;
    for (const end = Date.now() + 60_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
      const c = (await call('GET', `/api/v1/certificates/${cert.id}`)).json().certificate as CertView;
      if (c.fingerprint_sha256 !== cert.fingerprint_sha256) {
        renewed = c;
        break;
      }
    }
    expect(renewed, 'renewed within 60 s').not.to.equal(undefined);
    expect(renewed!.id).to.equal(cert.id);
    expect(renewed!.renewal).to.include({ failures: 0, last_error: null });
    expect(Date.parse(renewed!.renewal!.due_at)).to.be.greaterThan(now().getTime());
    await servedSoon('app.home.arpa', renewed!.fingerprint_sha256, 'the renewed certificate');
    expect(logged('certificate renewed').map((l) => [l.id, l.sha256])).to.deep.equal([[cert.id, renewed!.fingerprint_sha256]]);
    cert = renewed!;
  });

  it('a failing renewal is recorded with its backoff and logged; /metrics shows the days left; within 7 days /health is degraded; a restart keeps the certificate, served', async () => {
    await pebble.stop();
    offsetMs = Date.parse(cert.renewal!.due_at) - Date.now() + 1000;
    timers.fire();
    let failed: CertView | undefined;
    for (const end = Date.now() + 60_000; Date.now() < end && !failed; await new Promise((r) => setTimeout(r, 100))) {
      const c = (await call('GET', `/api/v1/certificates/${cert.id}`)).json().certificate as CertView;
      if (c.renewal?.failures === 1) failed = c;
    }
    expect(failed?.renewal?.last_error, 'the failure is recorded').to.be.a('string');
    expect(Date.parse(failed!.renewal!.due_at) - now().getTime()).to.be.within(50_000, 61_000);
    expect(failed!.fingerprint_sha256).to.equal(cert.fingerprint_sha256);
    expect(logged('certificate renewal failed').map((l) => [l.id, l.failures])).to.deep.equal([[cert.id, 1]]);

    // /metrics: days to expiry per certificate; /health: degraded once it expires within 7 days while its renewal fails.
    const esc = (t: string) => t.replace(/[.*]/g, '\\$&');
    const days = (text: string) => Number(new RegExp(`^dnsproxy_certificate_days_to_expiry\\{id="${cert.id}",names="${esc(cert.names.join(','))}",source="acme-dns01"\\} (-?\\d+)$`, 'm').exec(text)?.[1]);
    const metrics = async () => (await fetch(`${api}/metrics`)).text();
    expect(days(await metrics())).to.equal(Math.floor((Date.parse(cert.not_after) - now().getTime()) / 86_400_000));
    const health = async () => (await call('GET', '/health')).json() as { status: string; components: Record<string, { status: string; detail?: string }> };
    expect((await health()).components.certificates).to.deep.equal({ status: 'ok' });
    offsetMs = Date.parse(cert.not_after) - 3 * 86_400_000 - Date.now();
    expect(days(await metrics())).to.equal(2);
    const degraded = await health();
    expect(degraded.status).to.equal('degraded');
    expect(degraded.components.certificates?.status).to.equal('degraded');
    expect(degraded.components.certificates?.detail).to.match(new RegExp(`^${cert.id} \\(${esc(cert.names.join(', '))}\\) expires in 2 days, renewal failing \\(1×: the ACME CA at `));

    await controller.stop();
    await start();
    const list = (await call('GET', '/api/v1/certificates')).json().certificates as CertView[];
    expect(list.map((c) => c.fingerprint_sha256)).to.deep.equal([cert.fingerprint_sha256]);
    await servedSoon('app.home.arpa', cert.fingerprint_sha256, 'the certificate after a restart');
  });
});
