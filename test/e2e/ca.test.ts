// Issue "Certificates", item 5: `dnsproxy ca export` prints the root of Caddy's internal CA, and
// a `tls internal` route's served chain verifies against it. Real controller, real Caddy 2.6.2.
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { cli, eachController, TOKEN, type CaddyController, type Running } from '../helpers/controller.js';
import { request, startBackend, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { until } from '../helpers/until.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

/** A handshake whose chain must verify against `ca` alone: the leaf's SAN, or a rejection. */
function verifiedHandshake(port: number, servername: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca }, () => {
      const san = socket.getPeerCertificate().subjectaltname ?? '';
      socket.destroy();
      resolve(san);
    });
    socket.setTimeout(15_000, () => socket.destroy(new Error('handshake timed out')));
    socket.once('error', reject);
  });
}

describe('e2e: dnsproxy ca export (Caddy\'s internal CA)', function () {
  this.timeout(120_000);
  let tmp: CaddyController['tmp'];
  let caddy: RunningCaddy;
  let c: Running;
  let backend: Backend;
  let env: Record<string, string>;

  eachController(async (s) => {
    ({ tmp, caddy, c, env } = s);
    backend = await startBackend('b');
  });
  after(async () => {
    await backend?.close();
  });

  it('prints the root before any tls internal route exists, and a tls internal route\'s chain verifies against it', async () => {
    const first = await cli(['ca', 'export'], env);
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout).to.match(/^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
    const root = new X509Certificate(first.stdout);
    expect(root.ca).to.equal(true);
    expect(root.subject).to.match(/Caddy Local Authority/);
    expect(first.stderr).to.contain(`SHA-256 ${root.fingerprint256}`);

    const host = 'wiki.home.arpa';
    const res = await fetch(`${c.apiUrl}/api/v1/routes`, { method: 'POST', headers: auth, body: JSON.stringify({ hosts: [host], upstreams: [backend.dial], tls: 'internal' }) });
    expect(res.status, await res.text()).to.equal(201);
    const san = await until(`${host}'s chain verifying against the exported root`, 30_000, () => verifiedHandshake(caddy.httpsPort, host, first.stdout), 100);
    expect(san).to.equal(`DNS:${host}`);
    // Nothing else vouches for it: without the exported root the same handshake is refused.
    const untrusted = await verifiedHandshake(caddy.httpsPort, host, '').then(() => 'trusted', (e: Error & { code?: string }) => e.code ?? e.message);
    expect(untrusted).to.not.equal('trusted');
    expect(JSON.parse((await request({ port: caddy.httpsPort, host, tls: { servername: host } })).body)).to.include({ backend: 'b' });

    // The same root after the pki app started, through --json and -o.
    const json = await cli(['--json', 'ca', 'export'], env);
    expect(json.code, json.stderr).to.equal(0);
    const view = (JSON.parse(json.stdout) as { ca: Record<string, string> }).ca;
    expect(view).to.include({ id: 'local', root_certificate: first.stdout, root_fingerprint_sha256: root.fingerprint256 });
    expect(view.intermediate_certificate).to.match(/^-----BEGIN CERTIFICATE-----/);
    expect(Date.parse(view.root_not_after!)).to.be.above(Date.now() + 5 * 365 * 86_400_000);
    const file = join(tmp.dir, 'root.crt');
    expect((await cli(['ca', 'export', '-o', file], env)).code).to.equal(0);
    expect(readFileSync(file, 'utf8')).to.equal(first.stdout);

    // The CA's private keys stay in Caddy's storage: not in the answer, the CLI's output or the controller's log.
    const keys = ['root.key', 'intermediate.key'].map((k) => readFileSync(join(caddy.dir, 'data', 'caddy', 'pki', 'authorities', 'local', k), 'utf8'));
    for (const key of keys) {
      const body = key.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
      expect(body.length).to.be.above(56);
      for (const text of [first.stdout, first.stderr, json.stdout, c.output()]) expect(text.replace(/\s+/g, '')).to.not.contain(body.slice(16, 56));
    }
    expect(json.stdout).to.not.match(/PRIVATE KEY/);
  });

  it('needs a token; says why when Caddy does not answer (exit 1, 503)', async () => {
    const anonymous = await fetch(`${c.apiUrl}/api/v1/ca`);
    expect(anonymous.status).to.equal(401);
    await caddy.kill();
    const down = await cli(['ca', 'export'], env);
    expect(down.code).to.equal(1);
    expect(down.stdout).to.equal('');
    expect(down.stderr).to.match(/Caddy admin API unavailable: GET \/pki\/ca\/local/);
    const res = await fetch(`${c.apiUrl}/api/v1/ca`, { headers: auth });
    expect(res.status).to.equal(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).to.equal('unavailable');
  });
});
