// /api/v1/certificates (src/api/certificates.ts, src/certs/store.ts): an upload is checked and
// stored, listed without its key, removed; bad input is 400 naming the field; dry runs change
// nothing; writes need admin. The store hands the key only to Caddy's render and the relay.
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { selfSignedCert } from '../../src/mail/credentials/cert.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { keyMaterial, makeCa, makeLeaf, makeRsaPss, type Pem } from '../helpers/certs.js';

const DAY = 86_400_000;

describe('certs: /api/v1/certificates', function () {
  this.timeout(30_000);
  let f: ApiFixture;
  let ca: Pem;
  let leaf: Pem;
  let wild: Pem;
  /** Every response body of the test, for the leak check. */
  let bodies: string[];

  before(() => {
    ca = makeCa();
    leaf = makeLeaf(ca, ['app.home.arpa', 'www.home.arpa']);
    wild = makeLeaf(ca, ['*.lab.example']);
  });
  beforeEach(async () => {
    f = await apiFixture();
    bodies = [];
  });
  afterEach(async () => {
    for (const [i, body] of bodies.entries()) for (const pem of [leaf.key, wild.key]) for (const line of keyMaterial(pem)) expect(body, `response ${i}`).not.to.include(line);
    await f.close();
  });

  const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object, headers = f.auth) => {
    const res = await f.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
    bodies.push(res.body);
    return res;
  };
  const fieldOf = (res: { json: () => { error: { fields: { path: string; message: string }[] } } }) => res.json().error.fields;

  it('stores an upload (leaf + issuer), lists it with names, issuer, validity, fingerprint and source, never the key, and removes it', async () => {
    const res = await call('POST', '/api/v1/certificates', { cert: leaf.cert + ca.cert, key: leaf.key });
    expect(res.statusCode, res.body).to.equal(201);
    const c = res.json().certificate;
    expect(c.id).to.match(/^crt_[0-9a-f]{16}$/);
    expect(c).to.include({ source: 'upload', fingerprint_sha256: new X509Certificate(leaf.cert).fingerprint256, chain_length: 2, issuer: 'CN=dnsproxy test CA', renewal: null });
    expect(c.names).to.deep.equal(['app.home.arpa', 'www.home.arpa']);
    expect(Date.parse(c.not_after) - Date.parse(c.not_before)).to.be.closeTo(20 * DAY, DAY);
    // Valid for 20 days: the answer warns it expires within 30.
    expect(res.json().warnings).to.deep.equal([`the certificate expires in 19 days (${c.not_after})`]);

    const list = await call('GET', '/api/v1/certificates');
    expect(list.json().certificates.map((x: { id: string }) => x.id)).to.deep.equal([c.id]);
    const one = await call('GET', `/api/v1/certificates/${c.id}`);
    expect(one.json().certificate).to.deep.equal(c);
    expect(JSON.stringify(one.json())).not.to.match(/PRIVATE KEY|"key"/);

    // What Caddy and the relay get: the key, only through these two.
    expect(f.certificates.served()).to.have.length(1);
    expect(f.certificates.served()[0]!.key).to.equal(`${leaf.key.trim()}\n`);
    // What Caddy loads leaves it out once expired (Caddy then gets its own for the names).
    expect(f.certificates.served(Date.now()).map((c) => c.id)).to.have.length(1);
    expect(f.certificates.served(Date.now() + 365 * DAY)).to.deep.equal([]);
    expect(f.certificates.forHost('www.home.arpa', Date.now())?.id).to.equal(c.id);
    expect(f.certificates.forHost('other.home.arpa', Date.now())).to.equal(undefined);

    expect((await call('POST', '/api/v1/certificates', { cert: leaf.cert, key: leaf.key })).statusCode, 'the same leaf again').to.equal(409);
    expect((await call('DELETE', `/api/v1/certificates/${c.id}`)).statusCode).to.equal(204);
    expect((await call('DELETE', `/api/v1/certificates/${c.id}`)).statusCode).to.equal(404);
    expect((await call('GET', `/api/v1/certificates/${c.id}`)).statusCode).to.equal(404);
    expect((await call('GET', '/api/v1/certificates')).json().certificates).to.deep.equal([]);
  });

  it('bad input is 400 naming the field: malformed PEM, key mismatch, expired, not yet valid, chain out of order, no DNS name, a key type Caddy refuses, missing or mixed fields', async () => {
    const now = Date.now();
    const expired = await selfSignedCert('old.home.arpa', new Date(now - 900 * DAY));
    const future = await selfSignedCert('new.home.arpa', new Date(now + 2 * DAY));
    const cases: [string, object, string, RegExp][] = [
      ['malformed PEM', { cert: '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n', key: leaf.key }, 'cert', /^certificate 1 does not parse/],
      ['no PEM at all', { cert: 'hello', key: leaf.key }, 'cert', /^no PEM certificate found/],
      ['malformed key', { cert: leaf.cert, key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }, 'key', /^the private key does not parse/],
      ['key mismatch', { cert: leaf.cert, key: wild.key }, 'key', /^the private key does not match the certificate \(CN=app\.home\.arpa, sha256 /],
      ['expired', expired, 'cert', /^the certificate expired on /],
      ['not yet valid', future, 'cert', /^the certificate is not valid before /],
      ['chain out of order', { cert: ca.cert + leaf.cert, key: leaf.key }, 'cert', /^the chain is out of order: the key belongs to certificate 2; put the leaf first/],
      ['issuer before leaf', { cert: leaf.cert + wild.cert + ca.cert, key: leaf.key }, 'cert', /^certificate 2 in the chain did not issue certificate 1 \(order: leaf first/],
      ['no DNS name', { cert: ca.cert, key: ca.key }, 'cert', /names no DNS name/],
      ['RSA-PSS key (Caddy would refuse it)', makeRsaPss('pss.home.arpa'), 'key', /^a rsa-pss key is not supported/],
      ['missing key', { cert: leaf.cert }, 'key', /^required/],
      ['upload and order at once', { cert: leaf.cert, key: leaf.key, acme_dns01: { names: ['a.home.arpa'] } }, 'cert', /either cert and key .* or acme_dns01/],
      ['unknown field', { cert: leaf.cert, key: leaf.key, pem: 'x' }, '', /pem/],
    ];
    for (const [what, body, field, reason] of cases) {
      const res = await call('POST', '/api/v1/certificates', body);
      expect(res.statusCode, `${what}: ${res.body}`).to.equal(400);
      const fields = fieldOf(res);
      expect(fields[0]?.path, what).to.equal(field);
      expect(`${fields[0]?.message}`, what).to.match(reason);
    }
    expect((await call('GET', '/api/v1/certificates')).json().certificates, 'nothing stored').to.deep.equal([]);
  });

  it('?dry_run=true shows the plan and stores nothing; removing with dry_run keeps it', async () => {
    const dry = await call('POST', '/api/v1/certificates?dry_run=true', { cert: wild.cert, key: wild.key });
    expect(dry.statusCode, dry.body).to.equal(200);
    expect(dry.json().dry_run).to.equal(true);
    expect(dry.json().plan.certificates.added[0]).to.match(/^certificate crt_[0-9a-f]{16} for \*\.lab\.example \(sha256 /);
    expect(f.certificates.list()).to.deep.equal([]);
    const bad = await call('POST', '/api/v1/certificates?dry_run=true', { cert: wild.cert, key: leaf.key });
    expect(bad.statusCode, 'a dry run fails where the call would').to.equal(400);

    const id = (await call('POST', '/api/v1/certificates', { cert: wild.cert, key: wild.key })).json().certificate.id as string;
    const dryRemove = await call('DELETE', `/api/v1/certificates/${id}?dry_run=true`);
    expect(dryRemove.json().plan.certificates.removed).to.deep.equal([`certificate ${id} for *.lab.example`]);
    expect(f.certificates.list().map((c) => c.id)).to.deep.equal([id]);
    expect(f.certificates.forHost('x.lab.example', Date.now())?.id, 'a wildcard covers one label').to.equal(id);
    expect(f.certificates.forHost('a.x.lab.example', Date.now())).to.equal(undefined);
  });

  it('reading needs a read token, writing an admin token; a bad id is 400 naming it', async () => {
    const bearer = (scope: 'read' | 'write' | 'admin') => ({ authorization: `Bearer ${f.tokens.create(`t-${scope}`, scope).token}` });
    expect((await call('GET', '/api/v1/certificates', undefined, bearer('read'))).statusCode).to.equal(200);
    expect((await call('POST', '/api/v1/certificates', { cert: leaf.cert, key: leaf.key }, bearer('write'))).statusCode).to.equal(403);
    expect((await call('POST', '/api/v1/certificates', { cert: leaf.cert, key: leaf.key }, bearer('admin'))).statusCode).to.equal(201);
    const id = f.certificates.list()[0]!.id;
    expect((await call('DELETE', `/api/v1/certificates/${id}`, undefined, bearer('write'))).statusCode).to.equal(403);
    const bad = await call('GET', '/api/v1/certificates/nope');
    expect(bad.statusCode).to.equal(400);
    expect(fieldOf(bad)[0]?.path).to.equal('id');
  });

  it('an upload is checked at the store\'s clock: a certificate that is valid now is refused when the clock says it expired', async () => {
    const later = await apiFixture({ certsNow: () => new Date(Date.now() + 40 * DAY) });
    try {
      const res = await later.app.inject({ method: 'POST', url: '/api/v1/certificates', headers: later.auth, payload: { cert: leaf.cert, key: leaf.key } });
      bodies.push(res.body);
      expect(res.statusCode).to.equal(400);
      expect(res.json().error.fields[0]).to.include({ path: 'cert' });
      expect(res.json().error.fields[0].message).to.match(/^the certificate expired on /);
    } finally {
      await later.close();
    }
  });
});
