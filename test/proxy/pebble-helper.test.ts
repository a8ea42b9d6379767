// test/helpers/pebble.ts: a real pebble on free loopback ports whose directory, HTTPS root and
// issuing root are what the ACME tests rely on.
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { hasPebble, httpsGet, startPebble } from '../helpers/pebble.js';

describe('test helper: pebble', function () {
  this.timeout(60_000);

  before(function () {
    if (!hasPebble()) this.skip();
  });

  it('serves its ACME directory over HTTPS signed by the returned HTTPS root; /roots/0 is the issuing CA; stop() removes its dir', async () => {
    // No DNS server answers here: this test issues nothing.
    const pebble = await startPebble({ dnsServer: '127.0.0.1:9', httpPort: 5002 });
    try {
      expect(pebble.directoryUrl).to.match(/^https:\/\/127\.0\.0\.1:\d+\/dir$/);
      expect(pebble.httpPort).to.equal(5002);
      expect(pebble.tlsPort).to.be.a('number').above(0);
      const dir = JSON.parse(await httpsGet(pebble.directoryUrl, pebble.httpsRootPem)) as Record<string, unknown>;
      expect(dir).to.include.keys('newAccount', 'newNonce', 'newOrder');
      // Nothing else trusts pebble's listener: the default trust store refuses it.
      const untrusted = await httpsGet(pebble.directoryUrl, '').then(
        () => 'trusted',
        (e: Error & { code?: string }) => e.code ?? e.message,
      );
      expect(untrusted).to.not.equal('trusted');

      const root = new X509Certificate(pebble.issuingRootPem);
      expect(root.ca).to.equal(true);
      expect(root.subject).to.match(/Pebble Root CA/);
      expect(root.verify(root.publicKey)).to.equal(true);
      const httpsRoot = new X509Certificate(pebble.httpsRootPem);
      expect(httpsRoot.fingerprint256).to.not.equal(root.fingerprint256);
      expect(pebble.output()).to.match(/Using custom DNS resolver for ACME challenges: 127\.0\.0\.1:9/);
      expect(pebble.output()).to.match(/Disabling random VA sleeps/);
    } finally {
      await pebble.stop();
      await pebble.stop();
    }
    expect(existsSync(pebble.dir)).to.equal(false);
  });
});
