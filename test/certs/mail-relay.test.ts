// Issue 16, item 4: one store for HTTPS and mail. The relay presents the store's certificate for
// its host name at STARTTLS (and on the implicit-TLS port) when one exists, before its own; a
// replaced (renewed) certificate reaches the next handshake without a restart; removing it
// brings the relay's own back. Real relay on the controller's data dir, real STARTTLS sessions.
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { dirname } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { selfSignedCert } from '../../src/mail/credentials/cert.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { makeCa, makeLeaf } from '../helpers/certs.js';
import { until } from '../helpers/until.js';
import { HOSTNAME, presentedAt, startRelay, type RelayFixture } from '../mail/helpers.js';

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
/** The relay polls every 50 ms here; a loaded box may take seconds. */
const waitFor = (what: string, probe: () => Promise<boolean>) => until(what, 10_000, async () => ((await probe()) ? true : undefined));


function implicitTlsLeaf(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: HOSTNAME, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.once('error', reject);
  });
}

describe('certs: the mail relay presents the store\'s certificate for its host name', function () {
  this.timeout(60_000);
  let f: ApiFixture;
  let r: RelayFixture;

  beforeEach(async () => {
    f = await apiFixture();
    // The relay on the controller's data dir, as supervisord runs them; it looks for a new certificate every 50 ms.
    r = await startRelay({ tlsPollMs: 50, smtpsPort: 0 }, dirname(f.db.name));
  });
  afterEach(async () => {
    await r.close();
    await f.close();
  });

  const mailCert = async () => (await f.app.inject({ method: 'GET', url: '/api/v1/mail/cert', headers: f.auth })).json<{ presented: { source: string; fingerprint_sha256: string } }>();

  it('of two uploads, the one covering the host name (a wildcard) is presented at STARTTLS, a replacement (renewal) too, without a restart; removal brings the relay\'s own back', async () => {
    const ca = makeCa();
    const own = fingerprint(r.cert);
    expect(await presentedAt(r.submissionPort)).to.equal(own);

    const other = makeLeaf(ca, ['www.example.net']);
    const res0 = await f.app.inject({ method: 'POST', url: '/api/v1/certificates', headers: f.auth, payload: { cert: other.cert, key: other.key } });
    expect(res0.statusCode, res0.body).to.equal(201);

    const wild = makeLeaf(ca, ['*.example.net']);
    const res = await f.app.inject({ method: 'POST', url: '/api/v1/certificates', headers: f.auth, payload: { cert: wild.cert + ca.cert, key: wild.key } });
    expect(res.statusCode, res.body).to.equal(201);
    const id = res.json().certificate.id as string;
    await waitFor('the relay to take the store certificate', async () => (await mailCert()).presented.source === 'store');
    expect((await mailCert()).presented.fingerprint_sha256).to.equal(fingerprint(wild.cert));
    for (const port of [r.submissionPort, r.smtpPort]) expect(await presentedAt(port), `STARTTLS on ${port}`).to.equal(fingerprint(wild.cert));
    expect(await implicitTlsLeaf(r.smtpsPort!)).to.equal(fingerprint(wild.cert));

    // What a renewal does: the same id, a new pair.
    const renewed = makeLeaf(ca, ['*.example.net', 'example.net']);
    f.certificates.replace(id, { cert: renewed.cert + ca.cert, key: renewed.key }, null);
    await waitFor('the relay to take the renewed certificate', async () => (await mailCert()).presented.fingerprint_sha256 === fingerprint(renewed.cert));
    expect(await presentedAt(r.submissionPort)).to.equal(fingerprint(renewed.cert));

    // An exact name wins over the wildcard.
    const exact = makeLeaf(ca, [HOSTNAME]);
    expect((await f.app.inject({ method: 'POST', url: '/api/v1/certificates', headers: f.auth, payload: { cert: exact.cert, key: exact.key } })).statusCode).to.equal(201);
    await waitFor('the exact certificate', async () => (await presentedAt(r.submissionPort)) === fingerprint(exact.cert));

    for (const c of f.certificates.list()) expect((await f.app.inject({ method: 'DELETE', url: `/api/v1/certificates/${c.id}`, headers: f.auth })).statusCode).to.equal(204);
    await waitFor('the relay to go back to its own certificate', async () => (await mailCert()).presented.source === 'self-signed');
    expect(await presentedAt(r.submissionPort)).to.equal(own);
  });

  it('a store certificate comes before one set with dnsproxy mail cert, which comes back when the store one goes', async () => {
    const operator = await selfSignedCert(HOSTNAME, new Date());
    expect((await f.app.inject({ method: 'PUT', url: '/api/v1/mail/cert', headers: f.auth, payload: operator })).statusCode).to.equal(200);
    await waitFor('the operator certificate', async () => (await mailCert()).presented.source === 'operator');
    const ca = makeCa();
    const leaf = makeLeaf(ca, [HOSTNAME]);
    const id = (await f.app.inject({ method: 'POST', url: '/api/v1/certificates', headers: f.auth, payload: { cert: leaf.cert, key: leaf.key } })).json().certificate.id as string;
    await waitFor('the store certificate', async () => (await mailCert()).presented.source === 'store');
    expect(await presentedAt(r.submissionPort)).to.equal(fingerprint(leaf.cert));
    expect(((await f.app.inject({ method: 'GET', url: '/api/v1/mail/cert', headers: f.auth })).json<{ pending: boolean }>()).pending).to.equal(false);
    expect((await f.app.inject({ method: 'DELETE', url: `/api/v1/certificates/${id}`, headers: f.auth })).statusCode).to.equal(204);
    await waitFor('the operator certificate again', async () => (await mailCert()).presented.source === 'operator');
    expect(await presentedAt(r.submissionPort)).to.equal(fingerprint(operator.cert));
  });
});
