// The STARTTLS certificate: what `PUT /api/v1/mail/cert` refuses and why (certcheck.ts), and which
// certificate a client sees at STARTTLS — the operator's once set (picked up without a restart),
// the self-signed one before and after. The peer certificate is read with node:tls.
import { expect } from 'chai';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { dirname } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { selfSignedCert } from '../../src/mail/credentials/cert.js';
import { checkCertPair } from '../../src/mail/credentials/certcheck.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { HOSTNAME, presentedAt, startRelay, type RelayFixture } from './helpers.js';

const DAY = 86_400_000;
const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

/** Polls an async probe until it is true; fails after `ms`. */
async function until(probe: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  for (const end = Date.now() + ms; !(await probe()); await new Promise((r) => setTimeout(r, 20)))
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** TLS from the first byte (the implicit-TLS listener; no verification): the leaf the relay presented. */
function presentedAtImplicit(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ port, host: '127.0.0.1', servername: HOSTNAME, rejectUnauthorized: false }, () => {
      resolve(tls.getPeerCertificate().fingerprint256);
      tls.destroy();
    });
    tls.once('error', reject);
  });
}


describe('mail: STARTTLS certificate checks (certcheck.ts)', () => {
  const now = Date.now();
  let good: { key: string; cert: string };
  let other: { key: string; cert: string };

  before(async () => {
    [good, other] = await Promise.all([selfSignedCert(HOSTNAME, new Date(now)), selfSignedCert('other.example.net', new Date(now))]);
  });

  it('refuses, with the field and the reason: wrong key, expired, not yet valid, no PEM, an encrypted key, a chain out of order', async () => {
    const expired = await selfSignedCert(HOSTNAME, new Date(now - 900 * DAY)); // valid 825 days from 900 days ago
    const future = await selfSignedCert(HOSTNAME, new Date(now + 2 * DAY));
    const encrypted = createPrivateKey(good.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }).toString();
    const cases: [string, string, string, 'cert' | 'key', RegExp][] = [
      ['wrong key', good.cert, other.key, 'key', /^the private key does not match the certificate \(CN=relay\.example\.net, sha256 [0-9A-F:]{95}\)$/],
      ['expired', expired.cert, expired.key, 'cert', /^the certificate expired on \d{4}-\d\d-\d\dT/],
      ['not yet valid', future.cert, future.key, 'cert', /^the certificate is not valid before \d{4}-/],
      ['no PEM', 'hello', good.key, 'cert', /^no PEM certificate found/],
      ['garbage key', good.cert, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', 'key', /^the private key does not parse/],
      ['encrypted key', good.cert, encrypted, 'key', /^the private key is encrypted; give it decrypted/],
      ['chain out of order', good.cert + other.cert, good.key, 'cert', /^certificate 2 in the chain did not issue certificate 1/],
    ];
    for (const [what, cert, key, field, reason] of cases) {
      const r = checkCertPair(cert, key, now);
      expect(r.ok, what).to.equal(false);
      if (!r.ok) {
        expect(r.field, what).to.equal(field);
        expect(r.reason, what).to.match(reason);
      }
    }
  });

  it('accepts a matching, current pair and describes it (subject, names, validity, the SHA-256 fingerprint node:tls prints)', () => {
    const r = checkCertPair(good.cert, good.key, now);
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.info).to.include({ subject: `CN=${HOSTNAME}`, self_signed: true, expired: false, chain_length: 1, fingerprint_sha256: fingerprint(good.cert) });
    expect(r.info.names).to.deep.equal([`DNS:${HOSTNAME}`]);
    expect(r.warnings).to.deep.equal([]);
  });
});

describe('mail: dnsproxy mail cert through the API, presented by a running relay', function () {
  let f: ApiFixture;
  let r: RelayFixture;
  let pair: { key: string; cert: string };

  const call = (method: 'GET' | 'PUT' | 'DELETE', payload?: object) => f.app.inject({ method, url: '/api/v1/mail/cert', headers: f.auth, ...(payload ? { payload } : {}) });

  beforeEach(async () => {
    f = await apiFixture();
    // The relay on the controller's data dir, as supervisord runs them; it polls for a new certificate every 50 ms.
    r = await startRelay({ tlsPollMs: 50, smtpsPort: 0 }, dirname(f.db.name));
    pair = await selfSignedCert(HOSTNAME, new Date());
  });
  afterEach(async () => {
    await r.close();
    await f.close();
  });

  it('a mismatched key is 400 naming the field and the reason, and nothing changes', async () => {
    const other = await selfSignedCert(HOSTNAME, new Date());
    const res = await call('PUT', { cert: pair.cert, key: other.key });
    expect(res.statusCode).to.equal(400);
    expect(res.json().error.fields).to.have.length(1);
    expect(res.json().error.fields[0]).to.include({ path: 'key' });
    expect(res.json().error.fields[0].message).to.match(/^the private key does not match the certificate/);
    expect((await call('GET')).json()).to.include({ operator: null, pending: false });
    expect(await presentedAt(r.submissionPort)).to.equal(fingerprint(r.cert));
  });

  it('a valid pair is presented at the next STARTTLS without a restart; the API shows it (never the key); removing it brings back the self-signed one', async () => {
    const before = (await call('GET')).json();
    expect(before.presented).to.include({ source: 'self-signed', fingerprint_sha256: fingerprint(r.cert) });
    expect(await presentedAt(r.submissionPort)).to.equal(fingerprint(r.cert));

    const set = await call('PUT', pair);
    expect(set.statusCode).to.equal(200);
    expect(set.body).not.to.include('PRIVATE KEY');
    expect(set.json().operator).to.include({ subject: `CN=${HOSTNAME}`, fingerprint_sha256: fingerprint(pair.cert), expired: false });

    await until(async () => (await call('GET')).json().pending === false, 5000, 'the relay to take the certificate');
    for (const port of [r.submissionPort, r.smtpPort]) expect(await presentedAt(port), `port ${port}`).to.equal(fingerprint(pair.cert));
    expect(await presentedAtImplicit(r.smtpsPort!), 'the implicit-TLS port').to.equal(fingerprint(pair.cert));
    expect((await call('GET')).json().presented).to.include({ source: 'operator', fingerprint_sha256: fingerprint(pair.cert) });

    expect((await call('DELETE')).statusCode).to.equal(204);
    expect((await call('DELETE')).statusCode).to.equal(404);
    await until(async () => (await call('GET')).json().presented.source === 'self-signed', 5000, 'the relay to go back to its own certificate');
    expect(await presentedAt(r.submissionPort)).to.equal(fingerprint(r.cert));
    expect(await presentedAtImplicit(r.smtpsPort!)).to.equal(fingerprint(r.cert));
  });
});

describe('mail: the relay chooses its certificate at start', function () {
  it('presents a certificate set before it started from its first session, and skips one edited in the database behind the API that does not match', async () => {
    const r = await startRelay({ tlsPollMs: 60_000 });
    try {
      const pair = await selfSignedCert(HOSTNAME, new Date());
      r.store.setOperatorCert(pair.cert, pair.key);
      await r.relay.stop();
      const first = await r.relay.start(); // same data dir; no poll within the test, so only the start can have picked it
      expect(await presentedAt(first.submissionPort)).to.equal(fingerprint(pair.cert));

      const other = await selfSignedCert(HOSTNAME, new Date());
      r.store.setOperatorCert(pair.cert, other.key); // only possible behind the API's back
      await r.relay.stop();
      const second = await r.relay.start();
      expect(await presentedAt(second.submissionPort)).to.equal(fingerprint(r.cert));
      expect(r.store.presentedCert()).to.include({ source: 'self-signed' });
    } finally {
      await r.close();
    }
  });
});
