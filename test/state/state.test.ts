// Desired state as code: GET /api/v1/state exports the whole state (secrets left out), POST
// applies a document in one transaction. Export → apply to an empty instance → export is
// byte-identical on a state with every kind of object; dry runs change nothing; --prune removes
// what the file lacks and nothing is removed without it; refusals name the field and write nothing.
import { expect } from 'chai';
import { once } from 'node:events';
import { parse, stringify } from 'yaml';
import { localApiSource } from '../../src/tailnet/source.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { ManualTimers, startFakeLocalApi, type FakeLocalApi } from '../helpers/tailscale.js';

const SMTP_PASS = 'smtp-secret-Zq81x';
const HTTP_TOKEN = 'bearer-secret-Yk27w';
const ACCOUNT_PASSWORD = 'account-password-Xp93';
/** The tailnet both instances see (a fake tailscaled LocalAPI): this node and a laptop. */
const SELF = { id: 'nSELF1CNTRL', hostName: 'dnsproxy', ips: ['100.64.0.1'] };
const LAPTOP = { id: 'nLAPTOP1CNTRL', hostName: 'laptop', ips: ['100.64.0.5', 'fd7a:115c:a1e0::5'], online: true, lastSeen: '2026-12-07T10:00:00Z' };
/** An imported zone file's SOA fields (they differ from the configured ones in every field). */
const IMPORTED_SOA = { mname: 'ns.example.com.', rname: 'admin.example.com.', refresh: 1800, retry: 900, expire: 1209600, minimum: 120, ttl: 7200 };

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

async function call(f: ApiFixture, method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}) {
  return f.app.inject({ method, url, headers: { ...f.auth, ...headers }, ...(payload === undefined ? {} : { payload: payload as string }) });
}

async function ok(f: ApiFixture, method: Method, url: string, payload?: unknown) {
  const res = await call(f, method, url, payload);
  expect(res.statusCode, `${method} ${url}: ${res.body}`).to.be.oneOf([200, 201, 204]);
  return res;
}

const exportText = async (f: ApiFixture) => {
  const res = await call(f, 'GET', '/api/v1/state');
  expect(res.statusCode, res.body).to.equal(200);
  expect(res.headers['content-type']).to.match(/^application\/yaml/);
  return res.body;
};

const apply = (f: ApiFixture, text: string, query = '') => call(f, 'POST', `/api/v1/state${query}`, text, { 'content-type': 'application/yaml' });

/** Every kind of object the state holds: a zone's imported SOA, a view, records of each type (proxied, per-view and device-bound ones too), routes (one to a tailnet device), mail domains, accounts, providers, rules. */
async function seed(f: ApiFixture): Promise<string[]> {
  const imported = await f.app.inject({ method: 'POST', url: '/api/v1/zones/home.arpa/import?mode=merge', headers: { ...f.auth, 'content-type': 'text/plain' }, payload: '$ORIGIN home.arpa.\n$TTL 300\n@ 7200 IN SOA ns.example.com. admin.example.com. 7 1800 900 1209600 120\n' });
  expect(imported.statusCode, imported.body).to.equal(200);
  await ok(f, 'POST', '/api/v1/views', { name: 'lan', cidrs: ['192.168.1.0/24', 'fd00:1::/64'] });
  await ok(f, 'PUT', '/api/v1/records/split/A', { name: 'split', type: 'A', values: ['192.0.2.60'], views: { lan: { values: ['192.168.1.60', '192.168.1.61'] } } });
  await ok(f, 'PUT', '/api/v1/records/laptop/A', { name: 'laptop', type: 'A', target_device: 'laptop', ttl: 60 });
  await ok(f, 'PUT', '/api/v1/records/laptop/AAAA', { name: 'laptop', type: 'AAAA', target_device: 'laptop' });
  await ok(f, 'POST', '/api/v1/routes', { hosts: ['dev.home.arpa'], upstreams: ['device:laptop:8080'], tls: 'internal' });
  await ok(f, 'PUT', '/api/v1/records/web/A', { name: 'web', type: 'A', values: ['192.0.2.20', '192.0.2.21'], ttl: 120, service_name: 'web', proxy: { enabled: true, upstreams: ['192.0.2.30:8080'], tls: 'internal' } });
  await ok(f, 'PUT', '/api/v1/records/web/AAAA', { name: 'web', type: 'AAAA', values: ['2001:db8::20'] });
  await ok(f, 'PUT', '/api/v1/records/alias/CNAME', { name: 'alias', type: 'CNAME', values: ['web.home.arpa.'] });
  await ok(f, 'PUT', '/api/v1/records/notes/TXT', { name: 'notes', type: 'TXT', values: ['plain text', ['k=v', 'a=b'], [{ hex: 'ff00' }]] });
  await ok(f, 'PUT', '/api/v1/records/@/MX', { name: '@', type: 'MX', values: [{ preference: 20, exchange: 'mx2.home.arpa.' }] });
  await ok(f, 'PUT', '/api/v1/records/_sip._tcp.home.arpa./SRV', { name: '_sip._tcp.home.arpa.', type: 'SRV', values: [{ priority: 10, weight: 5, port: 5060, target: 'web.home.arpa.' }] });
  await ok(f, 'PUT', '/api/v1/records/@/CAA', { name: '@', type: 'CAA', values: [{ flags: 0, tag: 'issue', value: 'letsencrypt.org' }] });
  await ok(f, 'PUT', '/api/v1/records/host/SSHFP', { name: 'host', type: 'SSHFP', values: ['4 2 abababababababababababababababababababababababababababababababab'] });
  await ok(f, 'PUT', '/api/v1/records/odd/TYPE65400', { name: 'odd', type: 'TYPE65400', values: ['\\# 2 abcd'] });
  // A user's own value beside the mail domain's SPF (the export keeps only it), and a plain name.
  await ok(f, 'PUT', '/api/v1/records/lab.example./TXT', { name: 'lab.example.', type: 'TXT', values: ['site-verification=abc'] });
  await ok(f, 'PUT', '/api/v1/records/plain.lab.example./A', { name: 'plain.lab.example.', type: 'A', values: ['192.0.2.40'], proxy: { enabled: true, upstreams: ['192.0.2.41:80'] } });
  const route = await ok(f, 'POST', '/api/v1/routes', { hosts: ['app.home.arpa', 'www.app.home.arpa'], path: '/api', upstreams: ['192.0.2.50:9000', '192.0.2.51:9000'], tls: 'off', health_path: '/healthz' });
  expect(route.json().route.id).to.match(/^api:/);
  await ok(f, 'PUT', '/api/v1/mail/providers/relay', { type: 'smtp', host: 'smtp.example.net', port: 587, auth: { user: 'relay-user', pass: SMTP_PASS } });
  await ok(f, 'PUT', '/api/v1/mail/providers/direct', { type: 'mx' });
  await ok(f, 'PUT', '/api/v1/mail/providers/api', { type: 'http', format: 'raw', url: 'https://mail.example.net/send', auth: { scheme: 'bearer', token: HTTP_TOKEN } });
  await ok(f, 'POST', '/api/v1/mail/rules', { priority: 10, recipient_domain: 'example.org', provider: 'api', fallback_provider: 'relay' });
  await ok(f, 'POST', '/api/v1/mail/rules', { provider: 'direct' });
  await ok(f, 'POST', '/api/v1/mail/rules', { provider: 'direct' }); // the same rule twice: exported once
  await ok(f, 'POST', '/api/v1/mail/accounts', { name: 'app', email: 'app@lab.example', password: ACCOUNT_PASSWORD, allowed_domains: ['lab.example', 'home.arpa'] });
  const key = (await ok(f, 'POST', '/api/v1/mail/accounts/app/keys', { label: 'ci' })).json().key as string;
  await ok(f, 'PUT', '/api/v1/mail/domains/lab.example', { dmarc_policy: 'quarantine', dmarc_rua: 'dmarc@lab.example', mta_sts_mode: 'enforce' });
  const dkim = f.mail.deps.store.dkimKey('lab.example')!.private_key;
  // Secret material the export must not carry: the account API key, the DKIM key's body.
  return [key, dkim.split('\n')[1]!];
}

/** The export with the secrets an empty instance cannot have (they are never exported) put back in. */
function withSecrets(text: string): string {
  const doc = parse(text) as { mail: { providers: { name: string; config: { auth?: Record<string, string> } }[] } };
  for (const p of doc.mail.providers) {
    if (p.name === 'relay') p.config.auth!.pass = SMTP_PASS;
    if (p.name === 'api') p.config.auth!.token = HTTP_TOKEN;
  }
  return stringify(doc);
}

describe('state: export and apply the whole desired state', function () {
  this.timeout(60_000);
  let a: ApiFixture;
  let b: ApiFixture;
  let tailnet: FakeLocalApi;
  /** Each instance's device-poll timers: a test fires them to make it read the tailnet again. */
  const timers = new Map<ApiFixture, ManualTimers>();
  /** An instance that has read the tailnet's device list once (again only when its timers fire). */
  const withDevices = async () => {
    const t = new ManualTimers();
    const f = await apiFixture({ devices: { source: localApiSource(tailnet.socket), timers: t } });
    timers.set(f, t);
    const polled = once(f.devices.registry, 'polled');
    f.devices.registry.start();
    await polled;
    return f;
  };
  beforeEach(async () => {
    tailnet = await startFakeLocalApi(SELF, [LAPTOP]);
    a = await withDevices();
    b = await withDevices();
  });
  afterEach(async () => {
    await a.close();
    await b.close();
    await tailnet.close();
  });

  it('export → apply to an empty instance → export is byte-identical, with every kind of object; no secret is exported', async () => {
    const minted = await seed(a);
    const first = await exportText(a);
    // Every kind of object is there.
    const doc = parse(first) as Record<string, unknown> & { records: { name: string; type: string; values: unknown[] }[]; mail: Record<string, unknown[]> };
    expect(doc.version).to.equal(1);
    expect(new Set(doc.records.map((r) => r.type))).to.deep.equal(new Set(['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'SRV', 'CAA', 'SSHFP', 'TYPE65400']));
    expect((doc.routes as { upstreams: string[] }[]).map((r) => r.upstreams[0]).sort()).to.deep.equal(['192.0.2.50:9000', 'device:laptop:8080']);
    // The view, a set's per-view values, the device-bound sets (the device, not its addresses), the imported SOA.
    expect(doc.views).to.deep.equal([{ name: 'lan', cidrs: ['192.168.1.0/24', 'fd00:1::/64'] }]);
    expect(doc.records.find((r) => r.name === 'split.home.arpa.')).to.deep.include({ values: ['192.0.2.60'], views: { lan: { values: ['192.168.1.60', '192.168.1.61'] } } });
    expect(doc.records.filter((r) => r.name === 'laptop.home.arpa.')).to.deep.equal([
      { name: 'laptop.home.arpa.', type: 'A', ttl: 60, target_device: 'laptop' },
      { name: 'laptop.home.arpa.', type: 'AAAA', ttl: 300, target_device: 'laptop' },
    ]);
    expect((doc.zones as { name: string; soa: unknown }[]).find((z) => z.name === 'home.arpa.')?.soa).to.deep.equal(IMPORTED_SOA);
    expect(doc.mail.domains).to.have.length(1);
    expect(doc.mail.accounts).to.have.length(1);
    expect(doc.mail.providers).to.have.length(3);
    expect(doc.mail.rules).to.have.length(2);
    expect((doc.zones as { name: string; soa: { rname: string } }[]).map((z) => z.name)).to.deep.equal(['home.arpa.', 'lab.example.']);
    // The mail domain's own values are not exported (it makes them again); the user's value beside them is.
    expect(doc.records.find((r) => r.name === 'lab.example.' && r.type === 'TXT')?.values).to.deep.equal(['site-verification=abc']);
    expect(doc.records.some((r) => r.name.includes('_domainkey') || r.name.startsWith('_dmarc'))).to.equal(false);
    // No secret material: passwords, provider credentials, DKIM private keys, hashes, API tokens.
    for (const secret of [SMTP_PASS, HTTP_TOKEN, ACCOUNT_PASSWORD, a.token, ...minted, 'PRIVATE KEY', 'scrypt$', 'password', 'pass:', 'token:'])
      expect(first, `export holds ${secret}`).not.to.include(secret);

    // An empty instance cannot have the providers' secrets: a file without them is refused, naming the field, and nothing is written.
    const empty = await exportText(b);
    const refused = await apply(b, first);
    expect(refused.statusCode, refused.body).to.equal(400);
    expect(refused.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['mail.providers.0.config.auth.token']);
    expect(await exportText(b)).to.equal(empty);

    const applied = await apply(b, withSecrets(first));
    expect(applied.statusCode, applied.body).to.equal(200);
    expect(applied.json().changed).to.equal(true);
    expect(applied.json().plan.records.added).to.include('web.home.arpa. A');
    expect(applied.json().plan.views.added).to.deep.equal(['lan']);
    expect(applied.json().plan.zones.changed).to.deep.equal(['home.arpa. SOA']);
    await b.pipeline.settled();
    const second = await exportText(b);
    expect(second).to.equal(first);
    // What the file made is live: the SOA is the zone's own, the sets follow the device, the view answers.
    expect(b.records.soa('home.arpa.')).to.deep.equal(IMPORTED_SOA);
    expect(b.index.soa('home.arpa.')).to.deep.include(IMPORTED_SOA);
    const laptop = (await ok(b, 'GET', '/api/v1/records/laptop/AAAA')).json().record;
    expect(laptop).to.deep.include({ values: ['fd7a:115c:a1e0::5'], device: { name: 'laptop', state: 'ok' } });
    expect(b.views.get('lan')?.cidrs).to.deep.equal(['192.168.1.0/24', 'fd00:1::/64']);

    // The raw export (no secrets) now applies to it as nothing to change: the stored secrets are kept.
    const again = await apply(b, first);
    expect(again.statusCode, again.body).to.equal(200);
    expect(again.json().changed).to.equal(false);
    expect(b.mail.deps.store.provider('relay')?.config).to.deep.include({ auth: { user: 'relay-user', pass: SMTP_PASS } });
    expect(await exportText(b)).to.equal(first);
    // A file that also lists a value the mail domain publishes (its SPF) is no change: that value is the domain's.
    const spf = b.records.get('lab.example.', 'TXT')!.values.find((v) => typeof v === 'string' && v.startsWith('v=spf1'));
    const withSpf = (parse(first) as { records: { name: string; type: string; values: unknown[] }[] });
    withSpf.records.find((r) => r.name === 'lab.example.' && r.type === 'TXT')!.values.push(spf);
    const spfAgain = await apply(b, stringify(withSpf));
    expect(spfAgain.json().changed, spfAgain.body).to.equal(false);
    // The account made from the file has no password until one is set: it cannot log in.
    expect(b.mail.deps.store.login('app')?.hash).to.equal('!');
    // The served DNS is the same: the proxied record, the mail domain's MX and SPF merged with the user's TXT.
    const served = (f: ApiFixture) => f.index.servedRecords('lab.example.').map((r) => [r.name, r.type, r.values]).filter(([name, type]) => type !== 'SOA' && !String(name).includes('_domainkey'));
    expect(served(b)).to.deep.equal(served(a));
    expect(b.records.get('lab.example.', 'TXT')?.values).to.have.length(2);
  });

  it('a set bound to a device that left the tailnet keeps its binding: its export applies again, a change keeps it bound', async () => {
    await ok(a, 'PUT', '/api/v1/records/laptop/A', { name: 'laptop', type: 'A', target_device: 'laptop' });
    tailnet.peers = [];
    for (const f of [a, b]) {
      const polled = once(f.devices.registry, 'polled');
      expect(timers.get(f)!.fire()).to.equal(1);
      await polled;
      await f.pipeline.settled();
    }
    const text = await exportText(a);
    expect((parse(text) as { records: unknown[] }).records).to.deep.equal([{ name: 'laptop.home.arpa.', type: 'A', ttl: 300, target_device: 'laptop' }]);
    const again = await apply(a, text);
    expect(again.statusCode, again.body).to.equal(200);
    expect(again.json().changed).to.equal(false);
    const doc = parse(text) as { records: Record<string, unknown>[] };
    doc.records[0]!.ttl = 60;
    const changed = await apply(a, stringify(doc));
    expect(changed.statusCode, changed.body).to.equal(200);
    expect(changed.json().plan.records.changed).to.deep.equal(['laptop.home.arpa. A']);
    const rec = (await ok(a, 'GET', '/api/v1/records/laptop/A')).json().record;
    expect(rec).to.deep.include({ ttl: 60, values: ['100.64.0.5'], device: { name: 'laptop', state: 'missing' } });
    // Elsewhere (b has no set bound to it) the same file is refused, naming the field.
    const refused = await apply(b, text);
    expect(refused.statusCode, refused.body).to.equal(400);
    expect(refused.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['records.0.target_device']);
  });

  it('a dry run changes nothing and shows the plan', async () => {
    await seed(a);
    const text = withSecrets(await exportText(a));
    const before = await exportText(b);
    const serial = b.records.serial('home.arpa.');
    const res = await apply(b, text, '?dry_run=true');
    expect(res.statusCode, res.body).to.equal(200);
    expect(res.json()).to.include({ dry_run: true, changed: true });
    expect(res.json().plan.records.added).to.include('web.home.arpa. A');
    expect(res.json().plan.mail_providers.added).to.deep.equal(['api', 'direct', 'relay']);
    expect(res.json().proxy.routes.added.map((r: { id: string }) => r.id)).to.include('record:web.home.arpa');
    expect(await exportText(b)).to.equal(before);
    expect(b.records.serial('home.arpa.')).to.equal(serial);
    expect(b.mail.deps.store.providers()).to.deep.equal([]);
  });

  it('without --prune nothing is removed (the plan lists it); with --prune what the file lacks goes', async () => {
    await seed(a);
    const text = withSecrets(await exportText(a));
    expect((await apply(b, text)).statusCode).to.equal(200);
    // Things the file lacks.
    await ok(b, 'PUT', '/api/v1/records/extra/A', { name: 'extra', type: 'A', values: ['192.0.2.99'] });
    const route = await ok(b, 'POST', '/api/v1/routes', { hosts: ['extra.home.arpa'], upstreams: ['192.0.2.98:80'] });
    await ok(b, 'POST', '/api/v1/mail/rules', { priority: 5, sender_domain: 'home.arpa', provider: 'relay' });
    await ok(b, 'POST', '/api/v1/mail/accounts', { name: 'other', email: 'other@home.arpa', password: 'other-password-1', allowed_domains: ['home.arpa'] });
    await ok(b, 'POST', '/api/v1/views', { name: 'guest', cidrs: ['10.9.0.0/16'] });

    const kept = await apply(b, text);
    expect(kept.statusCode, kept.body).to.equal(200);
    expect(kept.json().changed).to.equal(false);
    expect(kept.json().plan.records.not_in_file).to.deep.equal(['extra.home.arpa. A']);
    expect(kept.json().plan.routes.not_in_file).to.deep.equal([route.json().route.id]);
    expect(kept.json().plan.mail_accounts.not_in_file).to.deep.equal(['other']);
    expect(kept.json().plan.mail_rules.not_in_file).to.have.length(1);
    expect(kept.json().plan.views.not_in_file).to.deep.equal(['guest']);
    expect(b.views.get('guest')).to.not.equal(undefined);
    expect(b.records.get('extra.home.arpa.', 'A')).to.not.equal(undefined);

    const pruned = await apply(b, text, '?prune=true');
    expect(pruned.statusCode, pruned.body).to.equal(200);
    expect(pruned.json().plan.records.removed).to.deep.equal(['extra.home.arpa. A']);
    expect(pruned.json().plan.routes.removed).to.deep.equal([route.json().route.id]);
    expect(pruned.json().plan.views.removed).to.deep.equal(['guest']);
    expect(b.views.get('guest')).to.equal(undefined);
    expect(b.records.get('extra.home.arpa.', 'A')).to.equal(undefined);
    expect(await exportText(b)).to.equal(await exportText(a));
    // The mail domain's records were not pruned with the user's: they are not in the file's records.
    expect(b.records.get('_dmarc.lab.example.', 'TXT')).to.not.equal(undefined);

    // A section the file leaves out is never pruned: only records here.
    const onlyRecords = await apply(b, 'version: 1\nrecords: []\n', '?prune=true');
    expect(onlyRecords.statusCode, onlyRecords.body).to.equal(200);
    expect(onlyRecords.json().plan.records.removed).to.include('web.home.arpa. A');
    expect(onlyRecords.json().plan.routes.removed).to.deep.equal([]);
    expect(onlyRecords.json().plan.routes.not_in_file).to.have.length(2);
    expect(onlyRecords.json().plan.mail_rules.removed).to.deep.equal([]);
    expect(onlyRecords.json().plan.views).to.deep.include({ removed: [], not_in_file: ['lan'] });
    expect(b.routes.list()).to.have.length(2);
    expect(b.views.get('lan'), 'views are a section of their own').to.not.equal(undefined);
    expect(b.records.get('web.home.arpa.', 'A')).to.equal(undefined);
    expect(b.records.get('_dmarc.lab.example.', 'TXT'), 'the mail domain still publishes').to.not.equal(undefined);
  });

  it('refusals name the field and write nothing: a bad value, a wrong version, a conflict half-way, a token below admin', async () => {
    const good = { name: 'fine', type: 'A', values: ['192.0.2.1'] };
    const before = await exportText(b);
    const bad = await call(b, 'POST', '/api/v1/state', { version: 1, records: [good, { name: 'bad', type: 'A', values: ['not-an-ip'] }] });
    expect(bad.statusCode, bad.body).to.equal(400);
    expect(bad.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['records.1.values.0']);

    const version = await apply(b, 'version: 2\nrecords: []\n');
    expect(version.statusCode).to.equal(400);
    expect(version.json().error.fields).to.deep.equal([{ path: 'version', message: '2 is not a state-file version this dnsproxy reads (it reads 1)' }]);
    const missing = await apply(b, 'records: []\n');
    expect(missing.json().error.fields[0].path).to.equal('version');

    const unknown = await apply(b, 'version: 1\nrecord: []\n');
    expect(unknown.statusCode).to.equal(400);
    expect(unknown.json().error.message).to.include('record');

    const yaml = await apply(b, 'version: 1\nrecords: [\n');
    expect(yaml.statusCode).to.equal(400);
    expect(yaml.json().error.message).to.match(/not valid YAML: line \d+/);

    // The store refuses the second set (a CNAME beside data): the first, already written inside the transaction, is rolled back.
    const conflict = await call(b, 'POST', '/api/v1/state', { version: 1, records: [good, { name: 'fine', type: 'CNAME', values: ['web.home.arpa.'] }] });
    expect(conflict.statusCode, conflict.body).to.equal(409);
    expect(b.records.get('fine.home.arpa.', 'A')).to.equal(undefined);

    const cert = await call(b, 'POST', '/api/v1/state', { version: 1, certificates: [{ name: 'web', source: 'file', ref: 'certs/web.pem' }] });
    expect(cert.statusCode).to.equal(400);
    expect(cert.json().error.fields[0].path).to.equal('certificates.0');
    const soa = await call(b, 'POST', '/api/v1/state', { version: 1, zones: [{ name: 'home.arpa.', soa: { ...IMPORTED_SOA, refresh: -1 } }] });
    expect(soa.statusCode, soa.body).to.equal(400);
    expect(soa.json().error.fields[0].path).to.equal('zones.0.soa.refresh');
    // Records bound to a device need the device in the tailnet now (as the API's target_device): 400 naming the field.
    const device = await call(b, 'POST', '/api/v1/state', { version: 1, records: [good, { name: 'gone', type: 'A', target_device: 'desktop' }] });
    expect(device.statusCode, device.body).to.equal(400);
    expect(device.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['records.1.target_device']);
    expect(device.json().error.message).to.include('no device desktop in the tailnet');
    const both = await call(b, 'POST', '/api/v1/state', { version: 1, records: [{ name: 'both', type: 'A', target_device: 'laptop', values: ['192.0.2.1'] }] });
    expect(both.json().error.fields[0].path).to.equal('records.0.values');
    const txt = await call(b, 'POST', '/api/v1/state', { version: 1, records: [{ name: 'both', type: 'TXT', target_device: 'laptop' }] });
    expect(txt.json().error.fields[0].path).to.equal('records.0.type');
    const upstream = await call(b, 'POST', '/api/v1/state', { version: 1, routes: [{ id: 'api:dev', hosts: ['dev.home.arpa'], upstreams: ['device:desktop:80'] }] });
    expect(upstream.statusCode, upstream.body).to.equal(400);
    expect(upstream.json().error.fields[0].path).to.equal('routes.0.upstreams.0');
    // A record naming a view the file does not define (and none is stored): 400 naming the view.
    const view = await call(b, 'POST', '/api/v1/state', { version: 1, records: [{ ...good, views: { lan: { values: ['192.168.1.1'] } } }] });
    expect(view.statusCode, view.body).to.equal(400);
    expect(view.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['records.0.views.lan']);
    const overlap = await call(b, 'POST', '/api/v1/state', { version: 1, views: [{ name: 'one', cidrs: ['10.0.0.0/8'] }, { name: 'two', cidrs: ['10.1.0.0/16'] }] });
    expect(overlap.statusCode, overlap.body).to.equal(400);
    expect(overlap.json().error.fields[0].path).to.equal('views.1.cidrs.0');
    const zone = await call(b, 'POST', '/api/v1/state', { version: 1, zones: [{ name: 'other.example.' }] });
    expect(zone.json().error.fields[0].path).to.equal('zones.0.name');

    const own = await call(b, 'POST', '/api/v1/state', { version: 1, routes: [{ id: 'api:admin', hosts: ['x.home.arpa'], upstreams: ['127.0.0.1:2019'] }] });
    expect(own.statusCode).to.equal(400);
    expect(own.json().error.fields[0].path).to.equal('routes.0.upstreams.0');
    // An extra port that is one of ours (Caddy's HTTP port here), as the API refuses it.
    const port = await call(b, 'POST', '/api/v1/state', { version: 1, routes: [{ id: 'api:port', hosts: ['p.home.arpa'], upstreams: ['192.0.2.5:80'], listen: { port: b.proxy.settings.httpPort } }] });
    expect(port.statusCode, port.body).to.equal(400);
    expect(port.json().error.fields[0].path).to.equal('routes.0.listen.port');

    const { token } = b.tokens.create('writer', 'write');
    const scoped = await b.app.inject({ method: 'POST', url: '/api/v1/state', headers: { authorization: `Bearer ${token}` }, payload: { version: 1 } });
    expect(scoped.statusCode).to.equal(403);
    const read = await b.app.inject({ method: 'GET', url: '/api/v1/state', headers: { authorization: `Bearer ${token}` } });
    expect(read.statusCode).to.equal(403);
    expect(await exportText(b)).to.equal(before);
  });

  it('a long YAML body is parsed on a thread of its own: applied, or refused naming the line', async () => {
    const records = Array.from({ length: 1500 }, (_, i) => ({ name: `h${i}.home.arpa.`, type: 'A', values: [`10.0.${i >> 8}.${i & 255}`] }));
    const text = stringify({ version: 1, records });
    expect(text.length).to.be.above(64 * 1024);
    const broken = `${text}  - name: [unclosed\n`;
    const refused = await apply(b, broken);
    expect(refused.statusCode, refused.body).to.equal(400);
    // The unclosed flow sequence on the last line: reported there or at the end of the file after it.
    const line = Number(/^line (\d+), column \d+$/.exec(refused.json().error.fields[0].path)?.[1]);
    expect(line).to.be.within(text.split('\n').length, text.split('\n').length + 1);
    const res = await apply(b, text);
    expect(res.statusCode, res.body).to.equal(200);
    expect(res.json().plan.records.added).to.have.length(1500);
    expect(b.records.count('home.arpa.')).to.equal(1500);
  });

  it('a file omitting a secret keeps the stored one; giving it changes it', async () => {
    await ok(b, 'POST', '/api/v1/mail/accounts', { name: 'app', email: 'app@lab.example', password: ACCOUNT_PASSWORD, allowed_domains: ['lab.example'] });
    const hash = b.mail.deps.store.login('app')!.hash;
    const text = await exportText(b);
    expect((await apply(b, text)).json().changed).to.equal(false);
    expect(b.mail.deps.store.login('app')!.hash).to.equal(hash);
    const doc = parse(text) as { mail: { accounts: Record<string, unknown>[] } };
    doc.mail.accounts[0]!.password = ACCOUNT_PASSWORD;
    expect((await apply(b, stringify(doc))).json().changed, 'the same password is no change').to.equal(false);
    doc.mail.accounts[0]!.password = 'a-new-password-77';
    const changed = await apply(b, stringify(doc));
    expect(changed.json().plan.mail_accounts.changed).to.deep.equal(['app']);
    expect(b.mail.deps.store.login('app')!.hash).to.not.equal(hash);
  });
});
