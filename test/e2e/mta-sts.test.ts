// Issue 18 item 1: the MTA-STS policy of a mail domain is served over HTTPS by Caddy itself
// (a static-response route), at https://mta-sts.<domain>/.well-known/mta-sts.txt. Real controller
// process, real Caddy (tls internal: its local CA, trusted here from Caddy's data dir), the body
// parsed by mailauth's RFC 8461 parser; removing the domain takes the route out of Caddy's config.
import { readFileSync, readdirSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { expect } from 'chai';
import { parsePolicy } from 'mailauth/lib/mta-sts.js';
import { startController, TOKEN, type Running } from '../helpers/controller.js';
import { hasCaddy, startCaddy, type RunningCaddy } from '../helpers/caddy.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/until.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const DOMAIN = 'lab.home.arpa';
const HOST = `mta-sts.${DOMAIN}`;
const MX = 'mx.home.arpa';
const ROUTE_ID = `dnsproxy-route-mail:mta-sts:${DOMAIN}`;

/** Caddy's local root (tls internal), found under the Caddy's own data dir. */
function localRoot(dir: string): string {
  const walk = (d: string): string | undefined => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        const found = walk(p);
        if (found) return found;
      } else if (e.name === 'root.crt' && d.endsWith(join('authorities', 'local'))) return p;
    }
    return undefined;
  };
  const found = walk(dir);
  if (!found) throw new Error(`no local CA root under ${dir}`);
  return readFileSync(found, 'utf8');
}

/** GET over HTTPS to Caddy with SNI and Host `HOST`, the certificate verified against `ca`. */
function get(port: number, path: string, ca?: string): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, servername: HOST, headers: { host: HOST }, agent: false, ...(ca ? { ca } : { rejectUnauthorized: false }) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

describe('e2e: MTA-STS policy served by Caddy', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  let caddy: RunningCaddy;
  let c: Running;

  before(async function () {
    if (!hasCaddy()) return this.skip();
    tmp = tempDir();
    caddy = await startCaddy();
    c = await startController(tmp.dir, {
      DNSPROXY_CADDY_ADMIN: caddy.adminListen,
      DNSPROXY_HTTP_PORT: String(caddy.httpPort),
      DNSPROXY_HTTPS_PORT: String(caddy.httpsPort),
      DNSPROXY_MAIL_HOSTNAME: MX,
    });
  });
  after(async () => {
    await c?.stop();
    await caddy?.stop();
    tmp?.cleanup();
  });

  const put = (body: unknown) => fetch(`${c.apiUrl}/api/v1/mail/domains/${DOMAIN}`, { method: 'PUT', headers: auth, body: JSON.stringify(body) });
  const policyWith = async (mode: string, ca?: string) =>
    until(`the policy in mode ${mode}`, 60_000, async () => {
      const r = await get(caddy.httpsPort, '/.well-known/mta-sts.txt', ca);
      return r.status === 200 && r.body.includes(`mode: ${mode}\r\n`) ? r : undefined;
    });

  it('serves the policy over HTTPS with a certificate for mta-sts.<domain>, text/plain, RFC 8461 syntax; 404 elsewhere', async () => {
    const res = await put({});
    expect(res.status, await res.text()).to.equal(201);
    // Caddy issues from its local CA once the route is loaded; the first answer may precede the certificate.
    await policyWith('testing');
    const r = await get(caddy.httpsPort, '/.well-known/mta-sts.txt', localRoot(caddy.dir));
    expect(r.status).to.equal(200);
    expect(r.type).to.equal('text/plain; charset=utf-8');
    expect(r.body).to.equal(`version: STSv1\r\nmode: testing\r\nmx: ${MX}\r\nmax_age: 604800\r\n`);
    expect(parsePolicy(r.body)).to.deep.include({ version: 'STSv1', mode: 'testing', mx: [MX], maxAge: 604800 });
    // The id in the _mta-sts TXT record is the one the API reports for this very policy.
    const view = (await (await fetch(`${c.apiUrl}/api/v1/mail/domains/${DOMAIN}`, { headers: auth })).json()) as { domain: { mta_sts_policy: string } };
    expect(view.domain.mta_sts_policy).to.equal(r.body);
    const other = await get(caddy.httpsPort, '/', localRoot(caddy.dir));
    expect(other.status).to.equal(404);
  });

  it('a mode change reaches the served policy', async () => {
    const res = await put({ mta_sts_mode: 'enforce' });
    expect(res.status, await res.text()).to.equal(200);
    const r = await policyWith('enforce', localRoot(caddy.dir));
    expect(parsePolicy(r.body)).to.deep.include({ mode: 'enforce', mx: [MX] });
  });

  it('removing the domain removes the route from Caddy', async () => {
    const before = JSON.stringify(await caddy.get('/config/'));
    expect(before).to.include(ROUTE_ID);
    const res = await fetch(`${c.apiUrl}/api/v1/mail/domains/${DOMAIN}`, { method: 'DELETE', headers: { authorization: auth.authorization } });
    expect(res.status, await res.text()).to.equal(200);
    await until('the MTA-STS route gone from Caddy', 30_000, async () => (JSON.stringify(await caddy.get('/config/')).includes(ROUTE_ID) ? undefined : true));
    await until('the policy gone', 30_000, async () => {
      const r = await get(caddy.httpsPort, '/.well-known/mta-sts.txt').catch((e: Error) => ({ status: 0, body: e.message }));
      return r.status === 200 ? undefined : r;
    });
  });
});
