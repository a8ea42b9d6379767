// The relay's state on the controller's /metrics (one scrape): queue depth by status, delivery
// attempts by provider and outcome, suppressions, days left on the presented certificate.
import { expect } from 'chai';
import { selfSignedCert } from '../../src/mail/credentials/cert.js';
import { MessageStore } from '../../src/mail/queue/messages.js';
import { MailStore } from '../../src/mail/store.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('mail: metrics on the controller', () => {
  let f: ApiFixture;
  const now = 1_800_000_000_000;
  afterEach(async () => f.close());

  it('one scrape shows the queue by status, attempts by provider/outcome, suppressions and certificate days', async () => {
    f = await apiFixture({ now: () => now });
    const messages = new MessageStore(f.db);
    const ids = ['a', 'b', 'c'].map((s) => messages.enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: [`${s}@example.org`], raw: Buffer.from(`Subject: ${s}\r\n\r\nx`) }, now)[0]!);
    f.db.prepare("UPDATE mail_messages SET status = 'deferred' WHERE id = ?").run(ids[0]);
    const log = f.db.prepare('INSERT INTO mail_deliveries (message_id, at_ms, provider, outcome, code, response, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?)');
    log.run(ids[0], now, 'isp', 'transient', 451, '451 later', 20);
    log.run(ids[0], now, 'isp', 'transient', 451, '451 later', 20);
    log.run(ids[1], now, 'sg', 'delivered', 250, '250 ok', 30);
    const store = new MailStore(f.db);
    store.suppress('gone@example.org', 'bounce', '550 5.1.1 no such user');
    const cert = await selfSignedCert('relay.example.net', new Date(now - 10 * 86_400_000));
    store.setPresentedCert({ source: 'self-signed', cert: cert.cert, operator_set_at_ms: null, since_ms: now });

    const res = await f.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).to.equal(200);
    const text = res.body;
    expect(text).to.include('dnsproxy_mail_queue_messages{status="queued"} 2');
    expect(text).to.include('dnsproxy_mail_queue_messages{status="deferred"} 1');
    expect(text).to.include('dnsproxy_mail_queue_messages{status="held"} 0');
    expect(text).to.include('dnsproxy_mail_delivery_attempts{provider="isp",outcome="transient"} 2');
    expect(text).to.include('dnsproxy_mail_delivery_attempts{provider="sg",outcome="delivered"} 1');
    expect(text).to.include('dnsproxy_mail_suppressions{source="bounce"} 1');
    expect(text).to.include('dnsproxy_mail_suppressions{source="manual"} 0');
    // Valid 825 days from 10 days ago (cert.ts CERT_VALIDITY_DAYS): 815 left, give or take the day it started.
    const days = Number(/^dnsproxy_mail_cert_days_to_expiry (-?\d+)$/m.exec(text)?.[1]);
    expect(days).to.be.within(814, 815);
  });
});
