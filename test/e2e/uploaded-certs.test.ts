// Issue 16, item 1: an uploaded certificate is served by Caddy for its SNI names, in place of the
// one Caddy gets itself for a `tls internal` route, and is no longer served once removed. Real
// controller (bin/dnsproxy serve), real Caddy, the CLI for upload/list/remove/export; the peer
// certificate is read with node:tls. Nothing of the key shows in logs, responses or the export.
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, startController, TOKEN, type Running } from '../helpers/controller.js';
import { hasCaddy, startBackend, startCaddy, type Backend, type RunningCaddy } from '../helpers/caddy.js';
import { keyMaterial, makeCa, makeLeaf, servedFingerprint, type Pem } from '../helpers/certs.js';
import { tempDir } from '../helpers/tmp.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
/** How long Caddy may take to serve a change (a load is ~50 ms; the box is shared and loaded). */
const SERVED_WITHIN_MS = 20_000;

describe('e2e: uploaded certificates are served by Caddy for their names', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  let caddy: RunningCaddy;
  let c: Running;
  let backend: Backend;
  let ca: Pem;
  let exact: Pem;
  let wild: Pem;
  const seen: string[] = [];

  before(async function () {
    if (!hasCaddy()) return this.skip();
    tmp = tempDir();
    ca = makeCa();
    exact = makeLeaf(ca, ['app.home.arpa']);
    wild = makeLeaf(ca, ['*.home.arpa']);
    caddy = await startCaddy();
    backend = await startBackend('b');
    c = await startController(join(tmp.dir, 'data'), { DNSPROXY_CADDY_ADMIN: caddy.adminListen, DNSPROXY_HTTP_PORT: String(caddy.httpPort), DNSPROXY_HTTPS_PORT: String(caddy.httpsPort) });
  });
  after(async () => {
    await c?.stop();
    await caddy?.stop();
    await backend?.close();
    tmp?.cleanup();
  });

  const env = () => ({ DNSPROXY_API_URL: c.apiUrl, DNSPROXY_TOKEN: TOKEN });
  const run = async (args: string[]) => {
    const r = await cli(args, env());
    seen.push(r.stdout, r.stderr);
    return r;
  };
  const fp = (pem: string) => new X509Certificate(pem).fingerprint256;

  /** The SHA-256 fingerprint of the leaf Caddy presents for `servername` (null: handshake failed). */
  const served = (servername: string) => servedFingerprint(caddy.httpsPort, servername);
  /** Handshakes until `ok(fingerprint)`; fails after SERVED_WITHIN_MS with the last one seen. */
  const servedSoon = async (servername: string, ok: (f: string | null) => boolean, what: string) => {
    let last: string | null = null;
    for (const end = Date.now() + SERVED_WITHIN_MS; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if (ok((last = await served(servername)))) return last;
    throw new Error(`${what}: ${servername} still serves ${last} after ${SERVED_WITHIN_MS} ms`);
  };

  it('a tls internal route first gets Caddy\'s own certificate; an upload for its name replaces it; the wildcard covers the other names', async () => {
    for (const host of ['app.home.arpa', 'web.home.arpa']) {
      const res = await fetch(`${c.apiUrl}/api/v1/routes`, { method: 'POST', headers: auth, body: JSON.stringify({ hosts: [host], upstreams: [backend.dial], tls: 'internal' }) });
      expect(res.status, await res.text()).to.equal(201);
    }
    const own = await servedSoon('app.home.arpa', (f) => f !== null, "Caddy's internal certificate");
    expect(own).not.to.equal(fp(exact.cert));

    writeFileSync(join(tmp.dir, 'app.pem'), exact.cert + ca.cert);
    writeFileSync(join(tmp.dir, 'app.key'), exact.key, { mode: 0o600 });
    writeFileSync(join(tmp.dir, 'wild.pem'), wild.cert + ca.cert);
    writeFileSync(join(tmp.dir, 'wild.key'), wild.key, { mode: 0o600 });
    const add = await run(['cert', 'add', '--cert', join(tmp.dir, 'app.pem'), '--key', join(tmp.dir, 'app.key')]);
    expect(add.code, add.stderr).to.equal(0);
    expect(add.stdout).to.match(/^certificate crt_[0-9a-f]{16} \(upload\) for app\.home\.arpa, valid until /);
    const addWild = await run(['--json', 'cert', 'add', '--cert', join(tmp.dir, 'wild.pem'), '--key', join(tmp.dir, 'wild.key')]);
    expect(addWild.code, addWild.stderr).to.equal(0);

    await servedSoon('app.home.arpa', (f) => f === fp(exact.cert), 'the uploaded certificate');
    // The exact name's certificate wins over the wildcard for app; the wildcard serves web (which also had tls internal).
    await servedSoon('web.home.arpa', (f) => f === fp(wild.cert), 'the uploaded wildcard');
    expect(await served('app.home.arpa')).to.equal(fp(exact.cert));

    // The route stays active: the controller's own certificate probe sees a certificate.
    const routes = (await (await fetch(`${c.apiUrl}/api/v1/routes`, { headers: auth })).json()) as { routes: { hosts: string[]; status: string }[] };
    seen.push(JSON.stringify(routes));
    expect(routes.routes.find((r) => r.hosts.includes('app.home.arpa'))?.status).to.equal('active');
  });

  it('cert list shows both (never a key); removing the exact one brings the wildcard back for its name, removing both Caddy\'s own', async () => {
    const list = await run(['--json', 'cert', 'list']);
    expect(list.code, list.stderr).to.equal(0);
    const certs = (JSON.parse(list.stdout) as { certificates: { id: string; names: string[]; fingerprint_sha256: string }[] }).certificates;
    expect(certs.map((x) => x.names)).to.deep.equal([['app.home.arpa'], ['*.home.arpa']]);
    const human = await run(['cert', 'list']);
    expect(human.stdout).to.include('app.home.arpa').and.include('CN=dnsproxy test CA');

    const rm = await run(['cert', 'remove', certs[0]!.id]);
    expect(rm.code, rm.stderr).to.equal(0);
    await servedSoon('app.home.arpa', (f) => f === fp(wild.cert), 'the wildcard after the exact one is gone');
    expect((await run(['cert', 'remove', certs[1]!.id])).code).to.equal(0);
    await servedSoon('app.home.arpa', (f) => f !== null && f !== fp(wild.cert) && f !== fp(exact.cert), "Caddy's own certificate again");
    expect(await served('web.home.arpa')).not.to.equal(fp(wild.cert));
    expect((await run(['cert', 'remove', certs[1]!.id])).code, 'removing it again').to.equal(1);
  });

  it('cert add: usage errors exit 2; refusals exit 1 naming the field (a mismatched key, an ACME name outside our zones); --dry-run stores nothing', async () => {
    for (const args of [['cert', 'add'], ['cert', 'add', '--cert', join(tmp.dir, 'app.pem')], ['cert', 'add', '--acme-dns01', 'a.home.arpa', '--key', join(tmp.dir, 'app.key')], ['cert', 'add', '--cert', join(tmp.dir, 'missing.pem'), '--key', join(tmp.dir, 'app.key')]]) {
      const r = await run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(2);
    }
    const mismatch = await run(['cert', 'add', '--cert', join(tmp.dir, 'app.pem'), '--key', join(tmp.dir, 'wild.key')]);
    expect(mismatch.code).to.equal(1);
    expect(mismatch.stderr).to.match(/key: the private key does not match the certificate/);
    const outside = await run(['cert', 'add', '--acme-dns01', '*.home.arpa', 'shop.example.com']);
    expect(outside.code).to.equal(1);
    expect(outside.stderr).to.match(/acme_dns01\.names\.1: shop\.example\.com is outside the zones we serve/);
    const dry = await run(['cert', 'add', '--dry-run', '--cert', join(tmp.dir, 'app.pem'), '--key', join(tmp.dir, 'app.key')]);
    expect(dry.code, dry.stderr).to.equal(0);
    expect(dry.stdout).to.match(/^dry run, nothing applied:\n\+ certificate crt_[0-9a-f]{16} for app\.home\.arpa/);
    const list = await run(['--json', 'cert', 'list']);
    expect((JSON.parse(list.stdout) as { certificates: unknown[] }).certificates).to.deep.equal([]);
  });

  it('no key material in the controller\'s log, Caddy\'s log, CLI output, API answers or dnsproxy export', async () => {
    const exported = await run(['export']);
    expect(exported.code, exported.stderr).to.equal(0);
    const caddyfile = await run(['export', '--caddyfile']);
    const texts = { controller: c.output(), caddy: caddy.output(), cli: seen.join('\n'), export: exported.stdout, caddyfile: caddyfile.stdout };
    expect(texts.controller).to.include('"certificate uploaded"');
    for (const [where, text] of Object.entries(texts)) {
      expect(text, where).not.to.include('PRIVATE KEY');
      for (const line of [...keyMaterial(exact.key), ...keyMaterial(wild.key)]) expect(text, where).not.to.include(line);
    }
  });
});
