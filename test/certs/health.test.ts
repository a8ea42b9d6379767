// Certificate expiry (src/certs/health.ts): the /health rule (degraded when a certificate expires
// within 7 days and nothing will renew it: a failing ACME renewal, or an upload) and the
// days-to-expiry gauge read from the store at scrape time. The real controller's /health and
// /metrics are checked in test/e2e/acme-dns01.test.ts.
import { expect } from 'chai';
import { certDaysGauge, certHealth, certMetricsFrom, certStates, type CertState } from '../../src/certs/health.js';
import { registry } from '../../src/metrics.js';
import { apiFixture } from '../helpers/api.js';
import { makeCa, makeLeaf } from '../helpers/certs.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-06-01T00:00:00Z');
const cert = (id: string, daysLeft: number, renewal: CertState['renewal']): CertState => ({ id, names: [`${id}.home.arpa`], not_after_ms: NOW + daysLeft * DAY, renewal });

describe('certs: expiry on /health and /metrics', () => {
  it('health: disabled without certificates; ok while renewals work or expiry is far; degraded for a failing renewal or an upload within 7 days, or an expired one', () => {
    expect(certHealth([], NOW)).to.deep.equal({ status: 'disabled' });
    expect(certHealth([cert('a', 3, { failures: 0, last_error: null }), cert('b', 8, null), cert('c', 30, { failures: 4, last_error: 'x' })], NOW)).to.deep.equal({ status: 'ok' });
    expect(certHealth([cert('a', 6.5, { failures: 2, last_error: 'timeout' })], NOW)).to.deep.equal({ status: 'degraded', detail: 'a (a.home.arpa) expires in 6 days, renewal failing (2×: timeout)' });
    expect(certHealth([cert('b', 1.2, null), cert('c', -1, null)], NOW)).to.deep.equal({
      status: 'degraded',
      detail: 'b (b.home.arpa) expires in 1 day, uploaded: nothing renews it; c (c.home.arpa) expired, uploaded: nothing renews it',
    });
    const many = Array.from({ length: 7 }, (_, i) => cert(`x${i}`, 2, null));
    expect(certHealth(many, NOW).detail).to.match(/; and 2 more$/);
  });

  it('metrics: days to expiry per stored certificate, labelled with id, names and source', async () => {
    const f = await apiFixture();
    const undo = certMetricsFrom(f.certificates, () => Date.now());
    try {
      const ca = makeCa();
      const leaf = makeLeaf(ca, ['app.home.arpa', 'www.home.arpa'], 20);
      const id = f.certificates.add(leaf, 'upload').certificate.id;
      const text = await registry.metrics();
      expect(text).to.match(new RegExp(`^dnsproxy_certificate_days_to_expiry\\{id="${id}",names="app\\.home\\.arpa,www\\.home\\.arpa",source="upload"\\} 19$`, 'm'));
      expect(certStates(f.certificates)).to.deep.equal([{ id, names: ['app.home.arpa', 'www.home.arpa'], not_after_ms: f.certificates.served()[0]!.not_after_ms, renewal: null }]);
      f.certificates.remove(id);
      expect((await certDaysGauge.get()).values).to.deep.equal([]);
    } finally {
      undo();
      await f.close();
    }
  });
});
