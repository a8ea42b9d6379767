// Mail-aware domains: `PUT /api/v1/mail/domains/{domain}` makes our DNS publish MX, SPF, DKIM,
// DMARC, MTA-STS and TLS-RPT; a real DNS server (ours, on a free port) answers dig and dns2, and
// the check validates with mailauth against it. Removing the domain takes away exactly what it
// published. DKIM rotation runs on an injected clock.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { authenticate } from 'mailauth';
import { DnsServer } from '../../src/dns/server.js';
import { signMessage } from '../../src/mail/delivery/dkim.js';
import { dns2Resolver } from '../../src/mail/resolver.js';
import { apiFixture, MAIL_HOSTNAME, NODE_IP, type ApiFixture } from '../helpers/api.js';

const run = promisify(execFile);
const DOMAIN = 'lab.example';

describe('mail: domains published by our DNS', () => {
  let f: ApiFixture;
  let dns: DnsServer;
  let clock = 1_800_000_000_000;
  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    f.app.inject({ method, url, headers: f.auth, ...(payload === undefined ? {} : { payload: payload as object }) });
  /** What our server answers for `name` `type`, asked with dig (values as dig prints them). */
  const dig = async (name: string, type: string) => {
    const { stdout } = await run('dig', ['+short', '+norec', '+time=2', '+tries=1', '-p', String(dns.address().port), '@127.0.0.1', name, type]);
    return stdout.trim().split('\n').filter(Boolean);
  };

  beforeEach(async () => {
    clock = 1_800_000_000_000;
    let port = 0;
    f = await apiFixture({ dnsPort: () => port, now: () => clock });
    dns = new DnsServer({ host: '127.0.0.1', port: 0, index: f.index, upstreams: [], axfrAllow: [], recursionAllow: ['127.0.0.1'] });
    await dns.start();
    port = dns.address().port;
  });
  afterEach(async () => {
    await dns.stop();
    await f.close();
  });

  it('publishes MX, SPF, DKIM, DMARC, MTA-STS and TLS-RPT: dig shows them, the check passes every row', async () => {
    const res = await call('PUT', `/api/v1/mail/domains/${DOMAIN}`, { dmarc_rua: 'dmarc@lab.example' });
    expect(res.statusCode, res.body).to.equal(201);
    expect(res.json().warnings).to.deep.equal([]);
    expect(res.json().domain).to.include({ domain: DOMAIN, zone: 'lab.example.' });
    expect(res.json().domain.dkim).to.deep.equal({ signing: 'dnsproxy', published: [] });

    expect(await dig(DOMAIN, 'MX')).to.deep.equal([`10 ${MAIL_HOSTNAME}.`]);
    expect(await dig(DOMAIN, 'TXT')).to.deep.equal([`"v=spf1 ip4:${NODE_IP} ~all"`]);
    const dkim = (await dig(`dnsproxy._domainkey.${DOMAIN}`, 'TXT')).join('');
    expect(dkim.replace(/" "|"/g, '')).to.match(/^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{300,}$/);
    expect(await dig(`_dmarc.${DOMAIN}`, 'TXT')).to.deep.equal(['"v=DMARC1; p=none; rua=mailto:dmarc@lab.example"']);
    expect((await dig(`_mta-sts.${DOMAIN}`, 'TXT'))[0]).to.match(/^"v=STSv1; id=[0-9a-f]{20}"$/);
    expect(await dig(`_smtp._tls.${DOMAIN}`, 'TXT')).to.deep.equal(['"v=TLSRPTv1; rua=mailto:postmaster@lab.example"']);
    expect(await dig(`mta-sts.${DOMAIN}`, 'A')).to.deep.equal([NODE_IP]);

    const check = await call('GET', `/api/v1/mail/domains/${DOMAIN}/check`);
    expect(check.statusCode, check.body).to.equal(200);
    const rows = check.json().rows as { check: string; result: string; detail: string }[];
    expect(rows.map((r) => r.check)).to.deep.equal(['MX', 'SPF', 'DKIM dnsproxy', 'DMARC', 'MTA-STS', 'TLS-RPT']);
    for (const r of rows) expect(r.result, `${r.check}: ${r.detail}`).to.equal('pass');
    expect(check.json().ok).to.equal(true);
  });

  it('a message signed by the relay verifies with mailauth using our DNS server as resolver (DKIM, SPF, DMARC pass)', async () => {
    expect((await call('PUT', `/api/v1/mail/domains/${DOMAIN}`, {})).statusCode).to.equal(201);
    const key = f.mail.deps.store.dkimKey(DOMAIN)!;
    const raw = Buffer.from(`From: app@${DOMAIN}\r\nTo: someone@example.org\r\nSubject: hi\r\nMessage-ID: <1@${DOMAIN}>\r\n\r\nhello\r\n`);
    const signed = await signMessage(raw, key);
    const result = await authenticate(signed, { ip: NODE_IP, helo: MAIL_HOSTNAME, sender: `app@${DOMAIN}`, mta: 'receiver.example.org', resolver: dns2Resolver('127.0.0.1', dns.address().port), disableBimi: true });
    expect(result.dkim.results[0]!.status.result).to.equal('pass');
    expect(result.spf && result.spf.status.result).to.equal('pass');
    expect(result.dmarc && result.dmarc.status.result).to.equal('pass');
    // Another address is not ours: SPF softfails it.
    const other = await authenticate(signed, { ip: '198.51.100.7', helo: 'elsewhere.example.org', sender: `app@${DOMAIN}`, mta: 'receiver.example.org', resolver: dns2Resolver('127.0.0.1', dns.address().port), disableBimi: true });
    expect(other.spf && other.spf.status.result).to.equal('softfail');
  });

  it("keeps a user's own values at the same names, and removing the domain takes away exactly what it published", async () => {
    expect((await call('POST', '/api/v1/records', { name: `${DOMAIN}.`, type: 'TXT', values: ['site-verification=abc'] })).statusCode).to.equal(201);
    expect((await call('POST', '/api/v1/records', { name: `${DOMAIN}.`, type: 'MX', values: [{ preference: 20, exchange: 'backup.example.net.' }] })).statusCode).to.equal(201);
    const before = f.records.list({ zone: 'lab.example.' }).map((r) => `${r.name} ${r.type} ${JSON.stringify(r.values)}`);
    expect((await call('PUT', `/api/v1/mail/domains/${DOMAIN}`, {})).statusCode).to.equal(201);
    expect((await dig(DOMAIN, 'TXT')).sort()).to.deep.equal([`"site-verification=abc"`, `"v=spf1 ip4:${NODE_IP} ~all"`]);
    expect((await dig(DOMAIN, 'MX')).sort()).to.deep.equal([`10 ${MAIL_HOSTNAME}.`, '20 backup.example.net.']);

    const removed = await call('DELETE', `/api/v1/mail/domains/${DOMAIN}`);
    expect(removed.statusCode, removed.body).to.equal(200);
    expect(f.records.list({ zone: 'lab.example.' }).map((r) => `${r.name} ${r.type} ${JSON.stringify(r.values)}`)).to.deep.equal(before);
    expect(await dig(`_dmarc.${DOMAIN}`, 'TXT')).to.deep.equal([]);
    expect(await dig(DOMAIN, 'TXT')).to.deep.equal(['"site-verification=abc"']);
    expect((await call('DELETE', `/api/v1/mail/domains/${DOMAIN}`)).statusCode).to.equal(404);
  });

  it('a user SPF record at the domain is a 409 naming it, and nothing is published', async () => {
    expect((await call('POST', '/api/v1/records', { name: `${DOMAIN}.`, type: 'TXT', values: ['v=spf1 include:_spf.example.net -all'] })).statusCode).to.equal(201);
    const before = f.records.list().length;
    const res = await call('PUT', `/api/v1/mail/domains/${DOMAIN}`, {});
    expect(res.statusCode).to.equal(409);
    expect(res.json().error.message).to.include('v=spf1 include:_spf.example.net -all');
    expect(f.records.list().length).to.equal(before);
    expect((await call('GET', `/api/v1/mail/domains/${DOMAIN}`)).statusCode).to.equal(404);
  });

  it('a domain outside our zones is a 400 naming domain; bad settings name their field', async () => {
    const outside = await call('PUT', '/api/v1/mail/domains/example.com', {});
    expect(outside.statusCode).to.equal(400);
    expect(outside.json().error.fields[0].path).to.equal('domain');
    const bad = await call('PUT', `/api/v1/mail/domains/${DOMAIN}`, { dmarc_policy: 'drop' });
    expect(bad.statusCode).to.equal(400);
    expect(bad.json().error.fields[0].path).to.equal('dmarc_policy');
  });

  it('dry runs of add, remove and rotate show the DNS plan and change nothing', async () => {
    const snapshot = () => JSON.stringify(f.db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((t) => [t.name, f.db.prepare(`SELECT * FROM "${t.name}"`).all()]));
    await call('GET', '/api/v1/mail/domains'); // the token's last-used time is written on its first use
    let before = snapshot();
    const dry = await call('PUT', `/api/v1/mail/domains/${DOMAIN}?dry_run=true`, {});
    expect(dry.statusCode, dry.body).to.equal(200);
    expect(dry.json().plan.dns.added).to.include.members([`${DOMAIN}. MX`, `_dmarc.${DOMAIN}. TXT`, `dnsproxy._domainkey.${DOMAIN}. TXT`]);
    expect(snapshot()).to.equal(before);
    expect(await dig(DOMAIN, 'MX')).to.deep.equal([]);
    expect((await call('PUT', `/api/v1/mail/domains/${DOMAIN}`, {})).statusCode).to.equal(201);
    before = snapshot();
    const dryRemove = await call('DELETE', `/api/v1/mail/domains/${DOMAIN}?dry_run=true`);
    expect(dryRemove.json().plan.dns.removed).to.include(`_mta-sts.${DOMAIN}. TXT`);
    const dryRotate = await call('POST', `/api/v1/mail/domains/${DOMAIN}/dkim/rotate?dry_run=true`, { selector: 'k2' });
    expect(dryRotate.json().plan.dns.added).to.deep.equal([`k2._domainkey.${DOMAIN}. TXT`]);
    expect(snapshot()).to.equal(before);
  });

  it('SPF names the providers the rules use for the domain, and follows rule changes', async () => {
    expect((await call('PUT', `/api/v1/mail/domains/${DOMAIN}`, {})).statusCode).to.equal(201);
    expect((await call('PUT', '/api/v1/mail/providers/sg', { type: 'http', format: 'sendgrid', url: 'https://api.sendgrid.com/v3/mail/send', auth: { scheme: 'bearer', token: 'k' } })).statusCode).to.equal(201);
    expect((await call('PUT', '/api/v1/mail/providers/own', { type: 'smtp', host: 'smtp.isp.example.net', port: 587 })).statusCode).to.equal(201);
    const rule = await call('POST', '/api/v1/mail/rules', { provider: 'sg', fallback_provider: 'own', sender_domain: DOMAIN });
    expect(rule.statusCode).to.equal(201);
    expect(await dig(DOMAIN, 'TXT')).to.deep.equal([`"v=spf1 ip4:${NODE_IP} include:sendgrid.net ~all"`]);
    const again = await call('PUT', `/api/v1/mail/domains/${DOMAIN}`, { spf_include: ['spf.isp.example.net'], spf_all: '-all' });
    expect(again.statusCode).to.equal(200);
    expect(again.json().warnings).to.deep.equal(['provider own: SPF cannot name the addresses it sends from; add its SPF domain with spf_include']);
    expect(await dig(DOMAIN, 'TXT')).to.deep.equal([`"v=spf1 ip4:${NODE_IP} include:sendgrid.net include:spf.isp.example.net -all"`]);
    expect((await call('DELETE', `/api/v1/mail/rules/${rule.json().rule.id}`)).statusCode).to.equal(204);
    expect(await dig(DOMAIN, 'TXT')).to.deep.equal([`"v=spf1 ip4:${NODE_IP} include:spf.isp.example.net -all"`]);
  });

  it('DKIM rotation: the new selector is published before it signs, the old one stays for the grace period', async () => {
    expect((await call('PUT', `/api/v1/mail/domains/${DOMAIN}`, {})).statusCode).to.equal(201);
    const old = f.mail.deps.store.dkimKey(DOMAIN)!;
    const rot = await call('POST', `/api/v1/mail/domains/${DOMAIN}/dkim/rotate`, { selector: 'k2', sign_after: 3600, grace: 86_400 });
    expect(rot.statusCode, rot.body).to.equal(200);
    expect(await dig(`k2._domainkey.${DOMAIN}`, 'TXT')).to.have.length(1);
    expect(await dig(`dnsproxy._domainkey.${DOMAIN}`, 'TXT')).to.have.length(1);

    clock += 3_599_000;
    f.mail.tick();
    f.mail.deps.store.forgetCache();
    expect(f.mail.deps.store.dkimKey(DOMAIN)!.selector).to.equal('dnsproxy'); // not yet: still signing with the old key

    clock += 2_000;
    f.mail.tick();
    f.mail.deps.store.forgetCache();
    expect(f.mail.deps.store.dkimKey(DOMAIN)!.selector).to.equal('k2');
    expect(await dig(`dnsproxy._domainkey.${DOMAIN}`, 'TXT')).to.have.length(1); // grace
    const rows = (await call('GET', `/api/v1/mail/domains/${DOMAIN}/check`)).json().rows as { check: string; result: string }[];
    expect(rows.filter((r) => r.check.startsWith('DKIM')).map((r) => [r.check, r.result])).to.deep.equal([
      ['DKIM k2', 'pass'],
      ['DKIM dnsproxy', 'pass'],
    ]);

    clock += 86_400_000;
    f.mail.tick();
    expect(await dig(`dnsproxy._domainkey.${DOMAIN}`, 'TXT')).to.deep.equal([]);
    expect(await dig(`k2._domainkey.${DOMAIN}`, 'TXT')).to.have.length(1);
    expect(old.selector).to.equal('dnsproxy');
    expect((await call('POST', `/api/v1/mail/domains/${DOMAIN}/dkim/rotate`, { selector: 'k2' })).statusCode).to.equal(409);
  });
});
